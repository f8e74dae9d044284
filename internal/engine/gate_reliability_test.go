package engine

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
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

// TestGateAgentKilledDuringStorm: an agent whose analysis hangs holds new
// executables up to its bound; SIGKILLed in the middle of an exec storm,
// the kernel releases every exec it held at once: every exec completes,
// none waits past the bound.
func TestGateAgentKilledDuringStorm(t *testing.T) {
	requireRoot(t)
	files := freshTrues(t, 120)
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

	type result struct {
		start, end time.Time
		err        error
	}
	results := make([]result, len(files))
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				err := exec.Command(files[i]).Run()
				results[i] = result{t0, time.Now(), err}
			}
		}()
	}
	var killAt time.Time
	for i := range files {
		next <- i
		// A third into the storm the agent has execs held by its stalled
		// analysis: kill it then.
		if i == len(files)/3 {
			time.Sleep(500 * time.Millisecond)
			killAt = time.Now()
			if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	close(next)
	wg.Wait()

	held := 0
	for i, r := range results {
		if r.err != nil {
			t.Errorf("exec %d (%s): %v", i, files[i], r.err)
		}
		d := r.end.Sub(r.start)
		// The bound holds with room for a loaded machine's fork and wait.
		if d > gateAgentBound+2*time.Second {
			t.Errorf("exec %d took %v, bound %v", i, d, gateAgentBound)
		}
		// Execs held when the agent died end with it, not at the bound.
		if r.start.Before(killAt) && r.end.After(killAt) {
			held++
			if r.end.Sub(killAt) > gateAgentBound/2 {
				t.Errorf("exec %d held %v after the agent died", i, r.end.Sub(killAt))
			}
		}
	}
	if held == 0 {
		t.Errorf("no exec was held when the agent died: the gate did not stall them")
	}
	t.Logf("%d execs held at the kill, all released", held)
}
