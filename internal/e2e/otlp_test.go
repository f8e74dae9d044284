package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// TestOTLPPipeline: collector A (testdata/collector/otlp.yaml: tlstap
// receiver -> otlp_grpc exporter) sends to collector B
// (testdata/collector/otlp-to-file.yaml: otlp receiver -> file exporter) on
// loopback; the exchanges must arrive at B intact.
func TestOTLPPipeline(t *testing.T) {
	needRoot(t)
	root := repoRoot(t)
	collector := buildCollector(t, root)
	dir := t.TempDir()

	// B needs no root; it only receives.
	otlpPort := freePort(t)
	out := filepath.Join(dir, "received.jsonl")
	startCollector(t, root, collector, "testdata/collector/otlp-to-file.yaml",
		fmt.Sprintf("TLSTAP_OTLP_LISTEN=127.0.0.1:%d", otlpPort), "TLSTAP_OUT="+out)

	certFile, keyFile := writeSelfSignedCert(t, dir)
	port := startHTTPSServer(t, dir, certFile, keyFile)
	base := fmt.Sprintf("https://127.0.0.1:%d", port)

	// A: the agent.
	startCollector(t, root, collector, "testdata/collector/otlp.yaml",
		fmt.Sprintf("TLSTAP_OTLP_ENDPOINT=127.0.0.1:%d", otlpPort), "TLSTAP_OTLP_INSECURE=true")

	res := fileResults(out)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("collector B output:\n%s", res.raw.String())
		}
	})
	warmUp(t, base, res, func(url string) bool { return res.clientSpan("curl", url) != nil })

	cases := standardExchanges(base)
	for _, c := range cases {
		c.run(t)
	}
	waitFor(t, 60*time.Second, "not every exchange arrived at collector B", func() (missing []string) {
		res.load(t)
		for _, c := range cases {
			s := res.clientSpan("curl", c.url)
			switch {
			case s == nil:
				missing = append(missing, c.name+": span")
			case res.logFor(s.span.SpanID()) == nil:
				missing = append(missing, c.name+": log record")
			}
		}
		return missing
	})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := res.clientSpan("curl", c.url)
			require.NotNil(t, s)
			ra := s.resource.AsRaw()
			assert.Equal(t, "curl", ra["process.executable.name"])
			assert.Contains(t, ra["process.command_args"], c.url)
			assert.Greater(t, ra["process.pid"], int64(0))

			assert.Equal(t, c.method, s.span.Name())
			assert.Equal(t, ptrace.SpanKindClient, s.span.Kind())
			a := s.span.Attributes().AsRaw()
			assert.Equal(t, c.method, a["http.request.method"])
			assert.Equal(t, c.url, a["url.full"])
			assert.Equal(t, c.status, a["http.response.status_code"])
			assert.Equal(t, int64(len(c.reqBody)), a["http.request.body.size"])
			assert.Equal(t, int64(len(c.respBody)), a["http.response.body.size"])
			if c.status >= 400 {
				assert.Equal(t, ptrace.StatusCodeError, s.span.Status().Code())
			}

			l := res.logFor(s.span.SpanID())
			require.NotNil(t, l)
			assert.Equal(t, "tlstap.http.exchange", l.EventName())
			assert.Equal(t, fmt.Sprintf("%s %s -> %d", c.method, c.url, c.status), l.Body().Str())
			assert.Equal(t, s.span.TraceID(), l.TraceID())
			la := l.Attributes().AsRaw()
			assert.Equal(t, c.method, la["http.request.method"])
			assert.Equal(t, c.url, la["url.full"])
			assert.Equal(t, c.status, la["http.response.status_code"])
			assert.Equal(t, c.respBody, la["http.response.body.content"])
			if c.reqBody != "" {
				assert.Equal(t, c.reqBody, la["http.request.body.content"])
			} else {
				assert.NotContains(t, la, "http.request.body.content")
			}
			assert.Equal(t, []any{"tlstap-e2e/1"}, la["http.request.header.user-agent"])
			lr := res.clientLog("curl", c.url)
			require.NotNil(t, lr)
			assert.Equal(t, "curl", lr.resource.AsRaw()["process.executable.name"])
		})
	}
}
