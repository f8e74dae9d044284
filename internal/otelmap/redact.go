package otelmap

import (
	"strings"

	"github.com/tlstap/tlstap/internal/exchange"
)

// Redacted replaces the value of a redacted header.
const Redacted = "REDACTED"

// sensitiveHeaders are redacted by default (lowercase names).
var sensitiveHeaders = map[string]bool{
	"authorization":       true,
	"proxy-authorization": true,
	"cookie":              true,
	"set-cookie":          true,
	"x-api-key":           true,
}

// RedactSensitiveHeaders is the default header redaction: it returns a copy
// of hs in which the values of Authorization, Proxy-Authorization, Cookie,
// Set-Cookie and X-Api-Key are replaced by "REDACTED"; the headers themselves
// stay, so a reader sees that they were sent. hs is not modified.
//
// It is the single place the default policy lives; a policy package can
// replace it through Options.RedactHeaders.
func RedactSensitiveHeaders(hs []exchange.Header) []exchange.Header {
	if len(hs) == 0 {
		return hs
	}
	out := make([]exchange.Header, len(hs))
	for i, h := range hs {
		if sensitiveHeaders[strings.ToLower(h.Name)] {
			h.Value = Redacted
		}
		out[i] = h
	}
	return out
}
