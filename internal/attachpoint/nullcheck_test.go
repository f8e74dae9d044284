package attachpoint

import (
	"os"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

func TestNullCheckBranch(t *testing.T) {
	for _, tc := range []struct {
		name string
		code []byte
		off  int
		ok   bool
	}{
		// Debian 12 libssl3 SSL_free: test rdi,rdi; je rel32; push r13
		{"je rel32", []byte{0x48, 0x85, 0xff, 0x0f, 0x84, 0x97, 0x03, 0x00, 0x00, 0x41, 0x55}, 3, true},
		// test rdi,rdi; je rel8
		{"je rel8", []byte{0x48, 0x85, 0xff, 0x74, 0x10}, 3, true},
		// test rdi,rdi; jne: the fall-through is the NULL case, still fine
		// for the probe, but not the shape this is decoded for
		{"jne", []byte{0x48, 0x85, 0xff, 0x75, 0x10}, 0, false},
		// test rsi,rsi; je: not the first argument
		{"test rsi", []byte{0x48, 0x85, 0xf6, 0x74, 0x10}, 0, false},
		// test edi,edi; je: 32-bit, not a pointer check
		{"test edi", []byte{0x85, 0xff, 0x74, 0x10}, 0, false},
		// test rdi,rdi; mov rax,rdi: no branch after
		{"no branch", []byte{0x48, 0x85, 0xff, 0x48, 0x89, 0xf8}, 0, false},
		// push rbp first
		{"push", []byte{0x55, 0x48, 0x85, 0xff, 0x74, 0x10}, 0, false},
		// endbr64 first: the probe stays on the entry
		{"endbr64", []byte{0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x85, 0xff, 0x74, 0x10}, 0, false},
		{"truncated", []byte{0x48, 0x85, 0xff, 0x0f, 0x84}, 0, false},
		{"empty", nil, 0, false},
	} {
		off, ok := NullCheckBranch(tc.code)
		if off != tc.off || ok != tc.ok {
			t.Errorf("%s: NullCheckBranch = %d, %v; want %d, %v", tc.name, off, ok, tc.off, tc.ok)
		}
	}
}

// On the host's libssl3, the SSL_free probe lands on the conditional jump
// right after a leading test of rdi when SSL_free starts that way, and on
// the entry otherwise.
func TestFindOpenSSLFree(t *testing.T) {
	lib, got := systemLibSSL3(t)
	entry := got.Symbols["SSL_free"]
	if entry == 0 || got.Free == 0 {
		t.Fatalf("SSL_free %#x, probe %#x", entry, got.Free)
	}
	b, err := os.ReadFile(lib)
	if err != nil {
		t.Fatal(err)
	}
	first, err := x86asm.Decode(b[entry:], 64)
	if err != nil {
		t.Fatal(err)
	}
	next, err := x86asm.Decode(b[entry+uint64(first.Len):], 64)
	if err != nil {
		t.Fatal(err)
	}
	if first.Op != x86asm.TEST || first.Args[0] != x86asm.RDI || next.Op != x86asm.JE {
		if got.Free != entry {
			t.Fatalf("SSL_free starts with %v; %v, probe at +%d, want its entry", first, next, got.Free-entry)
		}
		t.Logf("SSL_free probed at its entry (%v)", first)
		return
	}
	if want := entry + uint64(first.Len); got.Free != want {
		t.Fatalf("SSL_free starts with %v; %v: probe at +%d, want the je at +%d", first, next, got.Free-entry, want-entry)
	}
	t.Logf("SSL_free probed on %v at +%d", next, got.Free-entry)
}
