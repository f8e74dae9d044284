package policy

import (
	"net/url"
	"slices"
	"strings"
)

// DefaultFields are the names whose values are secrets wherever they appear
// as a JSON key, a form or multipart field, a query parameter or a
// command-line option.
var DefaultFields = []string{
	"password", "passwd", "pwd", "secret", "token", "access_token", "refresh_token", "id_token",
	"api_key", "apikey", "client_secret", "private_key", "secret_key", "secret_access_key",
	"authorization", "credentials",
}

// fieldSet matches field names against secret names. A name matches an
// entry when, ignoring ASCII case and the separators '_', '-', '.' and ' ',
// it equals the entry or ends with it: "password" covers "newPassword" and
// "db-password", "token" covers "access_token" and "csrfToken". Only the
// last maxFieldTail normalised bytes of a name are compared, so that long
// names cost no more than short ones.
type fieldSet struct {
	// byLast holds the normalised entries by their last byte; entries that
	// end with another entry are dropped (the shorter one covers them).
	byLast [256][]string
	// last2 has bit (c1<<8 | c2) set for the last two bytes c1 c2 of every
	// entry: a key whose last two bytes (no separator among them) are not
	// in it cannot match.
	last2 [1024]uint64
	short bool // an entry of one byte: last2 does not apply
	// rawReject has bit (c1<<8 | c2) set for the raw bytes c1 c2 (any
	// case) ending a name that cannot match: both plain key bytes
	// (plainKeyByte) and their folded pair not in last2. It is last2
	// folded into one lookup for the JSON key pass.
	rawReject *[1024]uint64
	n         int
}

const maxFieldTail = 32

func isFieldSep(c byte) bool { return c == '_' || c == '-' || c == '.' || c == ' ' }

// normField appends the normalised tail of name (at most maxFieldTail
// bytes) to dst.
func normField[T string | []byte](dst []byte, name T) []byte {
	start := len(dst)
	for i := len(name) - 1; i >= 0 && len(dst)-start < maxFieldTail; i-- {
		c := name[i]
		if isFieldSep(c) {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	slices.Reverse(dst[start:])
	return dst
}

func newFieldSet(errs *errList, field string, names []string, extraField string, extra []string) fieldSet {
	var norm []string
	check := func(f string, list []string) {
		for i, n := range list {
			fi := f + "[" + itoa(i) + "]"
			nb := normField(nil, n)
			switch {
			case strings.TrimSpace(n) == "":
				errs.add(fi, "empty name")
			case len(nb) == 0:
				errs.add(fi, "%q has only separators", n)
			case len(nb) >= maxFieldTail:
				errs.add(fi, "%q is longer than %d characters without separators", n, maxFieldTail-1)
			default:
				norm = append(norm, string(nb))
			}
		}
	}
	check(field, names)
	check(extraField, extra)
	var s fieldSet
	for _, e := range norm {
		covered := false
		for _, o := range norm {
			if o != e && strings.HasSuffix(e, o) {
				covered = true
				break
			}
		}
		last := e[len(e)-1]
		if covered || slices.Contains(s.byLast[last], e) {
			continue
		}
		s.byLast[last] = append(s.byLast[last], e)
		s.n++
		if len(e) < 2 {
			s.short = true
		} else {
			k := uint16(e[len(e)-2])<<8 | uint16(last)
			s.last2[k>>6] |= 1 << (k & 63)
		}
	}
	s.rawReject = new([1024]uint64)
	for c1 := 0; c1 < 256; c1++ {
		for c2 := 0; c2 < 256; c2++ {
			if plainKeyByte(byte(c1)) && plainKeyByte(byte(c2)) && !s.lastBytes(byte(c1), byte(c2)) {
				k := c1<<8 | c2
				s.rawReject[k>>6] |= 1 << (k & 63)
			}
		}
	}
	return s
}

// rejectsRawPair reports whether a name ending with the raw bytes c1 c2
// cannot match.
func (s *fieldSet) rejectsRawPair(c1, c2 byte) bool {
	if s.rawReject == nil { // a zero fieldSet: matches nothing
		return true
	}
	k := uint16(c1)<<8 | uint16(c2)
	return s.rawReject[k>>6]&(1<<(k&63)) != 0
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

func (s *fieldSet) empty() bool { return s.n == 0 }

// has reports whether name is a secret field name.
func (s *fieldSet) has(name string) bool {
	if s.n == 0 || name == "" {
		return false
	}
	var buf [maxFieldTail]byte
	return s.match(normField(buf[:0], name))
}

func (s *fieldSet) match(nb []byte) bool {
	if len(nb) == 0 {
		return false
	}
	for _, e := range s.byLast[nb[len(nb)-1]] {
		if len(nb) >= len(e) && string(nb[len(nb)-len(e):]) == e {
			return true
		}
	}
	return false
}

// hasBytes is has for a name held in a byte slice (a JSON key).
func (s *fieldSet) hasBytes(name []byte) bool {
	if s.n == 0 || len(name) == 0 {
		return false
	}
	// Fast reject on the last normalised byte, without building the tail.
	i := len(name) - 1
	for i >= 0 && isFieldSep(name[i]) {
		i--
	}
	if i < 0 {
		return false
	}
	c := name[i]
	if 'A' <= c && c <= 'Z' {
		c += 'a' - 'A'
	}
	for _, e := range s.byLast[c] {
		if tailMatch(name[:i+1], e) {
			return true
		}
	}
	return false
}

// tailMatch reports whether name, normalised, ends with e (normalised),
// comparing from the end without building the normalised name.
func tailMatch(name []byte, e string) bool {
	i := len(name) - 1
	for k := len(e) - 1; k >= 0; k-- {
		for i >= 0 && isFieldSep(name[i]) {
			i--
		}
		if i < 0 {
			return false
		}
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != e[k] {
			return false
		}
		i--
	}
	return true
}

// hasEncoded is has for a percent-encoded name (form fields, query
// parameters).
func (s *fieldSet) hasEncoded(name string) bool {
	if strings.IndexByte(name, '%') >= 0 || strings.IndexByte(name, '+') >= 0 {
		if dec, err := url.QueryUnescape(name); err == nil {
			name = dec
		}
	}
	return s.has(name)
}

// lastBytes reports whether a name ending with c1 c2 (neither a
// separator) may match.
func (s *fieldSet) lastBytes(c1, c2 byte) bool {
	if s.short {
		return true
	}
	if 'A' <= c1 && c1 <= 'Z' {
		c1 += 'a' - 'A'
	}
	if 'A' <= c2 && c2 <= 'Z' {
		c2 += 'a' - 'A'
	}
	k := uint16(c1)<<8 | uint16(c2)
	return s.last2[k>>6]&(1<<(k&63)) != 0
}
