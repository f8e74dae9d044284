package engine

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
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
// analysis never finishes (mode "stall"), or a plain engine with its gate
// ("on"). It prints "ready" once the gate is on and then waits to be
// killed.
func runGateAgent(mode string) {
	cfg := DefaultConfig()
	cfg.ExecGate.Timeout = gateAgentBound
	var outMu sync.Mutex
	eng, err := New(cfg, zap.NewNop(), func(ex *exchange.Exchange) {
		if mode != "stall-until-cont" || ex.Request == nil || ex.Response == nil {
			return
		}
		outMu.Lock()
		defer outMu.Unlock()
		// "x <pid> <role> <target> <status> <body>" for the test to match.
		fmt.Printf("x %d %s %s %d %q\n", ex.Process.PID, ex.Role, ex.Request.Target, ex.Response.StatusCode, ex.Response.Body)
	})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	eng.gateMounts = testGateMounts
	switch mode {
	case "stall":
		eng.gateHook = func(execgate.File) { select {} } // stalled analysis
	case "stall-until-cont":
		// The analysis of the storm's files stalls until the agent was
		// stopped and continued; other files are analysed as usual.
		cont := make(chan os.Signal, 1)
		signal.Notify(cont, syscall.SIGCONT)
		eng.gateHook = func(f execgate.File) {
			if real, _ := os.Readlink(f.Path); strings.HasPrefix(filepath.Base(real), "true-") {
				<-cont
				cont <- syscall.SIGCONT // for the other stalled analyses
			}
		}
	}
	if err := eng.Start(context.Background()); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if eng.gate == nil {
		fmt.Println("error: no exec gate")
		os.Exit(1)
	}
	outMu.Lock()
	fmt.Println("ready", eng.gate.Stats().GateProcess)
	outMu.Unlock()
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
		argv := strings.Split(f, "|") // a program and its arguments
		cmd := exec.Command(argv[0], argv[1:]...)
		t0 := time.Now()
		err := cmd.Run()
		pid := 0
		if cmd.Process != nil {
			pid = cmd.Process.Pid
		}
		fmt.Printf("%d %d %d %s\n", i, time.Since(t0).Nanoseconds(), pid, strings.ReplaceAll(fmt.Sprint(err), " ", "_"))
	}
}

// launched is one exec a launcher made.
type launched struct {
	d   time.Duration
	pid int
}

// launch starts a launcher for files ("path" or "path|arg|…"); its
// results arrive on the channel once it exits.
func launch(t *testing.T, files []string) <-chan []launched {
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
	res := make(chan []launched, 1)
	go func() {
		err := cmd.Wait()
		var ds []launched
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var i, pid int
			var ns int64
			var e string
			if n, _ := fmt.Sscanf(line, "%d %d %d %s", &i, &ns, &pid, &e); n != 4 || e != "<nil>" {
				t.Errorf("launcher: %q (exit %v)", line, err)
				continue
			}
			ds = append(ds, launched{time.Duration(ns), pid})
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
	agent.Env = append(os.Environ(), gateAgentEnv+"=stall")
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
	if err != nil || !strings.HasPrefix(line, "ready ") {
		t.Fatalf("agent: %q %v", line, err)
	}
	t0 := time.Now()
	var results []<-chan []launched
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
		for _, l := range <-r {
			d := l.d
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
	// After the kill nothing is held: the rest of the storm runs without
	// waiting (slack for a loaded machine under -race).
	if rest := time.Since(killAt); rest > 2*gateAgentBound {
		t.Errorf("the storm took %v after the agent died", rest)
	}
	t.Logf("%d execs, %d held by the stalled agent, storm %v, %v after the kill", n, held, time.Since(t0), time.Since(killAt))
}

// TestExecStormGated: 1 000 execs from 8 launchers with the gate on — a
// known program, fresh copies of a program without TLS, and fresh copies of
// a Go HTTPS client each doing one request — all complete, each within the
// bound, and every TLS client's first request is captured.
func TestExecStormGated(t *testing.T) {
	srv := startGoServer(t, true, echoHandler())
	goBin := goBinary(t, "local", true)
	trueBin, err := filepath.EvalSymlinks("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	const total, launchers, tlsEvery, freshEvery = 1000, 8, 50, 10
	url := fmt.Sprintf("https://127.0.0.1:%d/r", srv.port)
	var files []string
	tlsClients := map[string]bool{}
	for i := range total {
		switch {
		case i%tlsEvery == 0:
			exe := freshCopy(t, goBin, "storm-client-"+strconv.Itoa(i))
			tlsClients[exe] = true
			files = append(files, exe+"|client|"+url+"|1")
		case i%freshEvery == 0:
			files = append(files, freshCopy(t, trueBin, "storm-true-"+strconv.Itoa(i)))
		default:
			files = append(files, trueBin)
		}
	}
	cfg := gateConfig()
	c := startCapture(t, cfg)
	var results []<-chan []launched
	per := total / launchers
	for l := range launchers {
		results = append(results, launch(t, files[l*per:(l+1)*per]))
	}
	var clients []launched
	n := 0
	var worst time.Duration
	for l, r := range results {
		for i, x := range <-r {
			n++
			worst = max(worst, x.d)
			if x.d > cfg.ExecGate.Timeout+2*time.Second {
				t.Errorf("exec of %s took %v, bound %v", files[l*per+i], x.d, cfg.ExecGate.Timeout)
			}
			if tlsClients[strings.Split(files[l*per+i], "|")[0]] {
				clients = append(clients, launched{x.d, x.pid})
			}
		}
	}
	if n != total || len(clients) != total/tlsEvery {
		t.Fatalf("%d of %d execs completed, %d TLS clients", n, total, len(clients))
	}
	for _, cl := range clients {
		ex := c.wait(t, cl.pid, 1)[0]
		if ex.Role != exchange.RoleClient || ex.Request == nil || ex.Request.Target != "/r/1" || ex.Response == nil ||
			string(ex.Response.Body) != "reply 1" || ex.Conn.Remote.Port() != uint16(srv.port) {
			t.Errorf("client pid %d: %v %+v", cl.pid, ex.Role, ex.Request)
		}
	}
	s := c.eng.Stats()
	t.Logf("worst exec %v; gate: %d gated, %d on timeout, %d failures, %d ungated", worst, s.ExecsGated, s.ExecsAllowedOnTimeout, s.ExecAnalysisFailures, s.ExecsUngated)
}
