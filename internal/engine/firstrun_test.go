package engine

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/execgate"
)

// testGateMounts keeps test agents' gates to the file systems tests run
// programs from — the root file system (/usr/bin, /tmp here), any /tmp
// mount, container overlays — since every exec on this shared machine waits
// on a gate while it runs. memfds are always marked.
func testGateMounts(m execgate.Mount) bool {
	return m.Point == "/" || strings.HasPrefix(m.Point, "/tmp") || m.FSType == "overlay"
}

// noGCWhileGating switches the garbage collector off while a test's agent
// gates execs in this very process. The test also starts programs, and Go
// starts a child with vfork: the forking thread stays non-preemptible until
// the child's exec returns, and the exec waits for the gate. A
// stop-the-world (a GC cycle) in that window waits for the thread, the gate
// cannot answer, nothing moves: the hang this prevents was seen. A real
// agent does not start programs; see the README's exec gate section.
func noGCWhileGating(t *testing.T, cfg Config) {
	if !cfg.ExecGate.Enabled {
		return
	}
	old := debug.SetGCPercent(-1)
	t.Cleanup(func() { debug.SetGCPercent(old) })
}

// testGateTimeout is the bound of the in-process test agents that gate:
// generous enough for a loaded 2-core machine to analyse and hook a Go
// binary.
const testGateTimeout = 5 * time.Second

// gateConfig is the default configuration with the test bound.
func gateConfig() Config {
	cfg := DefaultConfig()
	cfg.ExecGate.Timeout = testGateTimeout
	return cfg
}

// gateOnlyIfAsked turns the gate off for in-process capture tests that did
// not ask for it with gateConfig: they start programs from the agent's own
// process, which gating needs the garbage collector off for (see
// noGCWhileGating), and some of them measure the heap.
func gateOnlyIfAsked(cfg Config) Config {
	if cfg.ExecGate.Timeout != testGateTimeout {
		cfg.ExecGate.Enabled = false
	}
	return cfg
}

// ungatedConfig is the default configuration for tests that build an
// engine themselves and start programs from the test process: the gate is
// off (see gateOnlyIfAsked).
func ungatedConfig() Config { return gateOnlyIfAsked(DefaultConfig()) }

// freshCopy copies src into a new directory under a new name: an inode,
// path and file the engine has never seen.
func freshCopy(t *testing.T, src, name string) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(t.TempDir(), name)
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
	return dst
}

// checkFirstRun asserts the client side of one exchange of a program's
// first run, with full attribution.
// Ports are checked when the TLS stack reads and writes the socket itself
// (not node: memory BIOs leave the peer unknown).
func checkFirstRun(t *testing.T, ex *exchange.Exchange, pid int, exe, source, target string, port int, body string, ports bool) {
	t.Helper()
	if ex.Process.PID != pid || ex.Process.ExePath != exe || ex.Process.ExeName != filepath.Base(exe) {
		t.Errorf("process pid=%d exe=%q name=%q, want pid=%d exe=%q", ex.Process.PID, ex.Process.ExePath, ex.Process.ExeName, pid, exe)
	}
	if ex.Role != exchange.RoleClient || ex.Request == nil || ex.Request.Method != "GET" || ex.Request.Target != target {
		t.Fatalf("exchange %v %+v, want client GET %s", ex.Role, ex.Request, target)
	}
	if h := header(ex.Request, "Host"); h != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Errorf("Host %q", h)
	}
	if ex.Response == nil || ex.Response.StatusCode != 200 || string(ex.Response.Body) != body {
		t.Errorf("response %+v, want 200 %q", ex.Response, body)
	}
	if !ex.Conn.TLS || ex.Conn.Source != source || ex.Flags != 0 {
		t.Errorf("conn %+v flags %v, want TLS from %s", ex.Conn, ex.Flags.Names(), source)
	}
	if ports && (ex.Conn.Remote.Port() != uint16(port) || ex.Conn.Local.Port() == 0 || ex.Conn.Local.Port() == uint16(port)) {
		t.Errorf("ports local=%v remote=%v, want remote port %d", ex.Conn.Local, ex.Conn.Remote, port)
	}
}

// TestFirstRunGo: fresh copies of Go HTTPS clients from several toolchains,
// plain and stripped, each run once for one request and exiting at once,
// are captured from that first request. Without the gate the discoverer
// attaches after the client has exited (0 of 8 in the trial).
func TestFirstRunGo(t *testing.T) {
	srv := startGoServer(t, true, echoHandler())
	type bin struct{ name, path string }
	var bins []bin
	for _, tc := range []string{"go1.21.13", "go1.23.12", "go1.24.13", "local"} {
		for _, stripped := range []bool{false, true} {
			name := tc
			if stripped {
				name += "-stripped"
			}
			bins = append(bins, bin{name, goBinary(t, tc, stripped)})
		}
	}
	c := startCapture(t, gateConfig())
	for _, b := range bins {
		t.Run(b.name, func(t *testing.T) {
			exe := freshCopy(t, b.path, "first-"+b.name)
			pid, out := run(t, exe, "client", fmt.Sprintf("https://127.0.0.1:%d/r", srv.port), "1")
			if strings.TrimSpace(string(out)) != strconv.Itoa(len("reply 1")) {
				t.Fatalf("client printed %q", out)
			}
			ex := c.wait(t, pid, 1)[0]
			checkFirstRun(t, ex, pid, exe, "go", "/r/1", srv.port, "reply 1", true)
			if header(ex.Request, "X-Go-Client") != "yes" {
				t.Errorf("request headers %v", ex.Request.Headers)
			}
		})
	}
	// The same inode rewritten with another program (a build over the old
	// output): the identity cache must not call it known.
	t.Run("rewritten-in-place", func(t *testing.T) {
		exe := freshCopy(t, bins[0].path, "rewritten")
		pid, _ := run(t, exe, "client", fmt.Sprintf("https://127.0.0.1:%d/r", srv.port), "1")
		checkFirstRun(t, c.wait(t, pid, 1)[0], pid, exe, "go", "/r/1", srv.port, "reply 1", true)
		before, err := statID(exe)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(bins[len(bins)-1].path) // another toolchain, stripped: other offsets
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(exe, data, 0o755); err != nil { // O_TRUNC: same inode
			t.Fatal(err)
		}
		if after, _ := statID(exe); after != before {
			t.Fatalf("inode changed: %v -> %v", before, after)
		}
		pid, _ = run(t, exe, "client", fmt.Sprintf("https://127.0.0.1:%d/r", srv.port), "1")
		checkFirstRun(t, c.wait(t, pid, 1)[0], pid, exe, "go", "/r/1", srv.port, "reply 1", true)
	})
	if s := c.eng.Stats(); s.ExecsGated == 0 {
		t.Errorf("no exec gated: %+v", s)
	}
}

// TestFirstRunNode: a fresh copy of node (OpenSSL linked in and exported
// from the executable) run once is captured from its one request.
func TestFirstRunNode(t *testing.T) {
	srv := startGoServer(t, true, echoHandler())
	c := startCapture(t, gateConfig())
	script := writeFile(t, t.TempDir(), "client.js", nodeClient)
	for i := range 2 {
		exe := freshCopy(t, lookNode(t), fmt.Sprintf("node-first-%d", i))
		pid, out := run(t, exe, script, strconv.Itoa(srv.port), "0")
		if string(out) != "200 hello world\n" {
			t.Fatalf("node got %q", out)
		}
		ex := c.wait(t, pid, 1)[0]
		checkFirstRun(t, ex, pid, exe, "openssl", "/hello", srv.port, "hello world\n", false)
		if header(ex.Request, "X-Node") != "yes" {
			t.Errorf("request headers %v", ex.Request.Headers)
		}
	}
	// A script (#!) whose interpreter is a node never seen: the kernel opens
	// the script, then the interpreter, for exec; the gate holds the exec
	// until the interpreter is hooked.
	exe := freshCopy(t, lookNode(t), "node-interpreter")
	scriptExe := writeFile(t, t.TempDir(), "client-script", "#!"+exe+"\n"+nodeClient)
	if err := os.Chmod(scriptExe, 0o755); err != nil {
		t.Fatal(err)
	}
	pid, out := run(t, scriptExe, strconv.Itoa(srv.port), "0")
	if string(out) != "200 hello world\n" {
		t.Fatalf("script got %q", out)
	}
	checkFirstRun(t, c.wait(t, pid, 1)[0], pid, exe, "openssl", "/hello", srv.port, "hello world\n", false)
}

func lookNode(t *testing.T) string {
	t.Helper()
	p, err := filepath.EvalSymlinks("/usr/bin/node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node missing: make deps installs nodejs")
		}
		t.Skip("node not installed")
	}
	return p
}
