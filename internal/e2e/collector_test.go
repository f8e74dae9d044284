// Package e2e runs the real tlstap collector (built with ocb from
// builder-config.yaml) against real HTTPS traffic and checks the OTLP JSON
// its file exporter writes.
//
// It needs root (eBPF), make, curl, python3 and the Go module proxy (the
// first ocb build takes about two minutes). Set TLSTAP_COLLECTOR to the path
// of an already built collector to skip the build.
package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

func TestCollectorEndToEnd(t *testing.T) {
	needRoot(t)
	root := repoRoot(t)
	collector := buildCollector(t, root)

	dir := t.TempDir()
	certFile, keyFile := writeSelfSignedCert(t, dir)
	port := startHTTPSServer(t, dir, certFile, keyFile)

	out := filepath.Join(dir, "otlp.json")
	startCollector(t, root, collector, "testdata/collector/file.yaml", "TLSTAP_OUT="+out)

	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	res := fileResults(out)
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

	// The bearer token sent by curl appears nowhere in what the collector
	// wrote: not in span or log attributes, not in the resource's
	// command line.
	raw, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "s3cr3t", "the Authorization secret leaked into the OTLP output")

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
