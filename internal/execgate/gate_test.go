package execgate

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/testenv"
)

// fakeAnalyzer records analyses and holds each until released.
type fakeAnalyzer struct {
	mu      sync.Mutex
	seen    map[string]int // by base name of the real file
	entered chan string
	release chan Verdict
	target  string // only this file is held; the rest is NoTLS at once
}

func (a *fakeAnalyzer) Known(File) bool { return false }

func (a *fakeAnalyzer) Analyze(f File) Verdict {
	real, _ := os.Readlink(f.Path)
	a.mu.Lock()
	a.seen[real]++
	a.mu.Unlock()
	if real != a.target {
		return NoTLS
	}
	a.entered <- real
	return <-a.release
}

func (a *fakeAnalyzer) count(path string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[path]
}

func requireRoot(t *testing.T) { t.Helper(); testenv.RequireRoot(t) }

// TestGateHoldsUntilAnalysed: an exec of a new file does not complete
// before its analysis returns; a file found without TLS is answered from
// the cache next time (no second analysis).
func TestGateHoldsUntilAnalysed(t *testing.T) {
	requireRoot(t)
	// This process both gates and starts programs: no stop-the-world while
	// a child's exec is held (see the engine's noGCWhileGating).
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	src, err := filepath.EvalSymlinks("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	held, other := filepath.Join(dir, "held"), filepath.Join(dir, "other")
	for _, p := range []string{held, other} {
		copyFile(t, src, p)
	}
	a := &fakeAnalyzer{seen: map[string]int{}, entered: make(chan string, 1), release: make(chan Verdict), target: held}
	g, err := Open(Config{Timeout: 20 * time.Second, Mounts: func(m Mount) bool { return m.Point == "/" || m.Point == "/tmp" }}, a)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()

	done := make(chan error, 1)
	go func() { done <- exec.Command(held).Run() }()
	select {
	case <-a.entered:
	case <-time.After(15 * time.Second):
		t.Fatal("the exec of a new file was never analysed")
	}
	select {
	case err := <-done:
		t.Fatalf("the exec completed while its analysis was running (%v)", err)
	default:
	}
	a.release <- Ready
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	for range 3 {
		if err := exec.Command(other).Run(); err != nil {
			t.Fatal(err)
		}
	}
	if n := a.count(other); n != 1 {
		t.Errorf("a file without TLS analysed %d times, want 1 (then cached)", n)
	}
	// Execs answered from the gate process's cache are reported with its
	// next message.
	s := g.Stats()
	for deadline := time.Now().Add(5 * time.Second); s.Known < 2 && time.Now().Before(deadline); s = g.Stats() {
		time.Sleep(20 * time.Millisecond)
	}
	if s.InProcess || s.GateProcess == 0 {
		t.Errorf("the answers do not come from a gate process: %+v", s)
	}
	if s.Gated < 4 || s.Known < 2 || s.TimedOut != 0 || s.FileSystems == 0 {
		t.Errorf("stats %+v", s)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
