package engine

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Capability numbers from linux/capability.h.
const (
	capSysPtrace = 19
	capSysAdmin  = 21
	capPerfmon   = 38
	capBPF       = 39
)

// capability is one Linux capability the agent needs, and what for.
type capability struct {
	bit  uint
	name string // as capabilities(7) spells it
	// orAdmin: kernels before 5.8 have no CAP_BPF/CAP_PERFMON and ask
	// CAP_SYS_ADMIN instead; CAP_SYS_ADMIN still stands in for them.
	orAdmin bool
	why     string
}

// requiredCaps is the minimal set, measured on Linux 6.18 by dropping
// each capability of root in turn: without CAP_BPF or CAP_PERFMON nothing
// loads; without CAP_SYS_PTRACE the agent cannot read the maps of a
// process with more capabilities than its own (a host process, from a
// container), so finds no TLS library to probe (internal/e2e
// TestImageCapturesHostAndContainer runs the image with exactly this set).
// CAP_SYS_ADMIN is not in it: the engine attaches raw tracepoints and
// uprobes, mounts nothing and needs no tracefs. CAP_SYS_RESOURCE neither:
// since Linux 5.11 eBPF memory is charged to the memory cgroup, not to
// RLIMIT_MEMLOCK. CAP_DAC_READ_SEARCH neither: the files probed are read
// through /proc/<pid>/root, which CAP_SYS_PTRACE opens.
var requiredCaps = []capability{
	{bit: capBPF, name: "CAP_BPF", orAdmin: true, why: "load eBPF programs and maps"},
	{bit: capPerfmon, name: "CAP_PERFMON", orAdmin: true, why: "attach uprobes and tracepoints, read process memory from eBPF"},
	{bit: capSysPtrace, name: "CAP_SYS_PTRACE", why: "read /proc/<pid>/maps, exe and root of processes with more privileges or another owner"},
}

// missingCaps returns the required capabilities not in the effective set
// eff, in the order of requiredCaps.
func missingCaps(eff uint64) []capability {
	has := func(bit uint) bool { return eff&(1<<bit) != 0 }
	var out []capability
	for _, c := range requiredCaps {
		if has(c.bit) || c.orAdmin && has(capSysAdmin) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// checkCaps returns an error naming every required capability this
// process lacks.
func checkCaps() error {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	eff, err := parseCapEff(status)
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	missing := missingCaps(eff)
	if len(missing) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("tlstap lacks capabilit")
	if len(missing) == 1 {
		b.WriteString("y ")
	} else {
		b.WriteString("ies ")
	}
	for i, c := range missing {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (%s)", c.name, c.why)
	}
	b.WriteString(": run it as root, or grant ")
	for i, c := range missing {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString("--cap-add " + strings.TrimPrefix(c.name, "CAP_"))
	}
	b.WriteString(" (docker), securityContext.capabilities.add (Kubernetes) or AmbientCapabilities= (systemd)")
	return fmt.Errorf("%s", b.String())
}

// parseCapEff reads the effective capability set from the contents of
// /proc/<pid>/status ("CapEff:\t000001ffffffffff").
func parseCapEff(status []byte) (uint64, error) {
	for len(status) > 0 {
		var line []byte
		line, status, _ = bytes.Cut(status, []byte("\n"))
		v, ok := bytes.CutPrefix(line, []byte("CapEff:"))
		if !ok {
			continue
		}
		eff, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 16, 64)
		if err != nil {
			return 0, fmt.Errorf("parse CapEff %q: %w", bytes.TrimSpace(v), err)
		}
		return eff, nil
	}
	return 0, fmt.Errorf("no CapEff line in /proc/self/status")
}
