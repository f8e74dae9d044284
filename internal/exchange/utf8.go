package exchange

import "unicode/utf8"

// CutIncompleteRune returns b without a trailing incomplete UTF-8 sequence:
// the start of a multi-byte character whose last bytes fell beyond a body
// limit. Anything else, valid or not, is returned unchanged, so a body that
// is UTF-8 text up to its cut is valid UTF-8 after it.
func CutIncompleteRune(b []byte) []byte {
	// A sequence is at most 4 bytes: look at the last 3 for its start.
	for i := 1; i <= 3 && i <= len(b); i++ {
		c := b[len(b)-i]
		if utf8.RuneStart(c) {
			tail := b[len(b)-i:]
			if c >= utf8.RuneSelf && !utf8.FullRune(tail) {
				return b[:len(b)-i]
			}
			return b
		}
	}
	return b
}
