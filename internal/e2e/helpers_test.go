package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tlstap/tlstap/internal/selfsigned"

	"github.com/tlstap/tlstap/internal/testenv"
)

// needRoot skips a test that runs the tlstap receiver (eBPF) unless root,
// and checks the tools every capture test uses.
func needRoot(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t) // the tlstap receiver loads eBPF programs
	for _, bin := range []string{"curl", "python3", "make"} {
		_, err := exec.LookPath(bin)
		require.NoError(t, err, "%s is needed (make deps installs it)", bin)
	}
}

// results holds the OTLP JSON documents an exporter wrote so far.
type results struct {
	// read returns every document, one per line.
	read  func() ([]byte, error)
	raw   bytes.Buffer
	spans []capturedSpan
	logs  []capturedLog
}

type capturedSpan struct {
	span     ptrace.Span
	resource pcommon.Map
}

type capturedLog struct {
	rec      plog.LogRecord
	resource pcommon.Map
}

// fileResults reads what a file exporter writes to path (JSON lines).
func fileResults(path string) *results {
	return &results{read: func() ([]byte, error) { return os.ReadFile(path) }}
}

func (r *results) load(t *testing.T) {
	t.Helper()
	data, err := r.read()
	if err != nil {
		return
	}
	r.raw.Reset()
	r.raw.Write(data)
	r.spans, r.logs = nil, nil
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case bytes.Contains(line, []byte(`"resourceSpans"`)):
			td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(line)
			if err != nil {
				continue // a line still being written
			}
			for i := 0; i < td.ResourceSpans().Len(); i++ {
				rs := td.ResourceSpans().At(i)
				for j := 0; j < rs.ScopeSpans().Len(); j++ {
					ss := rs.ScopeSpans().At(j).Spans()
					for k := 0; k < ss.Len(); k++ {
						r.spans = append(r.spans, capturedSpan{span: ss.At(k), resource: rs.Resource().Attributes()})
					}
				}
			}
		case bytes.Contains(line, []byte(`"resourceLogs"`)):
			ld, err := (&plog.JSONUnmarshaler{}).UnmarshalLogs(line)
			if err != nil {
				continue
			}
			for i := 0; i < ld.ResourceLogs().Len(); i++ {
				rl := ld.ResourceLogs().At(i)
				for j := 0; j < rl.ScopeLogs().Len(); j++ {
					lr := rl.ScopeLogs().At(j).LogRecords()
					for k := 0; k < lr.Len(); k++ {
						r.logs = append(r.logs, capturedLog{rec: lr.At(k), resource: rl.Resource().Attributes()})
					}
				}
			}
		}
	}
}

// clientSpan returns the client span exe made for url.
func (r *results) clientSpan(exe, url string) *capturedSpan {
	for i := range r.spans {
		s := &r.spans[i]
		if s.span.Kind() != ptrace.SpanKindClient {
			continue
		}
		if v, ok := s.resource.Get("process.executable.name"); !ok || v.Str() != exe {
			continue
		}
		if v, ok := s.span.Attributes().Get("url.full"); ok && v.Str() == url {
			return s
		}
	}
	return nil
}

// clientLog returns the log record of the exchange exe made with url (the
// client side: the one with url.full).
func (r *results) clientLog(exe, url string) *capturedLog {
	for i := range r.logs {
		l := &r.logs[i]
		if v, ok := l.resource.Get("process.executable.name"); !ok || v.Str() != exe {
			continue
		}
		if v, ok := l.rec.Attributes().Get("url.full"); ok && v.Str() == url {
			return l
		}
	}
	return nil
}

func (r *results) logFor(id pcommon.SpanID) *plog.LogRecord {
	for i := range r.logs {
		if r.logs[i].rec.SpanID() == id {
			return &r.logs[i].rec
		}
	}
	return nil
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.HasPrefix(string(data), "module github.com/tlstap/tlstap\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "repository root not found")
		dir = parent
	}
}

var collectorBuild struct {
	once sync.Once
	bin  string
	err  error
}

// buildCollector builds the ocb collector with the project's Makefile
// fragment once per test binary run, or uses $TLSTAP_COLLECTOR.
func buildCollector(t *testing.T, root string) string {
	t.Helper()
	if p := os.Getenv("TLSTAP_COLLECTOR"); p != "" {
		return p
	}
	b := &collectorBuild
	b.once.Do(func() {
		b.bin, b.err = makeCollector(root)
		if b.err != nil {
			// One retry: a concurrent go build in the shared build cache
			// has been seen to fail an import once ("could not import").
			b.bin, b.err = makeCollector(root)
		}
	})
	require.NoError(t, b.err)
	return b.bin
}

func makeCollector(root string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "-f", "mk/collector.mk", "collector")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building the collector: %v\n%s", err, out)
	}
	bin := filepath.Join(root, "build", "tlstap-collector", "tlstap-collector")
	if _, err := os.Stat(bin); err != nil {
		return "", err
	}
	return bin, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// writeSelfSignedCert writes a certificate for 127.0.0.1 and localhost.
func writeSelfSignedCert(t *testing.T, dir string) (string, string) {
	t.Helper()
	certFile, keyFile, err := selfsigned.Write(dir)
	require.NoError(t, err)
	return certFile, keyFile
}

const serverPy = `
import http.server, json, ssl, sys

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code, ctype, body):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/hello") or self.path.startswith("/warmup"):
            self.reply(200, "text/plain", b"hello from tlstap e2e\n")
        else:
            self.reply(404, "text/plain", b"not found\n")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        data = json.loads(self.rfile.read(n))
        body = json.dumps({"echo": data}, separators=(",", ":")).encode()
        self.reply(201, "application/json", body)

    def log_message(self, *args):
        pass

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
`

// startHTTPSServer starts the python HTTPS server and returns its port.
func startHTTPSServer(t *testing.T, dir, certFile, keyFile string) int {
	t.Helper()
	script := filepath.Join(dir, "server.py")
	require.NoError(t, os.WriteFile(script, []byte(serverPy), 0o644))
	cmd := exec.Command("python3", script, certFile, keyFile)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "python HTTPS server did not start")
	port, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err)
	return port
}

// startCollector runs the collector with the configuration file config
// (relative to the repository root), extra environment variables
// ("NAME=value") and its own internal metrics off (several collectors run at
// once; the default metrics endpoint is one fixed port). It waits until the
// collector reports that it is running and stops it with SIGTERM (by PID)
// when the test ends.
func startCollector(t *testing.T, root, bin, config string, env ...string) {
	t.Helper()
	cmd := exec.Command(bin, "--config", filepath.Join(root, config),
		"--set=service.telemetry.metrics.level=none")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	cmd.Stdout = io.Discard
	require.NoError(t, cmd.Start())

	var mu sync.Mutex
	var logs bytes.Buffer
	ready := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			logs.Write(sc.Bytes())
			logs.WriteByte('\n')
			mu.Unlock()
			if strings.Contains(sc.Text(), "Everything is ready") {
				once.Do(func() { close(ready) })
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	collectorLogs := func() string {
		mu.Lock()
		defer mu.Unlock()
		return logs.String()
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("collector (%s) did not stop on SIGTERM within 30s", config)
		}
		if t.Failed() {
			t.Logf("collector (%s) logs:\n%s", config, collectorLogs())
		}
	})
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("collector (%s) exited before it was ready (%v):\n%s", config, waitErr, collectorLogs())
	case <-time.After(60 * time.Second):
		t.Fatalf("collector (%s) not ready within 60s:\n%s", config, collectorLogs())
	}
}

func curl(t *testing.T, args ...string) {
	t.Helper()
	all := append([]string{"-sS", "-k", "--http1.1", "--max-time", "10"}, args...)
	out, err := exec.Command("curl", all...).CombinedOutput()
	require.NoError(t, err, "curl %v: %s", args, out)
}

// warmUp makes curl requests to base until found reports the first one
// captured: probes attach asynchronously after the collector starts.
func warmUp(t *testing.T, base string, res *results, found func(url string) bool) {
	t.Helper()
	for i := 0; i < 60; i++ {
		url := fmt.Sprintf("%s/warmup?i=%d", base, i)
		curl(t, "-o", "/dev/null", url)
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			res.load(t)
			if found(url) {
				return
			}
		}
	}
	t.Fatal("no curl exchange was captured within 60s")
}

// exchangeCase is one HTTPS request the pipeline tests make with curl and
// expect to find, intact, at the far end of the pipeline.
type exchangeCase struct {
	name     string
	args     []string
	url      string
	method   string
	status   int64
	reqBody  string
	respBody string
}

// standardExchanges are a GET, a POST with a JSON body and a 404 against the
// python server at base.
func standardExchanges(base string) []exchangeCase {
	return []exchangeCase{
		{
			name: "get", url: base + "/hello?x=1", method: "GET", status: 200,
			args:     []string{"-H", "User-Agent: tlstap-e2e/1"},
			respBody: "hello from tlstap e2e\n",
		},
		{
			name: "post", url: base + "/echo", method: "POST", status: 201,
			args:     []string{"-H", "User-Agent: tlstap-e2e/1", "-H", "Content-Type: application/json", "--data-binary", `{"item":"tlstap","n":42}`},
			reqBody:  `{"item":"tlstap","n":42}`,
			respBody: `{"echo":{"item":"tlstap","n":42}}`,
		},
		{
			name: "not found", url: base + "/missing", method: "GET", status: 404,
			args:     []string{"-H", "User-Agent: tlstap-e2e/1"},
			respBody: "not found\n",
		},
	}
}

func (c exchangeCase) run(t *testing.T) {
	t.Helper()
	curl(t, append(append([]string{"-o", "/dev/null"}, c.args...), c.url)...)
}

// waitFor polls missing every 200ms until it reports nothing missing, or
// fails the test after timeout with what is still missing.
func waitFor(t *testing.T, timeout time.Duration, msg string, missing func() []string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := missing()
		if len(m) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s within %v; missing: %s", msg, timeout, strings.Join(m, ", "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
