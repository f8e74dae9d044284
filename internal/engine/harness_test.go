package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/tlstap/tlstap/internal/exchange"

	"github.com/tlstap/tlstap/internal/selfsigned"

	"github.com/tlstap/tlstap/internal/testenv"
)

// maxKept bounds the exchanges a capture keeps.
const maxKept = 20000

// capture runs a real engine for one test and collects what it emits.
type capture struct {
	eng *Engine
	mu  sync.Mutex
	all []*exchange.Exchange
}

func requireRoot(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t)
}

// scaled stretches a test's wait where everything runs slower: the kernel
// matrix runner (tools/kernel-vm, make test-kernel) sets
// TLSTAP_TEST_TIME_SCALE inside its emulated VM, where starting a process
// costs 35–60× and computing 10× what it does here. It lengthens how long a
// test waits for something to happen, never what the test expects.
func scaled(d time.Duration) time.Duration {
	if f, err := strconv.ParseFloat(os.Getenv("TLSTAP_TEST_TIME_SCALE"), 64); err == nil && f > 1 {
		return time.Duration(float64(d) * f)
	}
	return d
}

func startCapture(t *testing.T, cfg Config) *capture {
	t.Helper()
	return startCaptureWith(t, cfg, zaptest.NewLogger(t))
}

// startCaptureWith starts a real engine logging to logger; it is shut down
// at cleanup.
func startCaptureWith(t *testing.T, cfg Config, logger *zap.Logger) *capture {
	t.Helper()
	requireRoot(t)
	c := &capture{}
	cfg = gateOnlyIfAsked(cfg)
	eng, err := New(cfg, logger, c.add)
	if err != nil {
		t.Fatal(err)
	}
	eng.gateMounts = testGateMounts
	noGCWhileGating(t, cfg)
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.eng = eng
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), scaled(10*time.Second))
		defer cancel()
		if err := eng.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return c
}

// add is the engine's sink. The engine sees the whole host; other tests'
// traffic must not grow the list without bound: tests wait for exchanges
// they just made.
func (c *capture) add(ex *exchange.Exchange) {
	c.mu.Lock()
	if len(c.all) >= maxKept {
		c.all = append(c.all[:0], c.all[maxKept/2:]...)
	}
	c.all = append(c.all, ex)
	c.mu.Unlock()
}

// wait returns the exchanges of pid once n of them have arrived.
func (c *capture) wait(t *testing.T, pid int, n int) []*exchange.Exchange {
	t.Helper()
	deadline := time.Now().Add(scaled(10 * time.Second))
	for {
		got := c.of(pid)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			c.mu.Lock()
			for _, ex := range c.all {
				t.Logf("seen: pid=%d exe=%s role=%s %s %s flags=%v", ex.Process.PID, ex.Process.ExeName, ex.Role, method(ex), target(ex), ex.Flags.Names())
			}
			c.mu.Unlock()
			t.Fatalf("pid %d: got %d exchanges, want %d", pid, len(got), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *capture) of(pid int) []*exchange.Exchange {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*exchange.Exchange
	for _, ex := range c.all {
		if ex.Process.PID == pid {
			out = append(out, ex)
		}
	}
	return out
}

func method(ex *exchange.Exchange) string {
	if ex.Request == nil {
		return ""
	}
	return ex.Request.Method
}

func target(ex *exchange.Exchange) string {
	if ex.Request == nil {
		return ""
	}
	return ex.Request.Target
}

// tlsFiles writes a self-signed certificate for 127.0.0.1/localhost.
type tlsFiles struct{ cert, key string }

func makeCert(t *testing.T) (tlsFiles, tls.Certificate) {
	t.Helper()
	cert, key, err := selfsigned.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return tlsFiles{cert: cert, key: key}, pair
}

// goServer is an HTTPS (or plain) server inside the test process. The agent
// never captures its own process, so only the client's side is seen.
type goServer struct {
	port int
	srv  *http.Server
}

func startGoServer(t *testing.T, useTLS bool, h http.Handler) *goServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &goServer{port: ln.Addr().(*net.TCPAddr).Port, srv: &http.Server{Handler: h}}
	if useTLS {
		_, pair := makeCert(t)
		s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"http/1.1"}}
		ln = tls.NewListener(ln, s.srv.TLSConfig)
	}
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

// run executes a command to completion and returns its pid and stdout.
func run(t *testing.T, name string, args ...string) (int, []byte) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errb.String())
	}
	return cmd.Process.Pid, out.Bytes()
}

// background starts a long-running command, stopped by PID at cleanup.
func background(t *testing.T, dir string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() && errb.Len() > 0 {
			t.Logf("%s stderr:\n%s", name, errb.String())
		}
	})
	return cmd
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitPort waits until something accepts connections on 127.0.0.1:port.
func waitPort(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(scaled(10 * time.Second))
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on port %d", port)
}

func header(m *exchange.Message, name string) string {
	v, _ := m.Get(name)
	return v
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitHooked waits until the engine has attached its probes to the file at
// path: a statically linked program gives the agent no library load to
// notice, only its exec, and may serve before the attach completes.
func (c *capture) waitHooked(t *testing.T, path string) {
	t.Helper()
	id, err := statID(path)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(scaled(10 * time.Second))
	for !c.eng.kern.attached(id) {
		if time.Now().After(deadline) {
			t.Fatalf("%s not hooked after %v", path, scaled(10*time.Second))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stalled is a capture whose pipeline is held: see stalledCapture.
type stalled struct {
	c       *capture
	url     func(path string) string // the in-process server (not captured)
	release func()                   // lets the pipeline go on; idempotent
}

// stalledCapture starts a real engine and holds its pipeline, and so the
// ring buffer's reader, inside the sink until release: what the kernel
// emits meanwhile waits in the ring. The server (echoHandler plus /stall)
// runs in the test process, which the engine never captures.
func stalledCapture(t *testing.T, cfg Config) stalled {
	t.Helper()
	requireRoot(t)
	c := &capture{}
	cfg = gateOnlyIfAsked(cfg)
	entered, gate := make(chan struct{}), make(chan struct{})
	var stalling sync.Once
	eng, err := New(cfg, zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel)), func(ex *exchange.Exchange) {
		c.add(ex)
		if ex.Request != nil && ex.Request.Target == "/stall" {
			stalling.Do(func() {
				close(entered)
				<-gate
			})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	c.eng = eng
	eng.gateMounts = testGateMounts
	noGCWhileGating(t, cfg)
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var released sync.Once
	release := func() { released.Do(func() { close(gate) }) }
	t.Cleanup(func() {
		release()
		ctx, cancel := context.WithTimeout(context.Background(), scaled(10*time.Second))
		defer cancel()
		if err := eng.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	mux := echoHandler().(*http.ServeMux)
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "stalled") })
	srv := startGoServer(t, false, mux)
	url := func(p string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", srv.port, p) }
	run(t, "curl", "-s", url("/stall"))
	select {
	case <-entered:
	case <-time.After(scaled(15 * time.Second)):
		t.Fatal("the /stall exchange never reached the sink")
	}
	return stalled{c: c, url: url, release: release}
}

// snapshot returns every exchange kept so far.
func (c *capture) snapshot() []*exchange.Exchange {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*exchange.Exchange(nil), c.all...)
}

// waitFor polls cond until it holds, failing after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
