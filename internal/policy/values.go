package policy

import "bytes"

// Secret values recognised by their shape wherever they appear in a body
// or a command-line argument. Every detector is a hand-written scanner
// anchored on a literal prefix found with bytes.Index (vectorised), so a
// body without the prefix costs one pass of memchr-like search.

// Names of the built-in secret value detectors (redaction.secret_values).
const (
	ValueJWT          = "jwt"            // eyJ<header>.<payload>.<signature>
	ValueAWSAccessKey = "aws_access_key" // AKIA / ASIA + 16 upper-case letters or digits
	ValueGoogleAPIKey = "google_api_key" // AIza + 35 characters
	ValueGitHubToken  = "github_token"   // ghp_ / gho_ / ghu_ / ghs_ / ghr_ + 36, github_pat_ + 82
	ValuePrivateKey   = "private_key"    // PEM -----BEGIN ... PRIVATE KEY----- block
)

// DefaultSecretValues enables every built-in secret value detector.
var DefaultSecretValues = []string{ValueJWT, ValueAWSAccessKey, ValueGoogleAPIKey, ValueGitHubToken, ValuePrivateKey}

// spanFinder appends the spans of b it recognises to out.
type spanFinder func(b []byte, out []span) []span

var secretValueFinders = map[string]spanFinder{
	ValueJWT:          findJWTs,
	ValueAWSAccessKey: findAWSKeys,
	ValueGoogleAPIKey: findGoogleKeys,
	ValueGitHubToken:  findGitHubTokens,
	ValuePrivateKey:   findPrivateKeys,
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isB64URL(c byte) bool { return isAlnum(c) || c == '-' || c == '_' }

func isUpperOrDigit(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' }

// eachIndex calls f with every index of lit in b, from left to right; f
// returns where the search continues.
func eachIndex(b, lit []byte, f func(i int) int) { eachIndexRare(b, lit, 0, f) }

// eachIndexRare is eachIndex searching for lit[rare], a byte chosen to be
// rare in typical bodies (an upper-case letter in "eyJ"), with IndexByte:
// bytes.Index searches for the first byte, which is often a common one.
func eachIndexRare(b, lit []byte, rare int, f func(i int) int) {
	c := lit[rare]
	for i := rare; i+len(lit)-rare <= len(b); {
		k := bytes.IndexByte(b[i:], c)
		if k < 0 {
			return
		}
		at := i + k - rare
		if at+len(lit) > len(b) {
			return
		}
		if !bytes.Equal(b[at:at+len(lit)], lit) {
			i += k + 1
			continue
		}
		i = max(f(at)+rare, i+k+1)
	}
}

// eachIndexFrom is eachIndex starting at b[from].
func eachIndexFrom(b, lit []byte, from int, f func(i int) int) {
	for i := from; i+len(lit) <= len(b); {
		k := bytes.Index(b[i:], lit)
		if k < 0 {
			return
		}
		i = max(f(i+k), i+k+1)
	}
}

// run returns the end of the run of bytes satisfying ok from i.
func run(b []byte, i int, ok func(byte) bool) int {
	for i < len(b) && ok(b[i]) {
		i++
	}
	return i
}

var litJWT = []byte("eyJ")

// findJWTs finds JSON Web Tokens (JWS compact form): a base64url header
// starting with eyJ (`{"`), a payload of at least 4 characters and a
// possibly empty signature, separated by dots.
func findJWTs(b []byte, out []span) []span {
	eachIndexRare(b, litJWT, 2, func(i int) int {
		if i > 0 && isB64URL(b[i-1]) {
			return i + 3
		}
		h := run(b, i+3, isB64URL)
		if h-i < 10 || h >= len(b) || b[h] != '.' {
			return h
		}
		p := run(b, h+1, isB64URL)
		if p-h-1 < 4 || p >= len(b) || b[p] != '.' {
			return p
		}
		s := run(b, p+1, isB64URL)
		out = append(out, span{i, s})
		return s
	})
	return out
}

var litIA = []byte("IA")

// findAWSKeys finds AWS access key ids: AKIA (long-term) or ASIA
// (temporary) followed by 16 upper-case letters or digits, standing alone.
func findAWSKeys(b []byte, out []span) []span {
	eachIndex(b, litIA, func(k int) int {
		i := k - 2
		if i < 0 || b[i] != 'A' || (b[i+1] != 'K' && b[i+1] != 'S') {
			return k + 2
		}
		e := i + 20
		if (i > 0 && isAlnum(b[i-1])) || e > len(b) || (e < len(b) && isAlnum(b[e])) || run(b, i+4, isUpperOrDigit) != e {
			return k + 2
		}
		out = append(out, span{i, e})
		return e
	})
	return out
}

var litAIza = []byte("AIza")

// findGoogleKeys finds Google API keys: AIza followed by 35 base64url
// characters.
func findGoogleKeys(b []byte, out []span) []span {
	eachIndexRare(b, litAIza, 2, func(i int) int { // 'z'
		e := i + 39
		if (i > 0 && isB64URL(b[i-1])) || e > len(b) || run(b, i+4, isB64URL) != e {
			return i + 4
		}
		out = append(out, span{i, e})
		return e
	})
	return out
}

var litGH = []byte("gh")

// findGitHubTokens finds GitHub tokens: ghp_, gho_, ghu_, ghs_, ghr_
// followed by 36 letters or digits, and fine-grained github_pat_ tokens.
//
// 'g' is common in text: "gh" is only looked for inside runs of at least
// 40 letters, digits and '_', the shortest token (ghp_ + 36), which the
// run scan finds skipping 40 bytes at a time.
func findGitHubTokens(b []byte, out []span) []span {
	classRuns(b, tokenClass, 40, func(s, e int) {
		out = findGitHubTokensIn(b, s, e, out)
	})
	return out
}

var tokenClass = newByteClass("0123456789_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

// findGitHubTokensIn finds the tokens starting in b[s:e].
func findGitHubTokensIn(b []byte, s, e int, out []span) []span {
	eachIndexFrom(b[:e], litGH, s, func(i int) int {
		if i > 0 && isAlnum(b[i-1]) {
			return i + 2
		}
		if bytes.HasPrefix(b[i:], []byte("github_pat_")) {
			e := run(b, i+11, func(c byte) bool { return isAlnum(c) || c == '_' })
			if e-i-11 >= 60 {
				out = append(out, span{i, e})
				return e
			}
			return i + 2
		}
		if i+4 > len(b) || b[i+3] != '_' || bytes.IndexByte([]byte("pousr"), b[i+2]) < 0 {
			return i + 2
		}
		e := run(b, i+4, isAlnum)
		if e-i-4 != 36 {
			return i + 2
		}
		out = append(out, span{i, e})
		return e
	})
	return out
}

var (
	litPEMBegin = []byte("-----BEGIN ")
	litPEMEnd   = []byte("-----END ")
	litDashes   = []byte("-----")
)

// findPrivateKeys finds PEM private key blocks (RSA, EC, PKCS#8,
// encrypted, OpenSSH, ...): from -----BEGIN <label>PRIVATE KEY----- to the
// matching -----END ...-----. A block cut by max_body_bytes, or inside a
// JSON string that ends before its END line, is redacted up to the cut or
// to the closing quote.
func findPrivateKeys(b []byte, out []span) []span {
	eachIndexRare(b, litPEMBegin, 5, func(i int) int { // 'B'
		l := i + len(litPEMBegin)
		k := bytes.Index(b[l:min(len(b), l+64)], litDashes)
		if k < 0 || !bytes.HasSuffix(b[l:l+k], []byte("PRIVATE KEY")) {
			return l
		}
		body := l + k + len(litDashes)
		end := len(b)
		if q := bytes.IndexByte(b[body:], '"'); q >= 0 {
			end = body + q
		}
		if e := bytes.Index(b[body:end], litPEMEnd); e >= 0 {
			e += body + len(litPEMEnd)
			if d := bytes.Index(b[e:min(end, e+64)], litDashes); d >= 0 {
				end = e + d + len(litDashes)
			}
		}
		out = append(out, span{i, end})
		return end
	})
	return out
}

func sortSpans(s []span) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].start < s[j-1].start; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
