package engine

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/execgate"
)

const (
	gateAgentEnv   = "TLSTAP_TEST_GATE_AGENT"
	gateAgentBound = 3 * time.Second
)

// runGateAgent is the test binary re-run as an agent: an engine whose gate
// analysis never finishes. It prints "ready" once the gate is on and then
// waits to be killed.
func runGateAgent() {
	cfg := DefaultConfig()
	cfg.ExecGate.Timeout = gateAgentBound
	eng, err := New(cfg, zap.NewNop(), func(*exchange.Exchange) {})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	eng.gateMounts = testGateMounts
	eng.gateHook = func(execgate.File) { select {} } // stalled analysis
	if err := eng.Start(context.Background()); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if eng.gate == nil {
		fmt.Println("error: no exec gate")
		os.Exit(1)
	}
	fmt.Println("ready")
	select {}
}

// freshTrues makes n distinct copies of /bin/true: each a file no gate has
// seen, so each exec goes to the (stalled) analysis.
func freshTrues(t *testing.T, n int) []string {
	t.Helper()
	src, err := filepath.EvalSymlinks("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, n)
	for i := range out {
		out[i] = freshCopy(t, src, "true-"+strconv.Itoa(i))
	}
	return out
}

// launcherEnv makes the test binary a launcher: it runs each file named
// in the variable once, one after the other, and prints how long each exec
// took ("<index> <ns> <error>"). Launchers keep the measure to the exec
// itself: in one Go process, starting a child holds a process-wide lock
// until the child's exec returns, so concurrent starts would queue behind
// each held exec.
const launcherEnv = "TLSTAP_TEST_LAUNCH"

func runLauncher(list string) {
	for i, f := range strings.Split(list, ",") {
		t0 := time.Now()
		err := exec.Command(f).Run()
		fmt.Printf("%d %d %v\n", i, time.Since(t0).Nanoseconds(), err)
	}
}

// launch starts a launcher for files; its results arrive on the channel
// once it exits.
func launch(t *testing.T, files []string) <-chan []time.Duration {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), launcherEnv+"="+strings.Join(files, ","))
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	res := make(chan []time.Duration, 1)
	go func() {
		err := cmd.Wait()
		var ds []time.Duration
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var i int
			var ns int64
			var e string
			if n, _ := fmt.Sscanf(line, "%d %d %s", &i, &ns, &e); n != 3 || e != "<nil>" {
				t.Errorf("launcher: %q (exit %v)", line, err)
				continue
			}
			ds = append(ds, time.Duration(ns))
		}
		res <- ds
	}()
	return res
}

// TestGateAgentKilledDuringStorm: an agent whose analysis hangs holds new
// executables up to its bound; SIGKILLed in the middle of an exec storm,
// the kernel releases every exec it held at once: every exec completes,
// none waits past the bound.
func TestGateAgentKilledDuringStorm(t *testing.T) {
	requireRoot(t)
	const launchers, each = 6, 8
	files := freshTrues(t, launchers*each)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(self)
	agent.Env = append(os.Environ(), gateAgentEnv+"=1")
	stdout, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	agent.Stderr = os.Stderr
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			agent.Process.Kill()
		}
		agent.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("agent: %q %v", line, err)
	}
	t0 := time.Now()
	var results []<-chan []time.Duration
	for l := range launchers {
		results = append(results, launch(t, files[l*each:(l+1)*each]))
	}
	// Each launcher's first execs wait out the stalled analysis: kill the
	// agent while they are held.
	time.Sleep(gateAgentBound + gateAgentBound/2)
	killAt := time.Now()
	if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	n, held := 0, 0
	for _, r := range results {
		for _, d := range <-r {
			n++
			// The bound holds, with room for a loaded machine's fork.
			if d > gateAgentBound+time.Second {
				t.Errorf("an exec took %v, bound %v", d, gateAgentBound)
			}
			if d > gateAgentBound/2 {
				held++
			}
		}
	}
	if n != len(files) {
		t.Errorf("%d of %d execs completed", n, len(files))
	}
	if held == 0 {
		t.Errorf("no exec was held: the gate did not stall them")
	}
	// After the kill nothing is held: the rest of the storm runs at once.
	if rest := time.Since(killAt); rest > gateAgentBound {
		t.Errorf("the storm took %v after the agent died", rest)
	}
	t.Logf("%d execs, %d held by the stalled agent, storm %v, %v after the kill", n, held, time.Since(t0), time.Since(killAt))
}
