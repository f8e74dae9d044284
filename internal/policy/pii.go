package policy

import "bytes"

// Kinds of personal data recognised in bodies (pii.kinds; the values of
// tlstap.pii.types). Every detector is a linear hand-written scanner; each
// one is conservative, preferring a miss to a false alarm:
//
//   - email: local@domain where the local part is 1–64 of [A-Za-z0-9._%+-]
//     and the domain has at least two dot-separated labels of letters,
//     digits and '-', the last one 2–63 letters. "%40" counts as '@'
//     (form-encoded bodies).
//   - payment_card: 13–19 digits, optionally grouped by single spaces,
//     dashes or '+' (a space in form-encoded bodies), standing alone (no letter, digit or '_' around), passing the
//     Luhn checksum.
//   - iban: a country code with its registered IBAN length, two check
//     digits and the account part, upper case, optionally in groups of four
//     separated by single spaces (or '+'), passing the ISO 13616 mod-97 check.
//   - phone: international numbers only: '+' (or "%2B") then 9–15 digits,
//     optionally grouped by single spaces, dashes, dots or '+', with at most one
//     parenthesised group; and North American numbers written
//     "(NXX) NXX-XXXX". A bare run of digits is never taken for a phone
//     number.
//
// National identity numbers are not detected: the common ones (US SSN, ...)
// carry no checksum, so a match would be a guess.
const (
	PIIEmail       = "email"
	PIIPaymentCard = "payment_card"
	PIIIBAN        = "iban"
	PIIPhone       = "phone"
)

// piiKind indexes PIIKinds.
type piiKind uint8

const (
	kindEmail piiKind = iota
	kindIBAN
	kindPaymentCard
	kindPhone
	numPIIKinds
)

// PIIKinds lists every kind, sorted (the order of tlstap.pii.types).
func PIIKinds() []string { return []string{PIIEmail, PIIIBAN, PIIPaymentCard, PIIPhone} }

var piiFinders = [numPIIKinds]spanFinder{findEmails, findIBANs, findCards, findPhones}

// piiSet is a set of kinds.
type piiSet uint8

func (s piiSet) has(k piiKind) bool { return s&(1<<k) != 0 }

// names returns the kinds in s, sorted; nil when s is empty.
func (s piiSet) names() []string {
	if s == 0 {
		return nil
	}
	all := PIIKinds()
	out := make([]string, 0, 4)
	for k := piiKind(0); k < numPIIKinds; k++ {
		if s.has(k) {
			out = append(out, all[k])
		}
	}
	return out
}

func isEmailLocal(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func isLabel(c byte) bool { return isAlnum(c) || c == '-' }

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

var litPct40 = []byte("%40")

func findEmails(b []byte, out []span) []span {
	n := len(out)
	out = findEmailsAt(b, out, []byte{'@'})
	if bytes.Contains(b, litPct40) {
		out = findEmailsAt(b, out, litPct40)
		if len(out)-n > 1 {
			sortSpans(out[n:])
		}
	}
	return out
}

func findEmailsAt(b []byte, out []span, at []byte) []span {
	eachIndex(b, at, func(i int) int {
		next := i + len(at)
		s := i
		for s > 0 && i-s < 64 && isEmailLocal(b[s-1]) {
			s--
		}
		if s > 0 && isEmailLocal(b[s-1]) { // local part longer than 64
			return next
		}
		for s < i && b[s] == '.' {
			s++
		}
		if s == i {
			return next
		}
		// Domain: labels separated by single dots; the last label is the TLD.
		e, labels, lastStart := next, 0, next
		for {
			le := run(b, e, isLabel)
			if le == e || le-e > 63 {
				break
			}
			labels++
			lastStart = e
			e = le
			if e+1 < len(b) && b[e] == '.' && isLabel(b[e+1]) {
				e++
				continue
			}
			break
		}
		// The TLD is letters only: trim a trailing non-TLD label.
		for labels >= 2 {
			tld := b[lastStart:e]
			if len(tld) >= 2 && run(tld, 0, isLetter) == len(tld) {
				break
			}
			e = lastStart - 1
			labels--
			lastStart = bytes.LastIndexByte(b[next:e], '.') + next + 1
			if lastStart == next {
				labels = 1
			}
		}
		if labels < 2 {
			return next
		}
		out = append(out, span{s, e})
		return e
	})
	return out
}

// byteClass is a set of bytes.
type byteClass [256]bool

func newByteClass(chars ...string) *byteClass {
	var c byteClass
	for _, s := range chars {
		for i := 0; i < len(s); i++ {
			c[s[i]] = true
		}
	}
	return &c
}

var (
	cardClass = newByteClass("0123456789 -+")
	ibanClass = newByteClass("0123456789 +ABCDEFGHIJKLMNOPQRSTUVWXYZ")
)

// classRuns calls f with each maximal run of bytes of class at least minLen
// long. Outside runs it skips ahead minLen bytes at a time: a run that long
// starting at or after i must cover b[i+minLen-1].
func classRuns(b []byte, class *byteClass, minLen int, f func(s, e int)) {
	for i := 0; i+minLen <= len(b); {
		j := i + minLen - 1
		if !class[b[j]] {
			i = j + 1
			continue
		}
		s := j
		for s > i && class[b[s-1]] {
			s--
		}
		e := j + 1
		for e < len(b) && class[b[e]] {
			e++
		}
		i = e + 1
		if e-s >= minLen {
			f(s, e)
		}
	}
}

func isWordByte(c byte) bool { return isAlnum(c) || c == '_' }

// cardMinLen is the length of the shortest card number.
const cardMinLen = 13

// hasClassRun reports whether b has a run of at least minLen bytes of
// class (classRuns, stopping at the first).
func hasClassRun(b []byte, class *byteClass, minLen int) bool {
	for i := 0; i+minLen <= len(b); {
		j := i + minLen - 1
		if !class[b[j]] {
			i = j + 1
			continue
		}
		s := j
		for s > i && class[b[s-1]] {
			s--
		}
		e := j + 1
		for e < len(b) && class[b[e]] && e-s < minLen {
			e++
		}
		if e-s >= minLen {
			return true
		}
		i = e + 1
	}
	return false
}

// findCards finds Luhn-valid card numbers.
func findCards(b []byte, out []span) []span {
	classRuns(b, cardClass, cardMinLen, func(s, e int) {
		// Groups: digits separated by single spaces or dashes.
		for i := s; i < e; {
			for i < e && (b[i] < '0' || b[i] > '9') {
				i++
			}
			gs, digits, j := i, 0, i
			for j < e {
				if '0' <= b[j] && b[j] <= '9' {
					digits++
					j++
					continue
				}
				if j+1 < e && '0' <= b[j+1] && b[j+1] <= '9' {
					j++
					continue
				}
				break
			}
			if gs < e && digits >= 13 && digits <= 19 &&
				(gs == 0 || !isWordByte(b[gs-1])) && (j == len(b) || !isWordByte(b[j])) && luhnValid(b[gs:j]) {
				out = append(out, span{gs, j})
			}
			if j == i {
				j++
			}
			i = j
		}
	})
	return out
}

// ibanLengths is the registered IBAN length per country (ISO 13616
// registry).
var ibanLengths = map[[2]byte]int{}

func init() {
	const reg = "AD24AE23AL28AT20AZ28BA20BE16BG22BH22BR29BY28CH21CR22CY28CZ24DE22DK18DO28EE20EG29ES24FI18FO18FR27" +
		"GB22GE22GI23GL18GR27GT28HR21HU28IE22IL23IQ23IS26IT27JO30KW30KZ20LB28LC32LI21LT20LU20LV21MC27MD24ME22" +
		"MK19MR27MT31MU30NL18NO15PK24PL28PS29PT25QA29RO24RS22SA24SC31SE24SI19SK24SM27ST25SV28TL23TN24TR26UA29" +
		"VA22VG24XK20"
	for i := 0; i+4 <= len(reg); i += 4 {
		ibanLengths[[2]byte{reg[i], reg[i+1]}] = int(reg[i+2]-'0')*10 + int(reg[i+3]-'0')
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// findIBANs finds IBANs inside runs of upper-case letters, digits and
// spaces at least 15 bytes long (the shortest IBAN), at every position where
// two upper-case letters and two digits start a word.
func findIBANs(b []byte, out []span) []span {
	classRuns(b, ibanClass, 15, func(s, e int) {
		for i := s; i+15 <= e; i++ {
			if b[i] < 'A' || b[i] > 'Z' || b[i+1] < 'A' || b[i+1] > 'Z' || (i > 0 && isAlnum(b[i-1])) ||
				!isDigit(b[i+2]) || !isDigit(b[i+3]) {
				continue
			}
			want, ok := ibanLengths[[2]byte{b[i], b[i+1]}]
			if !ok {
				continue
			}
			var chars [34]byte
			n, j := 0, i
			for j < e && n < want {
				c := b[j]
				if isUpperOrDigit(c) {
					chars[n] = c
					n++
					j++
					continue
				}
				if (c == ' ' || c == '+') && n%4 == 0 && j+1 < e && isUpperOrDigit(b[j+1]) {
					j++
					continue
				}
				break
			}
			if n == want && (j == len(b) || !isAlnum(b[j])) && ibanValid(chars[:n]) {
				out = append(out, span{i, j})
				i = j - 1
			}
		}
	})
	return out
}

// ibanValid applies the mod-97 check: the first four characters moved to
// the end, letters as 10..35, the number mod 97 must be 1.
func ibanValid(s []byte) bool {
	r := 0
	add := func(c byte) {
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
		} else {
			r = (r*100 + int(c-'A') + 10) % 97
		}
	}
	for _, c := range s[4:] {
		add(c)
	}
	for _, c := range s[:4] {
		add(c)
	}
	return r == 1
}

var litPct2B = []byte("%2B")

// findPhones finds international (+...) and North American "(NXX) NXX-XXXX"
// phone numbers.
func findPhones(b []byte, out []span) []span {
	n := len(out)
	for _, lit := range [][]byte{{'+'}, litPct2B, {'('}} {
		if lit[0] == '%' && !bytes.Contains(b, lit) {
			continue
		}
		eachIndex(b, lit, func(i int) int {
			next := i + len(lit)
			if i > 0 && (isAlnum(b[i-1]) || b[i-1] == '+') {
				return next
			}
			var e int
			if lit[0] == '(' {
				e = nanpEnd(b, i)
			} else {
				e = intlEnd(b, next)
			}
			if e < 0 || (e < len(b) && isAlnum(b[e])) {
				return next
			}
			out = append(out, span{i, e})
			return e
		})
	}
	if len(out)-n > 1 {
		sortSpans(out[n:])
	}
	return out
}

// intlEnd returns the end of an international number whose digits start at
// i, or -1.
func intlEnd(b []byte, i int) int {
	if i >= len(b) || !isDigit(b[i]) || b[i] == '0' {
		return -1
	}
	digits, parens, j, end := 0, 0, i, -1
	for j < len(b) {
		c := b[j]
		switch {
		case isDigit(c):
			digits++
			j++
			end = j
			continue
		case (c == ' ' || c == '-' || c == '.' || c == '+') && j+1 < len(b) && (isDigit(b[j+1]) || b[j+1] == '('):
			j++
			continue
		case c == '(' && parens == 0 && j > i:
			k := run(b, j+1, isDigit)
			if k > j+1 && k-j-1 <= 4 && k < len(b) && b[k] == ')' {
				digits += k - j - 1
				parens++
				j = k + 1
				end = j
				if j < len(b) && b[j] == ' ' {
					j++
				}
				continue
			}
		}
		break
	}
	if digits < 9 || digits > 15 {
		return -1
	}
	return end
}

// nanpEnd matches "(NXX) NXX-XXXX" (space optional) at i, or returns -1.
func nanpEnd(b []byte, i int) int {
	// ( d d d ) [sp] d d d - d d d d
	j := i + 1
	if j+4 > len(b) || !isDigit(b[j]) || !isDigit(b[j+1]) || !isDigit(b[j+2]) || b[j+3] != ')' || b[j] < '2' {
		return -1
	}
	j += 4
	if j < len(b) && b[j] == ' ' {
		j++
	}
	if j+8 > len(b) || b[j] < '2' || !isDigit(b[j]) || !isDigit(b[j+1]) || !isDigit(b[j+2]) || (b[j+3] != '-' && b[j+3] != ' ') {
		return -1
	}
	for k := j + 4; k < j+8; k++ {
		if !isDigit(b[k]) {
			return -1
		}
	}
	return j + 8
}
