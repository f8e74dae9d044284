package engine

// Reliability tests (issue 8): hostile input through the real engine,
// applications unharmed, and the security properties. The churn, fault and
// start/stop tests are in the other *_reliability_test.go files. Long runs
// that do not fit CI are behind TLSTAP_LONG=1 (see mk/reliability.mk and
// RELIABILITY.md).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"

	"github.com/tlstap/tlstap/internal/exchange"

	"github.com/tlstap/tlstap/internal/testenv"
)

// longRun reports whether the long reliability runs were asked for.
func longRun() bool { return os.Getenv("TLSTAP_LONG") == "1" }

// TestReliabilityHelper is not a test: the reliability tests re-execute this
// binary with TLSTAP_REL_HELPER set to run a helper process. The agent never
// captures its own process, so servers and clients it must see run here.
func TestReliabilityHelper(t *testing.T) {
	mode := os.Getenv("TLSTAP_REL_HELPER")
	if mode == "" {
		t.Skip("helper process for the reliability tests")
	}
	args := strings.Fields(os.Getenv("TLSTAP_REL_ARGS"))
	// Every helper ends when its stdin closes (the test died or is done).
	go func() { io.Copy(io.Discard, os.Stdin); os.Exit(0) }()
	switch mode {
	case "server":
		helperServer()
	case "idlesrv":
		helperIdleServer()
	case "idle":
		n, _ := strconv.Atoi(args[0])
		helperIdle(n, args[1])
	case "goget":
		helperGoGet(args[0])
	case "sleep":
		time.Sleep(time.Hour)
	}
	os.Exit(0)
}

// helperServer is a plain HTTP server: /hello, /big/N, /forever (a chunked
// body that never ends), anything else "ok <path>".
func helperServer() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello world\n")
	})
	mux.HandleFunc("/big/", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/big/"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(pattern(n))
	})
	mux.HandleFunc("/forever", func(w http.ResponseWriter, r *http.Request) {
		chunk := pattern(32 << 10)
		f := w.(http.Flusher)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			f.Flush()
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok "+r.URL.Path)
	})
	fmt.Printf("READY %d\n", ln.Addr().(*net.TCPAddr).Port)
	srv := &http.Server{Handler: mux, MaxHeaderBytes: 8 << 20}
	srv.Serve(ln)
}

// helperIdleServer accepts connections and reads them until they close.
func helperIdleServer() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Printf("READY %d\n", ln.Addr().(*net.TCPAddr).Port)
	for {
		c, err := ln.Accept()
		if err != nil {
			time.Sleep(10 * time.Millisecond) // EMFILE: keep serving the others
			continue
		}
		go func() {
			buf := make([]byte, 512)
			for {
				if _, err := c.Read(buf); err != nil {
					c.Close()
					return
				}
			}
		}()
	}
}

// helperIdle opens n connections to addr and sends an unfinished request
// head on each (so the agent tracks both ends), then idles. The Go runtime
// already raised the soft RLIMIT_NOFILE to the hard one; root may go higher.
func helperIdle(n int, addr string) {
	lim := uint64(n + 1024)
	var cur unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &cur)
	if cur.Cur < lim {
		unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: lim, Max: max(lim, cur.Max)})
	}
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	opened := 0
	var firstErr error
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.Dial("tcp", addr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			fmt.Fprintf(c, "GET /idle/%d HTTP/1.1\r\nHost: idle\r\n", i)
			conns[i] = c
			opened++
		}()
	}
	wg.Wait()
	fmt.Printf("READY %d %d %v\n", n, opened, firstErr)
	time.Sleep(time.Hour)
}

// helperGoGet fetches url with Go's crypto/tls once the test says "go" on
// stdin... (it starts at once: the caller waits for the hook first) and
// prints the size and sha256 of the body.
func helperGoGet(url string) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: false}
	cl := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	if d := os.Getenv("TLSTAP_REL_DELAY"); d != "" {
		dd, _ := time.ParseDuration(d)
		time.Sleep(dd)
	}
	resp, err := cl.Get(url)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Printf("SUM %d %s\n", n, hex.EncodeToString(h.Sum(nil)))
}

// helperProc is a running helper: its READY line split in fields.
type helperProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready []string
	lines chan string
}

// startHelper runs this test binary as a helper and waits for its READY
// line (or, with ready == false, returns at once).
func startHelper(t *testing.T, ready bool, env []string, mode string, args ...string) *helperProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestReliabilityHelper$")
	cmd.Env = append(os.Environ(), append(env, "TLSTAP_REL_HELPER="+mode, "TLSTAP_REL_ARGS="+strings.Join(args, " "))...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helperProc{cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case h.lines <- sc.Text():
			default:
			}
		}
		close(h.lines)
	}()
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() && errb.Len() > 0 {
			t.Logf("helper %s stderr:\n%s", mode, errb.String())
		}
	})
	if !ready {
		return h
	}
	timeout := time.After(90 * time.Second)
	for {
		select {
		case l, ok := <-h.lines:
			if !ok {
				t.Fatalf("helper %s exited before READY: %s", mode, errb.String())
			}
			if f := strings.Fields(l); len(f) > 0 && f[0] == "READY" {
				h.ready = f[1:]
				return h
			}
			if strings.HasPrefix(l, "ERROR") {
				t.Fatalf("helper %s: %s", mode, l)
			}
		case <-timeout:
			t.Fatalf("helper %s not ready after 90 s", mode)
		}
	}
}

// line waits for the helper's next line starting with prefix.
func (h *helperProc) line(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-h.lines:
			if !ok {
				t.Fatalf("helper exited without a %s line", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
			if strings.HasPrefix(l, "ERROR") {
				t.Fatalf("helper: %s", l)
			}
		case <-timeout:
			t.Fatalf("no %s line after 60 s", prefix)
		}
	}
}

// startCaptureObserved is startCapture with the engine's log also recorded.
func startCaptureObserved(t *testing.T, cfg Config) (*capture, *observer.ObservedLogs) {
	t.Helper()
	requireRoot(t)
	core, logs := observer.New(zapcore.DebugLevel)
	logger := zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), core))
	c := startCaptureWith(t, cfg, logger)
	return c, logs
}

// find returns the exchanges of pid whose request target is target.
func (c *capture) find(pid int, target string) []*exchange.Exchange {
	var out []*exchange.Exchange
	for _, ex := range c.of(pid) {
		if ex.Request != nil && ex.Request.Target == target {
			out = append(out, ex)
		}
	}
	return out
}

// waitFor waits until pid has an exchange for target.
func (c *capture) waitFor(t *testing.T, pid int, tgt string, within time.Duration) *exchange.Exchange {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if got := c.find(pid, tgt); len(got) > 0 {
			return got[0]
		}
		if time.Now().After(deadline) {
			for _, ex := range c.of(pid) {
				t.Logf("seen for pid %d: %s %s flags %v", pid, method(ex), target(ex), ex.Flags.Names())
			}
			t.Fatalf("pid %d: no exchange for %s after %v (stats %+v)", pid, tgt, within, c.eng.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// checkExact asserts the plain /hello exchange curl made is captured whole.
func checkExactHello(t *testing.T, c *capture, pid int) {
	t.Helper()
	ex := c.waitFor(t, pid, "/hello", 15*time.Second)
	if ex.Role != exchange.RoleClient || ex.Request.Method != "GET" || ex.Response == nil ||
		ex.Response.StatusCode != 200 || string(ex.Response.Body) != "hello world\n" || ex.Flags != 0 {
		t.Errorf("normal request alongside the flood not captured exactly: role %v resp %+v flags %v", ex.Role, ex.Response, ex.Flags.Names())
	}
}

// TestHostileInput: a never-ending chunked body, endless headers and a
// slowloris trickle against a plain HTTP server in another process, with a
// normal request alongside. Memory stays bounded, the damage is counted, and
// the normal request is captured exactly.
func TestHostileInput(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	srv := startHelper(t, true, nil, "server")
	port, _ := strconv.Atoi(srv.ready[0])
	spid := srv.cmd.Process.Pid
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	base := heapInuse()
	st0 := c.eng.Stats()

	var wg sync.WaitGroup
	// 1. A chunked response that never ends: read 256 MiB of it, then hang up.
	const foreverBytes = 256 << 20
	var peak uint64
	var peakMu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		io.WriteString(conn, "GET /forever HTTP/1.1\r\nHost: hostile\r\n\r\n")
		buf := make([]byte, 1<<20)
		var n int64
		next := int64(32 << 20)
		for n < foreverBytes {
			k, err := conn.Read(buf)
			n += int64(k)
			if err != nil {
				t.Errorf("forever body: %v after %d bytes", err, n)
				return
			}
			if n > next {
				next += 32 << 20
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				peakMu.Lock()
				peak = max(peak, m.HeapInuse)
				peakMu.Unlock()
			}
		}
	}()
	// 2. Endless headers: 1 MiB of header lines that never end, then hang up.
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		io.WriteString(conn, "GET /endless-headers HTTP/1.1\r\nHost: hostile\r\n")
		line := "X-Pad-%06d: " + strings.Repeat("p", 100) + "\r\n"
		var b bytes.Buffer
		for i := 0; b.Len() < 1<<20; i++ {
			fmt.Fprintf(&b, line, i)
		}
		conn.Write(b.Bytes())
		time.Sleep(500 * time.Millisecond)
	}()
	// 3. Slowloris: a request one byte per 50 ms, then its answer.
	slowReq := "GET /slow HTTP/1.1\r\nHost: hostile\r\nX-Slow: yes\r\n\r\n"
	var slowResp []byte
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		for i := range len(slowReq) {
			conn.Write([]byte{slowReq[i]})
			time.Sleep(50 * time.Millisecond)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(conn)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Errorf("slowloris response: %v", err)
			return
		}
		slowResp, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}()
	// 4. A normal request in the middle of it.
	time.Sleep(time.Second)
	pid, out := run(t, "curl", "-s", fmt.Sprintf("http://%s/hello", addr))
	if string(out) != "hello world\n" {
		t.Fatalf("curl got %q", out)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	checkExactHello(t, c, pid)

	// The server side of each hostile connection is emitted once it closes.
	fe := c.waitFor(t, spid, "/forever", 15*time.Second)
	// Kernel-side loss under this flood may cut the chunked framing: the
	// exchange then ends incomplete instead of running on.
	if fe.Response == nil || len(fe.Response.Body) > DefaultConfig().MaxBodyBytes ||
		!(fe.Flags.Has(exchange.ResponseTruncated) || fe.Flags.Has(exchange.Incomplete)) {
		t.Errorf("never-ending chunked body: resp %v flags %v", fe.Response != nil, fe.Flags.Names())
	} else {
		if !bytes.Equal(fe.Response.Body, bytes.Repeat(pattern(32<<10), 2)[:len(fe.Response.Body)]) {
			t.Errorf("never-ending body: captured bytes are not the body's prefix")
		}
		t.Logf("never-ending chunked body: %.1f MiB counted, %d bytes kept, flags %v", float64(fe.Response.BodySize)/(1<<20), len(fe.Response.Body), fe.Flags.Names())
	}
	he := c.waitFor(t, spid, "/endless-headers", 15*time.Second)
	if !he.Flags.Has(exchange.ParseError) && !he.Flags.Has(exchange.Incomplete) {
		t.Errorf("endless headers: flags %v, want parse_error", he.Flags.Names())
	}
	var hdrBytes int
	for _, h := range he.Request.Headers {
		hdrBytes += len(h.Name) + len(h.Value)
	}
	if hdrBytes > 64<<10 {
		t.Errorf("endless headers: %d header bytes kept, cap is 64 KiB", hdrBytes)
	}
	se := c.waitFor(t, spid, "/slow", 15*time.Second)
	if string(slowResp) != "ok /slow" || se.Response == nil || string(se.Response.Body) != "ok /slow" || header(se.Request, "X-Slow") != "yes" || se.Flags != 0 {
		t.Errorf("slowloris: client read %q; captured resp %+v flags %v", slowResp, se.Response, se.Flags.Names())
	}
	st := c.eng.Stats()
	peakMu.Lock()
	growth := int64(peak) - int64(base)
	peakMu.Unlock()
	after := heapInuse()
	t.Logf("heap in use: %.1f MiB before, %.1f MiB peak while 256 MiB streamed, %.1f MiB after; parse errors +%d, incomplete +%d, events lost +%d",
		mib(base), mib(peak), mib(after), st.ParseErrors-st0.ParseErrors, st.ExchangesIncomplete-st0.ExchangesIncomplete, st.EventsLost-st0.EventsLost)
	if growth > 64<<20 {
		t.Errorf("heap grew %.1f MiB while a never-ending body streamed", float64(growth)/(1<<20))
	}
	if st.ParseErrors == st0.ParseErrors {
		t.Errorf("endless headers not counted in ParseErrors")
	}
}

// TestHostileIdleConnections: 10 000 idle connections (20 000 tracked
// ends: client and server are both seen) against a tracker capped at
// maxStreams. The cap holds, evictions are counted, memory is bounded, and a
// normal request made meanwhile is captured exactly.
func TestHostileIdleConnections(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	srv := startHelper(t, true, nil, "server")
	port, _ := strconv.Atoi(srv.ready[0])
	base := heapInuse()
	st0 := c.eng.Stats()
	const n = 10000
	t0 := time.Now()
	isrv := startHelper(t, true, nil, "idlesrv")
	idle := startHelper(t, true, nil, "idle", strconv.Itoa(n), "127.0.0.1:"+isrv.ready[0])
	opened, _ := strconv.Atoi(idle.ready[1])
	t.Logf("helper opened %d connections in %v", opened, time.Since(t0).Round(time.Millisecond))
	tReady := time.Now()
	if opened != n {
		t.Fatalf("helper opened %d of %d connections: %v", opened, n, idle.ready[2:])
	}
	// Wait until the engine has read every head (the tracker count settles).
	var st Stats
	deadline := time.Now().Add(60 * time.Second)
	for {
		st = c.eng.Stats()
		if st.ConnsTracked+(st.ConnsEvicted-st0.ConnsEvicted) >= 2*n-100 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	settle, lag := time.Since(t0), time.Since(tReady)
	full := heapInuse()
	pid, out := run(t, "curl", "-s", fmt.Sprintf("http://127.0.0.1:%d/hello", port))
	if string(out) != "hello world\n" {
		t.Fatalf("curl got %q", out)
	}
	checkExactHello(t, c, pid)
	perConn := (int64(full) - int64(base)) / int64(max(1, int(st.ConnsTracked)))
	t.Logf("%d idle connections (%d ends) in %v: tracked %d (cap %d), evicted %d; heap %.1f -> %.1f MiB (%d bytes per tracked connection)",
		n, 2*n, settle.Round(time.Millisecond), st.ConnsTracked, maxStreams, st.ConnsEvicted-st0.ConnsEvicted, mib(base), mib(full), perConn)
	// At the cap every new connection evicts one: that must stay cheap, or
	// the reader falls behind and the kernel drops everyone's data.
	if lag > 10*time.Second {
		t.Errorf("the engine needed %v after the last connection to take in every head", lag.Round(time.Millisecond))
	}
	if st.ConnsTracked > maxStreams {
		t.Errorf("tracking %d connections, cap is %d", st.ConnsTracked, maxStreams)
	}
	if ev := st.ConnsEvicted - st0.ConnsEvicted; ev < 2*n-maxStreams-200 {
		t.Errorf("evicted %d connections, want at least %d (20 000 ends over a cap of %d)", ev, 2*n-maxStreams-200, maxStreams)
	}
	if perConn > 16<<10 {
		t.Errorf("%d heap bytes per idle connection", perConn)
	}
	// The helper exits: its streams end and the tracker empties.
	idle.stdin.Close()
	idle.cmd.Wait()
	t1 := time.Now()
	deadline = time.Now().Add(30 * time.Second)
	for c.eng.Stats().ConnsTracked > 100 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := c.eng.Stats().ConnsTracked; got > 100 {
		t.Errorf("%d connections still tracked after the idle helper exited", got)
	}
	t.Logf("%v after the helper exited: tracked %d, heap %.1f MiB", time.Since(t1).Round(time.Millisecond), c.eng.Stats().ConnsTracked, mib(heapInuse()))
}

// sha256sum returns the hex digest of b.
func sha256sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

const pyHTTPSFileServer = `
import http.server, ssl, sys, os
os.chdir(sys.argv[4])
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
`

const nodeSumClient = `
const https = require('https'), crypto = require('crypto');
https.get(process.argv[2], {rejectUnauthorized: false}, res => {
  const h = crypto.createHash('sha256'); let n = 0;
  res.on('data', d => { h.update(d); n += d.length; });
  res.on('end', () => process.stdout.write('SUM ' + n + ' ' + h.digest('hex') + '\n'));
});
`

// TestUnharmedApplications: bodies downloaded over HTTPS by curl, a Go
// client and a node client from a python server have the same sha256 with
// and without the agent, and the traced runs were really captured.
func TestUnharmedApplications(t *testing.T) {
	requireRoot(t)
	files, _ := makeCert(t)
	dir := t.TempDir()
	const size = 4 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*131 + i/4099)
	}
	want := sha256sum(data)
	if err := os.WriteFile(filepath.Join(dir, "blob"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	server := background(t, dir, "python3", writeFile(t, dir, "server.py", pyHTTPSFileServer), strconv.Itoa(port), files.cert, files.key, dir)
	waitPort(t, port)
	url := fmt.Sprintf("https://127.0.0.1:%d/blob", port)
	js := writeFile(t, dir, "client.js", nodeSumClient)

	type result struct {
		sum  string
		pids map[string]int
	}
	download := func(c *capture) result {
		r := result{pids: map[string]int{}}
		sums := map[string]string{}
		pid, out := run(t, "curl", "-sk", url)
		sums["curl"], r.pids["curl"] = sha256sum(out), pid
		pid, out = run(t, "node", js, url)
		sums["node"], r.pids["node"] = strings.Fields(string(out) + " x x x")[2], pid
		h := startHelper(t, false, []string{"TLSTAP_REL_DELAY=300ms"}, "goget", url)
		if c != nil {
			c.waitHooked(t, os.Args[0]) // Go programs are hooked on exec
		}
		f := strings.Fields(h.line(t, "SUM"))
		sums["go"], r.pids["go"] = f[2], h.cmd.Process.Pid
		for who, s := range sums {
			if s != want {
				t.Errorf("%s downloaded a body with sha256 %s, want %s (traced: %v)", who, s, want, c != nil)
			}
		}
		return r
	}
	download(nil)
	c := startCapture(t, DefaultConfig())
	traced := download(c)
	for who, pid := range traced.pids {
		ex := c.waitFor(t, pid, "/blob", 15*time.Second)
		if ex.Response == nil || ex.Response.BodySize != size || !bytes.Equal(ex.Response.Body, data[:len(ex.Response.Body)]) {
			t.Errorf("%s: captured response %+v", who, ex.Response)
		}
	}
	// A server-side exchange whose last bytes were lost (or shed) ends only
	// when its connection closes, after the client has its answer.
	deadline := time.Now().Add(15 * time.Second)
	for len(c.find(server.Process.Pid, "/blob")) < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := c.find(server.Process.Pid, "/blob"); len(got) < 3 {
		t.Errorf("server side: %d exchanges captured, want 3", len(got))
	}
	t.Logf("curl, node and Go downloaded 4 MiB over HTTPS with identical sha256 %s… with and without the agent", want[:16])
}

// fdTargets lists this process's open file descriptors: fd -> readlink.
func fdTargets() map[string]string {
	out := map[string]string{}
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			out[e.Name()] = l
		}
	}
	return out
}

// listeningInodes returns the socket inodes in LISTEN state (tcp, tcp6) and
// every udp/udp6 socket inode, with their local address.
func listeningInodes() map[string]string {
	out := map[string]string{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(l)
			if len(fs) < 10 {
				continue
			}
			if strings.HasPrefix(f, "/proc/net/tcp") && fs[3] != "0A" {
				continue
			}
			out[fs[9]] = f + " " + fs[1]
		}
	}
	return out
}

// ownSockets maps the listening sockets this process holds.
func ownListening() []string {
	listen := listeningInodes()
	var out []string
	for _, l := range fdTargets() {
		if ino, ok := strings.CutPrefix(l, "socket:["); ok {
			ino = strings.TrimSuffix(ino, "]")
			if a, ok := listen[ino]; ok {
				out = append(out, a)
			}
		}
	}
	return out
}

// writableFiles lists the regular files this process holds open for writing.
func writableFiles() map[string]bool {
	out := map[string]bool{}
	for fd, l := range fdTargets() {
		if !strings.HasPrefix(l, "/") || strings.HasPrefix(l, "/dev/") {
			continue
		}
		b, err := os.ReadFile("/proc/self/fdinfo/" + fd)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "flags:"); ok {
				flags, _ := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
				if flags&unix.O_ACCMODE != unix.O_RDONLY {
					out[l] = true
				}
			}
		}
	}
	return out
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestSecurityNoSelfCaptureNoFilesNoListeners: the agent never captures its
// own process (HTTP and HTTPS, OpenSSL and Go crypto/tls hooks live), writes
// no file and opens no listening socket.
func TestSecurityNoSelfCaptureNoFilesNoListeners(t *testing.T) {
	requireRoot(t)
	cwd, tmp := t.TempDir(), t.TempDir()
	t.Chdir(cwd)
	t.Setenv("TMPDIR", tmp)
	bpffsBefore := dirNames(t, "/sys/fs/bpf")
	listenBefore := ownListening()
	writeBefore := writableFiles()

	c := startCapture(t, DefaultConfig())
	files, _ := makeCert(t)
	dir := t.TempDir()
	port := freePort(t)
	httpsSrv := background(t, dir, "python3", writeFile(t, dir, "server.py", pyHTTPSServer), strconv.Itoa(port), files.cert, files.key)
	pport := freePort(t)
	plainSrv := background(t, dir, "python3", "-m", "http.server", "--bind", "127.0.0.1", strconv.Itoa(pport))
	waitPort(t, port)
	waitPort(t, pport)
	// A helper of this same binary gets Go crypto/tls probes on the test
	// binary's inode: they fire in this process too and must be filtered.
	startHelper(t, false, nil, "sleep")
	c.waitHooked(t, os.Args[0])

	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for i := range 5 {
		for _, u := range []string{fmt.Sprintf("https://127.0.0.1:%d/self/%d", port, i), fmt.Sprintf("http://127.0.0.1:%d/self-%d", pport, i)} {
			resp, err := cl.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	cl.CloseIdleConnections()
	c.waitFor(t, httpsSrv.Process.Pid, "/self/4", 15*time.Second)
	c.waitFor(t, plainSrv.Process.Pid, "/self-4", 15*time.Second)
	if self := c.of(os.Getpid()); len(self) > 0 {
		t.Errorf("the agent captured %d exchanges of its own process, e.g. %s %s", len(self), method(self[0]), target(self[0]))
	}
	if got := ownListening(); len(got) != len(listenBefore) {
		t.Errorf("listening sockets of the agent's process: %v before Start, %v while running", listenBefore, got)
	}
	for f := range writableFiles() {
		if !writeBefore[f] {
			t.Errorf("the engine holds %s open for writing", f)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.eng.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, cwd); len(got) > 0 {
		t.Errorf("files written to the working directory: %v", got)
	}
	if got := dirNames(t, tmp); len(got) > 0 {
		t.Errorf("files written to TMPDIR: %v", got)
	}
	if got := dirNames(t, "/sys/fs/bpf"); strings.Join(got, ",") != strings.Join(bpffsBefore, ",") {
		t.Errorf("bpffs changed: %v -> %v", bpffsBefore, got)
	}
}

// TestSecurityLocalEndpoints: the pipeline configs we ship open no endpoint
// on all interfaces, and the receiver and plugin code opens no listener.
func TestSecurityLocalEndpoints(t *testing.T) {
	var files []string
	for _, g := range []string{"../../testdata/collector/*.yaml", "../../fluentbit/*.yaml", "../../fluentbit/*.conf", "../../fluentbit/testdata/*"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	for _, g := range []string{"../../receiver/tlstapreceiver/*.go", "../../fluentbit/*.go", "*.go"} {
		m, _ := filepath.Glob(g)
		for _, f := range m {
			if !strings.HasSuffix(f, "_test.go") {
				files = append(files, f)
			}
		}
	}
	if len(files) == 0 {
		t.Fatal("no config or source found")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := string(b)
		for _, bad := range []string{"0.0.0.0", "[::]:", "net.Listen(", "ListenAndServe"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains %q: every local endpoint must bind 127.0.0.1 by default", f, bad)
			}
		}
	}
}

// cgroup2Root returns where the cgroup v2 hierarchy is mounted.
func cgroup2Root(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		// ... mount-point ... - fstype source options
		pre, post, ok := strings.Cut(line, " - ")
		if f := strings.Fields(pre); ok && len(f) > 4 && strings.HasPrefix(post, "cgroup2 ") {
			return f[4]
		}
	}
	testenv.Missing(t, "no cgroup v2 hierarchy mounted")
	return ""
}

// TestExecIdentityAfterExit: a client that has exited, and left /proc,
// before the engine reads its exec record is still named — from what the
// kernel put in the record: executable, arguments, parent, owner, start,
// and the container its cgroup is named after.
func TestExecIdentityAfterExit(t *testing.T) {
	st := stalledCapture(t, DefaultConfig())
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal(err)
	}
	// A cgroup named the way docker names a container's (systemd driver).
	const container = "7c0ffee5a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c"
	parent := filepath.Join(cgroup2Root(t), fmt.Sprintf("tlstap-test-%d", os.Getpid()))
	cg := filepath.Join(parent, "docker-"+container+".scope")
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(cg); os.Remove(parent) })
	before := time.Now()
	args := []string{"curl", "-s", "-H", "X-Who: gone", st.url("/hello")}
	// sh moves itself into the cgroup, then becomes curl (same pid).
	script := fmt.Sprintf(`echo $$ > %s/cgroup.procs && exec "$0" "$@"`, cg)
	pid, out := run(t, "sh", append([]string{"-c", script, curl}, args[1:]...)...)
	if string(out) != "hello world\n" {
		t.Fatalf("curl got %q", out)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		t.Fatalf("pid %d still in /proc: the test needs it gone", pid)
	}
	st.release()
	ex := st.c.waitFor(t, pid, "/hello", 15*time.Second)
	p := ex.Process
	args[0] = curl // argv[0] as exec.Command passes it
	if p.PID != pid || p.PPID != os.Getpid() || p.ExePath != curl || p.ExeName != "curl" ||
		!slices.Equal(p.CommandArgs, args) || p.Owner != "root" || p.ContainerID != container {
		t.Errorf("identity of an exited client: %+v\nwant pid %d, ppid %d, %s, args %q, root, container %s", p, pid, os.Getpid(), curl, args, container)
	}
	// Creation time: whole clock ticks, as /proc gives it.
	if p.CreationTime.Before(before.Add(-time.Second)) || p.CreationTime.After(time.Now()) {
		t.Errorf("creation time %v, want between %v and now", p.CreationTime, before)
	}
}
