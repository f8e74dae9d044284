package elfsym

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The hash lookup must agree with a full decode of .dynsym for every
// defined symbol of real binaries, and find nothing for absent names.
func TestLookupAgreesWithFullScan(t *testing.T) {
	node, _ := filepath.EvalSymlinks("/usr/bin/node")
	for _, path := range []string{"/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/lib/x86_64-linux-gnu/libc.so.6", node} {
		if _, err := os.Stat(path); err != nil || path == "" {
			continue
		}
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		all, err := f.DynamicSymbols()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		want := map[string]uint64{}
		for i, s := range all {
			if s.Section == elf.SHN_UNDEF || s.Value == 0 || (s.HasVersion && s.VersionIndex.IsHidden()) {
				continue
			}
			if i%7 == 0 || s.Name == "SSL_read" || s.Name == "SSL_write_ex" {
				names = append(names, s.Name)
				want[s.Name] = s.Value
			}
		}
		names = append(names, "no_such_symbol_xyz", "SSL_read_not")
		got, err := Lookup(f, names)
		if err != nil {
			t.Fatal(err)
		}
		for n, v := range want {
			if got[n].Value != v {
				t.Errorf("%s: %s = %#x, full scan says %#x", filepath.Base(path), n, got[n].Value, v)
			}
		}
		if _, ok := got["no_such_symbol_xyz"]; ok {
			t.Errorf("%s: found an absent symbol", path)
		}
		slow, err := scan(f, names)
		if err != nil || len(slow) != len(got) {
			t.Errorf("%s: scan found %d, hash %d (%v)", path, len(slow), len(got), err)
		}
		f.Close()
	}
}

func FuzzParseTable(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 3, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := parseTable(b)
		if err != nil {
			return
		}
		syms := bytes.NewReader(make([]byte, symSize*4))
		tab.find("SSL_read", syms, strings.NewReader("\x00SSL_read\x00"))
	})
}

func BenchmarkLookupNode(b *testing.B) {
	node, err := filepath.EvalSymlinks("/usr/bin/node")
	if err != nil {
		b.Skip("no node")
	}
	names := []string{"SSL_read", "SSL_read_ex", "SSL_write", "SSL_write_ex", "SSL_shutdown", "SSL_free"}
	b.Run("gnu-hash", func(b *testing.B) {
		for b.Loop() {
			f, _ := elf.Open(node)
			Lookup(f, names)
			f.Close()
		}
	})
	b.Run("full-scan", func(b *testing.B) {
		for b.Loop() {
			f, _ := elf.Open(node)
			scan(f, names)
			f.Close()
		}
	})
}
