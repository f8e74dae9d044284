package policy

import (
	"slices"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/tlstap/tlstap/internal/exchange"
)

// Redaction of an exchange kept by the filters: URL, headers and bodies.

// redaction counts for one exchange, added to the counters once.
type redactCounts struct {
	headers, params, creds, sizeOnly, notCaptured, notInspected uint64
	body                                                        bodyCounts
}

func (p *Policy) redact(ex *exchange.Exchange) {
	var c redactCounts
	if req := ex.Request; req != nil {
		p.redactHeaders(req.Headers, &c)
		p.redactHeaders(req.Trailers, &c)
		p.redactURLValue(&req.Target, &c)
		if !p.bodyPolicy(req, &c) {
			ex.Flags |= exchange.RequestBodyNotInspected
		}
	}
	if res := ex.Response; res != nil {
		p.redactHeaders(res.Headers, &c)
		p.redactHeaders(res.Trailers, &c)
		if !p.bodyPolicy(res, &c) {
			ex.Flags |= exchange.ResponseBodyNotInspected
		}
	}
	ex.PII = c.body.kinds.names()
	add := func(a *atomic.Uint64, n uint64) {
		if n > 0 {
			a.Add(n)
		}
	}
	add(&p.stats.headers, c.headers)
	add(&p.stats.params, c.params)
	add(&p.stats.creds, c.creds)
	add(&p.stats.bodyMatches, c.body.patterns)
	add(&p.stats.fields, c.body.fields)
	add(&p.stats.values, c.body.values)
	add(&p.stats.pii, c.body.pii)
	add(&p.stats.bodiesSizeOnly, c.sizeOnly)
	add(&p.stats.bodiesNotCaptured, c.notCaptured)
	add(&p.stats.notInspected, c.notInspected)
	for k := piiKind(0); k < numPIIKinds; k++ {
		if c.body.kinds.has(k) {
			p.stats.piiKinds[k].Add(1)
		}
	}
}

func (p *Policy) redactURLValue(v *string, c *redactCounts) {
	out, n, creds := p.url.redactURL(*v)
	if n == 0 && !creds {
		return
	}
	*v = out
	c.params += uint64(n)
	if creds {
		c.creds++
	}
}

func (p *Policy) redactHeaders(hs []exchange.Header, c *redactCounts) {
	for i := range hs {
		h := &hs[i]
		if p.headers.has(h.Name) {
			if h.Value != "" && h.Value != Redacted {
				h.Value = Redacted
				c.headers++
			}
			continue
		}
		switch len(h.Name) {
		case 4, 10: // Host, :authority
			if equalFoldASCII(h.Name, "host") || h.Name == ":authority" {
				if v, ok := p.url.redactAuthority(h.Value); ok {
					h.Value = v
					c.creds++
				}
			}
		case 5, 7, 8, 16: // :path, Referer, Location, Content-Location
			if h.Name == ":path" || equalFoldASCII(h.Name, "referer") || equalFoldASCII(h.Name, "location") ||
				equalFoldASCII(h.Name, "content-location") {
				p.redactURLValue(&h.Value, c)
			}
		}
	}
}

// bodyPolicy drops bodies the policy does not allow and inspects the
// others. It returns false when a non-empty body was not inspected.
func (p *Policy) bodyPolicy(m *exchange.Message, c *redactCounts) bool {
	if len(m.Body) == 0 && len(m.DecodedBody) == 0 {
		if m.BodySize > 0 {
			c.notInspected++
			return false
		}
		return true
	}
	if !p.capture {
		m.Body, m.DecodedBody = nil, nil
		c.notCaptured++
		c.notInspected++
		return false
	}
	ct, _ := m.Get("Content-Type")
	if !p.bodyAllowed(m, ct) {
		m.Body, m.DecodedBody = nil, nil
		c.sizeOnly++
		c.notInspected++
		return false
	}
	if m.DecodedBody != nil {
		if b := p.inspect(ct, m.DecodedBody, &c.body); &b[0] != &m.DecodedBody[0] || len(b) != len(m.DecodedBody) {
			// The encoded bytes still carry what was redacted.
			m.DecodedBody, m.Body = b, nil
		}
		return true
	}
	if b := p.inspect(ct, m.Body, &c.body); &b[0] != &m.Body[0] || len(b) != len(m.Body) {
		m.Body = b
	}
	return true
}

// bodyAllowed: full is m's Content-Type.
func (p *Policy) bodyAllowed(m *exchange.Message, full string) bool {
	if ce, ok := m.Get("Content-Encoding"); ok && m.DecodedBody == nil {
		if ce = strings.TrimSpace(ce); ce != "" && !equalFoldASCII(ce, "identity") {
			return false // still encoded: opaque bytes
		}
	}
	ct, params, _ := strings.Cut(full, ";")
	ct = strings.TrimSpace(ct)
	if ct == "" {
		b := m.DecodedBody
		if b == nil {
			b = m.Body
		}
		if m.BodyTruncated {
			b = exchange.CutIncompleteRune(b) // the limit may split a character
		}
		return utf8.Valid(b) && !slices.Contains(b, 0)
	}
	if p.allTypes {
		return true
	}
	for _, pat := range p.contentTypes {
		if foldGlob(pat, ct) {
			return true
		}
	}
	// A charset parameter says the body is text, whatever its media type
	// ("application/x-ndjson; charset=utf-8"): kept while text/* is.
	return p.textTypes && hasCharset(params)
}

// hasCharset reports whether Content-Type parameters name a charset.
func hasCharset(params string) bool {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, _, ok := strings.Cut(p, "=")
		if ok && equalFoldASCII(strings.TrimSpace(name), "charset") {
			return true
		}
	}
	return false
}
