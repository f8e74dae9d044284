package engine

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/tlstap/tlstap/internal/exchange"
)

// GnuTLS clients and servers, captured through gnutls_record_send2/recv:
// wget (links libgnutls), git (libcurl-gnutls) and gnutls-serv.

// checkGnuTLSConn asserts the connection fields of a GnuTLS exchange.
func checkGnuTLSConn(t *testing.T, ex *exchange.Exchange, remotePort int) {
	t.Helper()
	if !ex.Conn.TLS || ex.Conn.Source != "gnutls" {
		t.Errorf("conn = %+v, want TLS from gnutls", ex.Conn)
	}
	if ex.Conn.Remote.Port() != uint16(remotePort) || ex.Conn.Remote.Addr().String() != "127.0.0.1" {
		t.Errorf("remote = %v, want 127.0.0.1:%d", ex.Conn.Remote, remotePort)
	}
	if ex.Conn.Local.Port() == 0 || ex.Conn.Local.Addr().String() != "127.0.0.1" {
		t.Errorf("local = %v", ex.Conn.Local)
	}
}

func TestWgetGnuTLSClient(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	srv := startGoServer(t, true, echoHandler())
	url := fmt.Sprintf("https://127.0.0.1:%d/hello?x=1", srv.port)
	pid, body := run(t, "wget", "-q", "--no-check-certificate", "--header", "X-Test: wget", "-O", "-", url)
	if string(body) != "hello world\n" {
		t.Fatalf("wget got %q", body)
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
	if got := header(req, "X-Test"); got != "wget" {
		t.Errorf("X-Test = %q", got)
	}
	if got := header(req, "User-Agent"); !strings.HasPrefix(got, "Wget/") {
		t.Errorf("User-Agent = %q", got)
	}
	if got, want := header(req, "Host"), fmt.Sprintf("127.0.0.1:%d", srv.port); got != want {
		t.Errorf("Host = %q, want %q", got, want)
	}
	if resp == nil || resp.StatusCode != 200 || string(resp.Body) != "hello world\n" || resp.BodySize != 12 {
		t.Fatalf("response = %+v", resp)
	}
	if got := header(resp, "X-Server"); got != "tlstap-test" {
		t.Errorf("X-Server = %q", got)
	}
	if ex.Process.PID != pid || ex.Process.ExeName != "wget" || ex.Process.ExePath != "/usr/bin/wget" {
		t.Errorf("process = %+v", ex.Process)
	}
	checkGnuTLSConn(t, ex, srv.port)
	if ex.Flags != 0 {
		t.Errorf("flags = %v", ex.Flags.Names())
	}
}

// A POST body through gnutls_record_send, and a response larger than one
// TLS record (16 KiB) through several gnutls_record_recv calls.
func TestWgetGnuTLSPostAndLargeResponse(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBodyBytes = 256 << 10
	c := startCapture(t, cfg)
	srv := startGoServer(t, true, echoHandler())
	payload := string(pattern(3000))
	pid, body := run(t, "wget", "-q", "--no-check-certificate", "--post-data", payload, "-O", "-",
		fmt.Sprintf("https://127.0.0.1:%d/upload", srv.port))
	ex := c.wait(t, pid, 1)[0]
	if ex.Request.Method != "POST" || ex.Request.Target != "/upload" || string(ex.Request.Body) != payload || ex.Request.BodySize != 3000 {
		t.Errorf("request %s %s body %d bytes (size %d)", ex.Request.Method, ex.Request.Target, len(ex.Request.Body), ex.Request.BodySize)
	}
	if ex.Response == nil || ex.Response.StatusCode != 201 || string(ex.Response.Body) != string(body) {
		t.Errorf("response %+v, wget printed %q", ex.Response, body)
	}

	const big = 100000
	pid, body = run(t, "wget", "-q", "--no-check-certificate", "-O", "-", fmt.Sprintf("https://127.0.0.1:%d/big/%d", srv.port, big))
	if len(body) != big {
		t.Fatalf("wget got %d bytes", len(body))
	}
	ex = c.wait(t, pid, 1)[0]
	if ex.Response == nil || ex.Response.StatusCode != 200 || ex.Response.BodySize != big || !bytes.Equal(ex.Response.Body, pattern(big)) {
		t.Errorf("response status %v body %d bytes (size %d)", ex.Response.StatusCode, len(ex.Response.Body), ex.Response.BodySize)
	}
	if ex.Flags != 0 {
		t.Errorf("flags = %v", ex.Flags.Names())
	}
}

// git's HTTPS goes through libcurl-gnutls: the request of `git ls-remote`
// against a dumb endpoint.
func TestGitLsRemoteGnuTLS(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	const refs = "0123456789abcdef0123456789abcdef01234567\trefs/heads/main\n"
	mux := http.NewServeMux()
	mux.HandleFunc("/repo.git/info/refs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain") // a dumb server: no smart content type
		io.WriteString(w, refs)
	})
	srv := startGoServer(t, true, mux)
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Fatal("git is needed (make deps installs it)")
	}
	cmd := exec.Command(gitBin, "ls-remote", fmt.Sprintf("https://127.0.0.1:%d/repo.git", srv.port))
	cmd.Env = append(os.Environ(), "GIT_SSL_NO_VERIFY=1", "GIT_TERMINAL_PROMPT=0", "HOME="+t.TempDir())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("git ls-remote: %v\n%s", err, errb.String())
	}
	if out.String() != refs {
		t.Fatalf("git ls-remote printed %q", out.String())
	}
	// git runs git-remote-https (through a `git remote-https` child): find
	// the exchange by its server port.
	var ex *exchange.Exchange
	waitFor(t, func() bool {
		for _, e := range c.snapshot() {
			if e.Request != nil && strings.HasPrefix(e.Request.Target, "/repo.git/info/refs") && e.Conn.Remote.Port() == uint16(srv.port) {
				ex = e
				return true
			}
		}
		return false
	})
	if ex.Role != exchange.RoleClient || ex.Request.Method != "GET" || ex.Request.Target != "/repo.git/info/refs?service=git-upload-pack" {
		t.Errorf("request %v %s %s", ex.Role, ex.Request.Method, ex.Request.Target)
	}
	if ua := header(ex.Request, "User-Agent"); !strings.HasPrefix(ua, "git/") {
		t.Errorf("User-Agent = %q", ua)
	}
	if ex.Response == nil || ex.Response.StatusCode != 200 || string(ex.Response.Body) != refs {
		t.Errorf("response %+v", ex.Response)
	}
	if ex.Process.ExeName != "git-remote-https" && ex.Process.ExeName != "git-remote-http" {
		t.Errorf("process = %+v", ex.Process)
	}
	checkGnuTLSConn(t, ex, srv.port)
}

// gnutls-serv --http answers every request with a page that echoes the
// request headers, HTTP/1.0 without a length: the response ends when the
// server ends the session (gnutls_bye/gnutls_deinit). Both sides are
// captured: curl through OpenSSL, gnutls-serv through GnuTLS.
func TestGnuTLSServer(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	files, _ := makeCert(t)
	port := freePort(t)
	server := background(t, t.TempDir(), "gnutls-serv", "--http", "--x509certfile", files.cert, "--x509keyfile", files.key,
		"-p", strconv.Itoa(port))
	waitPort(t, port)
	pid, body := run(t, "curl", "-sk", "-H", "X-Probe: gnutls-serv", fmt.Sprintf("https://127.0.0.1:%d/gnutls/path?q=1", port))
	if !strings.Contains(string(body), "X-Probe: gnutls-serv") {
		t.Fatalf("curl got %q", body)
	}

	var sv *exchange.Exchange
	waitFor(t, func() bool {
		for _, e := range c.of(server.Process.Pid) {
			if e.Request != nil && e.Request.Target == "/gnutls/path?q=1" {
				sv = e
				return true
			}
		}
		return false
	})
	if sv.Role != exchange.RoleServer || sv.Request.Method != "GET" || header(sv.Request, "X-Probe") != "gnutls-serv" {
		t.Errorf("server side: %v %s %+v", sv.Role, sv.Request.Method, sv.Request.Headers)
	}
	if sv.Response == nil || sv.Response.StatusCode != 200 || sv.Response.Proto != "HTTP/1.0" {
		t.Fatalf("server response %+v", sv.Response)
	}
	if !bytes.Equal(sv.Response.Body, body) || sv.Response.BodySize != int64(len(body)) {
		t.Errorf("server response body %d bytes (size %d), curl got %d", len(sv.Response.Body), sv.Response.BodySize, len(body))
	}
	if sv.Process.PID != server.Process.Pid || sv.Process.ExeName != "gnutls-serv" || sv.Process.ExePath != "/usr/bin/gnutls-serv" {
		t.Errorf("server process = %+v", sv.Process)
	}
	if !sv.Conn.TLS || sv.Conn.Source != "gnutls" || sv.Conn.Local.Port() != uint16(port) {
		t.Errorf("server conn = %+v", sv.Conn)
	}
	if sv.Flags != 0 {
		t.Errorf("server flags = %v", sv.Flags.Names())
	}

	cl := c.wait(t, pid, 1)[0]
	if cl.Role != exchange.RoleClient || cl.Request.Target != "/gnutls/path?q=1" || cl.Conn.Source != "openssl" {
		t.Errorf("client side: %v %s %+v", cl.Role, cl.Request.Target, cl.Conn)
	}
	if cl.Response == nil || !bytes.Equal(cl.Response.Body, body) {
		t.Errorf("client response %+v", cl.Response)
	}
	if sv.Conn.Remote.Port() != cl.Conn.Local.Port() || cl.Conn.Remote.Port() != uint16(port) {
		t.Errorf("ports: server local=%v remote=%v, client local=%v remote=%v", sv.Conn.Local, sv.Conn.Remote, cl.Conn.Local, cl.Conn.Remote)
	}
}
