package goinfo

import (
	"errors"
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// MemmoveSymbol is the runtime's copy routine: `copy(b, src)` in
// crypto/tls.(*Conn).Read (bytes.Reader.Read on c.input, inlined) calls it.
const MemmoveSymbol = "runtime.memmove"

// Read's plaintext can be captured at its one `CALL runtime.memmove`, a
// probe the kernel emulates (~1 µs a hit) where the RET probes of the
// entry+returns scheme are single-stepped (~15 µs each). The eBPF program
// (go_tls_read_copy) relies on:
//
//   - memmove's register ABI: AX = destination, BX = source, CX = n;
//   - the frame pointer: RBP = Read's frame base at the call, so its first
//     two register arguments' spill slots (c *Conn, b.ptr) are at
//     [RBP+0x10] and [RBP+0x18] (return address at [RBP+8]);
//   - those slots holding c and b.ptr for the whole body: the prologue
//     spills RAX and RBX there and nothing else ever writes them.
//
// findCopyCall checks all of it on the decoded code and returns the file
// offset of the call, or an error saying why the code does not qualify.
// Go 1.21–1.26 qualify; Go 1.20 (frame set up by sub/mov/lea, no push)
// does not.

// spill slots, relative to RBP, and their width
const (
	slotConn = 0x10 // c *Conn (RAX at entry)
	slotBuf  = 0x18 // b.ptr (RBX at entry)
	slotEnd  = 0x20
)

var errNoCopyCall = errors.New("no usable CALL runtime.memmove")

type decoded struct {
	pc   int
	inst x86asm.Inst
}

// findCopyCall analyses Read's code: base is its file offset, addr its
// virtual address, memmove runtime.memmove's virtual address.
func findCopyCall(code []byte, base, addr, memmove uint64) (uint64, error) {
	fail := func(pc int, format string, a ...any) (uint64, error) {
		return 0, fmt.Errorf("%w: +%#x: %s", errNoCopyCall, pc, fmt.Sprintf(format, a...))
	}
	if memmove == 0 {
		return fail(0, "%s not found", MemmoveSymbol)
	}
	var insts []decoded
	for pc := 0; pc < len(code); {
		inst, err := x86asm.Decode(code[pc:], 64)
		if err != nil || inst.Op == 0 || inst.Len == 0 || pc+inst.Len > len(code) {
			return fail(pc, "undecodable")
		}
		insts = append(insts, decoded{pc, inst})
		pc += inst.Len
	}

	// Prologue: the stack check (cmp, or lea r12 then cmp, and a forward
	// branch to the morestack stub), push rbp, mov rbp, rsp, sub rsp, F.
	i := 0
	stub := -1
	for ; i < len(insts) && i < 4; i++ {
		in := insts[i].inst
		if in.Op == x86asm.PUSH {
			break
		}
		switch in.Op {
		case x86asm.CMP:
		case x86asm.LEA:
			if r, ok := in.Args[0].(x86asm.Reg); !ok || (r != x86asm.R12 && r != x86asm.R13) {
				return fail(insts[i].pc, "prologue: %v", in)
			}
		case x86asm.JBE, x86asm.JB, x86asm.JA, x86asm.JAE:
			rel, ok := in.Args[0].(x86asm.Rel)
			if !ok || stub >= 0 {
				return fail(insts[i].pc, "prologue: %v", in)
			}
			stub = insts[i].pc + in.Len + int(rel)
		default:
			return fail(insts[i].pc, "frame not set up by push rbp; mov rbp, rsp: %v", in)
		}
	}
	if stub <= 0 || stub >= len(code) {
		return fail(0, "no stack check branching forward to a morestack stub")
	}
	if i+3 > len(insts) ||
		!isInst(insts[i].inst, x86asm.PUSH, x86asm.RBP) ||
		!isInst(insts[i+1].inst, x86asm.MOV, x86asm.RBP, x86asm.RSP) {
		return fail(insts[min(i, len(insts)-1)].pc, "frame not set up by push rbp; mov rbp, rsp")
	}
	sub := insts[i+2].inst
	frame, ok := immArg(sub, x86asm.SUB)
	if !ok || frame <= 0 || frame%8 != 0 || frame > 1<<16 {
		return fail(insts[i+2].pc, "frame not allocated by sub rsp, imm: %v", sub)
	}
	i += 3
	prologueEnd := i

	// Spills: in the straight-line code after the frame setup, RAX and
	// RBX (still the arguments: nothing before wrote them) stored to
	// their slots, 8 bytes each.
	spilled := map[int]bool{}
	var haveConn, haveBuf bool
	clobbered := map[x86asm.Reg]bool{}
	for ; i < len(insts) && insts[i].pc < stub; i++ {
		in := insts[i].inst
		if isBranch(in.Op) || in.Op == x86asm.CALL {
			break
		}
		if m, ok := in.Args[0].(x86asm.Mem); ok && in.Op == x86asm.MOV && m.Base == x86asm.RSP && m.Index == 0 && m.Segment == 0 {
			r, _ := in.Args[1].(x86asm.Reg)
			switch {
			case m.Disp == frame+slotConn && r == x86asm.RAX && !clobbered[x86asm.RAX]:
				haveConn = true
				spilled[insts[i].pc] = true
			case m.Disp == frame+slotBuf && r == x86asm.RBX && !clobbered[x86asm.RBX]:
				haveBuf = true
				spilled[insts[i].pc] = true
			}
		}
		if r, ok := in.Args[0].(x86asm.Reg); ok {
			clobbered[fullReg(r)] = true
		}
	}
	if !haveConn || !haveBuf {
		return fail(insts[i-1].pc, "c and b.ptr not spilled to [rsp+%#x] and [rsp+%#x] after the frame setup", frame+slotConn, frame+slotBuf)
	}

	// The body (frame set up, RSP = RBP - F): the slots are never written
	// again, RSP changes only in epilogues, RBP only by their pop.
	var calls []int
	for j := 0; j < len(insts); j++ {
		d := insts[j]
		in := d.inst
		if j < prologueEnd {
			continue // checked above
		}
		if d.pc >= stub {
			if err := checkStub(insts[j:], addr, code, stub); err != nil {
				return fail(d.pc, "morestack stub: %v", err)
			}
			break
		}
		if spilled[d.pc] {
			continue
		}
		for _, a := range in.Args {
			m, ok := a.(x86asm.Mem)
			if !ok {
				continue
			}
			var lo int64
			switch m.Base {
			case x86asm.RSP:
				lo = frame
			case x86asm.RBP:
				lo = 0
			default:
				continue
			}
			if m.Index != 0 {
				return fail(d.pc, "indexed frame access: %v", in)
			}
			w := int64(in.MemBytes)
			if w == 0 {
				w = 16
			}
			if m.Disp < lo+slotEnd && m.Disp+w > lo+slotConn {
				// Only a plain load from a slot is allowed.
				if _, load := in.Args[0].(x86asm.Reg); !load || in.Op != x86asm.MOV {
					return fail(d.pc, "argument slot used by %v", in)
				}
			}
		}
		switch in.Op {
		case x86asm.PUSH:
			return fail(d.pc, "push in the body: %v", in)
		case x86asm.POP:
			if !isInst(in, x86asm.POP, x86asm.RBP) || j == 0 {
				return fail(d.pc, "pop in the body: %v", in)
			}
			if f, ok := immArg(insts[j-1].inst, x86asm.ADD); !ok || f != frame {
				return fail(d.pc, "pop rbp not after add rsp, %#x", frame)
			}
			continue
		case x86asm.CALL:
			if rel, ok := in.Args[0].(x86asm.Rel); ok && addr+uint64(d.pc+in.Len)+uint64(int64(rel)) == memmove {
				calls = append(calls, d.pc)
			}
			continue
		case x86asm.ADD:
			if f, ok := immArg(in, x86asm.ADD); ok && f == frame {
				if j+1 >= len(insts) || !isInst(insts[j+1].inst, x86asm.POP, x86asm.RBP) {
					return fail(d.pc, "add rsp not followed by pop rbp")
				}
				continue
			}
		}
		if r, ok := in.Args[0].(x86asm.Reg); ok && writes(in.Op) {
			if r = fullReg(r); r == x86asm.RSP || r == x86asm.RBP {
				return fail(d.pc, "frame register changed: %v", in)
			}
		}
	}
	if len(calls) != 1 {
		return fail(0, "%d calls to %s, want exactly 1", len(calls), MemmoveSymbol)
	}
	return base + uint64(calls[0]), nil
}

// checkStub verifies the morestack stub (the code from the stack check's
// branch target to the end): it runs before the frame exists (RSP = entry
// RSP, slots at [RSP+8] and [RSP+0x10]), may store only the argument
// registers to their own slots, and ends by jumping back to the entry.
func checkStub(insts []decoded, addr uint64, code []byte, stub int) error {
	last := insts[len(insts)-1]
	if rel, ok := last.inst.Args[0].(x86asm.Rel); last.inst.Op != x86asm.JMP || !ok || last.pc+last.inst.Len+int(rel) != 0 {
		return fmt.Errorf("does not end with a jump to the entry")
	}
	if insts[0].pc != stub {
		return fmt.Errorf("branch target inside an instruction")
	}
	for _, d := range insts {
		in := d.inst
		switch in.Op {
		case x86asm.RET, x86asm.PUSH, x86asm.POP:
			return fmt.Errorf("%v", in)
		}
		if r, ok := in.Args[0].(x86asm.Reg); ok && writes(in.Op) {
			if r = fullReg(r); r == x86asm.RSP || r == x86asm.RBP {
				return fmt.Errorf("frame register changed: %v", in)
			}
		}
		for k, a := range in.Args {
			m, ok := a.(x86asm.Mem)
			if !ok || (m.Base != x86asm.RSP && m.Base != x86asm.RBP) {
				continue
			}
			if m.Base == x86asm.RBP || m.Index != 0 {
				return fmt.Errorf("%v", in)
			}
			if m.Disp >= slotEnd-8 || m.Disp+int64(max(in.MemBytes, 1)) <= slotConn-8 {
				continue
			}
			if k == 1 && in.Op == x86asm.MOV {
				continue // a load
			}
			r, _ := in.Args[1].(x86asm.Reg)
			if in.Op != x86asm.MOV || k != 0 || !(m.Disp == slotConn-8 && r == x86asm.RAX || m.Disp == slotBuf-8 && r == x86asm.RBX) {
				return fmt.Errorf("argument slot used by %v", in)
			}
		}
	}
	return nil
}

func isInst(in x86asm.Inst, op x86asm.Op, regs ...x86asm.Reg) bool {
	if in.Op != op {
		return false
	}
	for k, r := range regs {
		if in.Args[k] != r {
			return false
		}
	}
	return true
}

// immArg returns imm for `op rsp, imm`.
func immArg(in x86asm.Inst, op x86asm.Op) (int64, bool) {
	if in.Op != op || in.Args[0] != x86asm.RSP {
		return 0, false
	}
	imm, ok := in.Args[1].(x86asm.Imm)
	return int64(imm), ok
}

func isBranch(op x86asm.Op) bool {
	switch op {
	case x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JCXZ, x86asm.JE, x86asm.JECXZ, x86asm.JG, x86asm.JGE,
		x86asm.JL, x86asm.JLE, x86asm.JMP, x86asm.JNE, x86asm.JNO, x86asm.JNP, x86asm.JNS, x86asm.JO, x86asm.JP,
		x86asm.JRCXZ, x86asm.JS, x86asm.RET, x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE:
		return true
	}
	return false
}

// writes reports whether op writes its first operand (conservatively: all
// but the compare/test family and stores-free ops).
func writes(op x86asm.Op) bool {
	switch op {
	case x86asm.CMP, x86asm.TEST, x86asm.BT, x86asm.UCOMISS, x86asm.UCOMISD, x86asm.COMISS, x86asm.COMISD,
		x86asm.PREFETCHT0, x86asm.PREFETCHT1, x86asm.PREFETCHT2, x86asm.PREFETCHNTA, x86asm.NOP:
		return false
	}
	return true
}

// fullReg maps a sub-register to its 64-bit register (RSP for ESP, SP, SPL...).
func fullReg(r x86asm.Reg) x86asm.Reg {
	switch {
	case r >= x86asm.AL && r <= x86asm.R15B:
		return [...]x86asm.Reg{x86asm.RAX, x86asm.RCX, x86asm.RDX, x86asm.RBX, x86asm.RAX, x86asm.RCX, x86asm.RDX, x86asm.RBX,
			x86asm.RSP, x86asm.RBP, x86asm.RSI, x86asm.RDI, x86asm.R8, x86asm.R9, x86asm.R10, x86asm.R11,
			x86asm.R12, x86asm.R13, x86asm.R14, x86asm.R15}[r-x86asm.AL]
	case r >= x86asm.AX && r <= x86asm.R15W:
		return x86asm.RAX + (r - x86asm.AX)
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return x86asm.RAX + (r - x86asm.EAX)
	}
	return r
}
