package policy

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
)

// span is a byte range [start, end) of a body.
type span struct{ start, end int }

// jsonScan walks a JSON document once, without building it: it records
// where string contents and numbers are (so that value rules can keep the
// document valid) and replaces the values of secret fields. It never
// backtracks; a document cut by max_body_bytes is scanned up to the cut.
type jsonScan struct {
	strs  []span // string contents, quotes excluded, keys included
	nums  []span // number tokens
	edits []edit // secret field values
}

// quotedRedacted replaces a whole JSON value token.
const quotedRedacted = `"` + Redacted + `"`

// looksJSON reports whether b starts (after white space) like a JSON object
// or array.
func looksJSON(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', '[':
			return true
		}
		return false
	}
	return false
}

// scan fills s from b. It returns false when b stopped being JSON before
// its end (then only what was seen before is recorded).
func (s *jsonScan) scan(b []byte, fields *fieldSet) bool {
	s.strs, s.nums, s.edits = s.strs[:0], s.nums[:0], s.edits[:0]
	var stackBuf [32]byte
	stack := stackBuf[:0]
	expectKey := false
	pending := false // the next value belongs to a secret field
	secretAt := -1   // stack depth at which a secret container was opened
	secret := func() bool { return pending || secretAt >= 0 }
	for i := 0; i < len(b); {
		switch c := b[i]; c {
		case ' ', '\t', '\r', '\n', ':':
			i++
		case ',':
			expectKey = len(stack) > 0 && stack[len(stack)-1] == '{'
			i++
		case '{', '[':
			if pending && secretAt < 0 {
				secretAt = len(stack)
			}
			pending = false
			stack = append(stack, c)
			expectKey = c == '{'
			i++
		case '}', ']':
			if len(stack) == 0 || stack[len(stack)-1] != c-2 { // '{'+2 == '}', '['+2 == ']'
				return false
			}
			stack = stack[:len(stack)-1]
			if secretAt >= len(stack) {
				secretAt = -1
			}
			expectKey = false
			pending = false
			i++
		case '"':
			end, esc := stringEnd(b, i+1)
			s.strs = append(s.strs, span{i + 1, end})
			content := b[i+1 : end]
			next := min(end+1, len(b))
			if expectKey && len(stack) > 0 && stack[len(stack)-1] == '{' {
				if esc {
					var k string
					if json.Unmarshal(b[i:next], &k) == nil {
						pending = fields.has(k)
					} else {
						pending = fields.hasBytes(content)
					}
				} else if n := len(content); n >= 2 && fields.rejectsRawPair(content[n-2], content[n-1]) {
					pending = false // the common key, rejected by its last two bytes
				} else {
					pending = fields.hasBytes(content)
				}
				expectKey = false
			} else {
				if secret() && len(content) > 0 && string(content) != Redacted {
					if end < len(b) {
						s.edits = append(s.edits, edit{i, next, quotedRedacted})
					} else { // cut inside the string: no closing quote to keep
						s.edits = append(s.edits, edit{i + 1, end, Redacted})
					}
				}
				pending = false
			}
			i = next
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			j := i + 1
			for j < len(b) && isNumByte(b[j]) {
				j++
			}
			s.nums = append(s.nums, span{i, j})
			if secret() {
				s.edits = append(s.edits, edit{i, j, quotedRedacted})
			}
			pending = false
			i = j
		case 't', 'f', 'n':
			j := i + 1
			for j < len(b) && 'a' <= b[j] && b[j] <= 'z' {
				j++
			}
			if secret() && c != 'n' {
				s.edits = append(s.edits, edit{i, j, quotedRedacted})
			}
			pending = false
			i = j
		default:
			return false
		}
	}
	return true
}

func isNumByte(c byte) bool {
	return '0' <= c && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

// stringEnd returns the index of the quote closing the string whose content
// starts at i (len(b) when it is cut), and whether it has escapes. Strings
// are short in typical documents: a byte loop beats two IndexByte calls.
func stringEnd(b []byte, i int) (int, bool) {
	esc := false
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i, esc
		case '\\':
			esc = true
			i++
		}
	}
	return len(b), esc
}

// fitJSON turns an edit made on the raw bytes of a JSON document into edits
// that keep it valid: inside one string's content it stays (widened so as
// not to split an escape sequence); a number it touches is replaced whole
// by "REDACTED" (quoted); the parts of strings a wider match covers are
// replaced, structure and literals are kept.
func (s *jsonScan) fitJSON(b []byte, e edit, out []edit) []edit {
	// First string whose content ends after e.start.
	lo, hi := 0, len(s.strs)
	for lo < hi {
		m := (lo + hi) / 2
		if s.strs[m].end <= e.start {
			lo = m + 1
		} else {
			hi = m
		}
	}
	for k := lo; k < len(s.strs) && s.strs[k].start < e.end; k++ {
		sp := s.strs[k]
		st, en := max(e.start, sp.start), min(e.end, sp.end)
		if st >= en {
			continue
		}
		st, en = escapeBounds(b, sp, st, en)
		out = append(out, edit{st, en, e.repl})
	}
	lo, hi = 0, len(s.nums)
	for lo < hi {
		m := (lo + hi) / 2
		if s.nums[m].end <= e.start {
			lo = m + 1
		} else {
			hi = m
		}
	}
	for k := lo; k < len(s.nums) && s.nums[k].start < e.end; k++ {
		out = append(out, edit{s.nums[k].start, s.nums[k].end, quotedRedacted})
	}
	return out
}

// escapeBounds widens [st, en) inside the string content sp so that it
// neither starts nor ends inside an escape sequence (\x or \uXXXX).
func escapeBounds(b []byte, sp span, st, en int) (int, int) {
	if bytes.IndexByte(b[sp.start:sp.end], '\\') < 0 {
		return st, en
	}
	for i := sp.start; i < sp.end && i < en; {
		if b[i] != '\\' {
			i++
			continue
		}
		n := 2
		if i+1 < sp.end && b[i+1] == 'u' {
			n = 6
		}
		j := min(i+n, sp.end)
		if st > i && st < j {
			st = i
		}
		if en > i && en < j {
			en = j
		}
		i = j
	}
	return st, en
}

// mayHaveSecretKey is the fast path of JSON bodies: it reports whether a
// key of b may be a secret field, looking only at the keys. In valid JSON a
// ':' preceded (white space aside) by an unescaped quote ends a key; the
// key starts after the previous unescaped quote. Keys with escapes count
// as possible matches. Only when it returns true does the full scan run.
func mayHaveSecretKey(b []byte, fields *fieldSet) bool {
	if fields.empty() {
		return false
	}
	reject := fields.rawReject // not nil: fields is not empty
	// Every ':' is found eight bytes at a time (swar.go); the common key,
	// `..xy":`, is then rejected by its last two bytes with one lookup.
	i := 0
	for ; i+8 <= len(b); i += 8 {
		m := colonMask(binary.LittleEndian.Uint64(b[i:]))
		for ; m != 0; m &= m - 1 {
			colon := i + bits.TrailingZeros64(m)/8
			if colon == 0 {
				continue
			}
			switch b[colon-1] {
			case '"':
				if colon >= 3 {
					k := uint16(b[colon-3])<<8 | uint16(b[colon-2])
					if reject[k>>6]&(1<<(k&63)) != 0 {
						continue
					}
				}
			case ' ', '\t', '\r', '\n':
			default:
				continue // inside a value ("10:00"): no key ends here
			}
			if mayBeSecretKey(b, colon, fields) {
				return true
			}
		}
	}
	for ; i < len(b); i++ {
		if b[i] == ':' && mayBeSecretKey(b, i, fields) {
			return true
		}
	}
	return false
}

// mayBeSecretKey reports whether the ':' at b[colon] ends a key that may
// be a secret field.
func mayBeSecretKey(b []byte, colon int, fields *fieldSet) bool {
	j := colon - 1
	for j >= 0 && (b[j] == ' ' || b[j] == '\t' || b[j] == '\r' || b[j] == '\n') {
		j--
	}
	if j < 1 || b[j] != '"' || escaped(b, j) {
		return false
	}
	// Most keys are rejected by their last byte, before looking for
	// where they start.
	if j >= 2 {
		c1, c2 := b[j-2], b[j-1]
		if plainKeyByte(c1) && plainKeyByte(c2) && !fields.lastBytes(c1, c2) {
			return false
		}
	}
	esc := false
	s := j - 1
	for ; s >= 0; s-- {
		if b[s] == '"' && !escaped(b, s) {
			break
		}
		if b[s] == '\\' {
			esc = true
		}
	}
	if s < 0 {
		return false
	}
	return esc || fields.hasBytes(b[s+1:j])
}

// escaped reports whether b[i] is preceded by an odd number of backslashes.
func escaped(b []byte, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && b[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

// plainKeyByte: c is neither a separator nor part of an escape or a quote,
// so the last-bytes filter applies to it.
func plainKeyByte(c byte) bool { return c != '\\' && c != '"' && !isFieldSep(c) }
