package attachpoint

import (
	"debug/elf"
	"errors"
	"os"
	"testing"

	"github.com/tlstap/tlstap/internal/testenv"

	"golang.org/x/arch/x86/x86asm"
)

const systemGnuTLS = "/usr/lib/x86_64-linux-gnu/libgnutls.so.30"

// Debian 12's libgnutls30: gnutls_record_send is `xor r8d,r8d; xor
// ecx,ecx; jmp gnutls_record_send2@plt`, so only send2 (starting with a
// push) is hooked; gnutls_deinit starts `test rdi,rdi; je`.
func TestFindGnuTLSSystemLib(t *testing.T) {
	if _, err := os.Stat(systemGnuTLS); err != nil {
		testenv.Missing(t, "no libgnutls30 (make deps installs wget, which depends on it)")
	}
	got, err := FindGnuTLS(systemGnuTLS)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(systemGnuTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first := func(off uint64) x86asm.Inst {
		t.Helper()
		code := make([]byte, 16)
		if _, err := readAtOffset(f, off, code); err != nil {
			t.Fatal(err)
		}
		inst, err := x86asm.Decode(code, 64)
		if err != nil {
			t.Fatalf("decode at %#x: %v", off, err)
		}
		return inst
	}
	if len(got.Send) != 1 || got.SendWhat[0] != "gnutls_record_send2" {
		t.Fatalf("send hooks = %v %#x, want gnutls_record_send2 alone", got.SendWhat, got.Send)
	}
	if inst := first(got.Send[0]); inst.Op != x86asm.PUSH {
		t.Errorf("send probe at %#x on %v, want a push", got.Send[0], inst)
	}
	if got.Recv == 0 || got.Bye == 0 || got.Deinit == 0 {
		t.Fatalf("got %+v", got)
	}
	if inst := first(got.Deinit); inst.Op != x86asm.JE {
		t.Errorf("deinit probe at %#x on %v, want the je after the NULL check", got.Deinit, inst)
	}
}

func TestFindGnuTLSNotGnuTLS(t *testing.T) {
	if _, err := FindGnuTLS("/bin/sleep"); !errors.Is(err, ErrNoGnuTLS) {
		t.Errorf("sleep: err = %v, want ErrNoGnuTLS", err)
	}
	if _, err := FindGnuTLS("/nonexistent"); err == nil {
		t.Error("want an error for a missing file")
	}
}

func TestTailJump(t *testing.T) {
	for _, tc := range []struct {
		name string
		code []byte
		want bool
	}{
		// Debian 12 gnutls_record_send: xor r8d,r8d; xor ecx,ecx; jmp rel32
		{"debian", []byte{0x45, 0x31, 0xc0, 0x31, 0xc9, 0xe9, 0x86, 0x9c, 0xff, 0xff}, true},
		{"jmp only", []byte{0xe9, 0x00, 0x00, 0x00, 0x00}, true},
		// mov ecx, 1; jmp rel8
		{"mov imm", []byte{0xb9, 0x01, 0x00, 0x00, 0x00, 0xeb, 0x10}, true},
		// push rbp: a real function body
		{"push", []byte{0x55, 0x48, 0x89, 0xe5}, false},
		// mov rax,[rdi]; jmp rel8: reads memory
		{"memory", []byte{0x48, 0x8b, 0x07, 0xeb, 0x10}, false},
		// jmp [rip+x]: indirect
		{"indirect", []byte{0xff, 0x25, 0x00, 0x00, 0x00, 0x00}, false},
		// call rel32: comes back
		{"call", []byte{0xe8, 0x00, 0x00, 0x00, 0x00, 0xc3}, false},
		{"empty", nil, false},
		{"truncated", []byte{0x45, 0x31}, false},
	} {
		if got := TailJump(tc.code); got != tc.want {
			t.Errorf("%s: TailJump = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func FuzzTailJump(f *testing.F) {
	f.Add([]byte{0x45, 0x31, 0xc0, 0x31, 0xc9, 0xe9, 0x86, 0x9c, 0xff, 0xff})
	f.Add([]byte{0x55, 0x48, 0x89, 0xe5})
	f.Fuzz(func(t *testing.T, code []byte) {
		TailJump(code) // must not panic on any bytes
	})
}
