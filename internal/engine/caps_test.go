package engine

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/testenv"
)

func TestParseCapEff(t *testing.T) {
	for in, want := range map[string]uint64{
		"Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\nCapBnd:\t0\n": 0x1ffffffffff,
		"CapEff:\t000000c000080000":    1<<capBPF | 1<<capPerfmon | 1<<capSysPtrace,
		"CapEff:   0000000000000000\n": 0,
	} {
		got, err := parseCapEff([]byte(in))
		if err != nil || got != want {
			t.Errorf("parseCapEff(%q) = %#x, %v; want %#x", in, got, err, want)
		}
	}
	for _, in := range []string{"", "CapPrm:\t1\n", "CapEff:\tzz\n", "CapEff:\t\n", "CapEff:\t1ffffffffffffffff\n"} {
		if _, err := parseCapEff([]byte(in)); err == nil {
			t.Errorf("parseCapEff(%q): no error", in)
		}
	}
}

func FuzzParseCapEff(f *testing.F) {
	f.Add([]byte("CapInh:\t0\nCapEff:\t000001ffffffffff\n"))
	f.Add([]byte("CapEff:\t"))
	f.Fuzz(func(t *testing.T, b []byte) {
		eff, err := parseCapEff(b)
		if err != nil && eff != 0 {
			t.Fatalf("parseCapEff(%q) = %#x with error %v", b, eff, err)
		}
		_ = missingCaps(eff)
	})
}

func TestMissingCaps(t *testing.T) {
	all := uint64(1)<<41 - 1
	names := func(cs []capability) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.name)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		eff  uint64
		want string
	}{
		{all, ""},
		{0, "CAP_BPF,CAP_PERFMON,CAP_SYS_PTRACE"},
		{1<<capBPF | 1<<capPerfmon | 1<<capSysPtrace, ""},
		{1<<capSysAdmin | 1<<capSysPtrace, ""}, // kernels before 5.8: CAP_SYS_ADMIN
		{all &^ (1 << capBPF), ""},             // CAP_SYS_ADMIN still stands in
		{all &^ (1<<capBPF | 1<<capSysAdmin), "CAP_BPF"},
		{all &^ (1<<capPerfmon | 1<<capSysAdmin), "CAP_PERFMON"},
		{all &^ (1 << capSysPtrace), "CAP_SYS_PTRACE"},
	} {
		if got := names(missingCaps(tc.eff)); got != tc.want {
			t.Errorf("missingCaps(%#x) = %s, want %s", tc.eff, got, tc.want)
		}
	}
}

// TestCapabilityCheckNamesMissing drops one capability of root in a child
// process (capsh --drop, which also removes it from the bounding set) and
// expects the engine to refuse to start with an error naming it.
func TestCapabilityCheckNamesMissing(t *testing.T) {
	if os.Getenv("TLSTAP_CAPCHECK_CHILD") != "" {
		capCheckChild(t)
		return
	}
	requireRoot(t)
	capsh := testenv.RequireCommand(t, "capsh")
	for _, tc := range []struct{ drop, want string }{
		// CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON: drop both.
		{"cap_bpf,cap_sys_admin", "lacks capability CAP_BPF (load eBPF programs and maps)"},
		{"cap_perfmon,cap_sys_admin", "lacks capability CAP_PERFMON ("},
		{"cap_sys_ptrace", "lacks capability CAP_SYS_PTRACE ("},
		{"cap_bpf,cap_perfmon,cap_sys_admin,cap_sys_ptrace", "lacks capabilities CAP_BPF (load eBPF programs and maps), CAP_PERFMON ("},
		{"cap_sys_admin", ""}, // not needed with CAP_BPF and CAP_PERFMON
		{"cap_dac_override,cap_dac_read_search,cap_sys_resource,cap_net_admin", ""},
	} {
		t.Run(tc.drop, func(t *testing.T) {
			cmd := exec.Command(capsh, "--drop="+tc.drop, "--", "-c", `exec "$0" -test.run '^TestCapabilityCheckNamesMissing$' -test.count=1`, os.Args[0])
			cmd.Env = append(os.Environ(), "TLSTAP_CAPCHECK_CHILD=1")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("child: %v\n%s", err, out.String())
			}
			got, _, ok := strings.Cut(out.String()[strings.Index(out.String(), "start: ")+len("start: "):], "\n")
			if !strings.Contains(out.String(), "start: ") || !ok {
				t.Fatalf("child printed no start result:\n%s", out.String())
			}
			switch {
			case tc.want == "" && got != "ok":
				t.Errorf("without %s: Start = %s, want ok", tc.drop, got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Errorf("without %s: Start = %s\nwant an error containing %q", tc.drop, got, tc.want)
			case tc.want != "" && !strings.Contains(got, "--cap-add "):
				t.Errorf("without %s: the error does not say how to grant it: %s", tc.drop, got)
			}
		})
	}
}

// capCheckChild starts a real engine with the capabilities it was given
// and prints what Start returned.
func capCheckChild(t *testing.T) {
	eng, err := New(ungatedConfig(), zap.NewNop(), func(*exchange.Exchange) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		fmt.Printf("start: %v\n", err)
		return
	}
	fmt.Println("start: ok")
	if err := eng.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
