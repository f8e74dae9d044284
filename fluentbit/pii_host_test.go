package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/piitest"
)

// serveEcho starts an HTTPS server in the test process that answers every
// request with its body and Content-Type.
func serveEcho(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		w.Write(b)
	})}
	go srv.Serve(tls.NewListener(ln, selfSignedTLS(t)))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// TestHostSecretsAndPII: curl, python3 and node POST JSON and form bodies
// full of secrets and personal data; no secret reaches a record (bodies,
// query strings, command lines), every exchange carries the kinds found,
// the stop log counts them, and redact_pii removes the personal data.
func TestHostSecretsAndPII(t *testing.T) {
	requireRoot(t)
	port := serveEcho(t)
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	for _, redact := range []bool{false, true} {
		t.Run(fmt.Sprintf("redact_pii=%v", redact), func(t *testing.T) {
			h := startHost(t, "-i", "100", "queue_size", "1000", "redact_pii", fmt.Sprint(redact),
				"include_executables", "curl,python3*,node,"+filepath.Base(os.Args[0]))
			h.waitInit(t)
			warmUpHost(t, h, base)
			run := piitest.RunClients(t, base)
			for _, ex := range run.Exchanges {
				recs := h.wait(t, ex.PID, 1)
				r := recs[0].Record
				what := fmt.Sprintf("%s form=%v", ex.Client, ex.Form)
				expect(t, what, r, map[string]any{
					"http.request.method": "POST",
					"tlstap.pii.types":    piitest.PIIKinds,
				})
				if u, _ := r["url.full"].(string); !strings.Contains(u, "access_token=REDACTED&page=2") {
					t.Errorf("%s: url.full %q", what, u)
				}
				for _, k := range []string{"http.request.body.content", "http.response.body.content"} {
					body, _ := r[k].(string)
					if !strings.Contains(body, "password") || !strings.Contains(body, "REDACTED") {
						t.Errorf("%s: %s = %q, want the redacted body", what, k, body)
					}
					vals := piitest.PIIValues([]byte(body))
					if redact && len(vals) > 0 {
						t.Errorf("%s: %s keeps %q with redact_pii", what, k, vals)
					}
					if !redact && len(vals) != 3 {
						t.Errorf("%s: %s has %q of the personal data, want all 3 (flagged, not redacted)", what, k, vals)
					}
				}
				args, _ := json.Marshal(r["process.command_args"])
				if !strings.Contains(string(args), "REDACTED") {
					t.Errorf("%s: command line %s not redacted", what, args)
				}
			}
			h.stop(t)
			h.mu.Lock()
			all, _ := json.Marshal(h.recs)
			h.mu.Unlock()
			if leaks := run.Leaks(all); len(leaks) > 0 {
				t.Errorf("secrets in the records: %q", leaks)
			}
			stderr := h.stderr.String()
			if leaks := run.Leaks([]byte(stderr)); len(leaks) > 0 {
				t.Errorf("secrets in the plugin's log: %q", leaks)
			}
			// The stop log counts the exchanges with personal data per
			// kind: 6 client exchanges and their 6 server sides at least.
			i := strings.Index(stderr, "tlstap input stopped")
			if i < 0 {
				t.Fatalf("no stop log:\n%s", stderr)
			}
			line := stderr[i:]
			if j := strings.IndexByte(line, '\n'); j >= 0 {
				line = line[:j]
			}
			for _, k := range piitest.PIIKinds {
				var n int
				if _, err := fmt.Sscanf(line[strings.Index(line, `"`+k+`":`)+len(k)+3:], "%d", &n); err != nil || n < 12 {
					t.Errorf("stop log: %s count %d (%v), want >= 12: %s", k, n, err, line)
				}
			}
			// 6 bodies x 2 (request, echoed response) with 5 or 4 secret
			// fields or values each, plus the query parameters (not counted
			// here): at least 2*(3*5+3*4) = 54.
			var secrets int
			if k := strings.Index(line, `"secrets_redacted": `); k < 0 {
				t.Errorf("stop log lacks secrets_redacted: %s", line)
			} else if fmt.Sscanf(line[k+len(`"secrets_redacted": `):], "%d", &secrets); secrets < 54 {
				t.Errorf("stop log: secrets_redacted %d, want >= 54: %s", secrets, line)
			}
		})
	}
}

// warmUpHost makes curl requests until one is captured: on a loaded
// machine the first exchange right after start-up can be missed while the
// capture settles, and this test is about what is captured, not when.
func warmUpHost(t *testing.T, h *runningHost, base string) {
	t.Helper()
	for i := 0; i < 30; i++ {
		pid, _ := curl(t, "-sk", "-o", "/dev/null", fmt.Sprintf("%s/warmup?i=%d", base, i))
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			if len(h.of(pid)) > 0 {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Fatal("no warm-up exchange captured within 30 attempts")
}
