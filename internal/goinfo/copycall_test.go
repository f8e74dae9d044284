package goinfo

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// TestCopyCallToolchains: with every supported toolchain (plain, stripped,
// PIE), Read's copy call is found from Go 1.21 on, at a CALL whose target
// is runtime.memmove (as the unstripped twin's symbol table says), and the
// stripped and plain builds agree; Go 1.20's frame setup is rejected.
func TestCopyCallToolchains(t *testing.T) {
	tcs := append([]string{"local"}, Toolchains...)
	for _, tc := range tcs {
		if tc == runtime.Version() {
			continue // same as local
		}
		for _, pie := range []bool{false, true} {
			name := tc
			if pie {
				name += "-pie"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				plainPath, strippedPath, plain, stripped := inspectPair(t, pair{toolchain: tc, pie: pie, trimpath: pie})
				minor, _ := GoMinor(plain.GoVersion)
				if minor < 21 {
					for _, in := range []Info{plain, stripped} {
						if in.Read.CopyCall != 0 || !strings.Contains(in.NoCopyCall, "push rbp") {
							t.Errorf("%s: CopyCall %#x (%q), want 0 for the sub/mov/lea frame setup", in.GoVersion, in.Read.CopyCall, in.NoCopyCall)
						}
					}
					return
				}
				for _, c := range []struct {
					path string
					in   Info
				}{{plainPath, plain}, {strippedPath, stripped}} {
					fn := c.in.Read
					if fn.CopyCall == 0 {
						t.Fatalf("%s: no copy call: %s", c.path, c.in.NoCopyCall)
					}
					if fn.CopyCall <= fn.Entry || fn.CopyCall >= fn.Entry+fn.Size {
						t.Fatalf("copy call %#x outside %#x+%d", fn.CopyCall, fn.Entry, fn.Size)
					}
					inst, err := x86asm.Decode(readAt(t, c.path, fn.CopyCall, 5), 64)
					rel, ok := inst.Args[0].(x86asm.Rel)
					if err != nil || inst.Op != x86asm.CALL || !ok {
						t.Fatalf("%#x decodes to %v (%v)", fn.CopyCall, inst, err)
					}
					target := fn.Addr + (fn.CopyCall - fn.Entry) + 5 + uint64(int64(rel))
					if want := symbolValue(t, plainPath, MemmoveSymbol); target != want {
						t.Errorf("%s: call target %#x, runtime.memmove at %#x", c.path, target, want)
					}
				}
				if plain.Read.CopyCall-plain.Read.Entry != stripped.Read.CopyCall-stripped.Read.Entry {
					t.Errorf("copy call at +%#x (plain), +%#x (stripped)", plain.Read.CopyCall-plain.Read.Entry, stripped.Read.CopyCall-stripped.Read.Entry)
				}
				t.Logf("%s: copy call at Read+%#x", plain.GoVersion, plain.Read.CopyCall-plain.Read.Entry)
			})
		}
	}
}

// readProto is a hand-assembled Read with the Go 1.24 shape, at address
// 0x1000 with runtime.memmove at 0x2000:
var readProto = []byte{
	0x49, 0x3b, 0x66, 0x10, // 0x00 cmp rsp, [r14+0x10]
	0x76, 0x2d, // 0x04 jbe 0x33 (stub)
	0x55,             // 0x06 push rbp
	0x48, 0x89, 0xe5, // 0x07 mov rbp, rsp
	0x48, 0x83, 0xec, 0x58, // 0x0a sub rsp, 0x58
	0x48, 0x89, 0x44, 0x24, 0x68, // 0x0e mov [rsp+0x68], rax   (c)
	0x48, 0x89, 0x4c, 0x24, 0x78, // 0x13 mov [rsp+0x78], rcx   (b.len)
	0x48, 0x89, 0x5c, 0x24, 0x70, // 0x18 mov [rsp+0x70], rbx   (b.ptr)
	0x48, 0x8b, 0x44, 0x24, 0x70, // 0x1d mov rax, [rsp+0x70]   (load: fine)
	0xe8, 0xd9, 0x0f, 0x00, 0x00, // 0x22 call 0x2000 (memmove)
	0x90,                   // 0x27 nop
	0x48, 0x83, 0xc4, 0x58, // 0x28 add rsp, 0x58
	0x5d,                         // 0x2c pop rbp
	0xc3,                         // 0x2d ret
	0xcc, 0xcc, 0xcc, 0xcc, 0xcc, // 0x2e int3 padding
	0x48, 0x89, 0x44, 0x24, 0x08, // 0x33 mov [rsp+8], rax
	0x48, 0x89, 0x5c, 0x24, 0x10, // 0x38 mov [rsp+0x10], rbx
	0xe8, 0x00, 0x00, 0x00, 0x00, // 0x3d call (morestack)
	0xeb, 0xbc, // 0x42 jmp 0x00
}

func TestFindCopyCallHandMade(t *testing.T) {
	const base, addr, memmove = 0x400, 0x1000, 0x2000
	off, err := findCopyCall(readProto, base, addr, memmove)
	if err != nil || off != base+0x22 {
		t.Fatalf("prototype: %#x, %v; want %#x", off, err, base+0x22)
	}
	patch := func(at int, b ...byte) []byte {
		c := append([]byte(nil), readProto...)
		copy(c[at:], b)
		return c
	}
	for _, tc := range []struct {
		name string
		code []byte
		why  string
	}{
		// Go 1.20: sub rsp, 0x58; mov [rsp+0x50], rbp; lea rbp, [rsp+0x50]
		{"go1.20 frame", append([]byte{0x49, 0x3b, 0x66, 0x10, 0x76, 0x10, 0x48, 0x83, 0xec, 0x58,
			0x48, 0x89, 0x6c, 0x24, 0x50, 0x48, 0x8d, 0x6c, 0x24, 0x50}, readProto[0x0e:]...), "push rbp"},
		{"no stack check", readProto[6:], "stack check"},
		{"c spilled elsewhere", patch(0x0e, 0x48, 0x89, 0x44, 0x24, 0x60), "not spilled"},
		{"b.ptr spilled from rdx", patch(0x18, 0x48, 0x89, 0x54, 0x24, 0x70), "not spilled"},
		// mov rax, rdx before the spill: the slot would not hold c
		{"rax clobbered first", patch(0x0e, 0x48, 0x89, 0xd0, 0x90, 0x90), "not spilled"},
		// mov [rsp+0x68], rdx instead of the load: c's slot rewritten
		{"slot rewritten", patch(0x1d, 0x48, 0x89, 0x54, 0x24, 0x68), "argument slot"},
		// mov [rbp+0x18], rdx: b.ptr's slot rewritten through rbp
		{"slot rewritten via rbp", patch(0x1d, 0x48, 0x89, 0x55, 0x18, 0x90), "argument slot"},
		// lea rdi, [rsp+0x70]: the slot's address taken
		{"slot address taken", patch(0x1d, 0x48, 0x8d, 0x7c, 0x24, 0x70), "argument slot"},
		// mov rbp, rdi in the body
		{"rbp changed", patch(0x1d, 0x48, 0x89, 0xfd, 0x90, 0x90), "frame register"},
		// sub rsp, 8 in the body
		{"rsp changed", patch(0x1d, 0x48, 0x83, 0xec, 0x08, 0x90), "frame register"},
		// the call goes elsewhere
		{"no memmove call", patch(0x22, 0xe8, 0xd8, 0x0f, 0x00, 0x00), "0 calls"},
		// a second memmove call in place of the load
		{"two memmove calls", patch(0x1d, 0xe8, 0xde, 0x0f, 0x00, 0x00), "2 calls"},
		// stub stores rcx into c's slot
		{"stub clobbers slot", patch(0x33, 0x48, 0x89, 0x4c, 0x24, 0x08), "argument slot"},
		// stub does not jump back to the entry
		{"stub end", patch(0x43, 0xbd), "jump to the entry"},
		{"truncated", readProto[:0x24], "undecodable"},
	} {
		off, err := findCopyCall(tc.code, base, addr, memmove)
		if err == nil || off != 0 || !errors.Is(err, errNoCopyCall) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: %#x, %v; want an error mentioning %q", tc.name, off, err, tc.why)
		}
	}
	if _, err := findCopyCall(readProto, base, addr, 0); err == nil {
		t.Error("memmove unknown: accepted")
	}
}
