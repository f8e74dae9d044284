package tlstapreceiver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/otelmap"
)

var (
	ts0 = time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)
	ts1 = ts0.Add(25 * time.Millisecond)
)

func testExchange(pid int, role exchange.Role, status int) *exchange.Exchange {
	ex := &exchange.Exchange{
		Role: role,
		Request: &exchange.Message{
			Method:  "GET",
			Target:  "/v1/x",
			Proto:   "HTTP/1.1",
			Headers: []exchange.Header{{Name: "Host", Value: "api.example.com"}, {Name: "User-Agent", Value: "curl/8"}},
		},
		Start: ts0,
		End:   ts1,
		Process: exchange.Process{
			PID: pid, PPID: 1, ExePath: "/usr/bin/curl", ExeName: "curl",
			CommandArgs: []string{"curl", "-s", "https://api.example.com/v1/x"}, Owner: "root",
			CreationTime: ts0.Add(-time.Minute),
		},
		Conn: exchange.Conn{
			ID: 3, Remote: netip.MustParseAddrPort("192.0.2.1:443"), Local: netip.MustParseAddrPort("192.0.2.2:40000"),
			TLS: true, Source: "openssl",
		},
	}
	if status > 0 {
		ex.Response = &exchange.Message{StatusCode: status, Proto: "HTTP/1.1", Body: []byte("hi"), BodySize: 2}
	} else {
		ex.Flags = exchange.NoResponse
	}
	return ex
}

func testConverter() converter {
	return converter{
		hostName: "box", scopeVersion: "1.2.3", traces: true, logs: true,
		now: func() time.Time { return ts1.Add(time.Second) },
	}
}

func TestConvertSpan(t *testing.T) {
	td, _ := convert([]*exchange.Exchange{testExchange(10, exchange.RoleClient, 200)}, testConverter())
	require.Equal(t, 1, td.SpanCount())
	rs := td.ResourceSpans().At(0)
	ss := rs.ScopeSpans().At(0)
	assert.Equal(t, "github.com/tlstap/tlstap/receiver/tlstapreceiver", ss.Scope().Name())
	assert.Equal(t, "1.2.3", ss.Scope().Version())
	s := ss.Spans().At(0)
	assert.Equal(t, "GET", s.Name())
	assert.Equal(t, ptrace.SpanKindClient, s.Kind())
	assert.Equal(t, pcommon.NewTimestampFromTime(ts0), s.StartTimestamp())
	assert.Equal(t, pcommon.NewTimestampFromTime(ts1), s.EndTimestamp())
	assert.Equal(t, ptrace.StatusCodeUnset, s.Status().Code())
	assert.False(t, s.TraceID().IsEmpty())
	assert.False(t, s.SpanID().IsEmpty())
	assert.True(t, s.ParentSpanID().IsEmpty())
	assert.Equal(t, map[string]any{
		"http.request.method":       "GET",
		"url.full":                  "https://api.example.com/v1/x",
		"server.address":            "api.example.com",
		"server.port":               int64(443),
		"network.peer.address":      "192.0.2.1",
		"network.peer.port":         int64(443),
		"network.protocol.name":     "http",
		"network.protocol.version":  "1.1",
		"network.transport":         "tcp",
		"http.response.status_code": int64(200),
		"user_agent.original":       "curl/8",
		"http.request.body.size":    int64(0),
		"http.response.body.size":   int64(2),
		"tlstap.tls.library":        "openssl",
		"tlstap.connection.id":      int64(3),
	}, s.Attributes().AsRaw())
}

func TestConvertStatusAndKind(t *testing.T) {
	for _, tc := range []struct {
		role   exchange.Role
		status int
		kind   ptrace.SpanKind
		code   ptrace.StatusCode
		msg    string
	}{
		{exchange.RoleClient, 404, ptrace.SpanKindClient, ptrace.StatusCodeError, ""},
		{exchange.RoleServer, 404, ptrace.SpanKindServer, ptrace.StatusCodeUnset, ""},
		{exchange.RoleServer, 500, ptrace.SpanKindServer, ptrace.StatusCodeError, ""},
		{exchange.RoleClient, 0, ptrace.SpanKindClient, ptrace.StatusCodeError, "no_response"},
	} {
		td, ld := convert([]*exchange.Exchange{testExchange(10, tc.role, tc.status)}, testConverter())
		s := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
		assert.Equal(t, tc.kind, s.Kind())
		assert.Equal(t, tc.code, s.Status().Code(), "%v %d", tc.role, tc.status)
		assert.Equal(t, tc.msg, s.Status().Message())
		if tc.status == 0 {
			l := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
			assert.Equal(t, "GET https://api.example.com/v1/x -> no response", l.Body().Str())
			assert.Equal(t, plog.SeverityNumberError, l.SeverityNumber())
		}
	}
}

func TestConvertLog(t *testing.T) {
	ex := testExchange(10, exchange.RoleClient, 200)
	ex.Request.Headers = append(ex.Request.Headers,
		exchange.Header{Name: "Cookie", Value: "secret"},
		exchange.Header{Name: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	td, ld := convert([]*exchange.Exchange{ex}, testConverter())
	s := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	require.Equal(t, 1, ld.LogRecordCount())
	sl := ld.ResourceLogs().At(0).ScopeLogs().At(0)
	assert.Equal(t, "github.com/tlstap/tlstap/receiver/tlstapreceiver", sl.Scope().Name())
	l := sl.LogRecords().At(0)
	assert.Equal(t, "tlstap.http.exchange", l.EventName())
	assert.Equal(t, "GET https://api.example.com/v1/x -> 200", l.Body().Str())
	assert.Equal(t, pcommon.NewTimestampFromTime(ts1), l.Timestamp())
	assert.Equal(t, pcommon.NewTimestampFromTime(ts1.Add(time.Second)), l.ObservedTimestamp())
	assert.Equal(t, plog.SeverityNumberInfo, l.SeverityNumber())
	assert.Equal(t, "INFO", l.SeverityText())

	// Trace context: the request's traceparent, shared by span and log.
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", s.TraceID().String())
	assert.Equal(t, "00f067aa0ba902b7", s.ParentSpanID().String())
	assert.NotEqual(t, "00f067aa0ba902b7", s.SpanID().String())
	assert.Equal(t, uint32(0x301), s.Flags())
	assert.Equal(t, s.TraceID(), l.TraceID())
	assert.Equal(t, s.SpanID(), l.SpanID())
	assert.Equal(t, plog.LogRecordFlags(1), l.Flags())

	raw := l.Attributes().AsRaw()
	assert.Equal(t, "GET", raw["http.request.method"])
	assert.Equal(t, int64(200), raw["http.response.status_code"])
	assert.Equal(t, []any{"REDACTED"}, raw["http.request.header.cookie"])
	assert.Equal(t, []any{"curl/8"}, raw["http.request.header.user-agent"])
	assert.Equal(t, "hi", raw["http.response.body.content"])
	// Every span attribute is also on the log record.
	s.Attributes().Range(func(k string, v pcommon.Value) bool {
		lv, ok := l.Attributes().Get(k)
		assert.True(t, ok, k)
		assert.Equal(t, v.AsRaw(), lv.AsRaw(), k)
		return true
	})

	// Binary bodies are bytes values.
	ex.Response.Body = []byte{0xff, 0x00}
	_, ld = convert([]*exchange.Exchange{ex}, testConverter())
	v, ok := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Attributes().Get("http.response.body.content")
	require.True(t, ok)
	assert.Equal(t, pcommon.ValueTypeBytes, v.Type())
	assert.Equal(t, []byte{0xff, 0x00}, v.Bytes().AsRaw())
}

func TestConvertResourceGrouping(t *testing.T) {
	a1 := testExchange(10, exchange.RoleClient, 200)
	b := testExchange(20, exchange.RoleServer, 201)
	b.Process.ExeName, b.Process.ExePath, b.Process.ContainerID = "python3", "/usr/bin/python3", "c0ffee"
	a2 := testExchange(10, exchange.RoleClient, 500)
	td, ld := convert([]*exchange.Exchange{a1, b, a2}, testConverter())

	require.Equal(t, 2, td.ResourceSpans().Len())
	require.Equal(t, 2, ld.ResourceLogs().Len())
	assert.Equal(t, 3, td.SpanCount())
	assert.Equal(t, 3, ld.LogRecordCount())

	res := td.ResourceSpans().At(0).Resource().Attributes().AsRaw()
	assert.Equal(t, map[string]any{
		"process.pid":             int64(10),
		"process.parent_pid":      int64(1),
		"process.creation.time":   "2025-11-25T11:59:00Z",
		"process.executable.name": "curl",
		"process.executable.path": "/usr/bin/curl",
		"process.command_args":    []any{"curl", "-s", "https://api.example.com/v1/x"},
		"process.owner":           "root",
		"host.name":               "box",
	}, res)
	assert.Equal(t, 2, td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().Len())
	assert.Equal(t, 2, ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().Len())

	res2 := ld.ResourceLogs().At(1).Resource().Attributes().AsRaw()
	assert.Equal(t, int64(20), res2["process.pid"])
	assert.Equal(t, "python3", res2["process.executable.name"])
	assert.Equal(t, "c0ffee", res2["container.id"])

	// Same PID, different creation time (PID reuse): separate resources.
	a3 := testExchange(10, exchange.RoleClient, 200)
	a3.Process.CreationTime = a3.Process.CreationTime.Add(time.Hour)
	td, _ = convert([]*exchange.Exchange{a1, a3}, testConverter())
	assert.Equal(t, 2, td.ResourceSpans().Len())
}

func TestConvertOneSignal(t *testing.T) {
	c := testConverter()
	c.logs = false
	td, ld := convert([]*exchange.Exchange{testExchange(1, exchange.RoleClient, 200)}, c)
	assert.Equal(t, 1, td.SpanCount())
	assert.Equal(t, 0, ld.ResourceLogs().Len())
}

func TestPutAttributes(t *testing.T) {
	m := pcommon.NewMap()
	putAttributes(m, otelmap.Attributes{
		otelmap.String("s", "x"), otelmap.Int("i", 5), otelmap.Bool("b", true),
		otelmap.Bytes("y", []byte{1, 2}), otelmap.Strings("l", []string{"a", "b"}),
	})
	assert.Equal(t, map[string]any{"s": "x", "i": int64(5), "b": true, "y": []byte{1, 2}, "l": []any{"a", "b"}}, m.AsRaw())
}
