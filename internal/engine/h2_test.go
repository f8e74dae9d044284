package engine

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/h2parse"
)

// curl --http2 multiplexes 25 concurrent streams on one TLS connection to a
// Go server with HTTP/2: curl's side through OpenSSL, the server's through
// crypto/tls, one exchange per stream on both.
func TestHTTP2CurlToGoServer(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	server, port := startH2Server(t, c)

	const n = 25
	args := []string{"-sk", "--http2", "--parallel", "--parallel-max", strconv.Itoa(n), "-H", "X-H2: yes"}
	for i := 1; i <= n; i++ {
		args = append(args, fmt.Sprintf("https://127.0.0.1:%d/r/%d", port, i), "-o", "/dev/null")
	}
	pid, _ := run(t, "curl", args...)
	for _, side := range []struct {
		pid  int
		role exchange.Role
	}{{pid, exchange.RoleClient}, {server.Process.Pid, exchange.RoleServer}} {
		exs := c.wait(t, side.pid, n)
		sort.Slice(exs, func(i, j int) bool { return targetNum(exs[i]) < targetNum(exs[j]) })
		for i, ex := range exs {
			want := fmt.Sprintf("/r/%d", i+1)
			if ex.Role != side.role || ex.Request.Method != "GET" || ex.Request.Target != want || ex.Request.Proto != "HTTP/2" {
				t.Errorf("%v side stream %d: %v %s %s %s", side.role, i, ex.Role, ex.Request.Method, ex.Request.Target, ex.Request.Proto)
				continue
			}
			if header(ex.Request, ":authority") != fmt.Sprintf("127.0.0.1:%d", port) || header(ex.Request, "x-h2") != "yes" {
				t.Errorf("%v side stream %d headers %v", side.role, i, ex.Request.Headers)
			}
			if ex.Response == nil || ex.Response.StatusCode != 200 || string(ex.Response.Body) != fmt.Sprintf("reply %d", i+1) {
				t.Errorf("%v side stream %d response %+v", side.role, i, ex.Response)
			}
			if ex.Flags != 0 || ex.Conn.ID != exs[0].Conn.ID {
				t.Errorf("%v side stream %d flags %v conn %d (want one connection %d)", side.role, i, ex.Flags.Names(), ex.Conn.ID, exs[0].Conn.ID)
			}
		}
	}
}

// startH2Server runs the Go test program's HTTP/2 TLS server (/r/N
// answers "reply N") and waits until c has hooked it.
func startH2Server(t *testing.T, c *capture) (*exec.Cmd, int) {
	t.Helper()
	files, _ := makeCert(t)
	bin := goBinary(t, "local", false)
	port := freePort(t)
	server := background(t, t.TempDir(), bin, "h2server", fmt.Sprintf("127.0.0.1:%d", port), files.cert, files.key)
	waitPort(t, port)
	c.waitHooked(t, bin)
	return server, port
}

func targetNum(ex *exchange.Exchange) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(ex.Request.Target, "/r/"))
	return n
}

// h2c with prior knowledge: curl speaks cleartext HTTP/2 to a Go h2c server
// (in the test process, so only curl's side is captured, from its socket
// syscalls).
func TestH2CPriorKnowledge(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	port := startH2CServer(t, "h2c says hi ")
	// One request per curl: curl 7.88 reusing an h2c connection to Go's
	// h2c handler fails with a framing error even without the agent.
	for _, path := range []string{"/a", "/b"} {
		pid, out := run(t, "curl", "-sS", "--http2-prior-knowledge", fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
		if string(out) != "h2c says hi "+path {
			t.Fatalf("curl got %q", out)
		}
		ex := c.wait(t, pid, 1)[0]
		if ex.Request.Target != path || ex.Request.Proto != "HTTP/2" || ex.Conn.TLS || ex.Conn.Source != "socket" || ex.Role != exchange.RoleClient {
			t.Errorf("%s: %v %s %s conn %+v", path, ex.Role, ex.Request.Target, ex.Request.Proto, ex.Conn)
		}
		if header(ex.Request, ":scheme") != "http" || ex.Response == nil || header(ex.Response, "x-proto") != "HTTP/2.0" ||
			string(ex.Response.Body) != "h2c says hi "+path || ex.Flags != 0 {
			t.Errorf("%s: %+v / %+v flags %v", path, ex.Request.Headers, ex.Response, ex.Flags.Names())
		}
	}
}

// h2c through the HTTP/1.1 Upgrade dance (curl --http2 on an http:// URL):
// the request goes out as HTTP/1.1 with Upgrade: h2c, the 101 switches the
// connection, and the response to that same request comes back as HTTP/2 on
// stream 1. One exchange, no separate 101 exchange.
func TestH2CUpgrade(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	port := startH2CServer(t, "upgraded ")
	pid, out := run(t, "curl", "-sS", "--http2", fmt.Sprintf("http://127.0.0.1:%d/up", port))
	if string(out) != "upgraded /up" {
		t.Fatalf("curl got %q", out)
	}
	exs := c.wait(t, pid, 1)
	time.Sleep(100 * time.Millisecond)
	exs = c.of(pid)
	if len(exs) != 1 {
		for _, ex := range exs {
			t.Logf("exchange: %s %s -> %+v", ex.Request.Method, ex.Request.Target, ex.Response)
		}
		t.Fatalf("%d exchanges, want 1", len(exs))
	}
	ex := exs[0]
	if ex.Request.Target != "/up" || header(ex.Request, "Upgrade") != "h2c" || ex.Response == nil ||
		ex.Response.StatusCode != 200 || ex.Response.Proto != "HTTP/2" || string(ex.Response.Body) != "upgraded /up" ||
		header(ex.Response, "x-proto") != "HTTP/1.1" { // Go reports the upgraded request's own version
		t.Errorf("exchange %+v -> %+v", ex.Request, ex.Response)
	}
}

// startH2CServer serves cleartext HTTP/2 (prior knowledge and Upgrade: h2c)
// from the test process, answering prefix+path; it returns the port.
func startH2CServer(t *testing.T, prefix string) int {
	t.Helper()
	h := h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Proto", r.Proto)
		io.WriteString(w, prefix+r.URL.Path)
	}), &http2.Server{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

const nodeH2 = `
const http2 = require('http2'), fs = require('fs');
if (process.argv[2] === 'server') {
  const srv = http2.createSecureServer({key: fs.readFileSync(process.argv[5]), cert: fs.readFileSync(process.argv[4])});
  srv.on('stream', (stream, headers) => {
    stream.respond({':status': 200, 'content-type': 'text/plain', 'x-node': 'h2'});
    stream.end('node h2 ' + headers[':path']);
  });
  srv.listen(parseInt(process.argv[3]), '127.0.0.1');
} else {
  const client = http2.connect('https://127.0.0.1:' + process.argv[3], {rejectUnauthorized: false});
  let done = 0, out = [];
  for (const p of ['/x', '/y', '/z']) {
    const req = client.request({':path': p, 'x-client': 'node'});
    let body = '';
    req.setEncoding('utf8');
    req.on('data', d => body += d);
    req.on('end', () => { out.push(body); if (++done === 3) { client.close(); console.log(out.sort().join('|')); } });
    req.end();
  }
}
`

// node's http2 client and server, OpenSSL statically linked inside node.
func TestHTTP2Node(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	files, _ := makeCert(t)
	dir := t.TempDir()
	script := writeFile(t, dir, "h2.js", nodeH2)
	port := freePort(t)
	server := background(t, dir, "node", script, "server", strconv.Itoa(port), files.cert, files.key)
	waitPort(t, port)
	// node carries its own OpenSSL: the client started next is captured
	// only once the server's exec has got node's file hooked (the gate is
	// off in-process), which a loaded machine can delay past waitPort.
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal(err)
	}
	c.waitHooked(t, node)
	pid, out := run(t, "node", script, "client", strconv.Itoa(port))
	if strings.TrimSpace(string(out)) != "node h2 /x|node h2 /y|node h2 /z" {
		t.Fatalf("client got %q", out)
	}
	for _, side := range []struct {
		pid  int
		role exchange.Role
	}{{pid, exchange.RoleClient}, {server.Process.Pid, exchange.RoleServer}} {
		exs := c.wait(t, side.pid, 3)
		sort.Slice(exs, func(i, j int) bool { return exs[i].Request.Target < exs[j].Request.Target })
		for i, ex := range exs {
			want := []string{"/x", "/y", "/z"}[i]
			if ex.Role != side.role || ex.Request.Target != want || ex.Request.Proto != "HTTP/2" || header(ex.Request, "x-client") != "node" {
				t.Errorf("%v side %d: %v %s %v", side.role, i, ex.Role, ex.Request.Target, ex.Request.Headers)
			}
			if ex.Response == nil || ex.Response.StatusCode != 200 || string(ex.Response.Body) != "node h2 "+want || header(ex.Response, "x-node") != "h2" {
				t.Errorf("%v side %d response %+v", side.role, i, ex.Response)
			}
			if ex.Process.ExeName != "node" || !ex.Conn.TLS {
				t.Errorf("%v side %d process %s conn %+v", side.role, i, ex.Process.ExeName, ex.Conn)
			}
		}
	}
}

// Go gRPC client and server over TLS: unary, server-streaming and an error.
func TestGRPC(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	files, _ := makeCert(t)
	bin := filepath.Join(t.TempDir(), "grpcapp")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/grpcapp").CombinedOutput(); err != nil {
		t.Fatalf("build grpcapp: %v\n%s", err, out)
	}
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	server := background(t, t.TempDir(), bin, "server", addr, files.cert, files.key)
	waitPort(t, port)
	c.waitHooked(t, bin)
	pid, out := run(t, bin, "client", addr)
	if strings.TrimSpace(string(out)) != "10 3 NotFound" {
		t.Fatalf("client printed %q", out)
	}
	want := []struct {
		method string
		status int
		msgs   int
	}{{"UnaryCall", 0, 1}, {"StreamingOutputCall", 0, 3}, {"UnaryCall", 5, 0}}
	for _, side := range []struct {
		pid  int
		role exchange.Role
	}{{pid, exchange.RoleClient}, {server.Process.Pid, exchange.RoleServer}} {
		exs := c.wait(t, side.pid, 3)
		sort.Slice(exs, func(i, j int) bool { return exs[i].Start.Before(exs[j].Start) })
		for i, w := range want {
			ex := exs[i]
			svc, m, code, ok := h2parse.GRPCInfo(ex)
			if !ok || svc != "grpc.testing.TestService" || m != w.method || code != w.status || ex.Role != side.role {
				t.Errorf("%v side call %d: %s/%s status %d ok %v role %v", side.role, i, svc, m, code, ok, ex.Role)
				continue
			}
			if ex.Request.Proto != "HTTP/2" || ex.Response == nil || ex.Response.StatusCode != 200 {
				t.Errorf("%v side call %d: %s %+v", side.role, i, ex.Request.Proto, ex.Response)
				continue
			}
			if sizes, complete := h2parse.GRPCMessages(ex.Response.Body); len(sizes) != w.msgs || !complete {
				t.Errorf("%v side call %d: response messages %v complete %v, want %d", side.role, i, sizes, complete, w.msgs)
			}
		}
	}
}

// TestHTTP2UnderLoss: 200 multiplexed streams on one TLS connection through
// a 16 KiB ring buffer, both sides captured, so the kernel drops and sheds
// much of it. Whatever is emitted must be true: no request is paired with
// another stream's response, an exchange without flags is exact, every
// missing stream shows in the loss counters, and the next connection is
// captured exactly.
func TestHTTP2UnderLoss(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RingBufferSize = 16 << 10
	c := startCapture(t, cfg)
	server, port := startH2Server(t, c)

	streams := func(from, to int) []string {
		args := []string{"-sk", "--http2", "--parallel", "--parallel-max", "100"}
		for i := from; i <= to; i++ {
			// Fixed-width numbers: every reply has the same length, so a
			// body cut short can never pass for another stream's reply.
			args = append(args, fmt.Sprintf("https://127.0.0.1:%d/r/%03d", port, i), "-o", "/dev/null")
		}
		return args
	}
	st0 := c.eng.Stats()
	const n = 200
	pid, _ := run(t, "curl", streams(1, n)...)
	// Let the engine emit what it has (streams end with the connection).
	for prev := -1; ; {
		got := len(c.of(pid)) + len(c.of(server.Process.Pid))
		if got == prev {
			break
		}
		prev = got
		time.Sleep(time.Second)
	}
	st := c.eng.Stats()
	lost := st.EventsLost - st0.EventsLost + st.StreamGaps - st0.StreamGaps + st.H2StreamsDropped - st0.H2StreamsDropped
	for _, side := range []struct {
		pid  int
		role exchange.Role
	}{{pid, exchange.RoleClient}, {server.Process.Pid, exchange.RoleServer}} {
		exact, flagged := 0, 0
		for _, ex := range c.of(side.pid) {
			num := 0
			if ex.Request != nil {
				num = targetNum(ex)
			}
			want := fmt.Sprintf("reply %03d", num)
			if body := string(exBody(ex)); num > 0 && body != "" && body != want {
				// Only a body cut by a loss may differ, as a strict prefix
				// of this stream's own reply, flagged incomplete.
				if len(body) >= len(want) || !strings.HasPrefix(want, body) || !ex.Flags.Has(exchange.Incomplete) {
					t.Errorf("%v side: %s paired with body %q (flags %v)", side.role, ex.Request.Target, body, ex.Flags.Names())
					continue
				}
			}
			if ex.Flags != 0 {
				flagged++
				continue
			}
			if num == 0 || ex.Role != side.role || ex.Request.Proto != "HTTP/2" || ex.Response == nil ||
				ex.Response.StatusCode != 200 || string(ex.Response.Body) != want {
				t.Errorf("%v side: unflagged exchange not exact: %s %+v", side.role, target(ex), ex.Response)
				continue
			}
			exact++
		}
		t.Logf("%v side, ring 16 KiB: %d of %d streams exact, %d flagged; events lost %d, bytes shed %d, gaps %d, h2 streams dropped %d (both sides)",
			side.role, exact, n, flagged, st.EventsLost-st0.EventsLost, st.BytesShed-st0.BytesShed, st.StreamGaps-st0.StreamGaps, st.H2StreamsDropped-st0.H2StreamsDropped)
		if exact < n && lost == 0 {
			t.Errorf("%v side: %d streams not captured exactly and no loss counted", side.role, n-exact)
		}
	}

	// The engine is not left confused: a new connection is captured exactly.
	pid2, _ := run(t, "curl", streams(1, 3)...)
	exs := c.wait(t, pid2, 3)
	for _, ex := range exs {
		if ex.Flags != 0 || ex.Response == nil || string(ex.Response.Body) != fmt.Sprintf("reply %03d", targetNum(ex)) {
			t.Errorf("after the loss: %s %+v flags %v", target(ex), ex.Response, ex.Flags.Names())
		}
	}
}

// exBody is the response body, nil without a response.
func exBody(ex *exchange.Exchange) []byte {
	if ex.Response == nil {
		return nil
	}
	return ex.Response.Body
}
