// Package attachpoint decides where on a function a uprobe goes, by reading
// the machine code of the traced binary.
package attachpoint

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"golang.org/x/arch/x86/x86asm"

	"github.com/tlstap/tlstap/internal/elfsym"
)

// OpenSSL is where to hook one OpenSSL build.
//
// OpenSSL funnels SSL_read, SSL_read_ex and its SSL BIO (used by
// `openssl s_server -www` and many servers) through one internal function,
// ssl_read_internal(ssl, buf, num, size_t *readbytes), and likewise for
// writes. Hooking the internal pair sees every path, once, and its first
// instruction is a push the kernel emulates instead of single-stepping, so
// a probe hit costs well under 1 µs instead of ~10 µs on SSL_read's
// `sub rsp`. The internal functions are not exported: their addresses come
// from the call in SSL_read_ex, confirmed by the same call in SSL_read.
type OpenSSL struct {
	// ReadInternal and WriteInternal are file offsets of
	// ssl_read_internal / ssl_write_internal, 0 when not found.
	ReadInternal  uint64
	WriteInternal uint64
	// Symbols maps each public symbol found to its file offset.
	Symbols map[string]uint64
	// Free is the file offset for the SSL_free probe: the branch after its
	// leading NULL check when it has one (see NullCheckBranch), else its
	// entry; 0 when SSL_free was not found.
	Free uint64
}

var publicSymbols = []string{"SSL_read", "SSL_read_ex", "SSL_write", "SSL_write_ex", "SSL_shutdown", "SSL_free"}

// FindOpenSSL inspects the ELF file at path.
func FindOpenSSL(path string) (OpenSSL, error) {
	f, err := elf.Open(path)
	if err != nil {
		return OpenSSL{}, fmt.Errorf("attachpoint: open %s: %w", path, err)
	}
	defer f.Close()
	st, err := os.Stat(path)
	if err != nil {
		return OpenSSL{}, fmt.Errorf("attachpoint: %w", err)
	}
	return findOpenSSL(f, uint64(st.Size()), path)
}

// findOpenSSL analyses f, a file of size bytes. Segments whose file bytes
// would lie past its end (a hostile or truncated file) are ignored: an
// offset computed through them points outside the file.
func findOpenSSL(f *elf.File, size uint64, path string) (OpenSSL, error) {
	progs := make([]*elf.Prog, 0, len(f.Progs))
	for _, p := range f.Progs {
		if end := p.Off + p.Filesz; end >= p.Off && end <= size {
			progs = append(progs, p)
		}
	}
	f.Progs = progs
	if f.Machine != elf.EM_X86_64 {
		return OpenSSL{}, fmt.Errorf("attachpoint: %s: unsupported machine %v", path, f.Machine)
	}
	syms := map[string]elf.Symbol{}
	found, err := elfsym.Lookup(f, publicSymbols)
	if err != nil {
		return OpenSSL{}, fmt.Errorf("attachpoint: %s: %w", path, err)
	}
	for name, s := range found {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			syms[name] = elf.Symbol{Name: name, Value: s.Value, Size: s.Size, Info: s.Info}
		}
	}
	// .symtab can hold every static function of a 100 MB binary: read it
	// only when the dynamic table lacks something.
	if len(syms) < len(publicSymbols) {
		if list, err := f.Symbols(); err == nil {
			for _, s := range list {
				if _, ok := syms[s.Name]; ok || elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Value == 0 || !slices.Contains(publicSymbols, s.Name) {
					continue
				}
				syms[s.Name] = s
			}
		}
	}
	out := OpenSSL{Symbols: map[string]uint64{}}
	for name, s := range syms {
		if off, ok := fileOffset(f, s.Value); ok {
			out.Symbols[name] = off
		}
	}
	if len(out.Symbols) == 0 {
		return out, errors.New("attachpoint: no OpenSSL symbols")
	}
	if s, ok := syms["SSL_free"]; ok {
		out.Free = out.Symbols["SSL_free"]
		if code, ok := read(f, s.Value, 16); ok && out.Free != 0 {
			if off, ok := NullCheckBranch(code); ok {
				out.Free += uint64(off)
			}
		}
	}
	out.ReadInternal = internalCallee(f, syms, "SSL_read_ex", "SSL_read")
	out.WriteInternal = internalCallee(f, syms, "SSL_write_ex", "SSL_write")
	return out, nil
}

// NullCheckBranch returns the offset of the `je`/`jz` in a function that
// starts `test rdi, rdi; je ...` (SSL_free in Debian 12's libssl3: `if (s
// == NULL) return;`). The kernel single-steps `test` (~14 µs a hit here)
// but emulates a conditional jump (~1 µs); the test writes only flags, so
// at the jump RDI still holds the first argument, and every call passes
// through it once. ok is false for any other start: probe the entry.
func NullCheckBranch(code []byte) (off int, ok bool) {
	inst, err := x86asm.Decode(code, 64)
	if err != nil || inst.Op != x86asm.TEST || inst.Args[0] != x86asm.RDI || inst.Args[1] != x86asm.RDI {
		return 0, false
	}
	next, err := x86asm.Decode(code[inst.Len:], 64)
	if err != nil || next.Op != x86asm.JE {
		return 0, false
	}
	if _, rel := next.Args[0].(x86asm.Rel); !rel {
		return 0, false
	}
	return inst.Len, true
}

// internalCallee returns the file offset of the function both wrappers call
// (ex first, its only early call), or 0 when the code does not look as expected.
func internalCallee(f *elf.File, syms map[string]elf.Symbol, ex, plain string) uint64 {
	exSym, ok1 := syms[ex]
	plainSym, ok2 := syms[plain]
	if !ok1 || !ok2 {
		return 0
	}
	// The _ex wrapper must call straight away: a branch before the call
	// means the internal function was inlined (as in Node.js's build) and
	// the call is to something else.
	exCalls := calls(f, exSym, 1)
	if len(exCalls) != 1 || !thinWrapper(f, exSym) {
		return 0
	}
	target := exCalls[0]
	for _, c := range calls(f, plainSym, 4) {
		if c == target {
			off, ok := fileOffset(f, target)
			if !ok {
				return 0
			}
			return off
		}
	}
	return 0
}

// calls decodes the start of a function and returns the targets (virtual
// addresses) of up to max direct calls before the first return or jump.
func calls(f *elf.File, s elf.Symbol, max int) []uint64 {
	size := s.Size
	if size == 0 || size > 256 {
		size = 256
	}
	code, ok := read(f, s.Value, size)
	if !ok {
		return nil
	}
	var out []uint64
	pc := s.Value
	for len(code) > 0 && len(out) < max {
		inst, err := x86asm.Decode(code, 64)
		if err != nil {
			return out
		}
		switch inst.Op {
		case x86asm.CALL:
			if rel, ok := inst.Args[0].(x86asm.Rel); ok {
				out = append(out, pc+uint64(inst.Len)+uint64(int64(rel)))
			} else {
				return out
			}
		case x86asm.RET, x86asm.JMP:
			return out
		}
		pc += uint64(inst.Len)
		code = code[inst.Len:]
	}
	return out
}

// thinWrapper reports whether the function's first call comes within its
// first four instructions with no branch before it.
func thinWrapper(f *elf.File, s elf.Symbol) bool {
	code, ok := read(f, s.Value, 64)
	if !ok {
		return false
	}
	for i := 0; i < 4 && len(code) > 0; i++ {
		inst, err := x86asm.Decode(code, 64)
		if err != nil {
			return false
		}
		switch {
		case inst.Op == x86asm.CALL:
			return true
		case isBranch(inst.Op):
			return false
		}
		code = code[inst.Len:]
	}
	return false
}

func isBranch(op x86asm.Op) bool {
	switch op {
	case x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JCXZ, x86asm.JE, x86asm.JECXZ, x86asm.JG, x86asm.JGE,
		x86asm.JL, x86asm.JLE, x86asm.JMP, x86asm.JNE, x86asm.JNO, x86asm.JNP, x86asm.JNS, x86asm.JO, x86asm.JP,
		x86asm.JRCXZ, x86asm.JS, x86asm.RET:
		return true
	}
	return false
}

// read returns size bytes of code at virtual address addr.
func read(f *elf.File, addr, size uint64) ([]byte, bool) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_X == 0 || addr < p.Vaddr || addr >= p.Vaddr+p.Filesz {
			continue
		}
		if end := p.Vaddr + p.Filesz; addr+size > end {
			size = end - addr
		}
		b := make([]byte, size)
		if _, err := p.ReadAt(b, int64(addr-p.Vaddr)); err != nil && !errors.Is(err, io.EOF) {
			return nil, false
		}
		return b, true
	}
	return nil, false
}

// fileOffset translates a virtual address to the file offset uprobes want.
func fileOffset(f *elf.File, addr uint64) (uint64, bool) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && addr >= p.Vaddr && addr < p.Vaddr+p.Filesz {
			return addr - p.Vaddr + p.Off, true
		}
	}
	return 0, false
}
