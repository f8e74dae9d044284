package httpparse

import (
	"fmt"

	"github.com/tlstap/tlstap/internal/exchange"
)

// maxFields bounds the header (and trailer) fields of one message, so that
// a head of many tiny fields cannot make the Headers slice large.
const maxFields = 256

// parseFields parses a block of field lines, each ended by LF with an
// optional CR, without the empty line that ends the section. Original case,
// order and duplicates are kept; obs-fold continuation lines are joined to
// the previous value with one space (RFC 9112 5.2).
func parseFields(block string, limit int) ([]exchange.Header, error) {
	n := 0
	for rest := block; rest != ""; {
		var line string
		line, rest = nextLine(rest)
		if line != "" && line[0] != ' ' && line[0] != '\t' {
			n++
		}
	}
	if n > limit {
		return nil, fmt.Errorf("%d header fields, limit %d", n, limit)
	}
	if n == 0 && block == "" {
		return nil, nil
	}
	hs := make([]exchange.Header, 0, n)
	for rest := block; rest != ""; {
		var line string
		line, rest = nextLine(rest)
		if line == "" {
			return nil, fmt.Errorf("empty line inside a field section")
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(hs) == 0 {
				return nil, fmt.Errorf("continuation line %.40q before any field", line)
			}
			v := trimOWS(line)
			if err := checkValue(v); err != nil {
				return nil, err
			}
			last := &hs[len(hs)-1]
			switch {
			case v == "":
			case last.Value == "":
				last.Value = v
			default:
				last.Value += " " + v
			}
			continue
		}
		colon := -1
		for i := 0; i < len(line); i++ {
			if line[i] == ':' {
				colon = i
				break
			}
			if !isTchar(line[i]) {
				return nil, fmt.Errorf("invalid byte %q in field name of %.40q", line[i], line)
			}
		}
		if colon <= 0 {
			return nil, fmt.Errorf("malformed field line %.40q", line)
		}
		v := trimOWS(line[colon+1:])
		if err := checkValue(v); err != nil {
			return nil, err
		}
		hs = append(hs, exchange.Header{Name: line[:colon], Value: v})
	}
	return hs, nil
}

// nextLine splits off the first LF-terminated line, dropping LF and one CR.
func nextLine(s string) (line, rest string) {
	i := 0
	for i < len(s) && s[i] != '\n' {
		i++
	}
	line = s[:i]
	if i < len(s) {
		rest = s[i+1:]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// checkValue rejects the bytes RFC 9110 5.5 forbids in a field value that
// would let a captured value smuggle line structure.
func checkValue(v string) error {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b == 0 || b == '\r' {
			return fmt.Errorf("invalid byte %q in field value", b)
		}
	}
	return nil
}

func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// equalFold is an ASCII case-insensitive comparison; field names are ASCII.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}

func hasField(hs []exchange.Header, name string) bool {
	for _, h := range hs {
		if equalFold(h.Name, name) {
			return true
		}
	}
	return false
}

// eachListItem calls fn with every non-empty, trimmed element of the
// comma-separated lists in all fields called name, stopping when fn returns
// false. It does not allocate.
func eachListItem(hs []exchange.Header, name string, fn func(string) bool) {
	for _, h := range hs {
		if !equalFold(h.Name, name) {
			continue
		}
		v := h.Value
		for v != "" {
			i := 0
			for i < len(v) && v[i] != ',' {
				i++
			}
			item := trimOWS(v[:i])
			if i < len(v) {
				i++
			}
			v = v[i:]
			if item != "" && !fn(item) {
				return
			}
		}
	}
}

// contentLength returns the Content-Length of a message. Several fields or
// list elements are accepted only when they all agree (RFC 9110 8.6); any
// other value is an error because the message framing would be ambiguous.
func contentLength(hs []exchange.Header) (n int64, present bool, err error) {
	n = -1
	for _, h := range hs {
		if !equalFold(h.Name, "Content-Length") {
			continue
		}
		present = true
		v := h.Value
		if v == "" {
			return 0, true, fmt.Errorf("empty Content-Length")
		}
		for v != "" {
			i := 0
			for i < len(v) && v[i] != ',' {
				i++
			}
			item := trimOWS(v[:i])
			if i < len(v) {
				i++
			}
			v = v[i:]
			x, ok := parseDecimal(item)
			if !ok {
				return 0, true, fmt.Errorf("invalid Content-Length %.40q", h.Value)
			}
			if n >= 0 && x != n {
				return 0, true, fmt.Errorf("conflicting Content-Length values %d and %d", n, x)
			}
			n = x
		}
	}
	if !present {
		return 0, false, nil
	}
	return n, true, nil
}

// parseDecimal parses 1*DIGIT into a non-negative int64, rejecting overflow.
func parseDecimal(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// transferEncoding reports whether the message has Transfer-Encoding and
// whether its final coding is chunked, which is what decides the framing
// (RFC 9112 6.3).
func transferEncoding(hs []exchange.Header) (present, chunked bool) {
	eachListItem(hs, "Transfer-Encoding", func(item string) bool {
		present = true
		chunked = equalFold(item, "chunked")
		return true
	})
	return present, chunked
}

// appendCapped appends p to buf, growing it geometrically but never beyond a
// capacity of limit, so that capped buffers never hold more memory than
// their cap. The caller ensures len(buf)+len(p) <= limit.
func appendCapped(buf, p []byte, limit int) []byte {
	need := len(buf) + len(p)
	if need > cap(buf) {
		c := 2 * cap(buf)
		if c < 512 {
			c = 512
		}
		if c < need {
			c = need
		}
		if c > limit {
			c = limit
		}
		nb := make([]byte, len(buf), c)
		copy(nb, buf)
		buf = nb
	}
	return append(buf, p...)
}
