//go:build amd64

package bpf

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSyscallNumbers checks the syscall numbers the raw sys_enter/sys_exit
// dispatchers switch on against the x86-64 table in x/sys/unix: a wrong
// number would silently follow the wrong syscall.
func TestSyscallNumbers(t *testing.T) {
	want := map[string]int{
		"read": unix.SYS_READ, "write": unix.SYS_WRITE, "close": unix.SYS_CLOSE, "mmap": unix.SYS_MMAP,
		"readv": unix.SYS_READV, "writev": unix.SYS_WRITEV, "dup2": unix.SYS_DUP2, "dup3": unix.SYS_DUP3,
		"connect": unix.SYS_CONNECT, "accept": unix.SYS_ACCEPT, "accept4": unix.SYS_ACCEPT4,
		"sendto": unix.SYS_SENDTO, "recvfrom": unix.SYS_RECVFROM, "sendmsg": unix.SYS_SENDMSG, "recvmsg": unix.SYS_RECVMSG,
	}
	src, err := os.ReadFile("tlstap.bpf.c")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^#define NR_(\w+) (\d+)$`).FindAllSubmatch(src, -1) {
		n, _ := strconv.Atoi(string(m[2]))
		got[string(m[1])] = n
	}
	for name, nr := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("NR_%s not defined in tlstap.bpf.c", name)
		} else if g != nr {
			t.Errorf("NR_%s = %d, x86-64 has %d", name, g, nr)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("NR_%s is not checked by this test", name)
		}
	}
}
