package execgate

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestGateProcessDeathSurvived: the gate process is SIGKILLed while it
// holds an exec whose analysis never returns. The exec runs at once (the
// kernel allows what a closed group held), the agent counts the death,
// starts a new gate process, marks the file systems again, and the next
// new file is held until analysed as before.
func TestGateProcessDeathSurvived(t *testing.T) {
	requireRoot(t)
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // see TestGateHoldsUntilAnalysed
	src, err := filepath.EvalSymlinks("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	first, second := filepath.Join(dir, "first"), filepath.Join(dir, "second")
	copyFile(t, src, first)
	copyFile(t, src, second)
	a := &heldAnalyzer{entered: make(chan string, 2), release: map[string]chan Verdict{
		first: make(chan Verdict, 1), second: make(chan Verdict, 1)}}
	g, err := Open(Config{Timeout: 20 * time.Second, Mounts: func(m Mount) bool { return m.Point == "/" || m.Point == "/tmp" }}, a)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	defer func() { a.release[first] <- Ready }() // before Close: its worker waits
	old := g.Stats().GateProcess
	if old == 0 {
		t.Fatal("no gate process")
	}

	done := make(chan error, 1)
	go func() { done <- exec.Command(first).Run() }()
	select {
	case <-a.entered: // held, the analysis stalls
	case <-time.After(15 * time.Second):
		t.Fatal("the exec of a new file was never analysed")
	}
	t0 := time.Now()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held exec still waits after its gate process died")
	}
	t.Logf("held exec ran %v after the gate process died", time.Since(t0))
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := g.Stats()
		if s.Restarts == 1 && s.GateProcess != 0 && s.GateProcess != old {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new gate process: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(old)); err == nil {
		t.Errorf("the dead gate process %d was not reaped", old)
	}

	// Gating works again: a new file is held until its analysis returns.
	go func() { done <- exec.Command(second).Run() }()
	select {
	case <-a.entered:
	case <-time.After(15 * time.Second):
		t.Fatal("after the restart, the exec of a new file was never analysed")
	}
	select {
	case err := <-done:
		t.Fatalf("after the restart, the exec completed while its analysis ran (%v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	a.release[second] <- Ready
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// heldAnalyzer holds the analysis of each file it has a channel for until
// the channel gives the verdict; other files have no TLS.
type heldAnalyzer struct {
	entered chan string
	release map[string]chan Verdict // read-only once the gate runs
}

func (a *heldAnalyzer) Known(File) bool { return false }

func (a *heldAnalyzer) Analyze(f File) Verdict {
	real, _ := os.Readlink(f.Path)
	ch, ok := a.release[real]
	if !ok {
		return NoTLS
	}
	a.entered <- real
	return <-ch
}
