package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/exchange"
)

// echoHandler answers /hello with a fixed body, /r/N with "reply N",
// /big/N with N bytes, and POST with the size and digest of what it read.
func echoHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Server", "tlstap-test")
		io.WriteString(w, "hello world\n")
	})
	mux.HandleFunc("/r/", func(w http.ResponseWriter, r *http.Request) {
		// The id in a header too: a response whose body was lost still
		// names the request it answers.
		w.Header().Set("X-Reply-To", strings.TrimPrefix(r.URL.Path, "/r/"))
		io.WriteString(w, "reply "+strings.TrimPrefix(r.URL.Path, "/r/"))
	})
	mux.HandleFunc("/big/", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/big/"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(pattern(n))
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		w.WriteHeader(201)
		fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
	})
	return mux
}

// pattern is a deterministic, non-repeating-looking payload.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[(i*7+i/36)%36]
	}
	return b
}

func TestCurlHTTPSClient(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	srv := startGoServer(t, true, echoHandler())
	url := fmt.Sprintf("https://127.0.0.1:%d/hello?x=1", srv.port)
	pid, body := run(t, "curl", "-sk", "-H", "X-Test: abc", url)
	if string(body) != "hello world\n" {
		t.Fatalf("curl got %q", body)
	}
	exs := c.wait(t, pid, 1)
	if len(exs) != 1 {
		t.Fatalf("got %d exchanges, want 1", len(exs))
	}
	ex := exs[0]
	if ex.Role != exchange.RoleClient {
		t.Errorf("role = %v, want client", ex.Role)
	}
	req, resp := ex.Request, ex.Response
	if req.Method != "GET" || req.Target != "/hello?x=1" || req.Proto != "HTTP/1.1" {
		t.Errorf("request line = %s %s %s", req.Method, req.Target, req.Proto)
	}
	if got := header(req, "X-Test"); got != "abc" {
		t.Errorf("X-Test = %q", got)
	}
	if got, want := header(req, "Host"), fmt.Sprintf("127.0.0.1:%d", srv.port); got != want {
		t.Errorf("Host = %q, want %q", got, want)
	}
	if resp == nil || resp.StatusCode != 200 {
		t.Fatalf("response = %+v", resp)
	}
	if string(resp.Body) != "hello world\n" || resp.BodySize != 12 {
		t.Errorf("response body = %q (size %d)", resp.Body, resp.BodySize)
	}
	if got := header(resp, "X-Server"); got != "tlstap-test" {
		t.Errorf("X-Server = %q", got)
	}
	if ex.Process.PID != pid || ex.Process.ExeName != "curl" || ex.Process.ExePath != "/usr/bin/curl" {
		t.Errorf("process = %+v", ex.Process)
	}
	if !ex.Conn.TLS || ex.Conn.Source != "openssl" {
		t.Errorf("conn = %+v", ex.Conn)
	}
	if ex.Conn.Remote.Port() != uint16(srv.port) || ex.Conn.Remote.Addr().String() != "127.0.0.1" {
		t.Errorf("remote = %v, want 127.0.0.1:%d", ex.Conn.Remote, srv.port)
	}
	if ex.Conn.Local.Port() == 0 || ex.Conn.Local.Port() == uint16(srv.port) {
		t.Errorf("local = %v", ex.Conn.Local)
	}
	if ex.Flags != 0 {
		t.Errorf("flags = %v", ex.Flags.Names())
	}
	if ex.End.Before(ex.Start) || time.Since(ex.Start) > time.Minute || time.Since(ex.Start) < 0 {
		t.Errorf("times start=%v end=%v", ex.Start, ex.End)
	}
}

// 1000 requests on one keep-alive connection: every one captured, in order.
func TestCurlKeepAlive(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	srv := startGoServer(t, true, echoHandler())
	const n = 1000
	pid, _ := run(t, "curl", "-sk", fmt.Sprintf("https://127.0.0.1:%d/r/[1-%d]", srv.port, n))
	exs := c.wait(t, pid, n)
	if len(exs) != n {
		t.Fatalf("got %d exchanges, want %d", len(exs), n)
	}
	for i, ex := range exs {
		want := fmt.Sprintf("/r/%d", i+1)
		if ex.Request.Target != want {
			t.Errorf("exchange %d target %q, want %q", i, ex.Request.Target, want)
		}
		if ex.Response == nil || string(ex.Response.Body) != fmt.Sprintf("reply %d", i+1) {
			t.Errorf("exchange %d response %+v", i, ex.Response)
		}
		if ex.Conn.ID != exs[0].Conn.ID {
			t.Errorf("exchange %d on connection %d, want one connection %d", i, ex.Conn.ID, exs[0].Conn.ID)
		}
	}
}

func TestCurlPostLargeBody(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	srv := startGoServer(t, true, echoHandler())
	payload := pattern(1 << 20)
	file := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(file, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	pid, out := run(t, "curl", "-sk", "--data-binary", "@"+file, "-H", "Content-Type: text/plain",
		fmt.Sprintf("https://127.0.0.1:%d/upload", srv.port))
	sum := sha256.Sum256(payload)
	wantReply := fmt.Sprintf("%d %s", len(payload), hex.EncodeToString(sum[:]))
	if string(out) != wantReply {
		t.Fatalf("server saw %q, want %q", out, wantReply)
	}
	ex := c.wait(t, pid, 1)[0]
	req := ex.Request
	if req.Method != "POST" || req.Target != "/upload" {
		t.Errorf("request %s %s", req.Method, req.Target)
	}
	if req.BodySize != 1<<20 || !req.BodyTruncated || !ex.Flags.Has(exchange.RequestTruncated) {
		t.Errorf("body size %d truncated %v flags %v", req.BodySize, req.BodyTruncated, ex.Flags.Names())
	}
	if !bytes.Equal(req.Body, payload[:64<<10]) {
		t.Errorf("captured body differs from the first 64 KiB sent (len %d)", len(req.Body))
	}
	if ex.Response == nil || ex.Response.StatusCode != 201 || string(ex.Response.Body) != wantReply {
		t.Errorf("response %+v", ex.Response)
	}
}

func TestBodyBeyondLimitIsTruncated(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBodyBytes = 1000
	c := startCapture(t, cfg)
	srv := startGoServer(t, true, echoHandler())
	pid, out := run(t, "curl", "-sk", fmt.Sprintf("https://127.0.0.1:%d/big/5000", srv.port))
	if len(out) != 5000 {
		t.Fatalf("curl read %d bytes", len(out))
	}
	ex := c.wait(t, pid, 1)[0]
	resp := ex.Response
	if resp == nil || resp.BodySize != 5000 || len(resp.Body) != 1000 || !resp.BodyTruncated {
		t.Fatalf("response body: size %d captured %d truncated %v", resp.BodySize, len(resp.Body), resp.BodyTruncated)
	}
	if !bytes.Equal(resp.Body, out[:1000]) {
		t.Errorf("captured body is not the first 1000 bytes")
	}
	if !ex.Flags.Has(exchange.ResponseTruncated) || ex.Flags.Has(exchange.Incomplete) {
		t.Errorf("flags = %v, want response_truncated only", ex.Flags.Names())
	}
}

const pyHTTPSServer = `
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"python says hi"
        if self.path == "/big":
            body = bytes((i * 7 + 3) % 251 for i in range(1 << 20))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
`

const pyHTTPSClient = `
import http.client, ssl, sys
ctx = ssl._create_unverified_context()
c = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), context=ctx)
c.request("GET", sys.argv[2] if len(sys.argv) > 2 else "/py/path?q=2", headers={"X-Client": "python"})
r = c.getresponse()
sys.stdout.buffer.write(r.read())
`

func TestPythonClientAndServer(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	files, _ := makeCert(t)
	dir := t.TempDir()
	port := freePort(t)
	server := background(t, dir, "python3", writeFile(t, dir, "server.py", pyHTTPSServer), strconv.Itoa(port), files.cert, files.key)
	waitPort(t, port)
	pid, out := run(t, "python3", writeFile(t, dir, "client.py", pyHTTPSClient), strconv.Itoa(port))
	if string(out) != "python says hi" {
		t.Fatalf("client got %q", out)
	}

	cl := c.wait(t, pid, 1)[0]
	if cl.Role != exchange.RoleClient || cl.Request.Method != "GET" || cl.Request.Target != "/py/path?q=2" {
		t.Errorf("client side: %v %s %s", cl.Role, cl.Request.Method, cl.Request.Target)
	}
	if header(cl.Request, "X-Client") != "python" || cl.Response == nil || string(cl.Response.Body) != "python says hi" {
		t.Errorf("client side exchange: %+v / %+v", cl.Request, cl.Response)
	}
	if cl.Process.ExeName != "python3" && !strings.HasPrefix(cl.Process.ExeName, "python3") {
		t.Errorf("client exe = %q", cl.Process.ExeName)
	}
	if cl.Conn.Remote.Port() != uint16(port) {
		t.Errorf("client remote = %v", cl.Conn.Remote)
	}

	sv := c.wait(t, server.Process.Pid, 1)[0]
	if sv.Role != exchange.RoleServer || sv.Request.Target != "/py/path?q=2" || sv.Response.StatusCode != 200 {
		t.Errorf("server side: %v %s %+v", sv.Role, sv.Request.Target, sv.Response)
	}
	if sv.Conn.Local.Port() != uint16(port) || sv.Conn.Remote.Port() != cl.Conn.Local.Port() {
		t.Errorf("server conn local=%v remote=%v, client local=%v", sv.Conn.Local, sv.Conn.Remote, cl.Conn.Local)
	}
	if string(sv.Response.Body) != "python says hi" || header(sv.Response, "Content-Type") != "text/plain" {
		t.Errorf("server response %+v", sv.Response)
	}
}

const nodeClient = `
const https = require('https');
const delay = parseInt(process.argv[3] || '0');
function go() {
  https.get({host: '127.0.0.1', port: parseInt(process.argv[2]), path: '/hello', rejectUnauthorized: false,
             headers: {'X-Node': 'yes'}}, res => {
    let body = '';
    res.on('data', d => body += d);
    res.on('end', () => { process.stdout.write(res.statusCode + ' ' + body); });
  });
}
if (process.argv[4] === 'stdin') { process.stdin.once('data', go); } else { setTimeout(go, delay); }
`

func TestNodeHTTPSClient(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	srv := startGoServer(t, true, echoHandler())
	dir := t.TempDir()
	// Started after the agent: the exec must be noticed and node's own
	// OpenSSL hooked within 200 ms.
	pid, out := run(t, "node", writeFile(t, dir, "client.js", nodeClient), strconv.Itoa(srv.port), "200")
	if string(out) != "200 hello world\n" {
		t.Fatalf("node got %q", out)
	}
	ex := c.wait(t, pid, 1)[0]
	if ex.Role != exchange.RoleClient || ex.Request.Method != "GET" || ex.Request.Target != "/hello" || header(ex.Request, "X-Node") != "yes" {
		t.Errorf("request %+v", ex.Request)
	}
	if ex.Response == nil || ex.Response.StatusCode != 200 || string(ex.Response.Body) != "hello world\n" {
		t.Errorf("response %+v", ex.Response)
	}
	if ex.Process.ExeName != "node" || !ex.Conn.TLS {
		t.Errorf("process %q conn %+v", ex.Process.ExeName, ex.Conn)
	}
}

func TestProcessRunningBeforeAgent(t *testing.T) {
	requireRoot(t)
	srv := startGoServer(t, true, echoHandler())
	dir := t.TempDir()
	// node links OpenSSL statically: only the scan of running processes at
	// start can find it (no exec or library load happens later).
	cmd := exec.Command("node", writeFile(t, dir, "client.js", nodeClient), strconv.Itoa(srv.port), "0", "stdin")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	time.Sleep(300 * time.Millisecond) // node is up and waiting
	c := startCapture(t, DefaultConfig())
	io.WriteString(stdin, "go\n")
	ex := c.wait(t, cmd.Process.Pid, 1)[0]
	if ex.Request.Target != "/hello" || ex.Response == nil || ex.Response.StatusCode != 200 || ex.Process.ExeName != "node" {
		t.Errorf("exchange %s %+v %s", ex.Request.Target, ex.Response, ex.Process.ExeName)
	}
}

func TestOpenSSLServerCloseDelimited(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	files, _ := makeCert(t)
	port := freePort(t)
	server := background(t, t.TempDir(), "openssl", "s_server", "-www", "-quiet", "-accept", strconv.Itoa(port), "-cert", files.cert, "-key", files.key)
	waitPort(t, port)
	pid, out := run(t, "curl", "-sk", "--http1.1", fmt.Sprintf("https://127.0.0.1:%d/page", port))
	if !bytes.Contains(out, []byte("<HTML>")) && !bytes.Contains(out, []byte("<html>")) {
		t.Fatalf("s_server replied %q", out)
	}
	cl := c.wait(t, pid, 1)[0]
	resp := cl.Response
	if resp == nil || resp.StatusCode != 200 {
		t.Fatalf("client response %+v flags %v", resp, cl.Flags.Names())
	}
	if _, ok := resp.Get("Content-Length"); ok {
		t.Fatalf("s_server -www sent a Content-Length; the test needs a close-delimited body")
	}
	// The body ends at close; compare with what curl printed.
	wantBody := out
	if len(wantBody) > 64<<10 {
		wantBody = wantBody[:64<<10]
	}
	if !bytes.Equal(resp.Body, wantBody) || resp.BodySize != int64(len(out)) {
		t.Errorf("close-delimited body: captured %d bytes (size %d), curl read %d", len(resp.Body), resp.BodySize, len(out))
	}
	if cl.Flags != 0 && cl.Flags != exchange.ResponseTruncated {
		t.Errorf("flags %v", cl.Flags.Names())
	}
	sv := c.wait(t, server.Process.Pid, 1)[0]
	if sv.Role != exchange.RoleServer || sv.Request.Target != "/page" || sv.Process.ExeName != "openssl" {
		t.Errorf("server side %v %s %s", sv.Role, sv.Request.Target, sv.Process.ExeName)
	}
	if sv.Response == nil || sv.Response.BodySize != int64(len(out)) {
		t.Errorf("server side response %+v", sv.Response)
	}
}

func TestPlainHTTP(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	dir := t.TempDir()
	writeFile(t, dir, "file.txt", "plain text content\n")
	port := freePort(t)
	server := background(t, dir, "python3", "-m", "http.server", "--bind", "127.0.0.1", strconv.Itoa(port))
	waitPort(t, port)
	pid, out := run(t, "curl", "-s", "-A", "tlstap-test/1", fmt.Sprintf("http://127.0.0.1:%d/file.txt", port))
	if string(out) != "plain text content\n" {
		t.Fatalf("curl got %q", out)
	}
	cl := c.wait(t, pid, 1)[0]
	if cl.Role != exchange.RoleClient || cl.Conn.TLS || cl.Conn.Source != "socket" {
		t.Errorf("client %v conn %+v", cl.Role, cl.Conn)
	}
	if cl.Request.Target != "/file.txt" || header(cl.Request, "User-Agent") != "tlstap-test/1" {
		t.Errorf("request %+v", cl.Request)
	}
	if cl.Response == nil || cl.Response.StatusCode != 200 || string(cl.Response.Body) != "plain text content\n" {
		t.Errorf("response %+v", cl.Response)
	}
	if cl.Conn.Remote.Port() != uint16(port) {
		t.Errorf("remote %v", cl.Conn.Remote)
	}
	sv := c.wait(t, server.Process.Pid, 1)[0]
	if sv.Role != exchange.RoleServer || sv.Request.Target != "/file.txt" || sv.Conn.Local.Port() != uint16(port) {
		t.Errorf("server %v %s local %v", sv.Role, sv.Request.Target, sv.Conn.Local)
	}
	if sv.Response == nil || string(sv.Response.Body) != "plain text content\n" {
		t.Errorf("server response %+v", sv.Response)
	}
}

// A 1 MiB body written by one SSL_write: the kernel copies only its per-call
// cap and reports the rest as a known-size skip. The exchange must say
// truncated with the true size, not incomplete.
func TestLargeSingleWrite(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	files, _ := makeCert(t)
	dir := t.TempDir()
	port := freePort(t)
	server := background(t, dir, "python3", writeFile(t, dir, "server.py", pyHTTPSServer), strconv.Itoa(port), files.cert, files.key)
	waitPort(t, port)
	pid, out := run(t, "python3", writeFile(t, dir, "client.py", pyHTTPSClient), strconv.Itoa(port), "/big")
	if len(out) != 1<<20 {
		t.Fatalf("client read %d bytes", len(out))
	}
	for _, ex := range []*exchange.Exchange{c.wait(t, server.Process.Pid, 1)[0], c.wait(t, pid, 1)[0]} {
		r := ex.Response
		if r == nil || r.BodySize != 1<<20 || !bytes.Equal(r.Body, out[:64<<10]) {
			t.Fatalf("%s side: response %+v", ex.Role, r)
		}
		if ex.Flags != exchange.ResponseTruncated {
			t.Errorf("%s side flags %v, want response_truncated only", ex.Role, ex.Flags.Names())
		}
	}
}
