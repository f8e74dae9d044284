// Package piitest drives real HTTPS clients (curl, python3, node) that send
// JSON and form bodies full of secrets and personal data, for the
// end-to-end tests of the receiver and the Fluent Bit plugin. Every secret
// value is unique, so a test can prove that none of them reaches any
// output (records, bodies, command lines).
package piitest

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// PIIKinds is what every exchange of Run carries in tlstap.pii.types.
var PIIKinds = []string{"email", "iban", "payment_card", "phone"}

// Personal data values sent by every client (found, kept unless pii.redact).
const (
	Email = "alice.liddell@example.com"
	Phone = "+44 20 7946 0958"
	IBAN  = "GB82 WEST 1234 5698 7654 32"
)

// Card is a test card number: personal data (payment_card) that the default
// card rule also redacts.
const Card = "4111 1111 1111 1111"

// Exchange is one request a client made.
type Exchange struct {
	Client string // curl, python3, node
	Form   bool   // form-urlencoded body, else JSON
	PID    int
	URL    string // as sent, query included
}

// Run is the set of requests and the secrets they carried.
type Run struct {
	Exchanges []Exchange
	// Secrets holds every secret value sent (bodies, query strings,
	// command lines); none may appear in any output.
	Secrets []string
}

// secrets returns the unique secrets of one client request.
func secrets(tag string) (password, apiKey, refresh, query, jwt, aws string) {
	return "hunter2-" + tag, "ak-" + tag + "-9f8e7d", "rt-" + tag + "-5c4b3a", "qt-" + tag + "-7e6d",
		// header {"alg":"HS256"}, payload {"sub":"<tag>"}
		"eyJhbGciOiJIUzI1NiJ9." + b64(`{"sub":"`+tag+`"}`) + ".c2lnLQ" + strings.ToUpper(tag[:1]) + "x",
		"AKIA" + strings.ToUpper(tag + "KEYIDABCDEFGHIJKLMNOP")[:16]
}

func b64(s string) string {
	const enc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var out []byte
	b := []byte(s)
	for i := 0; i < len(b); i += 3 {
		var n uint32
		k := min(3, len(b)-i)
		for j := 0; j < 3; j++ {
			n <<= 8
			if j < k {
				n |= uint32(b[i+j])
			}
		}
		for j := 0; j < k+1; j++ {
			out = append(out, enc[(n>>(18-6*j))&63])
		}
	}
	return string(out)
}

// jsonBody is a JSON document with secrets at several depths and personal
// data in strings and a number.
func jsonBody(tag string) (string, []string) {
	pw, ak, rt, _, jwt, aws := secrets(tag)
	body := fmt.Sprintf(`{"user":"bob","password":%q,"profile":{"email":%q,"phone":%q,"iban":%q,`+
		`"card":%q,"keys":[{"api_key":%q},{"refresh_token":%q}]},"session":%q,"note":"key %s in text"}`,
		pw, Email, Phone, IBAN, Card, ak, rt, jwt, aws)
	return body, []string{pw, ak, rt, jwt, aws}
}

// formBody is a form-urlencoded body (python's urlencode escaping).
func formBody(tag string) (string, []string) {
	pw, ak, rt, _, jwt, _ := secrets(tag)
	v := url.Values{}
	v.Set("user", "bob")
	v.Set("password", pw)
	v.Set("client_secret", ak)
	v.Set("refresh_token", rt)
	v.Set("email", Email)
	v.Set("phone", Phone)
	v.Set("iban", IBAN)
	v.Set("card", Card)
	v.Set("assertion", jwt)
	return v.Encode(), []string{pw, ak, rt, jwt}
}

const pythonClient = `
import ssl, sys, urllib.request
url, body, ctype = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl._create_unverified_context()
req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": ctype}, method="POST")
with urllib.request.urlopen(req, context=ctx) as r:
    sys.stdout.write(r.read().decode())
`

const nodeClient = `
const https = require('https');
const [url, body, ctype] = process.argv.slice(2);
const req = https.request(url, {method: 'POST', rejectUnauthorized: false,
  headers: {'Content-Type': ctype, 'Content-Length': Buffer.byteLength(body)}}, res => {
  let d = ''; res.on('data', c => d += c); res.on('end', () => process.stdout.write(d));
});
req.on('error', e => { console.error(e); process.exit(1); });
req.end(body);
`

// Run makes, against base (https://127.0.0.1:port, a server that echoes the
// request body with its Content-Type), a JSON and a form POST with each of
// curl, python3 and node. The bodies and the command lines carry the
// secrets; the query string carries access_token.
func RunClients(t testing.TB, base string) Run {
	t.Helper()
	dir := t.TempDir()
	py := filepath.Join(dir, "client.py")
	js := filepath.Join(dir, "client.js")
	if err := os.WriteFile(py, []byte(pythonClient), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(js, []byte(nodeClient), 0o644); err != nil {
		t.Fatal(err)
	}
	var run Run
	for _, client := range []string{"curl", "python3", "node"} {
		for _, form := range []bool{false, true} {
			tag := client
			if form {
				tag += "form"
			}
			body, secs := jsonBody(tag)
			ct := "application/json"
			if form {
				body, secs = formBody(tag)
				ct = "application/x-www-form-urlencoded"
			}
			_, _, _, qt, _, _ := secrets(tag)
			u := base + "/echo/" + tag + "?access_token=" + qt + "&page=2"
			secs = append(secs, qt)
			var cmd *exec.Cmd
			switch client {
			case "curl":
				cmd = exec.Command("curl", "-sS", "-k", "--http1.1", "--max-time", "20", "-H", "Content-Type: "+ct, "--data-binary", body, u)
			case "python3":
				cmd = exec.Command("python3", py, u, body, ct)
			case "node":
				cmd = exec.Command("node", js, u, body, ct)
			}
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s: %v\n%s", client, err, errb.String())
			}
			if out.String() != body {
				t.Fatalf("%s: the server echoed %q, want %q", client, out.String(), body)
			}
			run.Exchanges = append(run.Exchanges, Exchange{Client: client, Form: form, PID: cmd.Process.Pid, URL: u})
			run.Secrets = append(run.Secrets, secs...)
		}
	}
	return run
}

// Leaks returns the secrets of run found in out.
func (r *Run) Leaks(out []byte) []string {
	var found []string
	for _, s := range r.Secrets {
		if bytes.Contains(out, []byte(s)) || bytes.Contains(out, []byte(url.QueryEscape(s))) {
			found = append(found, s)
		}
	}
	if bytes.Contains(out, []byte(Card)) || bytes.Contains(out, []byte(url.QueryEscape(Card))) {
		found = append(found, Card)
	}
	return found
}

// PIIValues returns the personal data values (other than the card, always
// redacted) found in out, in any of the encodings the clients use.
func PIIValues(out []byte) []string {
	var found []string
	for _, v := range []string{Email, Phone, IBAN} {
		if bytes.Contains(out, []byte(v)) || bytes.Contains(out, []byte(url.QueryEscape(v))) {
			found = append(found, v)
		}
	}
	return found
}

const echoServer = `
import http.server, ssl, sys

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, ctype, body):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.reply("text/plain", b"ok\n")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.reply(self.headers.get("Content-Type", "application/octet-stream"), self.rfile.read(n))

    def log_message(self, *args):
        pass

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
`

// StartEchoServer starts a python3 HTTPS server on 127.0.0.1 that answers
// GET with "ok\n" and POST with the request body and Content-Type, and
// returns its port. It is killed (by PID) when the test ends.
func StartEchoServer(t testing.TB, certFile, keyFile string) int {
	t.Helper()
	script := filepath.Join(t.TempDir(), "echo.py")
	if err := os.WriteFile(script, []byte(echoServer), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("python3", script, certFile, keyFile)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	var line []byte
	buf := make([]byte, 1)
	for {
		n, err := stdout.Read(buf)
		if n == 1 && buf[0] != '\n' {
			line = append(line, buf[0])
			continue
		}
		if err != nil || n == 1 {
			break
		}
	}
	var port int
	if _, err := fmt.Sscanf(string(line), "%d", &port); err != nil {
		t.Fatalf("python echo server did not start (%q)", line)
	}
	return port
}
