package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tlstap/tlstap/internal/exchange"

	"github.com/tlstap/tlstap/internal/testenv"
)

// warnings returns the recorded log entries at Warn or above.
func warnings(logs *observer.ObservedLogs) []observer.LoggedEntry {
	return logs.Filter(func(e observer.LoggedEntry) bool { return e.Level >= zapcore.WarnLevel }).All()
}

func logEntries(t *testing.T, what string, es []observer.LoggedEntry) {
	t.Helper()
	for i, e := range es {
		if i == 20 {
			t.Logf("%s: … %d more", what, len(es)-20)
			break
		}
		t.Logf("%s: %s %s %v", what, e.Level, e.Message, e.ContextMap())
	}
}

// TestFaultExitMidAttach: 200 processes (python with OpenSSL, node with its
// static OpenSSL, a Go program) killed right after they start, while the
// engine inspects and hooks them. No error storm, no crash, capture works
// afterwards.
func TestFaultExitMidAttach(t *testing.T) {
	c, logs := startCaptureObserved(t, DefaultConfig())
	srv := startGoServer(t, true, echoHandler())
	st0 := c.eng.Stats()
	w0 := len(warnings(logs))
	cmds := [][]string{
		{"python3", "-c", "import ssl, time; time.sleep(5)"},
		{"node", "-e", "require('https'); setTimeout(() => {}, 5000)"},
		{os.Args[0], "-test.run", "^TestReliabilityHelper$"},
	}
	t0 := time.Now()
	for i := range 200 {
		args := cmds[i%len(cmds)]
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "TLSTAP_REL_HELPER=sleep")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i%10) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
	}
	took := time.Since(t0)
	time.Sleep(500 * time.Millisecond) // the discoverer catches up
	st := c.eng.Stats()
	ws := warnings(logs)[w0:]
	logEntries(t, "warning", ws)
	t.Logf("200 processes killed mid-attach in %v: %d warnings, attach errors +%d, probes %d -> %d",
		took.Round(time.Millisecond), len(ws), st.AttachErrors-st0.AttachErrors, st0.ProbesAttached, st.ProbesAttached)
	// The Go program is killed within 10 ms every time, yet its file gets
	// hooked: the attach holds the file open, not /proc/<pid>/exe.
	if id, err := statID(os.Args[0]); err != nil || !c.eng.kern.attached(id) {
		t.Errorf("the Go program killed mid-attach 67 times was never hooked")
	}
	// What may remain: a process gone before the attach opened its file.
	if len(ws) > 3 || st.AttachErrors-st0.AttachErrors > 3 {
		t.Errorf("error storm: %d warnings, %d attach errors for 200 processes that exited mid-attach", len(ws), st.AttachErrors-st0.AttachErrors)
	}
	pid, _ := run(t, "curl", "-sk", fmt.Sprintf("https://127.0.0.1:%d/hello", srv.port))
	c.waitFor(t, pid, "/hello", 10*time.Second)
}

const pyLibClient = `
import ssl, sys, time, http.client
libs = sorted({l.split()[-1] for l in open('/proc/self/maps') if 'libssl' in l})
time.sleep(float(sys.argv[3]))
ctx = ssl._create_unverified_context()
c = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), context=ctx)
c.request("GET", sys.argv[2])
body = c.getresponse().read()
print("LIBS", " ".join(libs))
print("BODY", body.decode())
`

// copyFile copies src to dst (a new file, or in place over an existing one).
func copyFile(t *testing.T, src, dst string, extra int) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, make([]byte, extra)...)
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func systemLibSSLPath(t *testing.T) string {
	t.Helper()
	for _, p := range systemLibSSL() {
		if strings.Contains(filepath.Base(p), "libssl.so.3") {
			return p
		}
	}
	testenv.Missing(t, "no libssl.so.3 on this host")
	return ""
}

// TestFaultLibraryReplaced: a private copy of libssl used through
// LD_LIBRARY_PATH is hooked; then it is replaced on disk by a different file
// (rename over it, as package managers do: a new inode) and rewritten in
// place (same inode). Each client is captured.
func TestFaultLibraryReplaced(t *testing.T) {
	c, logs := startCaptureObserved(t, DefaultConfig())
	srv := startGoServer(t, true, echoHandler())
	sys := systemLibSSLPath(t)
	dir := t.TempDir()
	lib := filepath.Join(dir, "libssl.so.3")
	copyFile(t, sys, lib, 0)
	script := writeFile(t, t.TempDir(), "client.py", pyLibClient)
	// A foreign flood on a shared host can drop a client's records (the
	// loss is counted): up to three attempts per step.
	client := func(step int) {
		t.Helper()
		for attempt := 1; ; attempt++ {
			target := fmt.Sprintf("/r/%d", step)
			cmd := exec.Command("python3", script, strconv.Itoa(srv.port), target, "0.3")
			cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+dir)
			started := time.Now()
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("client %d: %v", step, err)
			}
			if !strings.Contains(string(out), "LIBS "+lib) {
				t.Fatalf("client %d did not load the copy: %s", step, out)
			}
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) && len(c.find(cmd.Process.Pid, target)) == 0 {
				time.Sleep(20 * time.Millisecond)
			}
			if exs := c.find(cmd.Process.Pid, target); len(exs) > 0 {
				if ex := exs[0]; ex.Response == nil || string(ex.Response.Body) != fmt.Sprintf("reply %d", step) {
					t.Errorf("client %d: response %+v", step, ex.Response)
				}
				return
			}
			for _, e := range logs.All() {
				if m := e.ContextMap(); fmt.Sprint(m["pid"]) == strconv.Itoa(cmd.Process.Pid) {
					t.Logf("+%v: %s %v", e.Time.Sub(started).Round(time.Millisecond), e.Message, m)
				}
			}
			if attempt == 3 {
				t.Fatalf("client %d not captured in 3 attempts (%+v)", step, c.eng.Stats())
			}
			t.Logf("client %d attempt %d not captured (events lost so far %d): retrying", step, attempt, c.eng.Stats().EventsLost)
		}
	}
	client(1)
	id1, _ := statID(lib)
	// Probes outlive the last user of a file by probeRelease (30 s), so
	// that a client started again soon finds its library hooked.
	if !c.eng.kern.attached(id1) {
		t.Errorf("right after the first client exited, its copy of libssl is no longer hooked (release is after %v)", c.eng.probeRelease)
	}

	// Replaced by rename: a different file (4 KiB longer) under the same name.
	copyFile(t, sys, lib+".new", 4096)
	if err := os.Rename(lib+".new", lib); err != nil {
		t.Fatal(err)
	}
	id2, _ := statID(lib)
	if id2 == id1 {
		t.Fatal("rename kept the inode")
	}
	client(2)
	if !c.eng.kern.attached(id2) {
		t.Errorf("the file that replaced libssl by rename is not hooked after its client was captured")
	}

	// Rewritten in place: same inode, different content (the 4 KiB tail gone).
	copyFile(t, sys, lib, 0)
	if id3, _ := statID(lib); id3 != id2 {
		t.Fatal("in-place rewrite changed the inode")
	}
	client(3)
	if !c.eng.kern.attached(id2) {
		t.Errorf("the file rewritten in place is not hooked after its client was captured")
	}
	logEntries(t, "warning", warnings(logs))
}

const pyJailClient = `
import ssl, sys, os, time, http.client, socket, encodings.idna
ctx = ssl._create_unverified_context()
os.chroot(sys.argv[2]); os.chdir("/")
time.sleep(0.5)
c = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), context=ctx)
c.request("GET", "/r/jail")
print(c.getresponse().read().decode())
`

const pyZombie = `
import os, time
pid = os.fork()
if pid == 0:
    os._exit(0)
print(pid, flush=True)
time.sleep(60)
`

// TestFaultUnreadableRoot: a zombie (its /proc/<pid>/root cannot be read)
// present when the engine starts, and a process that chroots into an empty
// tmpfs in its own mount namespace right after loading its own copy of
// libssl. The engine keeps running, says precisely what it could not do,
// and still captures.
func TestFaultUnreadableRoot(t *testing.T) {
	requireRoot(t)
	testenv.RequireCommand(t, "unshare")
	zdir := t.TempDir()
	zombie := exec.Command("python3", writeFile(t, zdir, "zombie.py", pyZombie))
	zout, _ := zombie.StdoutPipe()
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zombie.Process.Kill(); zombie.Wait() })
	var zpid int
	fmt.Fscan(zout, &zpid)
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Readlink(fmt.Sprintf("/proc/%d/root", zpid)); err == nil {
		t.Fatalf("zombie %d: /proc/<pid>/root is readable", zpid)
	} else {
		t.Logf("zombie %d: %v", zpid, err)
	}

	c, logs := startCaptureObserved(t, DefaultConfig())
	srv := startGoServer(t, true, echoHandler())
	libdir := t.TempDir()
	copyFile(t, systemLibSSLPath(t), filepath.Join(libdir, "libssl.so.3"), 0)
	jail := t.TempDir()
	dir := t.TempDir()
	script := writeFile(t, dir, "jail.py", pyJailClient)
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		fmt.Sprintf("mount -t tmpfs tmpfs %s && exec env LD_LIBRARY_PATH=%s python3 %s %d %s", jail, libdir, script, srv.port, jail))
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "reply jail" {
		t.Fatalf("jailed client: %v %s", err, out)
	}
	// unshare execs sh which execs env which execs python: one pid.
	jpid := cmd.Process.Pid
	time.Sleep(time.Second)
	jailed := c.find(jpid, "/r/jail")
	for _, e := range logs.All() {
		if m := e.ContextMap(); fmt.Sprint(m["pid"]) == strconv.Itoa(jpid) {
			t.Logf("log for the jailed pid: %s %s %v", e.Level, e.Message, m)
		}
	}
	ws := warnings(logs)
	logEntries(t, "warning", ws)
	t.Logf("chrooted client in its own mount namespace: %d exchanges captured; %d warnings", len(jailed), len(ws))
	if len(jailed) == 0 {
		t.Errorf("the chrooted client with its own libssl was not captured (%+v)", c.eng.Stats())
	}
	for _, w := range ws {
		m := w.ContextMap()
		if m["pid"] == nil && m["path"] == nil {
			t.Errorf("imprecise warning (no pid, no path): %s %v", w.Message, m)
		}
	}
	pid, _ := run(t, "curl", "-sk", fmt.Sprintf("https://127.0.0.1:%d/hello", srv.port))
	c.waitFor(t, pid, "/hello", 10*time.Second)
}

// pyChunkServer writes each body in 1000-byte SSL_writes: with a tiny ring
// buffer some records fit and some do not, so captured bodies have holes.
const pyChunkServer = `
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        n = int(self.path.split("/")[2].split("?")[0])
        body = bytes(33 + (i * 7 + 3) % 94 for i in range(n))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        for i in range(0, n, 1000):
            self.wfile.write(body[i:i+1000])
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
`

func chunkBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(33 + (i*7+3)%94) // printable: text bodies are kept by the default policy
	}
	return b
}

// TestFaultRingBufferFull: a 4 KiB ring buffer and a flood of large bodies.
// Loss is counted, exchanges that lost bytes are flagged incomplete, and
// every captured body is a prefix of what was sent: never spliced.
func TestFaultRingBufferFull(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RingBufferSize = 4096
	if v, err := strconv.Atoi(os.Getenv("TLSTAP_RING")); err == nil {
		cfg.RingBufferSize = v
	}
	c := startCapture(t, cfg)
	files, _ := makeCert(t)
	dir := t.TempDir()
	port := freePort(t)
	server := background(t, dir, "python3", writeFile(t, dir, "server.py", pyChunkServer), strconv.Itoa(port), files.cert, files.key)
	waitPort(t, port)
	const size = 256 << 10
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("curl", "-sk", "-o", "/dev/null", fmt.Sprintf("https://127.0.0.1:%d/big/%d?i=[1-4]", port, size))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("curl: %v %s", err, out)
			}
		}()
	}
	wg.Wait()
	time.Sleep(2 * time.Second)
	want := chunkBody(size)
	st := c.eng.Stats()
	c.mu.Lock()
	var n, incomplete, whole, checked int
	for _, ex := range c.all {
		if ex.Request == nil || !strings.HasPrefix(ex.Request.Target, fmt.Sprintf("/big/%d", size)) {
			continue
		}
		n++
		if ex.Flags.Has(exchange.Incomplete) {
			incomplete++
		}
		if r := ex.Response; r != nil && len(r.Body) > 0 {
			checked++
			if !bytes.Equal(r.Body, want[:min(len(r.Body), len(want))]) || len(r.Body) > len(want) {
				t.Errorf("pid %d %s: captured body (%d bytes, flags %v) is not a prefix of the body sent", ex.Process.PID, ex.Role, len(r.Body), ex.Flags.Names())
			}
			if len(r.Body) == cfg.MaxBodyBytes && !ex.Flags.Has(exchange.Incomplete) {
				whole++
			}
		}
	}
	c.mu.Unlock()
	t.Logf("ring buffer %d bytes, 24 x 256 KiB bodies: %d exchanges (server %d), %d incomplete, %d with a body prefix checked, %d whole up to the cap; events lost %d, bytes lost %d, stream gaps %d",
		cfg.RingBufferSize, n, len(c.of(server.Process.Pid)), incomplete, checked, whole, st.EventsLost, st.BytesLost, st.StreamGaps)
	if st.EventsLost == 0 {
		t.Errorf("no loss counted with a 4 KiB ring buffer under a flood")
	}
	if incomplete == 0 {
		t.Errorf("no exchange flagged incomplete")
	}
	if checked == 0 {
		t.Errorf("no captured body to check against what was sent")
	}
}

// TestFaultSlowConsumer: a sink that sleeps 10 ms per exchange behind a
// 64 KiB ring buffer, fed 1 000 requests as fast as curl makes them. The
// engine does not queue: it holds the reader, the kernel drops and counts,
// and memory stays flat.
func TestFaultSlowConsumer(t *testing.T) {
	requireRoot(t)
	cfg := DefaultConfig()
	cfg.RingBufferSize = 64 << 10
	noGCWhileGating(t, cfg)
	var got atomic.Int64
	var mu sync.Mutex
	var bad []string
	eng, err := New(cfg, zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel)), func(ex *exchange.Exchange) {
		time.Sleep(10 * time.Millisecond)
		if ex.Request != nil && strings.HasPrefix(ex.Request.Target, "/r/") && ex.Response != nil && ex.Process.ExeName != "" {
			got.Add(1)
			if why := answersOther(ex); why != "" {
				mu.Lock()
				bad = append(bad, why)
				mu.Unlock()
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		t0 := time.Now()
		if err := eng.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		t.Logf("shutdown with a slow sink: %v", time.Since(t0).Round(time.Millisecond))
	}()
	srv := startGoServer(t, true, echoHandler())
	base := heapInuse()
	const n = 1000
	t0 := time.Now()
	cmd := exec.Command("curl", "-sk", "-o", "/dev/null", fmt.Sprintf("https://127.0.0.1:%d/r/[1-%d]", srv.port, n))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var peak uint64
	done := make(chan error)
	go func() { done <- cmd.Wait() }()
	for waiting := true; waiting; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			waiting = false
		case <-time.After(200 * time.Millisecond):
			peak = max(peak, heapInuse())
		}
	}
	curlTook := time.Since(t0)
	// Let the sink drain what the engine still holds.
	for prev := int64(-1); got.Load() != prev; {
		prev = got.Load()
		time.Sleep(time.Second)
		peak = max(peak, heapInuse())
	}
	st := eng.Stats()
	t.Logf("slow sink (10 ms/exchange), ring 64 KiB: curl made %d requests in %v; %d delivered after %v; events lost %d, responses unpaired %d; heap %.1f MiB before, %.1f MiB peak",
		n, curlTook.Round(time.Millisecond), got.Load(), time.Since(t0).Round(time.Millisecond), st.EventsLost, st.ResponsesUnpaired, mib(base), mib(peak))
	if len(bad) > 0 {
		// Records carry both directions' loss and pairing after a loss is
		// checked by time (httpparse nextResponse): none may be spliced.
		t.Errorf("%d of %d exchanges paired with another request's response:\n%s", len(bad), got.Load(), strings.Join(bad, "\n"))
	}
	if got.Load() < n && st.EventsLost == 0 && st.ExchangesIncomplete == 0 {
		t.Errorf("%d exchanges missing and no loss counted", n-got.Load())
	}
	if peak > base+32<<20 {
		t.Errorf("heap grew %.1f MiB behind a slow sink", mib(peak-base))
	}
	_ = io.Discard
}

// TestShedBulkKeepsSmallCalls: while the reader is stalled, a bulk download
// fills the ring; the kernel sheds its large calls once the ring is half
// full, so the small exchanges that follow still fit and arrive exact.
// Without shedding the download fills the ring and they are lost.
func TestShedBulkKeepsSmallCalls(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RingBufferSize = 1 << 20
	st := stalledCapture(t, cfg)
	c, eng, url := st.c, st.c.eng, st.url
	st0 := eng.Stats()
	const bulk = 64 << 20
	bulkPid, _ := run(t, "curl", "-s", "-o", "/dev/null", url(fmt.Sprintf("/big/%d", bulk)))
	const small = 20
	pids := make([]int, small)
	for i := range pids {
		var out []byte
		pids[i], out = run(t, "curl", "-s", url("/hello"))
		if string(out) != "hello world\n" {
			t.Fatalf("curl got %q", out)
		}
	}
	st1 := eng.Stats()
	st.release()

	for _, pid := range pids {
		ex := c.waitFor(t, pid, "/hello", 15*time.Second)
		if ex.Role != exchange.RoleClient || ex.Request.Method != "GET" || ex.Response == nil ||
			ex.Response.StatusCode != 200 || string(ex.Response.Body) != "hello world\n" || ex.Flags != 0 {
			t.Errorf("pid %d: small exchange behind a shed flood not exact: resp %+v flags %v", pid, ex.Response, ex.Flags.Names())
		}
		if ex.Process.ExeName != "curl" {
			t.Errorf("pid %d: exited before its exec record was read, and not named: %+v", pid, ex.Process)
		}
	}
	be := c.waitFor(t, bulkPid, fmt.Sprintf("/big/%d", bulk), 15*time.Second)
	if !be.Flags.Has(exchange.Incomplete) {
		t.Errorf("bulk download: flags %v, want incomplete (its calls were shed)", be.Flags.Names())
	}
	shed := st1.BytesShed - st0.BytesShed
	t.Logf("ring 1 MiB, reader stalled: %.1f MiB of a %d MiB download shed, events lost %d; %d small exchanges exact",
		mib(shed), bulk>>20, st1.EventsLost-st0.EventsLost, small)
	if shed == 0 || st1.BytesLost-st0.BytesLost < shed {
		t.Errorf("shed %d bytes, lost %d: the flood was not shed and counted", shed, st1.BytesLost-st0.BytesLost)
	}
}

// TestFaultBinaryRewrittenInPlace: a hooked Go executable is overwritten in
// place (same inode) by a build with other code, then run again. Probes
// placed for the old code would land inside the new code's instructions;
// the engine notices the file changed (size, mtime), detaches them and
// hooks the new code, which is captured exactly.
func TestFaultBinaryRewrittenInPlace(t *testing.T) {
	c, logs := startCaptureObserved(t, DefaultConfig())
	files, _ := makeCert(t)
	oldBin, newBin := goBinary(t, "go1.24.13", false), goBinary(t, "local", false)
	dir := t.TempDir()
	app := filepath.Join(dir, "app")
	copyFile := func(from string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		// O_TRUNC on the existing file: the inode stays, as with cp or a
		// build tool writing in place.
		f, err := os.OpenFile(app, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	serve := func(round int) {
		port := freePort(t)
		srv := background(t, dir, app, "server", fmt.Sprintf("127.0.0.1:%d", port), files.cert, files.key)
		waitPort(t, port)
		deadline := time.Now().Add(15 * time.Second)
		for len(logs.FilterMessage("hooked Go crypto/tls").FilterField(zap.Uint32("pid", uint32(srv.Process.Pid))).All()) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: pid %d not hooked", round, srv.Process.Pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
		target := fmt.Sprintf("/r/%d", 40+round)
		_, out := run(t, "curl", "-sk", fmt.Sprintf("https://127.0.0.1:%d%s", port, target))
		if string(out) != fmt.Sprintf("reply %d", 40+round) {
			t.Fatalf("round %d: curl got %q", round, out)
		}
		ex := c.waitFor(t, srv.Process.Pid, target, 15*time.Second)
		if ex.Role != exchange.RoleServer || ex.Response == nil || string(ex.Response.Body) != string(out) || ex.Flags != 0 || ex.Conn.Source != "go" {
			t.Errorf("round %d: server side %+v flags %v source %s", round, ex.Response, ex.Flags.Names(), ex.Conn.Source)
		}
		srv.Process.Kill()
		srv.Wait()
	}
	copyFile(oldBin)
	id1, _ := statID(app)
	serve(1)
	copyFile(newBin)
	if id2, _ := statID(app); id2 != id1 {
		t.Fatalf("the rewrite changed the inode: %v -> %v", id1, id2)
	}
	serve(2)
	if len(logs.FilterMessageSnippet("file changed in place").All()) == 0 {
		t.Errorf("the rewrite was not noticed")
	}
}

// answersOther says why ex's response is not the answer to its request, ""
// when it is or nothing captured says otherwise. The echo handler names the
// request in X-Reply-To and in the body "reply <id>": a response whose head
// was captured must name the request; its body, as far as captured, must be
// a prefix of the right reply (a body lost in a gap is flagged incomplete).
func answersOther(ex *exchange.Exchange) string {
	id := strings.TrimPrefix(ex.Request.Target, "/r/")
	to, hasTo := ex.Response.Get("X-Reply-To")
	want := "reply " + id
	body := string(ex.Response.Body)
	switch {
	case hasTo && to != id:
	case !hasTo && ex.Response.StatusCode != 0:
	case !strings.HasPrefix(want, body):
	case len(body) < len(want) && !ex.Flags.Has(exchange.Incomplete):
	default:
		return ""
	}
	return fmt.Sprintf("%s -> X-Reply-To %q body %q status %d (flags %v, conn %d, %s)", ex.Request.Target, to, body, ex.Response.StatusCode, ex.Flags.Names(), ex.Conn.ID, ex.Role)
}
