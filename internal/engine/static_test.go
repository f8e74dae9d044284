package engine

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/exchange"
)

// OpenSSL linked statically into an ordinary C program (Debian's libssl.a),
// recognised from the executable itself: its .symtab when it has one, and
// reported (not hooked) when stripped.

// buildStaticSSLClient compiles testdata/sslclient.c with -static against
// libssl.a; stripped also removes its symbol tables.
func buildStaticSSLClient(t *testing.T, stripped bool) string {
	t.Helper()
	for _, tool := range []string{"gcc", "strip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (make deps installs gcc and libssl-dev)", tool)
		}
	}
	src, err := filepath.Abs("testdata/sslclient.c")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "sslclient-static")
	out, err := exec.Command("gcc", "-static", "-O2", "-o", bin, src, "-lssl", "-lcrypto", "-lpthread").CombinedOutput()
	if err != nil {
		t.Fatalf("gcc -static: %v\n%s", err, out)
	}
	if stripped {
		if out, err := exec.Command("strip", "--strip-all", bin).CombinedOutput(); err != nil {
			t.Fatalf("strip: %v\n%s", err, out)
		}
	}
	return bin
}

// startSSLClient starts the client, waits for its "ready", and returns a
// function that lets it send its request and returns what it printed.
func startSSLClient(t *testing.T, bin string, port int, path string) (*exec.Cmd, func() string) {
	t.Helper()
	cmd := exec.Command(bin, strconv.Itoa(port), path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	r := bufio.NewReader(stdout)
	if line, err := r.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("client did not start: %q %v", line, err)
	}
	return cmd, func() string {
		io.WriteString(stdin, "go\n")
		out, _ := io.ReadAll(r)
		return string(out)
	}
}

func TestStaticOpenSSLClient(t *testing.T) {
	bin := buildStaticSSLClient(t, false)
	c := startCapture(t, DefaultConfig())
	srv := startGoServer(t, true, echoHandler())
	cmd, send := startSSLClient(t, bin, srv.port, "/hello?static=1")
	c.waitHooked(t, bin) // hooked from its exec: no library to load
	if out := send(); !strings.HasSuffix(out, "\r\n\r\nhello world\n") {
		t.Fatalf("client printed %q", out)
	}
	ex := c.wait(t, cmd.Process.Pid, 1)[0]
	if ex.Role != exchange.RoleClient || ex.Request.Method != "GET" || ex.Request.Target != "/hello?static=1" ||
		header(ex.Request, "User-Agent") != "sslclient-static" {
		t.Errorf("request %v %s %s %+v", ex.Role, ex.Request.Method, ex.Request.Target, ex.Request.Headers)
	}
	if ex.Response == nil || ex.Response.StatusCode != 200 || string(ex.Response.Body) != "hello world\n" || header(ex.Response, "X-Server") != "tlstap-test" {
		t.Errorf("response %+v", ex.Response)
	}
	if ex.Process.ExePath != bin || ex.Process.ExeName != "sslclient-static" {
		t.Errorf("process %+v", ex.Process)
	}
	if !ex.Conn.TLS || ex.Conn.Source != "openssl" || ex.Conn.Remote.Port() != uint16(srv.port) || ex.Conn.Local.Port() == 0 {
		t.Errorf("conn %+v", ex.Conn)
	}
	if ex.Flags != 0 {
		t.Errorf("flags %v", ex.Flags.Names())
	}
}

// A stripped static OpenSSL cannot be hooked: the agent says so (one
// warning naming the file, attach_errors + 1) and emits nothing for it.
func TestStaticOpenSSLStrippedReported(t *testing.T) {
	bin := buildStaticSSLClient(t, true)
	c, logs := startCaptureObserved(t, DefaultConfig())
	before := c.eng.Stats().AttachErrors
	srv := startGoServer(t, true, echoHandler())
	cmd, send := startSSLClient(t, bin, srv.port, "/hello")
	warned := func() bool {
		for _, e := range logs.FilterMessageSnippet("stripped").All() {
			if e.ContextMap()["path"] == bin || strings.HasSuffix(e.ContextMap()["path"].(string), "/exe") {
				return true
			}
		}
		return false
	}
	waitFor(t, warned)
	if got := c.eng.Stats().AttachErrors; got < before+1 {
		t.Errorf("attach_errors = %d, want at least %d", got, before+1)
	}
	if out := send(); !strings.HasSuffix(out, "\r\n\r\nhello world\n") {
		t.Fatalf("client printed %q", out)
	}
	// Its plaintext is out of reach, and its socket carries ciphertext:
	// nothing may be emitted for it. A second, hooked client run after it
	// shows the pipeline was flowing.
	other, _ := run(t, "curl", "-sk", "https://127.0.0.1:"+strconv.Itoa(srv.port)+"/after")
	c.wait(t, other, 1)
	time.Sleep(100 * time.Millisecond)
	if exs := c.of(cmd.Process.Pid); len(exs) != 0 {
		t.Errorf("got %d exchanges from the stripped client", len(exs))
	}
	if n := len(logs.FilterMessageSnippet("stripped").All()); n != 1 {
		t.Errorf("%d warnings, want one per file", n)
	}
	_ = os.Remove(bin)
}
