package policy

import (
	"bytes"
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// Go's regexp costs hundreds of microseconds per KiB for patterns such as a
// card number (no literal prefix, counted repetition), so every body pattern
// carries a prefilter derived from its syntax tree:
//
//   - alphabet: the set of bytes that can occur inside a match, and minLen,
//     the shortest match in bytes. A match lies entirely inside one maximal
//     run of alphabet bytes at least minLen long, so the regexp only runs on
//     such runs (plus one byte of context on each side, so that \b, ^ and $
//     see the same neighbours as in the whole body: the context bytes are
//     outside the alphabet and can never be part of a match).
//   - literals: substrings every match contains (ASCII case folding for
//     (?i) literals); a run without them is skipped.
//
// The result is exactly what the regexp finds on the whole body (a fuzz
// test checks it); only the work differs.
type prefilter struct {
	alphabet [256]bool
	minLen   int
	literals []literal
	// cardRuns: every match lies in a run of at least 13 bytes of
	// cardClass (the default card pattern), so a body without such a run,
	// which the card number detector also needs, is skipped for both.
	cardRuns bool
}

type literal struct {
	s    []byte // lowercase when fold
	fold bool
}

func newPrefilter(re *syntax.Regexp) prefilter {
	var p prefilter
	addAlphabet(&p.alphabet, re)
	p.minLen = minLen(re)
	p.literals = requiredLiterals(re, nil)
	p.cardRuns = p.minLen >= cardMinLen
	for c, in := range p.alphabet {
		if in && !cardClass[c] {
			p.cardRuns = false
		}
	}
	return p
}

func addHigh(a *[256]bool) {
	for i := 0x80; i < 256; i++ {
		a[i] = true
	}
}

func addRune(a *[256]bool, r rune) {
	if r < utf8.RuneSelf {
		a[r] = true
	} else {
		addHigh(a)
	}
}

func addAlphabet(a *[256]bool, re *syntax.Regexp) {
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			addRune(a, r)
			if re.Flags&syntax.FoldCase != 0 {
				for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
					addRune(a, f)
				}
			}
		}
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			for r := lo; r <= hi && r < utf8.RuneSelf; r++ {
				a[r] = true
			}
			if hi >= utf8.RuneSelf {
				addHigh(a)
			}
		}
	case syntax.OpAnyChar:
		for i := range a {
			a[i] = true
		}
	case syntax.OpAnyCharNotNL:
		for i := range a {
			a[i] = i != '\n'
		}
	default:
		for _, s := range re.Sub {
			addAlphabet(a, s)
		}
	}
}

// minLen is the length in bytes of the shortest possible match.
func minLen(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		n := 0
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 {
				n++ // a fold may be shorter in UTF-8 than r itself
			} else {
				n += utf8.RuneLen(r)
			}
		}
		return n
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return 1
	case syntax.OpCapture, syntax.OpPlus:
		return minLen(re.Sub[0])
	case syntax.OpRepeat:
		return re.Min * minLen(re.Sub[0])
	case syntax.OpConcat:
		n := 0
		for _, s := range re.Sub {
			n += minLen(s)
		}
		return n
	case syntax.OpAlternate:
		n := -1
		for _, s := range re.Sub {
			if m := minLen(s); n < 0 || m < n {
				n = m
			}
		}
		return max(n, 0)
	}
	return 0 // empty-width operators, star, quest, no match
}

// requiredLiterals lists literals (at least two bytes) that every match
// contains.
func requiredLiterals(re *syntax.Regexp, out []literal) []literal {
	switch re.Op {
	case syntax.OpLiteral:
		if lit, ok := literalOf(re); ok && len(lit.s) >= 2 {
			out = append(out, lit)
		}
	case syntax.OpCapture, syntax.OpPlus:
		out = requiredLiterals(re.Sub[0], out)
	case syntax.OpRepeat:
		if re.Min >= 1 {
			out = requiredLiterals(re.Sub[0], out)
		}
	case syntax.OpConcat:
		for _, s := range re.Sub {
			out = requiredLiterals(s, out)
		}
	}
	return out
}

// literalOf converts a literal node; case-folded literals qualify only when
// every rune folds within ASCII (not k, s: they fold to U+212A, U+017F).
func literalOf(re *syntax.Regexp) (literal, bool) {
	fold := re.Flags&syntax.FoldCase != 0
	if !fold {
		return literal{s: []byte(string(re.Rune))}, true
	}
	b := make([]byte, 0, len(re.Rune))
	for _, r := range re.Rune {
		if r >= utf8.RuneSelf {
			return literal{}, false
		}
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f >= utf8.RuneSelf {
				return literal{}, false
			}
		}
		b = append(b, byte(unicode.ToLower(r)))
	}
	return literal{s: b, fold: true}, true
}

func (l *literal) in(b []byte) bool {
	if l.fold {
		return indexFold(b, l.s) >= 0
	}
	return bytes.Index(b, l.s) >= 0
}

// indexFold finds lit (lowercase ASCII) in b, ignoring ASCII case.
func indexFold(b, lit []byte) int {
	n := len(lit)
	if n == 0 {
		return 0
	}
	if len(b) < n {
		return -1
	}
	lo := lit[0]
	up := lo
	if 'a' <= lo && lo <= 'z' {
		up = lo - ('a' - 'A')
	}
	limit := len(b) - n + 1
	nextLo, nextUp := -2, -2 // -2: not searched yet; -1: none left
	for i := 0; i < limit; {
		if nextLo != -1 && nextLo < i {
			nextLo = nextIndex(b, lo, i, limit)
		}
		if up == lo {
			nextUp = -1
		} else if nextUp != -1 && nextUp < i {
			nextUp = nextIndex(b, up, i, limit)
		}
		j := nextLo
		if j < 0 || (nextUp >= 0 && nextUp < j) {
			j = nextUp
		}
		if j < 0 {
			return -1
		}
		if equalLower(b[j+1:j+n], lit[1:]) {
			return j
		}
		i = j + 1
	}
	return -1
}

func nextIndex(b []byte, c byte, from, limit int) int {
	k := bytes.IndexByte(b[from:limit], c)
	if k < 0 {
		return -1
	}
	return from + k
}

// equalLower compares b with lower (lowercase ASCII) ignoring ASCII case.
func equalLower(b, lower []byte) bool {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// redact replaces every match of the pattern in b. It returns b itself and
// 0 when nothing matched (no allocation), else a new slice and the number
// of replaced matches.
func (cp *compiledPattern) redact(b []byte) ([]byte, int) {
	spans := cp.find(b, nil)
	if len(spans) == 0 {
		return b, 0
	}
	out := make([]byte, 0, len(b)+len(cp.replacement))
	copied := 0
	for _, sp := range spans {
		out = append(out, b[copied:sp.start]...)
		out = append(out, cp.replacement...)
		copied = sp.end
	}
	return append(out, b[copied:]...), len(spans)
}

// find appends the matches of the pattern in b to out, in order.
func (cp *compiledPattern) find(b []byte, out []span) []span {
	pf := &cp.pre
	if len(b) < pf.minLen {
		return out
	}
	for i := range pf.literals {
		if !pf.literals[i].in(b) {
			return out
		}
	}
	// Find maximal runs of alphabet bytes at least L long. Invariant: i is
	// 0 or b[i-1] is outside the alphabet, so a long enough run starting at
	// or after i covers b[i+L-1]: when that byte is outside the alphabet
	// the next L positions are skipped at once.
	L := pf.minLen
	for i := 0; i+L <= len(b); {
		j := i + L - 1
		if !pf.alphabet[b[j]] {
			i = j + 1
			continue
		}
		s := j
		for s > i && pf.alphabet[b[s-1]] {
			s--
		}
		e := j + 1
		for e < len(b) && pf.alphabet[b[e]] {
			e++
		}
		i = e + 1
		if e-s < L {
			continue
		}
		run := b[s:e]
		skip := false
		for j := range pf.literals {
			if !pf.literals[j].in(run) {
				skip = true
				break
			}
		}
		if skip {
			continue
		}
		cs, ce := max(s-1, 0), min(e+1, len(b))
		for _, loc := range cp.re.FindAllIndex(b[cs:ce], -1) {
			ms, me := cs+loc[0], cs+loc[1]
			if cp.luhn && !luhnValid(b[ms:me]) {
				continue
			}
			out = append(out, span{ms, me})
		}
	}
	return out
}

// luhnValid reports whether the digits of m (other bytes ignored) pass the
// Luhn checksum.
func luhnValid(m []byte) bool {
	sum, double, digits := 0, false, 0
	for i := len(m) - 1; i >= 0; i-- {
		c := m[i]
		if c < '0' || c > '9' {
			continue
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
		digits++
	}
	return digits > 0 && sum%10 == 0
}
