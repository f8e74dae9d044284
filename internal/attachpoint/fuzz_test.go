package attachpoint

import (
	"bytes"
	"debug/elf"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/elfmut"
	"github.com/tlstap/tlstap/internal/testenv"
)

// findBytes runs the analysis on data as a file and checks that every
// offset it returns lies inside the file.
func findBytes(t *testing.T, data []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return
	}
	got, err := findOpenSSL(f, uint64(len(data)), "fuzz")
	if err != nil {
		return
	}
	n := uint64(len(data))
	for name, off := range got.Symbols {
		if off >= n {
			t.Fatalf("%s at %#x, past the end of a %d-byte file", name, off, n)
		}
	}
	for what, off := range map[string]uint64{"ReadInternal": got.ReadInternal, "WriteInternal": got.WriteInternal, "Free": got.Free} {
		if off >= n {
			t.Fatalf("%s at %#x, past the end of a %d-byte file", what, off, n)
		}
	}
}

func FuzzFindOpenSSL(f *testing.F) {
	if !testenv.FuzzWorker() {
		for _, b := range elfmut.Seeds(f) {
			f.Add(b)
		}
	}
	f.Fuzz(findBytes)
}

// FuzzPrologue drives the prologue decoders with the first bytes of real
// functions as seeds.
func FuzzPrologue(f *testing.F) {
	f.Add([]byte{0x48, 0x85, 0xff, 0x0f, 0x84, 0x10, 0, 0, 0})                // test rdi, rdi; je rel32
	f.Add([]byte{0x49, 0x3b, 0x66, 0x10, 0x76, 0x20, 0x55, 0x48, 0x89, 0xe5}) // Go: cmp rsp,[r14+16]; jbe; push rbp; mov rbp,rsp
	f.Add([]byte{0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x83, 0xec, 0x18})             // endbr64; sub rsp, 0x18
	f.Fuzz(func(t *testing.T, code []byte) {
		if off, ok := NullCheckBranch(code); ok && (off <= 0 || off >= len(code)) {
			t.Fatalf("NullCheckBranch offset %d outside %d bytes", off, len(code))
		}
		if off, ok := GoEntry(code); ok && (off < 0 || off >= len(code)) {
			t.Fatalf("GoEntry offset %d outside %d bytes", off, len(code))
		}
	})
}

// TestHostileLibraries: every field-by-field hostile variant of real
// libraries and executables (elfmut) is analysed without a panic and
// quickly; offsets stay inside the file.
func TestHostileLibraries(t *testing.T) {
	for name, seed := range elfmut.Seeds(t) {
		muts := elfmut.Mutations(seed)
		if len(muts) < 50 {
			t.Fatalf("%s: only %d variants", name, len(muts))
		}
		start := time.Now()
		for _, m := range muts {
			findBytes(t, m.Bytes())
		}
		if d := time.Since(start); d > time.Duration(len(muts))*time.Second {
			t.Errorf("%s: %d variants took %v", name, len(muts), d)
		}
		t.Logf("%s: %d hostile variants analysed in %v", name, len(muts), time.Since(start))
	}
}
