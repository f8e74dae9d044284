package engine

import (
	"bufio"
	"context"
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
	"syscall"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/jvmattach"
)

// Java (JSSE) capture tests: real JVMs (OpenJDK from Debian), real TLS on
// loopback, the agent built from java/ by make. JVM start-ups are slow on
// the CI machines, so one test drives several scenarios with few JVMs.

func requireJava(t testing.TB) {
	t.Helper()
	requireRoot(t)
	for _, bin := range []string{"java", "javac", "keytool", "make"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is needed (make deps installs openjdk-17-jdk-headless)", bin)
			}
			t.Skipf("%s not installed", bin)
		}
	}
}

var agentBuild struct {
	once sync.Once
	dir  string
	err  error
}

// javaAgentDir builds the agent jars with the project's make target.
func javaAgentDir(t testing.TB) string {
	t.Helper()
	agentBuild.once.Do(func() {
		root, err := filepath.Abs("../..")
		if err != nil {
			agentBuild.err = err
			return
		}
		out, err := exec.Command("make", "-s", "-C", root, "java-agent").CombinedOutput()
		if err != nil {
			agentBuild.err = fmt.Errorf("make java-agent: %v\n%s", err, out)
			return
		}
		agentBuild.dir = filepath.Join(root, "build", "java")
	})
	if agentBuild.err != nil {
		t.Fatal(agentBuild.err)
	}
	return agentBuild.dir
}

// javaApp is testdata/java/TlsApp.java compiled, with a keystore, in a
// directory any user can read (one JVM runs as nobody).
type javaApp struct{ dir, keystore string }

func buildJavaApp(t testing.TB) javaApp {
	t.Helper()
	dir, err := os.MkdirTemp("", "tlstap-java-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := filepath.Abs("testdata/java/TlsApp.java")
	if err != nil {
		t.Fatal(err)
	}
	runTB(t, "javac", "-d", dir, src)
	ks := filepath.Join(dir, "ks.p12")
	runTB(t, "keytool", "-genkeypair", "-alias", "s", "-keyalg", "EC", "-keystore", ks, "-storetype", "PKCS12",
		"-storepass", "changeit", "-dname", "CN=localhost", "-ext", "SAN=ip:127.0.0.1,dns:localhost", "-validity", "2")
	if err := os.Chmod(ks, 0o644); err != nil {
		t.Fatal(err)
	}
	return javaApp{dir: dir, keystore: ks}
}

func runTB(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// jvm is a running TlsApp: commands on stdin, one reply line each.
type jvm struct {
	cmd    *exec.Cmd
	host   int // the JVM's host pid when cmd is not the JVM itself (0: it is)
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *syncBuffer
}

// syncBuffer is a bytes.Buffer safe to write from the process's copier.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (a javaApp) start(t testing.TB, uid int, jvmArgs []string, args ...string) *jvm {
	t.Helper()
	all := append(append([]string{"-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", a.dir}, jvmArgs...), append([]string{"TlsApp"}, args...)...)
	cmd := exec.Command("java", all...)
	cmd.Dir = a.dir
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	}
	return startJVM(t, cmd)
}

// startJVM starts cmd, a TlsApp JVM or a command that runs one, and waits
// for its READY; it is killed at cleanup.
func startJVM(t testing.TB, cmd *exec.Cmd) *jvm {
	t.Helper()
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errb := &syncBuffer{}
	cmd.Stderr = errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	j := &jvm{cmd: cmd, in: in, out: bufio.NewReader(stdout), stderr: errb}
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("JVM %d stderr:\n%s", cmd.Process.Pid, errb.String())
		}
	})
	if line := j.line(t); line != "READY" {
		t.Fatalf("JVM said %q, want READY", line)
	}
	return j
}

func (j *jvm) pid() int {
	if j.host != 0 {
		return j.host
	}
	return j.cmd.Process.Pid
}

func (j *jvm) line(t testing.TB) string {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() { s, err := j.out.ReadString('\n'); ch <- res{strings.TrimSpace(s), err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("JVM %d: %v", j.pid(), r.err)
		}
		return r.s
	case <-time.After(60 * time.Second):
		t.Fatalf("JVM %d: no reply within 60s", j.pid())
	}
	return ""
}

// do sends one client command ("h1 GET url") and returns the reply line.
func (j *jvm) do(t *testing.T, command string) string {
	t.Helper()
	if _, err := io.WriteString(j.in, command+"\n"); err != nil {
		t.Fatal(err)
	}
	return j.line(t)
}

// waitAttached waits until the engine has attached to n JVMs.
func (c *capture) waitAttached(t *testing.T, n uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for c.eng.Stats().JVMsAttached < n {
		if time.Now().After(deadline) {
			t.Fatalf("attached to %d JVMs, want %d (failed: %d)", c.eng.Stats().JVMsAttached, n, c.eng.Stats().JVMAttachFailed)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// agentStatus asks the agent in pid for its counters (the "status" command
// over the attach socket) and returns them.
func agentStatus(t *testing.T, dir string, pid int) map[string]string {
	t.Helper()
	tg, err := jvmattach.Inspect("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status := fmt.Sprintf("/tmp/.tlstap-java-%d", tg.NSPID)
	if err := jvmattach.LoadAgent(ctx, "/proc", tg, filepath.Join(dir, agentJar), "status,"+status); err != nil {
		t.Fatal(err)
	}
	st, err := readAgentStatus(filepath.Join(tg.Root, status), tg.UID)
	os.Remove(filepath.Join(tg.Root, status))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// findExchange returns the exchange of pid whose request target is target.
func (c *capture) findExchange(t *testing.T, pid int, target string) *exchange.Exchange {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, ex := range c.of(pid) {
			if ex.Request != nil && ex.Request.Target == target {
				return ex
			}
		}
		if time.Now().After(deadline) {
			for _, ex := range c.of(pid) {
				t.Logf("pid %d has: %s %s role=%s", pid, method(ex), target, ex.Role)
			}
			t.Fatalf("pid %d: no exchange for %s", pid, target)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func javaConfig(dir string) Config {
	cfg := DefaultConfig()
	cfg.TLSProbes = append(cfg.TLSProbes, ProbeJava)
	cfg.JavaAgentDir = dir
	return cfg
}

// TestJavaJSSE: an HttpsServer JVM (run as another user, nobody) that has
// served requests before tlstap starts is attached at run time and its
// exchanges with curl are captured with exact fields; a client JVM started
// after tlstap is attached before its first request, and its HttpClient
// (HTTP/1.1 and HTTP/2) and HttpsURLConnection exchanges are captured on
// the client side, the server JVM's side of the same requests too. When
// tlstap stops, the JVMs keep serving, and their agents are inert; started
// again, tlstap attaches to them again.
func TestJavaJSSE(t *testing.T) {
	requireJava(t)
	dir := javaAgentDir(t)
	app := buildJavaApp(t)
	port := freePort(t)
	const nobody = 65534
	server := app.start(t, nobody, nil, "server", strconv.Itoa(port), app.keystore, "changeit")
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	for i := 0; i < 3; i++ { // served before tlstap exists
		if _, out := run(t, "curl", "-sk", base+"/before"); string(out) != "hello /before" {
			t.Fatalf("server replied %q", out)
		}
	}

	c := startCapture(t, javaConfig(dir))
	c.waitAttached(t, 1)

	t.Run("HttpsServer", func(t *testing.T) {
		curlPID, out := run(t, "curl", "-sk", "--http1.1", "-H", "X-Test: java-server", base+"/after?x=1")
		if string(out) != "hello /after" {
			t.Fatalf("server replied %q", out)
		}
		sv := c.findExchange(t, server.pid(), "/after?x=1")
		if sv.Role != exchange.RoleServer || sv.Request.Method != "GET" || sv.Request.Proto != "HTTP/1.1" {
			t.Errorf("server exchange: role %v method %q proto %q", sv.Role, sv.Request.Method, sv.Request.Proto)
		}
		if header(sv.Request, "X-Test") != "java-server" || !strings.HasPrefix(header(sv.Request, "User-Agent"), "curl/") {
			t.Errorf("request headers %v", sv.Request.Headers)
		}
		if sv.Response == nil || sv.Response.StatusCode != 200 || string(sv.Response.Body) != "hello /after" ||
			sv.Response.BodySize != 12 || header(sv.Response, "X-Served-By") != "jdk-httpsserver" {
			t.Fatalf("server response %+v", sv.Response)
		}
		if sv.Process.PID != server.pid() || sv.Process.ExeName != "java" || sv.Process.Owner != "nobody" {
			t.Errorf("process %+v", sv.Process)
		}
		if !sv.Conn.TLS || sv.Conn.Source != ProbeJava || sv.Flags != 0 {
			t.Errorf("conn %+v flags %v", sv.Conn, sv.Flags.Names())
		}
		// The curl side (OpenSSL probes) names the same connection from
		// the other end.
		cl := c.findExchange(t, curlPID, "/after?x=1")
		if sv.Conn.Local.String() != fmt.Sprintf("127.0.0.1:%d", port) || sv.Conn.Remote != cl.Conn.Local || cl.Conn.Remote != sv.Conn.Local {
			t.Errorf("addresses: server %v <- %v, curl %v -> %v", sv.Conn.Local, sv.Conn.Remote, cl.Conn.Local, cl.Conn.Remote)
		}
		post := strings.Repeat("p", 5000)
		_, out = run(t, "curl", "-sk", "--http1.1", "-d", post, base+"/echo")
		if string(out) != post {
			t.Fatalf("echo replied %d bytes", len(out))
		}
		ex := c.findExchange(t, server.pid(), "/echo")
		if ex.Request.Method != "POST" || string(ex.Request.Body) != post || ex.Response.StatusCode != 201 || string(ex.Response.Body) != post {
			t.Errorf("POST: %s req %d bytes, status %d, resp %d bytes", ex.Request.Method, len(ex.Request.Body), ex.Response.StatusCode, len(ex.Response.Body))
		}
	})

	// A Go HTTP/2 server (this test process: never captured itself).
	h2srv := startInProcessH2(t)

	client := app.start(t, 0, nil, "client")
	c.waitAttached(t, 2)

	t.Run("HttpClientHTTP1", func(t *testing.T) {
		if got := client.do(t, "h1 GET "+base+"/from-httpclient"); got != "200 HTTP_1_1 hello /from-httpclient" {
			t.Fatalf("client got %q", got)
		}
		cl := c.findExchange(t, client.pid(), "/from-httpclient")
		if cl.Role != exchange.RoleClient || cl.Request.Method != "GET" || header(cl.Request, "User-Agent") != "tlstap-test-h1" ||
			header(cl.Request, "Host") != fmt.Sprintf("127.0.0.1:%d", port) {
			t.Errorf("client request %v %+v", cl.Role, cl.Request)
		}
		if cl.Response == nil || cl.Response.StatusCode != 200 || string(cl.Response.Body) != "hello /from-httpclient" {
			t.Fatalf("client response %+v", cl.Response)
		}
		if cl.Process.PID != client.pid() || cl.Process.ExeName != "java" || cl.Conn.Source != ProbeJava || !cl.Conn.TLS {
			t.Errorf("client process %+v conn %+v", cl.Process, cl.Conn)
		}
		sv := c.findExchange(t, server.pid(), "/from-httpclient")
		if sv.Role != exchange.RoleServer || sv.Response.StatusCode != 200 {
			t.Errorf("server side %v %+v", sv.Role, sv.Response)
		}
		if cl.Conn.Remote.String() != fmt.Sprintf("127.0.0.1:%d", port) || cl.Conn.Local != sv.Conn.Remote || sv.Conn.Local != cl.Conn.Remote {
			t.Errorf("addresses: client %v -> %v, server %v <- %v", cl.Conn.Local, cl.Conn.Remote, sv.Conn.Local, sv.Conn.Remote)
		}
		if got := client.do(t, "h1 POST "+base+"/post-httpclient ping-from-java"); got != "201 HTTP_1_1 ping-from-java" {
			t.Fatalf("client got %q", got)
		}
		p := c.findExchange(t, client.pid(), "/post-httpclient")
		if string(p.Request.Body) != "ping-from-java" || p.Response.StatusCode != 201 || string(p.Response.Body) != "ping-from-java" {
			t.Errorf("POST %q -> %d %q", p.Request.Body, p.Response.StatusCode, p.Response.Body)
		}
	})

	t.Run("HttpClientHTTP2", func(t *testing.T) {
		url := fmt.Sprintf("https://127.0.0.1:%d/h2path?q=2", h2srv)
		if got := client.do(t, "h2 GET "+url); got != "200 HTTP_2 h2 /h2path" {
			t.Fatalf("client got %q", got)
		}
		cl := c.findExchange(t, client.pid(), "/h2path?q=2")
		if cl.Role != exchange.RoleClient || cl.Request.Proto != "HTTP/2" || cl.Request.Method != "GET" || header(cl.Request, "User-Agent") != "tlstap-test-h2" {
			t.Errorf("h2 request %v %+v", cl.Role, cl.Request)
		}
		if cl.Response == nil || cl.Response.StatusCode != 200 || string(cl.Response.Body) != "h2 /h2path" {
			t.Fatalf("h2 response %+v", cl.Response)
		}
		if cl.Conn.Remote.Port() != uint16(h2srv) || !cl.Conn.Local.IsValid() {
			t.Errorf("h2 addresses %v -> %v", cl.Conn.Local, cl.Conn.Remote)
		}
	})

	t.Run("HttpsURLConnection", func(t *testing.T) {
		if got := client.do(t, "urlconn GET "+base+"/from-urlconn"); got != "200 hello /from-urlconn" {
			t.Fatalf("client got %q", got)
		}
		cl := c.findExchange(t, client.pid(), "/from-urlconn")
		if cl.Role != exchange.RoleClient || header(cl.Request, "User-Agent") != "tlstap-test-urlconn" || cl.Response == nil ||
			cl.Response.StatusCode != 200 || string(cl.Response.Body) != "hello /from-urlconn" {
			t.Fatalf("urlconn exchange %v %+v %+v", cl.Role, cl.Request, cl.Response)
		}
		sv := c.findExchange(t, server.pid(), "/from-urlconn")
		if cl.Conn.Remote.String() != fmt.Sprintf("127.0.0.1:%d", port) || cl.Conn.Local != sv.Conn.Remote {
			t.Errorf("addresses: client %v -> %v, server %v <- %v", cl.Conn.Local, cl.Conn.Remote, sv.Conn.Local, sv.Conn.Remote)
		}
	})

	t.Run("Stop", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.eng.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		before := agentStatus(t, dir, server.pid())
		if before["active"] != "0" {
			t.Fatalf("agent still active after tlstap stopped: %v", before)
		}
		for i := 0; i < 3; i++ {
			if _, out := run(t, "curl", "-sk", base+"/after-stop"); string(out) != "hello /after-stop" {
				t.Fatalf("server after stop replied %q", out)
			}
		}
		if got := client.do(t, "h1 GET "+base+"/client-after-stop"); got != "200 HTTP_1_1 hello /client-after-stop" {
			t.Fatalf("client after stop got %q", got)
		}
		after := agentStatus(t, dir, server.pid())
		if after["records"] != before["records"] || after["errors"] != "0" || before["records"] == "0" {
			t.Errorf("agent wrote records after stop: before %v after %v", before, after)
		}
		if n := len(c.of(server.pid())); n == 0 {
			t.Error("no exchanges at all")
		}
		// The agent starts no thread: the JVM's threads carry none of our names.
		if out, err := exec.Command("jcmd", strconv.Itoa(server.pid()), "Thread.print").CombinedOutput(); err == nil && strings.Contains(strings.ToLower(string(out)), "tlstap") {
			t.Errorf("a tlstap thread is left in the JVM:\n%s", out)
		}
		// Nothing of ours reached the application's output (the class
		// data sharing warning a bootstrap class path append causes).
		if s := server.stderr.String(); s != "" {
			t.Errorf("the server JVM printed %q", s)
		}
	})

	// tlstap started again: the same JVMs are attached again (the agent
	// and its instrumentation stay from the first attach; the hook is
	// turned on again) and captured.
	t.Run("Restart", func(t *testing.T) {
		c2 := startCapture(t, javaConfig(dir))
		c2.waitAttached(t, 2)
		if _, out := run(t, "curl", "-sk", base+"/again"); string(out) != "hello /again" {
			t.Fatalf("server replied %q", out)
		}
		if sv := c2.findExchange(t, server.pid(), "/again"); sv.Response == nil || sv.Response.StatusCode != 200 || sv.Conn.Source != ProbeJava {
			t.Errorf("after restart: %+v", sv)
		}
		if got := client.do(t, "h1 GET "+base+"/client-again"); got != "200 HTTP_1_1 hello /client-again" {
			t.Fatalf("client got %q", got)
		}
		if cl := c2.findExchange(t, client.pid(), "/client-again"); cl.Role != exchange.RoleClient || cl.Response == nil || cl.Response.StatusCode != 200 {
			t.Errorf("client after restart: %+v", cl)
		}
	})

	// Two tlstaps on one host (a collector and a Fluent Bit, say) attach to
	// the same JVM: the one that stops leaves the other's capture on.
	t.Run("TwoTlstaps", func(t *testing.T) {
		first := startCapture(t, javaConfig(dir))
		first.waitAttached(t, 2)
		second := startCapture(t, javaConfig(dir))
		second.waitAttached(t, 2)
		if st := agentStatus(t, dir, server.pid()); len(strings.Fields(st["lease"])) != 2 || st["active"] != "1" {
			t.Fatalf("agent status %v, want the leases of both tlstaps", st)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := first.eng.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if _, out := run(t, "curl", "-sk", base+"/second-only"); string(out) != "hello /second-only" {
			t.Fatalf("server replied %q", out)
		}
		if sv := second.findExchange(t, server.pid(), "/second-only"); sv.Response == nil || sv.Response.StatusCode != 200 || sv.Conn.Source != ProbeJava {
			t.Errorf("the remaining tlstap: %+v", sv)
		}
	})
}

// startInProcessH2 serves HTTP/2 over TLS from the test process; it answers
// "h2 <path>".
func startInProcessH2(t *testing.T) int {
	t.Helper()
	files, _ := makeCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "h2 %s", r.URL.Path)
	})}
	go srv.ServeTLS(ln, files.cert, files.key)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// TestJavaAttachDisabled: a JVM started with -XX:+DisableAttachMechanism
// is reported (log and counter), never signalled, and keeps running.
func TestJavaAttachDisabled(t *testing.T) {
	requireJava(t)
	dir := javaAgentDir(t)
	app := buildJavaApp(t)
	j := app.start(t, 0, []string{"-XX:+DisableAttachMechanism"}, "client")
	c := startCapture(t, javaConfig(dir))
	deadline := time.Now().Add(30 * time.Second)
	for c.eng.Stats().JVMAttachFailed < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no attach failure reported: %+v", c.eng.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := c.eng.Stats(); st.JVMsAttached != 0 || st.AttachErrors < 1 {
		t.Errorf("stats %+v", st)
	}
	if got := j.do(t, "h1 GET https://127.0.0.1:1/nothing"); !strings.HasPrefix(got, "ERR ") {
		t.Errorf("the JVM should be alive and answer: %q", got)
	}
}
