package engine

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGateAgentStoppedDuringStorm: the agent, a child process whose gate
// analysis of the storm's files stalls, is stopped (SIGSTOP of the agent
// itself) in the middle of an exec storm. Its gate process answers on its
// own clock: every exec completes within the bound while the agent stays
// stopped, and the gate process's memory does not grow. Continued
// (SIGCONT), the agent captures again: a fresh Go HTTPS client run once
// is held until hooked and its first request is captured.
func TestGateAgentStoppedDuringStorm(t *testing.T) {
	requireRoot(t)
	const launchers, each = 4, 3
	files := freshTrues(t, launchers*each)
	srv := startGoServer(t, true, echoHandler())
	client := freshCopy(t, goBinary(t, "local", true), "after-cont-client")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(self)
	agent.Env = append(os.Environ(), gateAgentEnv+"=stall-until-cont")
	stdout, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	agent.Stderr = os.Stderr
	// A stopped agent left behind by a killed test would slow every new
	// executable on the host by the bound.
	agent.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if stopped {
			agent.Process.Signal(syscall.SIGCONT)
		}
		agent.Process.Kill()
		agent.Wait()
	})
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		t.Fatalf("agent: %q %v", line, err)
	}
	warden, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "ready ")))
	if err != nil || warden == 0 {
		t.Fatalf("agent has no gate process: %q", line)
	}
	lines := make(chan string, 64)
	go func() {
		for {
			l, err := out.ReadString('\n')
			if err != nil {
				close(lines)
				return
			}
			lines <- strings.TrimSpace(l)
		}
	}()
	rss0 := vmRSS(t, warden)

	var results []<-chan []launched
	for l := range launchers {
		results = append(results, launch(t, files[l*each:(l+1)*each]))
	}
	// The first execs are held by the stalled analysis: stop the agent
	// while they are.
	time.Sleep(gateAgentBound / 3)
	if err := agent.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped = true
	stopAt := time.Now()
	n, held := 0, 0
	for _, r := range results {
		for _, l := range <-r {
			n++
			if l.d > gateAgentBound+time.Second {
				t.Errorf("an exec took %v, bound %v; fanotify groups on the host now: %v", l.d, gateAgentBound, fanotifyHolders())
			}
			if l.d > gateAgentBound/2 {
				held++
			}
		}
	}
	stormAfterStop := time.Since(stopAt)
	if n != len(files) {
		t.Errorf("%d of %d execs completed", n, len(files))
	}
	if held == 0 {
		t.Errorf("no exec was held: the gate did not stall them")
	}
	if st := procState(t, agent.Process.Pid); st != "T" {
		t.Fatalf("the agent is not stopped (state %q): the test proves nothing", st)
	}
	rss1 := vmRSS(t, warden)
	if rss1 > rss0+1024 {
		t.Errorf("gate process RSS grew from %d to %d kB over the storm", rss0, rss1)
	}

	if err := agent.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	res := <-launch(t, []string{client + "|client|" + fmt.Sprintf("https://127.0.0.1:%d/r", srv.port) + "|1"})
	if len(res) != 1 {
		t.Fatalf("the client did not run: %v", res)
	}
	want := fmt.Sprintf("x %d client /r/1 200 %q", res[0].pid, "reply 1")
	deadline := time.After(scaled(15 * time.Second))
	for found := false; !found; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("agent exited")
			}
			found = l == want
		case <-deadline:
			t.Fatalf("after SIGCONT, the first run of a new Go client (pid %d) was not captured: want %q", res[0].pid, want)
		}
	}
	t.Logf("%d execs, %d held; storm ran %v after the agent stopped; gate process RSS %d → %d kB; client exec %v",
		n, held, stormAfterStop, rss0, rss1, res[0].d)
}

func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("gate process %d: %v", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return kb
		}
	}
	t.Fatalf("gate process %d: no VmRSS", pid)
	return 0
}

func procState(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return f[0]
}

// fanotifyHolders names the processes holding a fanotify group: every
// exec on this shared machine also waits on other engineers' test agents,
// and a hung one shows here.
func fanotifyHolders() []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		fds, _ := filepath.Glob(p + "/fd/*")
		for _, fd := range fds {
			if l, _ := os.Readlink(fd); l == "anon_inode:[fanotify]" {
				cmd, _ := os.ReadFile(p + "/cmdline")
				out = append(out, filepath.Base(p)+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
				break
			}
		}
	}
	return out
}
