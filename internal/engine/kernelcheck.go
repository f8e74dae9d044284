package engine

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// requiredHelpers are the eBPF helpers the data path cannot do without,
// with the Linux release that introduced each. On an older kernel the
// agent refuses to start with that reason, rather than with a verifier
// error about the syscall tracepoints.
//
// bpf_loop copies a call's payload in up to 64 records. With a bounded
// loop instead, the verifier processes 700 295 instructions for
// raw_sys_exit on Linux 6.18 (22 958 with bpf_loop), and 6.1 rejects it at
// its 1 000 000 limit: an older verifier would too.
var requiredHelpers = []struct {
	prog   ebpf.ProgramType
	helper asm.BuiltinFunc
	name   string
	since  string
}{
	{ebpf.RawTracepoint, asm.FnRingbufOutput, "bpf_ringbuf_output", "5.8"},
	{ebpf.Kprobe, asm.FnGetAttachCookie, "bpf_get_attach_cookie", "5.15"}, // uprobes find their Go binary's layout by it
	{ebpf.RawTracepoint, asm.FnLoop, "bpf_loop", "5.17"},
}

// checkKernelFeatures returns a precise error naming the first missing
// helper and the kernel release it needs. have is features.HaveProgramHelper.
func checkKernelFeatures(have func(ebpf.ProgramType, asm.BuiltinFunc) error) error {
	for _, r := range requiredHelpers {
		err := have(r.prog, r.helper)
		if err == nil {
			continue
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("kernel %s lacks the eBPF helper %s: tlstap needs Linux ≥ %s (see README, Kernels)", release(), r.name, r.since)
		}
		return fmt.Errorf("probe eBPF helper %s: %w", r.name, err)
	}
	return nil
}

func release() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "(unknown release)"
	}
	return unix.ByteSliceToString(u.Release[:])
}
