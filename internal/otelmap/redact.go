package otelmap

import (
	"strings"

	"github.com/tlstap/tlstap/internal/exchange"
)

// Redacted replaces the value of a redacted header.
const Redacted = "REDACTED"

// sensitiveHeaders are redacted by default (lowercase names).
var sensitiveHeaders = [...]string{"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}

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
		if isSensitiveHeader(h.Name) {
			h.Value = Redacted
		}
		out[i] = h
	}
	return out
}

// isSensitiveHeader reports whether strings.ToLower(name) is one of
// sensitiveHeaders, without building the lowercased name: it runs for every
// header of every exchange.
func isSensitiveHeader(name string) bool {
	if !isASCII(name) {
		// Some non-ASCII letters lowercase to ASCII ones (the Kelvin sign
		// to 'k'): only ToLower gives the same answer.
		lower := strings.ToLower(name)
		for _, s := range sensitiveHeaders {
			if lower == s {
				return true
			}
		}
		return false
	}
	for _, s := range sensitiveHeaders {
		if len(s) == len(name) && equalLowerASCII(name, s) {
			return true
		}
	}
	return false
}

// equalLowerASCII reports whether the ASCII string s lowercased is lower.
func equalLowerASCII(s, lower string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
