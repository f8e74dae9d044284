// Package e2e runs the real tlstap collector (built with ocb from
// builder-config.yaml) against real HTTPS traffic and checks the OTLP JSON
// its file exporter writes.
//
// It needs root (eBPF), make, curl, python3 and the Go module proxy (the
// first ocb build takes about two minutes). Set TLSTAP_COLLECTOR to the path
// of an already built collector to skip the build.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

func TestCollectorEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the tlstap receiver loads eBPF programs")
	}
	for _, bin := range []string{"curl", "python3", "make"} {
		_, err := exec.LookPath(bin)
		require.NoError(t, err, "%s is needed (make deps installs it)", bin)
	}
	root := repoRoot(t)
	collector := buildCollector(t, root)

	dir := t.TempDir()
	certFile, keyFile := writeSelfSignedCert(t, dir)
	port := startHTTPSServer(t, dir, certFile, keyFile)

	out := filepath.Join(dir, "otlp.json")
	startCollector(t, root, collector, out)

	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	res := &results{path: out}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("file exporter output:\n%s", res.raw.String())
		}
	})

	// Warm up until a capture shows up: probes attach asynchronously.
	warm := false
	for i := 0; i < 60 && !warm; i++ {
		url := fmt.Sprintf("%s/warmup?i=%d", base, i)
		curl(t, "-o", "/dev/null", url)
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) && !warm {
			time.Sleep(100 * time.Millisecond)
			res.load(t)
			warm = res.clientSpan("curl", url) != nil
		}
	}
	require.True(t, warm, "no curl exchange was captured within 60s")

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	requests := []struct {
		name       string
		args       []string
		url        string
		method     string
		status     int64
		reqBody    string
		respBody   string
		spanStatus ptrace.StatusCode
	}{
		{
			name: "get", url: base + "/hello?x=1", method: "GET", status: 200,
			args:       []string{"-H", "User-Agent: tlstap-e2e/1", "-H", "Authorization: Bearer s3cr3t", "-H", "traceparent: 00-" + traceID + "-" + parentID + "-01"},
			respBody:   "hello from tlstap e2e\n",
			spanStatus: ptrace.StatusCodeUnset,
		},
		{
			name: "post", url: base + "/echo", method: "POST", status: 201,
			args:       []string{"-H", "User-Agent: tlstap-e2e/1", "-H", "Content-Type: application/json", "--data-binary", `{"item":"tlstap","n":42}`},
			reqBody:    `{"item":"tlstap","n":42}`,
			respBody:   `{"echo":{"item":"tlstap","n":42}}`,
			spanStatus: ptrace.StatusCodeUnset,
		},
		{
			name: "not found", url: base + "/missing", method: "GET", status: 404,
			args:       []string{"-H", "User-Agent: tlstap-e2e/1"},
			respBody:   "not found\n",
			spanStatus: ptrace.StatusCodeError, // >= 400 on a client span
		},
	}
	for _, r := range requests {
		curl(t, append(append([]string{"-o", "/dev/null"}, r.args...), r.url)...)
	}

	// Wait for every span and log record.
	require.Eventually(t, func() bool {
		res.load(t)
		for _, r := range requests {
			s := res.clientSpan("curl", r.url)
			if s == nil || res.logFor(s.span.SpanID()) == nil {
				return false
			}
		}
		return true
	}, 30*time.Second, 200*time.Millisecond, "not every exchange arrived")

	for _, r := range requests {
		t.Run(r.name, func(t *testing.T) {
			s := res.clientSpan("curl", r.url)
			require.NotNil(t, s)
			span := s.span

			// Resource: the curl process.
			resAttrs := s.resource.AsRaw()
			assert.Equal(t, "curl", resAttrs["process.executable.name"])
			assert.Contains(t, resAttrs["process.executable.path"], "curl")
			assert.Greater(t, resAttrs["process.pid"], int64(0))
			assert.NotEmpty(t, resAttrs["process.creation.time"])
			assert.Contains(t, resAttrs["process.command_args"], r.url)
			assert.Equal(t, "root", resAttrs["process.owner"])
			host, _ := os.Hostname()
			assert.Equal(t, host, resAttrs["host.name"])

			// Span.
			assert.Equal(t, r.method, span.Name())
			assert.Equal(t, ptrace.SpanKindClient, span.Kind())
			assert.Equal(t, r.spanStatus, span.Status().Code())
			assert.True(t, span.EndTimestamp() >= span.StartTimestamp())
			assert.InDelta(t, time.Now().UnixNano(), span.StartTimestamp().AsTime().UnixNano(), float64(5*time.Minute))
			a := span.Attributes().AsRaw()
			assert.Equal(t, r.method, a["http.request.method"])
			assert.Equal(t, r.url, a["url.full"])
			assert.Equal(t, "127.0.0.1", a["server.address"])
			assert.Equal(t, int64(port), a["server.port"])
			assert.Equal(t, "127.0.0.1", a["network.peer.address"])
			assert.Equal(t, int64(port), a["network.peer.port"])
			assert.Equal(t, "http", a["network.protocol.name"])
			assert.Equal(t, "1.1", a["network.protocol.version"])
			assert.Equal(t, "tcp", a["network.transport"])
			assert.Equal(t, r.status, a["http.response.status_code"])
			assert.Equal(t, "tlstap-e2e/1", a["user_agent.original"])
			assert.Equal(t, int64(len(r.reqBody)), a["http.request.body.size"])
			assert.Equal(t, int64(len(r.respBody)), a["http.response.body.size"])
			assert.Equal(t, "openssl", a["tlstap.tls.library"])
			assert.NotContains(t, a, "tlstap.flags", "a clean capture has no flags")
			if r.status >= 400 {
				assert.Equal(t, strconv.FormatInt(r.status, 10), a["error.type"])
			} else {
				assert.NotContains(t, a, "error.type")
			}
			if r.name == "get" {
				assert.Equal(t, traceID, span.TraceID().String(), "traceparent honoured")
				assert.Equal(t, parentID, span.ParentSpanID().String())
			} else {
				assert.True(t, span.ParentSpanID().IsEmpty())
			}

			// Log record.
			l := res.logFor(span.SpanID())
			require.NotNil(t, l)
			assert.Equal(t, "tlstap.http.exchange", l.EventName())
			assert.Equal(t, fmt.Sprintf("%s %s -> %d", r.method, r.url, r.status), l.Body().Str())
			assert.Equal(t, span.TraceID(), l.TraceID())
			la := l.Attributes().AsRaw()
			for k, v := range a {
				assert.Equal(t, v, la[k], "log attribute %s", k)
			}
			assert.Equal(t, r.respBody, la["http.response.body.content"])
			if r.reqBody != "" {
				assert.Equal(t, r.reqBody, la["http.request.body.content"])
				assert.Equal(t, []any{"application/json"}, la["http.request.header.content-type"])
			} else {
				assert.NotContains(t, la, "http.request.body.content")
			}
			assert.Equal(t, []any{"tlstap-e2e/1"}, la["http.request.header.user-agent"])
			assert.Equal(t, []any{fmt.Sprintf("127.0.0.1:%d", port)}, la["http.request.header.host"])
			if r.name == "get" {
				assert.Equal(t, []any{"REDACTED"}, la["http.request.header.authorization"])
			}
			assert.NotEmpty(t, la["http.response.header.content-type"])
		})
	}

	// The python server's side of the same exchange is a SERVER span.
	t.Run("server side", func(t *testing.T) {
		var found bool
		for _, s := range res.spans {
			a := s.span.Attributes().AsRaw()
			if s.span.Kind() == ptrace.SpanKindServer && a["url.path"] == "/echo" {
				found = true
				assert.Equal(t, "POST", s.span.Name())
				assert.Equal(t, "https", a["url.scheme"])
				assert.Equal(t, int64(201), a["http.response.status_code"])
				assert.Equal(t, "127.0.0.1", a["client.address"])
				assert.Contains(t, s.resource.AsRaw()["process.executable.name"], "python")
			}
		}
		assert.True(t, found, "no server span for POST /echo from the python server")
	})
}

// results holds what the file exporter wrote so far.
type results struct {
	path  string
	raw   bytes.Buffer
	spans []capturedSpan
	logs  []plog.LogRecord
}

type capturedSpan struct {
	span     ptrace.Span
	resource pcommon.Map
}

func (r *results) load(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile(r.path)
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
						r.logs = append(r.logs, lr.At(k))
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

func (r *results) logFor(id pcommon.SpanID) *plog.LogRecord {
	for i := range r.logs {
		if r.logs[i].SpanID() == id {
			return &r.logs[i]
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

// buildCollector builds the ocb collector with the project's Makefile
// fragment, or uses $TLSTAP_COLLECTOR.
func buildCollector(t *testing.T, root string) string {
	t.Helper()
	if p := os.Getenv("TLSTAP_COLLECTOR"); p != "" {
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "-f", "mk/collector.mk", "collector")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "building the collector:\n%s", out)
	bin := filepath.Join(root, "build", "tlstap-collector", "tlstap-collector")
	_, err = os.Stat(bin)
	require.NoError(t, err)
	return bin
}

// writeSelfSignedCert writes a certificate for 127.0.0.1 and localhost.
func writeSelfSignedCert(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "tlstap-e2e"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
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

// startCollector runs the collector with testdata/collector/file.yaml and
// waits until it reports that it is running.
func startCollector(t *testing.T, root, bin, out string) {
	t.Helper()
	cmd := exec.Command(bin, "--config", filepath.Join(root, "testdata", "collector", "file.yaml"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "TLSTAP_OUT="+out)
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
			t.Errorf("collector did not stop on SIGTERM within 30s")
		}
		if t.Failed() {
			t.Logf("collector logs:\n%s", collectorLogs())
		}
	})
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("collector exited before it was ready (%v):\n%s", waitErr, collectorLogs())
	case <-time.After(60 * time.Second):
		t.Fatalf("collector not ready within 60s:\n%s", collectorLogs())
	}
}

func curl(t *testing.T, args ...string) {
	t.Helper()
	all := append([]string{"-sS", "-k", "--http1.1", "--max-time", "10"}, args...)
	out, err := exec.Command("curl", all...).CombinedOutput()
	require.NoError(t, err, "curl %v: %s", args, out)
}
