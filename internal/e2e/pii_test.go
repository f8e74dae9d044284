package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tlstap/tlstap/internal/piitest"
)

// TestSecretsAndPIIEndToEnd runs two collectors (testdata/collector/pii.yaml,
// pii.redact off and on) while curl, python3 and node POST JSON and form
// bodies full of secrets and personal data over HTTPS: no secret appears in
// either OTLP output file (bodies, url.full, process.command_args), every
// exchange's span and log record carry tlstap.pii.types, and only the
// redacting collector removes the personal data.
func TestSecretsAndPIIEndToEnd(t *testing.T) {
	needRoot(t)
	root := repoRoot(t)
	collector := buildCollector(t, root)
	dir := t.TempDir()
	certFile, keyFile := writeSelfSignedCert(t, dir)
	port := piitest.StartEchoServer(t, certFile, keyFile)
	base := fmt.Sprintf("https://127.0.0.1:%d", port)

	outs := map[bool]string{}
	res := map[bool]*results{}
	for _, redact := range []bool{false, true} {
		outs[redact] = filepath.Join(dir, fmt.Sprintf("otlp-redact-%v.jsonl", redact))
		startCollector(t, root, collector, "testdata/collector/pii.yaml",
			"TLSTAP_OUT="+outs[redact], fmt.Sprintf("TLSTAP_REDACT_PII=%v", redact))
		res[redact] = fileResults(outs[redact])
		r := res[redact]
		warmUp(t, base, r, func(url string) bool { return r.clientSpan("curl", url) != nil })
	}

	run := piitest.RunClients(t, base)
	for _, redact := range []bool{false, true} {
		r := res[redact]
		require.Eventually(t, func() bool {
			r.load(t)
			for _, ex := range run.Exchanges {
				s := r.spanOf(ex.PID)
				if s == nil || r.logFor(s.span.SpanID()) == nil {
					return false
				}
			}
			return true
		}, 60*time.Second, 200*time.Millisecond, "redact=%v: not every exchange arrived", redact)

		for _, ex := range run.Exchanges {
			t.Run(fmt.Sprintf("redact_pii=%v/%s/form=%v", redact, ex.Client, ex.Form), func(t *testing.T) {
				s := r.spanOf(ex.PID)
				a := s.span.Attributes().AsRaw()
				kinds := []any{}
				for _, k := range piitest.PIIKinds {
					kinds = append(kinds, k)
				}
				assert.Equal(t, kinds, a["tlstap.pii.types"], "span")
				assert.Equal(t, strings.Replace(ex.URL, queryToken(ex.URL), "REDACTED", 1), a["url.full"])
				l := r.logFor(s.span.SpanID())
				la := l.Attributes().AsRaw()
				assert.Equal(t, kinds, la["tlstap.pii.types"], "log record")
				for _, k := range []string{"http.request.body.content", "http.response.body.content"} {
					body, _ := la[k].(string)
					assert.Contains(t, body, "REDACTED", k)
					vals := piitest.PIIValues([]byte(body))
					if redact {
						assert.Empty(t, vals, "%s keeps personal data with pii.redact", k)
					} else {
						assert.Len(t, vals, 3, "%s: personal data is flagged, not removed, by default", k)
					}
				}
				assert.Contains(t, fmt.Sprint(s.resource.AsRaw()["process.command_args"]), "REDACTED")
			})
		}
		raw, err := os.ReadFile(outs[redact])
		require.NoError(t, err)
		assert.Empty(t, run.Leaks(raw), "redact=%v: secrets in the OTLP output", redact)
	}
}

// queryToken returns the access_token value of u.
func queryToken(u string) string {
	_, v, _ := strings.Cut(u, "access_token=")
	v, _, _ = strings.Cut(v, "&")
	return v
}

// spanOf returns the client span of the process pid.
func (r *results) spanOf(pid int) *capturedSpan {
	for i := range r.spans {
		s := &r.spans[i]
		if s.span.Kind() != ptrace.SpanKindClient {
			continue
		}
		if v, ok := s.resource.Get("process.pid"); ok && v.Int() == int64(pid) {
			return s
		}
	}
	return nil
}
