package exchange

import (
	"testing"
	"unicode/utf8"
)

func TestCutIncompleteRune(t *testing.T) {
	text := []byte("héllo wörld €𝄞") // 2-, 3- and 4-byte characters
	for n := 0; n <= len(text); n++ {
		got := CutIncompleteRune(text[:n])
		if !utf8.Valid(got) {
			t.Errorf("cut at %d: %q is not valid UTF-8", n, got)
		}
		// At most the bytes of one started character go.
		if n-len(got) > 3 || (utf8.Valid(text[:n]) && len(got) != n) {
			t.Errorf("cut at %d kept %d bytes", n, len(got))
		}
	}
	// Binary or invalid data is left alone: not a cut text body.
	for _, b := range [][]byte{{0xff}, {0x80, 0x80}, {'a', 0xff, 0xfe}, {0xe2, 0x82, 0xac, 0x80}} {
		if got := CutIncompleteRune(b); len(got) != len(b) {
			t.Errorf("CutIncompleteRune(%x) = %x, want unchanged", b, got)
		}
	}
}

func FuzzCutIncompleteRune(f *testing.F) {
	f.Add([]byte("h\xc3"))
	f.Add([]byte("\xf0\x9d\x84"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := CutIncompleteRune(b)
		if len(b)-len(got) > 3 || string(got) != string(b[:len(got)]) {
			t.Fatalf("CutIncompleteRune(%x) = %x", b, got)
		}
		if utf8.Valid(b) && len(got) != len(b) {
			t.Fatalf("valid %x was cut to %x", b, got)
		}
		// A prefix of valid text, cut anywhere, is valid once cut.
		if utf8.Valid(b) {
			for n := range len(b) {
				if c := CutIncompleteRune(b[:n]); !utf8.Valid(c) {
					t.Fatalf("prefix %x cut to invalid %x", b[:n], c)
				}
			}
		}
	})
}
