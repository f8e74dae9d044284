package elfsym

import (
	"bytes"
	"debug/elf"
	"slices"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/elfmut"
	"github.com/tlstap/tlstap/internal/testenv"
)

var fuzzNames = []string{"SSL_read", "SSL_read_ex", "SSL_write", "SSL_write_ex", "SSL_shutdown", "SSL_free", "main"}

// lookupBytes looks the OpenSSL names up in data as a file: only names
// asked for come back, each with a name equal to its key.
func lookupBytes(t *testing.T, data []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return
	}
	got, err := Lookup(f, fuzzNames)
	if err != nil {
		return
	}
	for name, s := range got {
		if !slices.Contains(fuzzNames, name) || s.Name != name {
			t.Fatalf("asked %v, got %q = %+v", fuzzNames, name, s)
		}
	}
}

func FuzzLookup(f *testing.F) {
	if !testenv.FuzzWorker() {
		for _, b := range elfmut.Seeds(f) {
			f.Add(b)
		}
	}
	f.Fuzz(lookupBytes)
}

// FuzzGNUHash drives the hash-table walk alone: a table and the symbol
// and string tables it indexes, all attacker-controlled.
func FuzzGNUHash(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0},
		make([]byte, 48), []byte("\x00SSL_read\x00"))
	f.Fuzz(func(t *testing.T, hash, syms, strs []byte) {
		tab, err := parseTable(hash)
		if err != nil {
			return
		}
		for _, n := range fuzzNames {
			if s, ok := tab.find(n, bytes.NewReader(syms), bytes.NewReader(strs)); ok && s.Name != n {
				t.Fatalf("find(%q) = %q", n, s.Name)
			}
		}
	})
}

// TestHostileSymbolTables: field-by-field hostile variants of real files.
func TestHostileSymbolTables(t *testing.T) {
	for name, seed := range elfmut.Seeds(t) {
		muts := elfmut.Mutations(seed)
		if len(muts) < 50 {
			t.Fatalf("%s: only %d variants", name, len(muts))
		}
		start := time.Now()
		for _, m := range muts {
			lookupBytes(t, m.Bytes())
		}
		if d := time.Since(start); d > time.Duration(len(muts))*time.Second {
			t.Errorf("%s: %d variants took %v", name, len(muts), d)
		}
	}
}
