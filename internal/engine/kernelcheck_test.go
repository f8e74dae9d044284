package engine

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
)

// TestKernelFeatureCheck: on this kernel every required helper is there
// (the real probe, which loads a program per helper); on a kernel without
// bpf_loop (Linux < 5.17, simulated: no such kernel package is served here)
// Start's error names the helper and the release needed.
func TestKernelFeatureCheck(t *testing.T) {
	requireRoot(t)
	if err := checkKernelFeatures(features.HaveProgramHelper); err != nil {
		t.Fatalf("on %s: %v", release(), err)
	}
	without := func(missing asm.BuiltinFunc) func(ebpf.ProgramType, asm.BuiltinFunc) error {
		return func(_ ebpf.ProgramType, h asm.BuiltinFunc) error {
			if h == missing {
				return fmt.Errorf("%v: %w", h, ebpf.ErrNotSupported)
			}
			return nil
		}
	}
	for _, tc := range []struct {
		missing asm.BuiltinFunc
		want    string
	}{
		{asm.FnLoop, "lacks the eBPF helper bpf_loop: tlstap needs Linux ≥ 5.17"},
		{asm.FnGetAttachCookie, "lacks the eBPF helper bpf_get_attach_cookie: tlstap needs Linux ≥ 5.15"},
	} {
		err := checkKernelFeatures(without(tc.missing))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), release()) {
			t.Errorf("without %v: %v, want %q", tc.missing, err, tc.want)
		}
	}
	probeErr := errors.New("permission denied")
	err := checkKernelFeatures(func(ebpf.ProgramType, asm.BuiltinFunc) error { return probeErr })
	if !errors.Is(err, probeErr) || !strings.HasPrefix(err.Error(), "probe eBPF helper") {
		t.Errorf("probe failure: %v", err)
	}
}
