package attachpoint

import (
	"debug/elf"
	"errors"
	"fmt"

	"golang.org/x/arch/x86/x86asm"

	"github.com/tlstap/tlstap/internal/elfsym"
)

// GnuTLS is where to hook one GnuTLS build (libgnutls.so.30).
//
// Since GnuTLS 3.6.3 gnutls_record_send is a one-instruction wrapper that
// tail-calls gnutls_record_send2(session, data, size, pad, flags), whose
// first instruction is a push the kernel emulates. Hooking send2 alone sees
// both entry points once, at ~1 µs a hit instead of the ~10 µs of
// single-stepping gnutls_record_send's leading `xor`.
type GnuTLS struct {
	// Send lists the file offsets of the send functions to hook at entry
	// and return: send2 alone when gnutls_record_send is a thin tail call,
	// else every send entry point found (nesting is handled in the kernel).
	Send []uint64
	// SendWhat names the functions in Send, for messages.
	SendWhat []string
	// Recv is gnutls_record_recv's entry.
	Recv uint64
	// Bye is gnutls_bye's entry, 0 when absent.
	Bye uint64
	// Deinit is gnutls_deinit's entry, or the branch after its leading
	// NULL check (see NullCheckBranch); 0 when absent.
	Deinit uint64
}

var gnutlsSymbols = []string{"gnutls_record_send", "gnutls_record_send2", "gnutls_record_recv", "gnutls_bye", "gnutls_deinit"}

// ErrNoGnuTLS is returned for a file that does not define GnuTLS's record
// functions.
var ErrNoGnuTLS = errors.New("attachpoint: no GnuTLS record functions")

// FindGnuTLS inspects the ELF file at path.
func FindGnuTLS(path string) (GnuTLS, error) {
	f, err := elf.Open(path)
	if err != nil {
		return GnuTLS{}, fmt.Errorf("attachpoint: open %s: %w", path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return GnuTLS{}, fmt.Errorf("attachpoint: %s: unsupported machine %v", path, f.Machine)
	}
	found, err := elfsym.Lookup(f, gnutlsSymbols)
	if err != nil {
		return GnuTLS{}, fmt.Errorf("attachpoint: %s: %w", path, err)
	}
	syms := map[string]elf.Symbol{}
	for name, s := range found {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
			syms[name] = elf.Symbol{Name: name, Value: s.Value, Size: s.Size, Info: s.Info}
		}
	}
	off := func(name string) uint64 {
		s, ok := syms[name]
		if !ok {
			return 0
		}
		o, _ := fileOffset(f, s.Value)
		return o
	}
	var out GnuTLS
	send, send2 := off("gnutls_record_send"), off("gnutls_record_send2")
	out.Recv = off("gnutls_record_recv")
	if send == 0 || out.Recv == 0 {
		return GnuTLS{}, fmt.Errorf("%w in %s", ErrNoGnuTLS, path)
	}
	if send2 != 0 && tailCallOnly(f, syms["gnutls_record_send"]) {
		out.Send, out.SendWhat = []uint64{send2}, []string{"gnutls_record_send2"}
	} else {
		out.Send, out.SendWhat = []uint64{send}, []string{"gnutls_record_send"}
		if send2 != 0 {
			out.Send, out.SendWhat = append(out.Send, send2), append(out.SendWhat, "gnutls_record_send2")
		}
	}
	out.Bye = off("gnutls_bye")
	if s, ok := syms["gnutls_deinit"]; ok {
		out.Deinit = off("gnutls_deinit")
		if code, ok := read(f, s.Value, 16); ok && out.Deinit != 0 {
			if o, ok := NullCheckBranch(code); ok {
				out.Deinit += uint64(o)
			}
		}
	}
	return out, nil
}

// tailCallOnly reports whether the function is register moves/zeroing
// followed by a direct jmp: every call of it ends in the jump's target
// (gnutls_record_send2 through the PLT in Debian's build) and never comes
// back. Anything else, and the wrapper is hooked too.
func tailCallOnly(f *elf.File, s elf.Symbol) bool {
	code, ok := read(f, s.Value, 32)
	if !ok {
		return false
	}
	return TailJump(code)
}

// TailJump reports whether code starts with at most four register-only
// instructions (xor, mov between registers or of an immediate) and then a
// direct jmp.
func TailJump(code []byte) bool {
	for i := 0; i < 5 && len(code) > 0; i++ {
		inst, err := x86asm.Decode(code, 64)
		if err != nil {
			return false
		}
		switch inst.Op {
		case x86asm.JMP:
			_, rel := inst.Args[0].(x86asm.Rel)
			return rel
		case x86asm.XOR, x86asm.MOV:
			for _, a := range inst.Args {
				switch a.(type) {
				case nil, x86asm.Reg, x86asm.Imm:
				default:
					return false // memory operands or anything else
				}
			}
		default:
			return false
		}
		code = code[inst.Len:]
	}
	return false
}
