package attachpoint

import "golang.org/x/arch/x86/x86asm"

// GoEntry returns the offset into a Go function's code of the first
// instruction an entry uprobe can use cheaply: the `push rbp` after the
// stack-growth check. Go functions start with `cmp rsp, [r14+0x10]` (or a
// `lea r12, [rsp-N]` first), which the kernel single-steps (~10 µs per hit
// here); it emulates `push` (~0.7 µs). The check touches no argument
// register, and the morestack path re-enters at the function start, so a
// probe there sees every call once, with the arguments in place.
//
// ok is false when the prologue is not the expected shape: probe the entry.
func GoEntry(code []byte) (off int, ok bool) {
	for i := 0; i < 6 && off < len(code); i++ {
		inst, err := x86asm.Decode(code[off:], 64)
		if err != nil {
			return 0, false
		}
		switch inst.Op {
		case x86asm.PUSH:
			if inst.Args[0] == x86asm.RBP {
				return off, true
			}
			return 0, false
		case x86asm.CMP, x86asm.JBE, x86asm.JB, x86asm.JA, x86asm.JAE:
			// the stack check and its branch to morestack
		case x86asm.LEA:
			if r, isReg := inst.Args[0].(x86asm.Reg); !isReg || (r != x86asm.R12 && r != x86asm.R13) {
				return 0, false // would clobber an argument register
			}
		default:
			return 0, false
		}
		off += inst.Len
	}
	return 0, false
}
