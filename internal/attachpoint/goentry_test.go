package attachpoint

import "testing"

func TestGoEntry(t *testing.T) {
	for _, tc := range []struct {
		name string
		code []byte
		off  int
		ok   bool
	}{
		// cmp rsp,[r14+0x10]; jbe +0x20; push rbp; mov rbp,rsp
		{"small frame", []byte{0x49, 0x3b, 0x66, 0x10, 0x76, 0x20, 0x55, 0x48, 0x89, 0xe5}, 6, true},
		// lea r12,[rsp-0x98]; cmp r12,[r14+0x10]; jbe rel32; push rbp
		{"large frame", []byte{0x4c, 0x8d, 0xa4, 0x24, 0x68, 0xff, 0xff, 0xff, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x10, 0x00, 0x00, 0x00, 0x55}, 18, true},
		// mov rbx,rax before the push: an argument register changes
		{"clobbers rbx", []byte{0x48, 0x89, 0xc3, 0x55}, 0, false},
		// lea rax,[rsp-8]: a lea into an argument register
		{"lea into rax", []byte{0x48, 0x8d, 0x44, 0x24, 0xf8, 0x55}, 0, false},
		// push rbx first: not the frame setup
		{"push other", []byte{0x53, 0x55}, 0, false},
		// no push within the window
		{"no push", []byte{0x49, 0x3b, 0x66, 0x10, 0x76, 0x20, 0xc3}, 0, false},
		{"empty", nil, 0, false},
	} {
		off, ok := GoEntry(tc.code)
		if off != tc.off || ok != tc.ok {
			t.Errorf("%s: GoEntry = %d, %v; want %d, %v", tc.name, off, ok, tc.off, tc.ok)
		}
	}
}
