package engine

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tlstap/tlstap/internal/elfmut"
	"github.com/tlstap/tlstap/internal/testenv"
)

// TestHostileFilesSkipped: a process maps a copy of the host's libssl
// grown past the analysis size limit (a sparse file) and dozens of
// copies with hostile headers (elfmut). The agent survives them all,
// skips and counts the oversized one with one log line naming it, and
// captures a normal HTTPS exchange made meanwhile exactly.
func TestHostileFilesSkipped(t *testing.T) {
	requireRoot(t)
	python := testenv.RequireCommand(t, "python3")
	testenv.RequireCommand(t, "curl")
	const lib = "/usr/lib/x86_64-linux-gnu/libssl.so.3"
	testenv.RequireFile(t, lib)
	orig, err := os.ReadFile(lib)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	big := filepath.Join(dir, "big", "libssl.so.3")
	if err := os.MkdirAll(filepath.Dir(big), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, orig, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, maxAnalysedBytes+4096); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	files := []string{big}
	muts := elfmut.Mutations(orig)
	if len(muts) < 50 {
		t.Fatalf("only %d hostile variants of %s", len(muts), lib)
	}
	for i := 0; i < len(muts); i += max(1, len(muts)/40) {
		p := filepath.Join(dir, fmt.Sprintf("m%d", i), "libssl.so.3")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, muts[i].Bytes(), 0o755); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}

	// The mapper runs before the engine starts: the first scan meets it.
	script := `import mmap, os, sys
maps = []
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    maps.append(mmap.mmap(fd, 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC))
print("ready", flush=True)
sys.stdin.read()
`
	cmd := exec.Command(python, append([]string{"-c", script}, files...)...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("mapper: %q %v", line, err)
	}

	core, logs := observer.New(zapcore.WarnLevel)
	logger := zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), core))
	c := startCaptureWith(t, DefaultConfig(), logger)

	skipped := func() []observer.LoggedEntry {
		return logs.FilterMessage("executable or library skipped: capture continues without it").
			FilterField(zap.String("path", big)).All()
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(skipped()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(skipped()); n != 1 {
		t.Fatalf("%d skip logs for %s, want 1", n, big)
	}
	if got := c.eng.Stats().FilesSkipped; got < 1 {
		t.Errorf("FilesSkipped = %d", got)
	}
	entry := skipped()[0].ContextMap()
	if why, _ := entry["reason"].(string); !strings.Contains(why, "more than the") || entry["pid"] != uint32(cmd.Process.Pid) {
		t.Errorf("skip log %v", entry)
	}

	srv := startGoServer(t, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "still here\n")
	}))
	url := fmt.Sprintf("https://127.0.0.1:%d/after-hostile", srv.port)
	pid, body := run(t, "curl", "-sk", url)
	if string(body) != "still here\n" {
		t.Fatalf("curl got %q", body)
	}
	ex := c.wait(t, pid, 1)[0]
	if ex.Request.Method != "GET" || ex.Request.Target != "/after-hostile" || ex.Response == nil || ex.Response.StatusCode != 200 ||
		string(ex.Response.Body) != "still here\n" || ex.Flags != 0 || ex.Process.ExeName != "curl" || !ex.Conn.TLS ||
		ex.Conn.Source != "openssl" || ex.Conn.Remote.Port() != uint16(srv.port) {
		t.Errorf("exchange after the hostile files: %s %s -> %v flags %v", method(ex), target(ex), ex.Response, ex.Flags.Names())
	}
	// Still one log line for the file (TestAnalysisBoundary shows that a
	// rejected version is never analysed again).
	if n := len(skipped()); n != 1 {
		t.Errorf("%d skip logs, want exactly 1", n)
	}
}

// TestAnalysisBoundary: a panicking analysis, one that never ends and a
// file over the size limit each end as a skipped file, counted and logged
// once; the discoverer's goroutine carries on; a file version rejected
// once is not analysed again.
func TestAnalysisBoundary(t *testing.T) {
	var skipped atomic.Uint64
	core, logs := observer.New(zapcore.WarnLevel)
	g := newAnalysisGuard(zap.New(core), &skipped)
	g.timeout = 200 * time.Millisecond
	g.maxBytes = 1 << 20

	calls := 0
	ver := func(ino uint64, size int64) fileVersion { return fileVersion{id: fileID{ino: ino}, size: size} }

	_, err := analysed(g, 1, "/panics", ver(1, 100), func() (int, error) { calls++; panic("index out of range") })
	if !errors.Is(err, errFileSkipped) || !strings.Contains(err.Error(), "index out of range") {
		t.Errorf("panic: %v", err)
	}
	release := make(chan struct{})
	defer close(release)
	start := time.Now()
	_, err = analysed(g, 1, "/hangs", ver(2, 100), func() (int, error) { <-release; return 0, nil })
	if !errors.Is(err, errFileSkipped) || time.Since(start) > 10*time.Second {
		t.Errorf("timeout: %v after %v", err, time.Since(start))
	}
	_, err = analysed(g, 1, "/huge", ver(3, 2<<20), func() (int, error) { calls++; return 0, nil })
	if !errors.Is(err, errFileSkipped) || calls != 1 {
		t.Errorf("size: %v (analysis ran: %v)", err, calls > 1)
	}
	// Rejected versions are remembered: no second analysis, no second log.
	_, err = analysed(g, 1, "/panics", ver(1, 100), func() (int, error) { calls++; return 0, nil })
	if !errors.Is(err, errFileSkipped) || calls != 1 {
		t.Errorf("second attempt: %v, analyses %d", err, calls)
	}
	// Another version of the same inode (rewritten) is analysed anew.
	if n, err := analysed(g, 1, "/panics", ver(1, 101), func() (int, error) { calls++; return 7, nil }); err != nil || n != 7 {
		t.Errorf("new version: %d, %v", n, err)
	}
	// Ordinary errors pass through untouched and are not counted.
	plain := errors.New("not an OpenSSL build")
	if _, err := analysed(g, 1, "/other", ver(4, 100), func() (int, error) { return 0, plain }); err != plain {
		t.Errorf("plain error: %v", err)
	}
	if skipped.Load() != 3 || logs.Len() != 3 {
		t.Errorf("counted %d, logged %d; want 3 and 3", skipped.Load(), logs.Len())
	}
}
