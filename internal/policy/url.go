package policy

import (
	"net/url"
	"strings"
)

// urlRedactor redacts credentials and query parameter values in URLs.
type urlRedactor struct {
	credentials bool
	params      []string // names, compared case-insensitively
	fields      *fieldSet
}

// edit replaces s[start:end] with repl.
type edit struct {
	start, end int
	repl       string
}

// redactURL returns u with user:password@ (absolute URLs) replaced by
// REDACTED:REDACTED@ and the values of the configured query parameters by
// REDACTED. Everything else is kept byte for byte. It returns u itself (no
// allocation) when there is nothing to redact, with the number of redacted
// parameters and whether credentials were redacted.
func (r *urlRedactor) redactURL(u string) (string, int, bool) {
	var buf [4]edit
	edits := buf[:0]
	creds := false
	rest := 0 // where path / query start
	if r.credentials {
		if a, ok := authorityStart(u); ok {
			end := a + strings.IndexAny(u[a:], "/?#")
			if end < a {
				end = len(u)
			}
			rest = end
			if at := strings.LastIndexByte(u[a:end], '@'); at >= 0 {
				if ui := u[a : a+at]; ui != credentialsFor(ui) {
					edits = append(edits, edit{a, a + at, credentialsFor(ui)})
					creds = true
				}
			}
		}
	}
	nparams := 0
	if len(r.params) > 0 || (r.fields != nil && !r.fields.empty()) {
		end := len(u) // the fragment is not part of the query
		if h := strings.IndexByte(u[rest:], '#'); h >= 0 {
			end = rest + h
		}
		if q := strings.IndexByte(u[rest:end], '?'); q >= 0 {
			q += rest + 1
			for i := q; i <= end; {
				j := strings.IndexByte(u[i:end], '&')
				if j < 0 {
					j = end
				} else {
					j += i
				}
				if eq := strings.IndexByte(u[i:j], '='); eq >= 0 {
					name, vs := u[i:i+eq], i+eq+1
					if vs < j && u[vs:j] != Redacted && r.isParam(name) {
						edits = append(edits, edit{vs, j, Redacted})
						nparams++
					}
				}
				i = j + 1
			}
		}
	}
	if len(edits) == 0 {
		return u, 0, false
	}
	return applyEdits(u, edits), nparams, creds
}

func applyEdits(s string, edits []edit) string {
	var b strings.Builder
	n := len(s)
	for _, e := range edits {
		n += len(e.repl) - (e.end - e.start)
	}
	b.Grow(n)
	last := 0
	for _, e := range edits {
		b.WriteString(s[last:e.start])
		b.WriteString(e.repl)
		last = e.end
	}
	b.WriteString(s[last:])
	return b.String()
}

// credentialsFor keeps the shape of the userinfo: "user" becomes REDACTED,
// "user:password" becomes REDACTED:REDACTED.
func credentialsFor(userinfo string) string {
	if strings.IndexByte(userinfo, ':') >= 0 {
		return Redacted + ":" + Redacted
	}
	return Redacted
}

// redactAuthority redacts userinfo in a Host or :authority value.
func (r *urlRedactor) redactAuthority(a string) (string, bool) {
	if !r.credentials {
		return a, false
	}
	at := strings.LastIndexByte(a, '@')
	if at < 0 || a[:at] == credentialsFor(a[:at]) {
		return a, false
	}
	return credentialsFor(a[:at]) + a[at:], true
}

// authorityStart returns the index just after "scheme://" when u is an
// absolute URL (scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )).
func authorityStart(u string) (int, bool) {
	for i := 0; i < len(u); i++ {
		c := u[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			if strings.HasPrefix(u[i:], "://") {
				return i + 3, true
			}
			return 0, false
		default:
			return 0, false
		}
	}
	return 0, false
}

func (r *urlRedactor) isParam(name string) bool {
	if strings.IndexByte(name, '%') >= 0 || strings.IndexByte(name, '+') >= 0 {
		if dec, err := url.QueryUnescape(name); err == nil {
			name = dec
		}
	}
	for _, p := range r.params {
		if equalFoldASCII(p, name) {
			return true
		}
	}
	return r.fields != nil && r.fields.has(name)
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
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

// foldGlob matches s against pattern (lowercase) ignoring ASCII case; '*'
// matches any run of bytes, '?' any single byte.
func foldGlob(pattern, s string) bool {
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			pc := pattern[p]
			if pc == '*' {
				starP, starI = p, i
				p++
				continue
			}
			c := s[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if pc == '?' || pc == c {
				p++
				i++
				continue
			}
		}
		if starP < 0 {
			return false
		}
		starI++
		p, i = starP+1, starI
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
