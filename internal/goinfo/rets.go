package goinfo

import (
	"errors"
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// scanReturns decodes code (a whole function, starting at file offset
// base) instruction by instruction and returns the file offsets of its RET
// instructions (C3, C2 iw, with or without prefixes such as F3) and of
// direct JMPs whose target lies outside the function. Bytes that do not
// decode are an error: resynchronising past them could land a probe in
// the middle of an instruction, which would corrupt the traced program.
func scanReturns(code []byte, base uint64) (rets, tails []uint64, err error) {
	for pc := 0; pc < len(code); {
		inst, err := x86asm.Decode(code[pc:], 64)
		// x86asm reports a truncated or unknown opcode as a 1-byte
		// instruction with no Op rather than as an error.
		if err == nil && (inst.Op == 0 || inst.Len == 0 || pc+inst.Len > len(code)) {
			err = errors.New("no instruction")
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: cannot decode instruction at +%#x (% x): %v", ErrUnsupported, pc, code[pc:min(pc+8, len(code))], err)
		}
		switch inst.Op {
		case x86asm.RET:
			rets = append(rets, base+uint64(pc))
		case x86asm.JMP:
			if rel, ok := inst.Args[0].(x86asm.Rel); ok {
				target := int64(pc) + int64(inst.Len) + int64(rel)
				if target < 0 || target >= int64(len(code)) {
					tails = append(tails, base+uint64(pc))
				}
			}
		}
		pc += inst.Len
	}
	return rets, tails, nil
}
