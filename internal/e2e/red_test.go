package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// TestREDMetrics runs testdata/collector/red-metrics.yaml in the real
// collector, makes real curl requests over HTTPS on loopback, and checks
// that the spanmetrics connector turns the captured client exchanges into
// request counts, error counts and duration histograms per service, host
// and route with exactly the numbers of requests made.
func TestREDMetrics(t *testing.T) {
	needRoot(t)
	root := repoRoot(t)
	collector := buildCollector(t, root)

	dir := t.TempDir()
	certFile, keyFile := writeSelfSignedCert(t, dir)
	port := startHTTPSServer(t, dir, certFile, keyFile)
	out := filepath.Join(dir, "red.jsonl")
	startCollector(t, root, collector, "testdata/collector/red-metrics.yaml", "TLSTAP_OUT="+out)

	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	res := fileResults(out)
	warmUp(t, base, res, func(url string) bool { return res.clientSpan("curl", url) != nil })

	const oks, notFounds = 5, 3
	for i := range oks {
		curl(t, "-o", "/dev/null", fmt.Sprintf("%s/hello?n=%d", base, i))
	}
	for i := range notFounds {
		curl(t, "-o", "/dev/null", fmt.Sprintf("%s/missing?n=%d", base, i))
	}

	// Series of curl's client spans to this server, by route; the
	// connector's sums are cumulative, so the last point counts.
	host := "127.0.0.1"
	want := map[string]series{
		"/hello":   {calls: oks, status: "200", code: "STATUS_CODE_UNSET"},
		"/missing": {calls: notFounds, status: "404", code: "STATUS_CODE_ERROR"},
	}
	var got map[string]series
	waitFor(t, 60*time.Second, "request metrics with the right counts", func() []string {
		got = redSeries(t, out, host, strconv.Itoa(port))
		var missing []string
		for route, w := range want {
			g := got[route]
			if g.calls != w.calls || g.durations != w.calls {
				missing = append(missing, fmt.Sprintf("%s: calls %d durations %d (want %d)", route, g.calls, g.durations, w.calls))
			}
		}
		return missing
	})
	for route, w := range want {
		g := got[route]
		assert.Equal(t, w.status, g.status, route)
		assert.Equal(t, w.code, g.code, "%s: 404 on a client span is an error", route)
		assert.Equal(t, "GET", g.method, route)
		assert.Equal(t, "unknown_service:curl", g.service, route)
		assert.Greater(t, g.durationSum, 0.0, route)
	}
}

// series is what the connector reported for one route.
type series struct {
	calls, durations              int64
	durationSum                   float64
	status, code, method, service string
}

// redSeries reads the metrics lines of the file exporter's output and
// returns, per url.path, curl's client-span series against host:port.
func redSeries(t *testing.T, path, host, port string) map[string]series {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	got := map[string]series{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(`"resourceMetrics"`)) {
			continue
		}
		md, err := (&pmetric.JSONUnmarshaler{}).UnmarshalMetrics(line)
		if err != nil {
			continue // a line still being written
		}
		for i := range md.ResourceMetrics().Len() {
			rm := md.ResourceMetrics().At(i)
			svc, _ := rm.Resource().Attributes().Get("service.name")
			if svc.Str() != "unknown_service:curl" {
				continue
			}
			for j := range rm.ScopeMetrics().Len() {
				ms := rm.ScopeMetrics().At(j).Metrics()
				for k := range ms.Len() {
					m := ms.At(k)
					switch m.Name() {
					case "tlstap.calls":
						dps := m.Sum().DataPoints()
						for n := range dps.Len() {
							dp := dps.At(n)
							if route, ok := match(dp.Attributes(), host, port); ok {
								s := got[route]
								s.calls = max(s.calls, dp.IntValue())
								s.status = str(dp.Attributes(), "http.response.status_code")
								s.code = str(dp.Attributes(), "status.code")
								s.method = str(dp.Attributes(), "http.request.method")
								s.service = svc.Str()
								got[route] = s
							}
						}
					case "tlstap.duration":
						dps := m.Histogram().DataPoints()
						for n := range dps.Len() {
							dp := dps.At(n)
							if route, ok := match(dp.Attributes(), host, port); ok {
								s := got[route]
								if int64(dp.Count()) > s.durations {
									s.durations, s.durationSum = int64(dp.Count()), dp.Sum()
								}
								got[route] = s
							}
						}
					}
				}
			}
		}
	}
	return got
}

// match reports whether a data point is of a curl client span to this
// test's server (other tests on the host may call the same routes
// elsewhere) and returns its route.
func match(attrs pcommon.Map, host, port string) (string, bool) {
	if str(attrs, "span.kind") != "SPAN_KIND_CLIENT" || str(attrs, "server.address") != host || str(attrs, "server.port") != port {
		return "", false
	}
	route := str(attrs, "url.path")
	return route, route == "/hello" || route == "/missing"
}

func str(attrs pcommon.Map, key string) string {
	v, ok := attrs.Get(key)
	if !ok {
		return ""
	}
	return v.AsString()
}
