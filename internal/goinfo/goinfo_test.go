package goinfo

import (
	"debug/elf"
	"debug/gosym"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// pair is an unstripped binary and its stripped twin: same toolchain,
// source and flags except -ldflags=-s -w.
type pair struct {
	toolchain string
	pie       bool
	trimpath  bool
	cgoExt    bool
}

func (p pair) variant(strip bool) variant {
	return variant{toolchain: p.toolchain, prog: "tlsprog", pie: p.pie, strip: strip, trimpath: p.trimpath, cgoExt: p.cgoExt}
}

func matrix() []pair {
	var ps []pair
	for _, tc := range testToolchains() {
		ps = append(ps, pair{toolchain: tc}, pair{toolchain: tc, pie: true, trimpath: true})
		if tc == "local" {
			ps = append(ps, pair{toolchain: tc, cgoExt: true}, pair{toolchain: tc, cgoExt: true, pie: true, trimpath: true})
		}
	}
	return ps
}

func TestMatrix(t *testing.T) {
	for _, p := range matrix() {
		t.Run(p.variant(false).name(), func(t *testing.T) {
			t.Parallel()
			checkPair(t, p)
		})
	}
}

// inspectPair builds p plain and stripped and inspects both.
func inspectPair(t *testing.T, p pair) (plainPath, strippedPath string, plain, stripped Info) {
	t.Helper()
	plainPath, strippedPath = build(t, p.variant(false)), build(t, p.variant(true))
	var err error
	if plain, err = Inspect(plainPath); err != nil {
		t.Fatal(err)
	}
	if stripped, err = Inspect(strippedPath); err != nil {
		t.Fatal(err)
	}
	return plainPath, strippedPath, plain, stripped
}

func checkPair(t *testing.T, p pair) {
	plainPath, strippedPath, plain, stripped := inspectPair(t, p)
	t.Logf("%s: Read %#x (+%d, %d returns) Write %#x (+%d, %d returns) offsets %+v from %s / %s",
		stripped.GoVersion, stripped.Read.Entry, stripped.Read.Size, len(stripped.Read.Returns),
		stripped.Write.Entry, stripped.Write.Size, len(stripped.Write.Returns),
		stripped.Offsets, plain.OffsetsFrom, stripped.OffsetsFrom)

	// Build facts.
	wantVersion := p.toolchain
	if wantVersion == "local" {
		wantVersion = runtime.Version()
	}
	for _, in := range []Info{plain, stripped} {
		if in.GoVersion != wantVersion {
			t.Errorf("GoVersion %q, want %q", in.GoVersion, wantVersion)
		}
		if in.PIE != p.pie {
			t.Errorf("PIE %v, want %v", in.PIE, p.pie)
		}
		if in.BuildID == "" {
			t.Errorf("no Go build ID")
		}
	}
	if plain.Stripped || plain.FuncsFrom != "symtab" || !strings.HasPrefix(plain.OffsetsFrom, "table:") {
		t.Errorf("unstripped: Stripped=%v FuncsFrom=%q OffsetsFrom=%q", plain.Stripped, plain.FuncsFrom, plain.OffsetsFrom)
	}
	minor, _ := GoMinor(wantVersion)
	if wantFrom := fmt.Sprintf("table:go1.%d", minor); !stripped.Stripped || stripped.FuncsFrom != "pclntab" || stripped.OffsetsFrom != wantFrom {
		t.Errorf("stripped: Stripped=%v FuncsFrom=%q OffsetsFrom=%q (want %s)", stripped.Stripped, stripped.FuncsFrom, stripped.OffsetsFrom, wantFrom)
	}
	if plain.TCPConnItab == 0 {
		t.Errorf("unstripped: no %s", TCPConnItabSymbol)
	}

	// Offsets: the DWARF of this very binary against the checked-in table.
	ef, err := elf.Open(plainPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	fromDWARF, err := OffsetsFromDWARF(ef)
	if err != nil {
		t.Fatal(err)
	}
	if fromDWARF != stripped.Offsets || plain.Offsets != stripped.Offsets {
		t.Errorf("offsets from DWARF %+v != table %+v (unstripped Inspect: %+v)", fromDWARF, stripped.Offsets, plain.Offsets)
	}

	// Oracle 1: on the unstripped binary, the pclntab route must find what
	// the linker's symbol table says, byte for byte.
	viaPcln, err := inspect(plainPath, options{forcePclntab: true})
	if err != nil {
		t.Fatal(err)
	}
	if viaPcln.FuncsFrom != "pclntab" {
		t.Fatalf("forced pclntab lookup used %s", viaPcln.FuncsFrom)
	}
	sameFunc(t, "pclntab vs symtab (unstripped) Read", viaPcln.Read, plain.Read)
	sameFunc(t, "pclntab vs symtab (unstripped) Write", viaPcln.Write, plain.Write)

	// Oracle 2: the stripped twin. Its text is not byte-identical (the
	// build info records -ldflags, which shifts rodata and so every
	// RIP-relative displacement), but the text layout is: same .text
	// address and size, same runtime.text. So the symbol table of the
	// twin holds the stripped binary's addresses too; decode both bodies
	// and require the same instruction sequence, and check the entries
	// with the standard library's independent pclntab reader
	// (debug/gosym), given runtime.text from the twin.
	textP, textS := section(t, plainPath, ".text"), section(t, strippedPath, ".text")
	if textP.Addr != textS.Addr || textP.Size != textS.Size {
		t.Fatalf("twins differ in .text layout: %#x+%#x vs %#x+%#x", textP.Addr, textP.Size, textS.Addr, textS.Size)
	}
	rtText := symbolValue(t, plainPath, "runtime.text")
	for _, fn := range []struct {
		name string
		p, s Func
	}{{ReadSymbol, plain.Read, stripped.Read}, {WriteSymbol, plain.Write, stripped.Write}} {
		if fn.s.Addr != fn.p.Addr || fn.s.Entry != fn.p.Entry || fn.s.Size != fn.p.Size {
			t.Errorf("%s: stripped %#x/%#x+%d, twin's symtab %#x/%#x+%d", fn.name, fn.s.Addr, fn.s.Entry, fn.s.Size, fn.p.Addr, fn.p.Entry, fn.p.Size)
		}
		if a, b := opSequence(t, strippedPath, fn.s), opSequence(t, plainPath, fn.p); !reflect.DeepEqual(a, b) {
			t.Errorf("%s: instruction sequences differ between twins", fn.name)
		}
		entry, end := gosymFunc(t, strippedPath, rtText, fn.name)
		if entry != fn.s.Addr || fn.s.Addr+fn.s.Size > end {
			t.Errorf("%s: debug/gosym says %#x..%#x, we say %#x+%d", fn.name, entry, end, fn.s.Addr, fn.s.Size)
		}
		if len(fn.s.TailJumps) != 0 {
			t.Errorf("%s: tail jumps at %#x: returns would be missed", fn.name, fn.s.TailJumps)
		}
	}

	// Returns: non-empty, inside the function, each decodes to RET.
	for _, c := range []struct {
		path string
		fn   Func
	}{{plainPath, plain.Read}, {plainPath, plain.Write}, {strippedPath, stripped.Read}, {strippedPath, stripped.Write}} {
		checkReturns(t, c.path, c.fn)
	}
}

func sameFunc(t *testing.T, what string, a, b Func) {
	t.Helper()
	if !reflect.DeepEqual(a, b) {
		t.Errorf("%s:\n %+v\n %+v", what, a, b)
	}
}

func section(t *testing.T, path, name string) *elf.Section {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := f.Section(name)
	if s == nil {
		t.Fatalf("%s: no %s", path, name)
	}
	return s
}

func symbolValue(t *testing.T, path, name string) uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name {
			return s.Value
		}
	}
	t.Fatalf("%s: no symbol %s", path, name)
	return 0
}

func readAt(t *testing.T, path string, off, n uint64) []byte {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := make([]byte, n)
	if _, err := fh.ReadAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
	return b
}

// opSequence decodes a function and returns "op/len" per instruction.
func opSequence(t *testing.T, path string, fn Func) []string {
	t.Helper()
	code := readAt(t, path, fn.Entry, fn.Size)
	var seq []string
	for pc := 0; pc < len(code); {
		inst, err := x86asm.Decode(code[pc:], 64)
		if err != nil {
			t.Fatalf("%s: decode at +%#x: %v", path, pc, err)
		}
		seq = append(seq, fmt.Sprintf("%v/%d", inst.Op, inst.Len))
		pc += inst.Len
	}
	return seq
}

// gosymFunc looks a function up with debug/gosym in the binary's
// .gopclntab, given the runtime.text address.
func gosymFunc(t *testing.T, path string, textStart uint64, name string) (entry, end uint64) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := f.Section(".gopclntab")
	if s == nil {
		s = f.Section(".data.rel.ro.gopclntab")
	}
	if s == nil {
		t.Fatalf("%s: no .gopclntab section", path)
	}
	data, err := s.Data()
	if err != nil {
		t.Fatal(err)
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, textStart))
	if err != nil {
		t.Fatal(err)
	}
	fn := tab.LookupFunc(name)
	if fn == nil {
		t.Fatalf("debug/gosym: %s not found in %s", name, path)
	}
	return fn.Entry, fn.End
}

func checkReturns(t *testing.T, path string, fn Func) {
	t.Helper()
	if len(fn.Returns) == 0 {
		t.Errorf("%s: no returns", path)
	}
	for _, r := range fn.Returns {
		if r < fn.Entry || r >= fn.Entry+fn.Size {
			t.Errorf("%s: return %#x outside %#x+%d", path, r, fn.Entry, fn.Size)
			continue
		}
		n := min(16, fn.Entry+fn.Size-r)
		inst, err := x86asm.Decode(readAt(t, path, r, n), 64)
		if err != nil || inst.Op != x86asm.RET {
			t.Errorf("%s: %#x decodes to %v (%v), not RET", path, r, inst, err)
		}
	}
}

// TestPclntabAllFunctions compares the pclntab route with the symbol table
// for every Go function of a binary, not just the two we hook.
func TestPclntabAllFunctions(t *testing.T) {
	vs := []variant{{toolchain: "local", prog: "tlsprog", pie: true, trimpath: true, cgoExt: true}}
	for _, tc := range testToolchains() {
		vs = append(vs, variant{toolchain: tc, prog: "tlsprog"}, variant{toolchain: tc, prog: "tlsprog", pie: true, trimpath: true})
	}
	for _, v := range vs {
		t.Run(v.name(), func(t *testing.T) {
			path := build(t, v)
			f, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			pt, err := openPclntab(f, 1<<40)
			if err != nil {
				t.Fatal(err)
			}
			if pt.textFrom != "moduledata" {
				t.Errorf("runtime.text from %s, want moduledata", pt.textFrom)
			}
			if rt := symbolValue(t, path, "runtime.text"); pt.text != rt || (pt.hdrText != 0 && pt.hdrText != rt) {
				t.Errorf("runtime.text: moduledata %#x, header %#x, symtab %#x", pt.text, pt.hdrText, rt)
			}
			syms, err := f.Symbols()
			if err != nil {
				t.Fatal(err)
			}
			// Compare by address: ABI wrappers share their function's name
			// in the pclntab but are called name.abi0 in the symbol table.
			byAddr := map[uint64]elf.Symbol{}
			for _, s := range syms {
				if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Size > 0 {
					byAddr[s.Value] = s
				}
			}
			var checked int
			for i := uint64(0); i < pt.nfunc; i++ {
				name := string(pt.name(i))
				e, _ := pt.entry(i)
				s, ok := byAddr[pt.text+uint64(e)]
				if !ok {
					t.Errorf("%s: pclntab address %#x has no symbol", name, pt.text+uint64(e))
					continue
				}
				if strings.HasPrefix(name, "go:") {
					continue // section markers such as go:textfipsstart
				}
				// The ELF symbol table spells the middle dot as a dot.
				if n := strings.ReplaceAll(name, "·", "."); s.Name != n && s.Name != n+".abi0" && !sameGeneric(n, s.Name) {
					t.Errorf("%#x: pclntab %s, symtab %s", s.Value, name, s.Name)
				}
				if sz := pt.size(i); sz != s.Size {
					t.Errorf("%s: pclntab size %d, symtab %d", name, sz, s.Size)
				}
				checked++
			}
			t.Logf("%d functions checked", checked)
			if checked < 1000 {
				t.Errorf("only %d functions checked", checked)
			}
		})
	}
}

func TestNotGo(t *testing.T) {
	txt := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(txt, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/bin/sleep", txt} {
		if _, err := os.Stat(p); err != nil {
			t.Logf("skip %s: %v", p, err)
			continue
		}
		_, err := Inspect(p)
		if !errors.Is(err, ErrNotGo) {
			t.Errorf("%s: err %v, want ErrNotGo", p, err)
		}
	}
	if _, err := Inspect("/nonexistent/goinfo"); err == nil || errors.Is(err, ErrNotGo) {
		t.Errorf("missing file: %v", err)
	}
}

func TestNoTLS(t *testing.T) {
	for _, strip := range []bool{false, true} {
		path := build(t, variant{toolchain: "local", prog: "notls", strip: strip})
		info, err := Inspect(path)
		if !errors.Is(err, ErrNoTLS) {
			t.Errorf("strip=%v: err %v, want ErrNoTLS", strip, err)
		}
		if info.GoVersion == "" {
			t.Errorf("strip=%v: GoVersion not filled in on ErrNoTLS", strip)
		}
	}
}

func TestCache(t *testing.T) {
	plainPath := build(t, variant{toolchain: "local", prog: "tlsprog"})
	strippedPath := build(t, variant{toolchain: "local", prog: "tlsprog", strip: true})
	// A second path to the same binary (another process's view of it).
	link := filepath.Join(t.TempDir(), "same-binary")
	if err := os.Link(plainPath, link); err != nil {
		b, rerr := os.ReadFile(plainPath)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if err := os.WriteFile(link, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c := NewCache()
	var calls sync.Map
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			p := plainPath
			if i%2 == 1 {
				p = link
			}
			info, err := c.Inspect(p)
			if err != nil {
				t.Error(err)
				return
			}
			calls.Store(i, info.Read.Entry)
		}(i)
	}
	wg.Wait()
	if n := c.Analyses(); n != 1 {
		t.Errorf("100 processes of one binary: %d analyses, want 1", n)
	}
	want, _ := Inspect(plainPath)
	calls.Range(func(_, v any) bool {
		if v.(uint64) != want.Read.Entry {
			t.Errorf("cached Read.Entry %#x, want %#x", v, want.Read.Entry)
		}
		return true
	})
	if _, err := c.Inspect(strippedPath); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := c.Inspect("/bin/sleep"); !errors.Is(err, ErrNotGo) {
			t.Errorf("/bin/sleep: %v", err)
		}
	}
	if n := c.Analyses(); n != 3 {
		t.Errorf("after a second binary and /bin/sleep x3: %d analyses, want 3", n)
	}
	if _, err := c.Inspect("/nonexistent/goinfo"); err == nil {
		t.Error("missing file: no error")
	}
}

// sameGeneric: before Go 1.21 the pclntab abbreviates type arguments as
// "[...]" (pkg.F[...] for pkg.F[go.shape.int]).
func sameGeneric(pcln, sym string) bool {
	i, j := strings.Index(pcln, "[...]"), strings.LastIndex(pcln, "]")
	if i < 0 {
		return false
	}
	pre, suf := pcln[:i], pcln[j+1:]
	return strings.HasPrefix(sym, pre+"[") && strings.HasSuffix(sym, "]"+suf) && len(sym) >= len(pre)+len(suf)+2
}
