package engine

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/goinfo"
)

// goToolchains is the Go TLS test matrix: one toolchain per minor release
// the agent supports, fetched through the module proxy, plus the local one.
var goToolchains = []string{"go1.20.14", "go1.21.13", "go1.22.12", "go1.23.12", "go1.24.13", "go1.25.14", "local"}

var goBuilds struct {
	sync.Mutex
	dir  string
	bins map[string]string
}

// goBinary builds testdata/gotls with a toolchain, once per test run.
func goBinary(t testing.TB, toolchain string, stripped bool) string {
	t.Helper()
	goBuilds.Lock()
	defer goBuilds.Unlock()
	key := fmt.Sprintf("%s-%v", toolchain, stripped)
	if p, ok := goBuilds.bins[key]; ok {
		return p
	}
	// The kernel matrix VM (make test-kernel) has no network for other
	// toolchains and links 10× slower: its runner builds the local ones on
	// the host, as $TLSTAP_TEST_GOTLS_DIR/gotls-local-{false,true}.
	if dir := os.Getenv("TLSTAP_TEST_GOTLS_DIR"); dir != "" {
		p := filepath.Join(dir, "gotls-"+key)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("prebuilt Go TLS test program: %v", err)
		}
		return p
	}
	if goBuilds.dir == "" {
		d, err := os.MkdirTemp("", "tlstap-gotls-")
		if err != nil {
			t.Fatal(err)
		}
		goBuilds.dir, goBuilds.bins = d, map[string]string{}
		src, err := os.ReadFile("testdata/gotls/main.go")
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "main.go"), src, 0o644)
		os.WriteFile(filepath.Join(d, "go.mod"), []byte("module gotls\n\ngo 1.20\n"), 0o644)
	}
	out := filepath.Join(goBuilds.dir, "gotls-"+key)
	args := []string{"build", "-o", out}
	if stripped {
		args = append(args, "-ldflags=-s -w", "-trimpath")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = goBuilds.dir
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN="+toolchain, "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build with %s: %v\n%s", toolchain, err, b)
	}
	goBuilds.bins[key] = out
	return out
}

// TestGoTLS runs, for every toolchain, plain and stripped: a Go HTTPS server
// hit by curl (both sides captured: curl through OpenSSL, the server
// through crypto/tls), and a Go client doing 25 requests on one
// keep-alive connection plus a 1 MiB download.
func TestGoTLS(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	files, _ := makeCert(t)
	for _, tc := range goToolchains {
		for _, stripped := range []bool{false, true} {
			name := tc
			if stripped {
				name += "-stripped"
			}
			t.Run(name, func(t *testing.T) {
				bin := goBinary(t, tc, stripped)
				port := freePort(t)
				server := background(t, t.TempDir(), bin, "server", fmt.Sprintf("127.0.0.1:%d", port), files.cert, files.key)
				waitPort(t, port)
				c.waitHooked(t, bin)

				// curl -> Go server.
				pid, out := run(t, "curl", "-sk", "-H", "X-Curl: 1", fmt.Sprintf("https://127.0.0.1:%d/r/7", port))
				if string(out) != "reply 7" {
					t.Fatalf("curl got %q", out)
				}
				cl := c.wait(t, pid, 1)[0]
				if cl.Response == nil || string(cl.Response.Body) != "reply 7" {
					t.Errorf("curl side %+v", cl.Response)
				}
				sv := c.wait(t, server.Process.Pid, 1)[0]
				checkGoExchange(t, sv, exchange.RoleServer, "/r/7", "reply 7")
				if header(sv.Request, "X-Curl") != "1" || header(sv.Response, "X-Go-Server") != "yes" {
					t.Errorf("server side headers: %+v / %+v", sv.Request.Headers, sv.Response.Headers)
				}
				if sv.Conn.Local.Port() != uint16(port) || sv.Conn.Remote.Port() != cl.Conn.Local.Port() {
					t.Errorf("server side ports local=%v remote=%v (curl local %v)", sv.Conn.Local, sv.Conn.Remote, cl.Conn.Local)
				}
				if sv.Process.ExePath != bin {
					t.Errorf("server exe %q, want %q", sv.Process.ExePath, bin)
				}

				// Go client -> Go server: 25 requests on one connection.
				const n = 25
				cpid, cout := run(t, bin, "client", fmt.Sprintf("https://127.0.0.1:%d/r", port), strconv.Itoa(n))
				if strings.TrimSpace(string(cout)) == "" {
					t.Fatalf("client printed nothing")
				}
				exs := c.wait(t, cpid, n)
				for i, ex := range exs[:n] {
					checkGoExchange(t, ex, exchange.RoleClient, fmt.Sprintf("/r/%d", i+1), fmt.Sprintf("reply %d", i+1))
					if ex.Conn.ID != exs[0].Conn.ID {
						t.Errorf("exchange %d on connection %d, want %d", i, ex.Conn.ID, exs[0].Conn.ID)
					}
					if header(ex.Request, "X-Go-Client") != "yes" || ex.Conn.Remote.Port() != uint16(port) {
						t.Errorf("client exchange %d: headers %v remote %v", i, ex.Request.Headers, ex.Conn.Remote)
					}
				}

				// 1 MiB response to a Go client.
				bpid, _ := run(t, bin, "client", fmt.Sprintf("https://127.0.0.1:%d/big", port), "1")
				big := c.wait(t, bpid, 1)[0]
				if big.Response == nil || big.Response.BodySize != 1<<20 || len(big.Response.Body) != 64<<10 {
					t.Fatalf("1 MiB response: %+v", big.Response)
				}
				want := make([]byte, 64<<10)
				for i := range want {
					want[i] = byte('a' + (i*7+i/26)%26)
				}
				if !bytes.Equal(big.Response.Body, want) || big.Flags != exchange.ResponseTruncated {
					t.Errorf("1 MiB response body differs or flags %v", big.Flags.Names())
				}
			})
		}
	}
}

func checkGoExchange(t *testing.T, ex *exchange.Exchange, role exchange.Role, target, body string) {
	t.Helper()
	if ex.Role != role || ex.Request == nil || ex.Request.Method != "GET" || ex.Request.Target != target {
		t.Errorf("exchange %v %+v, want %v GET %s", ex.Role, ex.Request, role, target)
		return
	}
	if ex.Response == nil || ex.Response.StatusCode != 200 || string(ex.Response.Body) != body {
		t.Errorf("%s: response %+v, want 200 %q", target, ex.Response, body)
	}
	if !ex.Conn.TLS || ex.Conn.Source != "go" || ex.Flags != 0 {
		t.Errorf("%s: conn %+v flags %v", target, ex.Conn, ex.Flags.Names())
	}
}

// The Go entry probes go on the emulated `push rbp` after the stack check
// when the compiler emits one (Go 1.21 and later here); Go 1.20 saves rbp
// with sub/mov instead, so its probes stay on the entry.
func TestGoEntryPlacement(t *testing.T) {
	for _, tc := range []struct {
		toolchain string
		moved     bool
	}{{"go1.20.14", false}, {"go1.21.13", true}, {"local", true}} {
		bin := goBinary(t, tc.toolchain, true)
		info, err := goinfo.Inspect(bin)
		if err != nil {
			t.Fatal(err)
		}
		for name, f := range map[string]goinfo.Func{"Read": info.Read, "Write": info.Write} {
			got := goEntry(bin, f.Entry)
			if moved := got != f.Entry; moved != tc.moved || got > f.Entry+24 {
				t.Errorf("%s %s: probe at entry+%d, want moved=%v", tc.toolchain, name, got-f.Entry, tc.moved)
			}
		}
	}
}

// When the fd cannot be reached (an unknown layout), the exchange is still
// emitted, keyed by the *tls.Conn: the server's binary is hooked up front
// with a deliberately wrong struct layout.
func TestGoTLSWithoutFD(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	files, _ := makeCert(t)
	bin := goBinary(t, "local", false)
	info, err := goinfo.Inspect(bin)
	if err != nil {
		t.Fatal(err)
	}
	info.Offsets.ConnConn += 1 << 20 // points nowhere useful
	ver, err := statVersion(bin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.eng.kern.attachGo(bin, ver, info); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	server := background(t, t.TempDir(), bin, "server", fmt.Sprintf("127.0.0.1:%d", port), files.cert, files.key)
	waitPort(t, port)
	_, out := run(t, "curl", "-sk", fmt.Sprintf("https://127.0.0.1:%d/r/3", port))
	if string(out) != "reply 3" {
		t.Fatalf("curl got %q", out)
	}
	sv := c.wait(t, server.Process.Pid, 1)[0]
	checkGoExchange(t, sv, exchange.RoleServer, "/r/3", "reply 3")
	if sv.Conn.Remote.IsValid() {
		t.Errorf("remote %v: the fd should have been unreachable", sv.Conn.Remote)
	}
}

// TestGoReadScheme: Read is probed at its one CALL runtime.memmove from Go
// 1.21 on (two probes in all: Write's entry and that call), at its entry and
// every RET on Go 1.20 (whose frame setup goinfo rejects); the log line
// says which. Either way the payloads arrive byte for byte: the 1 MiB body
// a Go client reads (64 records, each copied out in pieces), and a 40 KB
// request header the Go server reads through its 4 KiB bufio.Reader.
func TestGoReadScheme(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBodyBytes = 2 << 20
	c, logs := startCaptureObserved(t, cfg)
	files, _ := makeCert(t)
	for _, tc := range []struct {
		toolchain, scheme string
	}{{"go1.20.14", goinfo.ReadReturns}, {"go1.21.13", goinfo.ReadCopyCall}, {"go1.24.13", goinfo.ReadCopyCall}, {"local", goinfo.ReadCopyCall}} {
		t.Run(tc.toolchain, func(t *testing.T) {
			bin := goBinary(t, tc.toolchain, true)
			info, err := goinfo.Inspect(bin)
			if err != nil {
				t.Fatal(err)
			}
			if info.ReadScheme() != tc.scheme {
				t.Fatalf("%s: Read scheme %s (%s), want %s", info.GoVersion, info.ReadScheme(), info.NoCopyCall, tc.scheme)
			}
			port := freePort(t)
			server := background(t, t.TempDir(), bin, "server", fmt.Sprintf("127.0.0.1:%d", port), files.cert, files.key)
			waitPort(t, port)
			c.waitHooked(t, bin)

			// What is attached: the copy call alone, or entry + returns.
			id, err := statID(bin)
			if err != nil {
				t.Fatal(err)
			}
			c.eng.kern.mu.Lock()
			probes := c.eng.kern.uprobes[id].probes
			c.eng.kern.mu.Unlock()
			want := 2
			if tc.scheme == goinfo.ReadReturns {
				want += len(info.Read.Returns)
			}
			if probes != want {
				t.Errorf("%d probes attached, want %d (%s)", probes, want, tc.scheme)
			}
			deadline := time.Now().Add(scaled(5 * time.Second))
			for {
				var logged []string
				for _, e := range logs.FilterMessage("hooked Go crypto/tls").All() {
					if m := e.ContextMap(); fmt.Sprint(m["pid"]) == strconv.Itoa(server.Process.Pid) {
						logged = append(logged, fmt.Sprint(m["read"]))
					}
				}
				if len(logged) == 1 && logged[0] == tc.scheme {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("hooked log lines for the server: read=%q, want [%s]", logged, tc.scheme)
				}
				time.Sleep(20 * time.Millisecond)
			}

			// Ingress on the client: the whole 1 MiB body.
			bpid, _ := run(t, bin, "client", fmt.Sprintf("https://127.0.0.1:%d/big", port), "1")
			big := c.wait(t, bpid, 1)[0]
			wantBody := make([]byte, 1<<20)
			for i := range wantBody {
				wantBody[i] = byte('a' + (i*7+i/26)%26)
			}
			if big.Response == nil || big.Response.BodySize != 1<<20 || !bytes.Equal(big.Response.Body, wantBody) || big.Flags != 0 {
				t.Fatalf("1 MiB response differs: %d bytes, flags %v", len(big.Response.Body), big.Flags.Names())
			}

			// Ingress on the server: a request spread over many Reads.
			pad := strings.Repeat("0123456789abcdef", 40<<10/16)
			pid, out := run(t, "curl", "-sk", "-H", "X-Pad: "+pad, fmt.Sprintf("https://127.0.0.1:%d/r/9", port))
			if string(out) != "reply 9" {
				t.Fatalf("curl got %q", out)
			}
			c.wait(t, pid, 1)
			sv := c.wait(t, server.Process.Pid, 1)
			found := false
			for _, ex := range sv {
				if ex.Request != nil && ex.Request.Target == "/r/9" {
					found = true
					checkGoExchange(t, ex, exchange.RoleServer, "/r/9", "reply 9")
					if header(ex.Request, "X-Pad") != pad {
						t.Errorf("server side X-Pad: %d bytes, want %d", len(header(ex.Request, "X-Pad")), len(pad))
					}
				}
			}
			if !found {
				t.Errorf("server side: no /r/9 exchange")
			}
		})
	}
}
