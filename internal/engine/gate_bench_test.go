package engine

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startGateAgent runs the test binary as an agent with its exec gate on, in
// a child process: the benchmark's own execs are then gated like any
// other program's. It is killed at cleanup.
func startGateAgent(b *testing.B) {
	b.Helper()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	agent := exec.Command(self)
	agent.Env = append(os.Environ(), gateAgentEnv+"=on")
	out, err := agent.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || !strings.HasPrefix(line, "ready ") {
		b.Fatalf("agent: %q %v", line, err)
	}
}

// BenchmarkExecGate measures what the exec gate adds to an exec, without
// and with an agent: a known file (/bin/true again and again, which is
// also the exec throughput of a tight loop), a new file without TLS (a
// fresh copy of /bin/true each time) and a new Go HTTPS program (a fresh
// copy of a stripped Go client each time: analysis plus attach). Each op
// is one fork+exec+wait; median and p99 are reported per case. Run by
// `make bench`; compare the agent=on and agent=off lines of one run.
func BenchmarkExecGate(b *testing.B) {
	requireRootB(b)
	trueBin, err := filepath.EvalSymlinks("/bin/true")
	if err != nil {
		b.Fatal(err)
	}
	goBin := goBinary(b, "local", true)
	cases := []struct {
		name string
		file func(b *testing.B, i int) string
		args []string
	}{
		{"known", func(*testing.B, int) string { return trueBin }, nil},
		{"new-nontls", func(b *testing.B, i int) string { return freshCopyB(b, trueBin) }, nil},
		// n=0: the client exits at once, without a request.
		{"new-go", func(b *testing.B, i int) string { return freshCopyB(b, goBin) }, []string{"client", "https://127.0.0.1:1/", "0"}},
	}
	for _, agent := range []string{"off", "on"} {
		b.Run("agent="+agent, func(b *testing.B) {
			if agent == "on" {
				startGateAgent(b)
			}
			for _, c := range cases {
				b.Run(c.name, func(b *testing.B) {
					ds := make([]time.Duration, 0, b.N)
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						b.StopTimer()
						f := c.file(b, i)
						b.StartTimer()
						t0 := time.Now()
						if err := exec.Command(f, c.args...).Run(); err != nil {
							b.Fatal(err)
						}
						ds = append(ds, time.Since(t0))
					}
					b.StopTimer()
					slices.Sort(ds)
					b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), "median-µs")
					b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), "p99-µs")
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "execs/s")
				})
			}
		})
	}
}

func requireRootB(b *testing.B) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			b.Fatal("benchmark needs root in CI")
		}
		b.Skip("needs root")
	}
}

var freshN int

func freshCopyB(b *testing.B, src string) string {
	freshN++
	data, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	dst := filepath.Join(b.TempDir(), "fresh-"+strconv.Itoa(freshN))
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		b.Fatal(err)
	}
	return dst
}
