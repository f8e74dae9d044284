package procscan

import (
	"bytes"
	"strings"
	"testing"
)

// The marker is found wherever it sits, across the 1 MiB piece boundary
// too, and never beyond the limit.
func TestContainsBounded(t *testing.T) {
	m := libsslMarker
	for _, at := range []int{0, 1<<20 - 3, 1<<20 - len(m), 1 << 20, 1<<20 + 1, 3<<20 + 7} {
		data := make([]byte, at+len(m)+10)
		copy(data[at:], m)
		if !containsBounded(bytes.NewReader(data), m, 64<<20) {
			t.Errorf("marker at %d not found", at)
		}
		if at > 0 && containsBounded(bytes.NewReader(data), m, int64(at/2)) && at/2 < (1<<20) && at > 2<<20 {
			t.Errorf("marker at %d found beyond a limit of %d", at, at/2)
		}
	}
	if containsBounded(strings.NewReader("ssl/ssl_lib.c"), m, 1<<20) {
		t.Error("found without its NUL terminator")
	}
	if containsBounded(strings.NewReader(""), m, 1<<20) {
		t.Error("found in nothing")
	}
}

func FuzzContainsBounded(f *testing.F) {
	f.Add([]byte("xx ../ssl/ssl_lib.c\x00 yy"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := containsBounded(bytes.NewReader(data), libsslMarker, 1<<30), bytes.Contains(data, libsslMarker); got != want {
			t.Fatalf("containsBounded = %v, bytes.Contains = %v", got, want)
		}
	})
}
