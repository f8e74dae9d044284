package tlstapreceiver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
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
		"url.scheme":                "https",
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
	b.Process.PodUID = "0c8b2b1e-5b7e-4c6e-9f1a-2d3c4b5a6f70"
	a2 := testExchange(10, exchange.RoleClient, 500)
	td, ld := convert([]*exchange.Exchange{a1, b, a2}, testConverter())

	require.Equal(t, 2, td.ResourceSpans().Len())
	require.Equal(t, 2, ld.ResourceLogs().Len())
	assert.Equal(t, 3, td.SpanCount())
	assert.Equal(t, 3, ld.LogRecordCount())

	res := td.ResourceSpans().At(0).Resource().Attributes().AsRaw()
	assert.Equal(t, map[string]any{
		"service.name":            "unknown_service:curl",
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
	assert.Equal(t, "0c8b2b1e-5b7e-4c6e-9f1a-2d3c4b5a6f70", res2["k8s.pod.uid"])

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

// goldenBatch is a representative batch: a server exchange with headers to
// redact and to promote to the span, a gRPC client exchange over HTTP/2
// joining a trace, flagged incomplete and truncated, with a binary body,
// and a client exchange without response from the first process.
func goldenBatch() []*exchange.Exchange {
	server := &exchange.Exchange{
		Role: exchange.RoleServer,
		Request: &exchange.Message{
			Method: "POST", Target: "/api/items?id=5&x=y", Proto: "HTTP/1.1",
			Headers: []exchange.Header{
				{Name: "Host", Value: "shop.local"}, {Name: "User-Agent", Value: "ua/1"},
				{Name: "Authorization", Value: "Bearer s3cret"}, {Name: "Cookie", Value: "a=b"},
				{Name: "X-Multi", Value: "one"}, {Name: "Content-Type", Value: "application/json"}, {Name: "x-multi", Value: "two"},
			},
			Body: []byte(`{"n":1}`), BodySize: 7,
		},
		Response: &exchange.Message{
			StatusCode: 201, Proto: "HTTP/1.1",
			Headers: []exchange.Header{{Name: "Set-Cookie", Value: "sid=1"}, {Name: "Content-Type", Value: "application/json"}},
			Body:    []byte("ok"), BodySize: 2,
		},
		Start: ts0, End: ts1,
		Process: exchange.Process{
			PID: 100, PPID: 1, ExePath: "/usr/bin/shop", ExeName: "shop", CommandArgs: []string{"shop", "-p", "8443"},
			Owner: "www", CreationTime: ts0.Add(-time.Minute), ContainerID: "c0ffee",
		},
		Conn: exchange.Conn{
			ID: 9, Remote: netip.MustParseAddrPort("10.0.0.9:40000"), Local: netip.MustParseAddrPort("10.0.0.5:8443"),
			TLS: true, Source: "openssl",
		},
	}
	grpc := &exchange.Exchange{
		Role: exchange.RoleClient,
		Request: &exchange.Message{
			Method: "POST", Target: "/grpc.health.v1.Health/Check", Proto: "HTTP/2",
			Headers: []exchange.Header{
				{Name: ":authority", Value: "svc:50051"}, {Name: "content-type", Value: "application/grpc"},
				{Name: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
				{Name: "tracestate", Value: "congo=t61rcWkgMzE"},
			},
			Body: []byte{0, 0, 0, 0, 2, 8, 1}, BodySize: 7,
		},
		Response: &exchange.Message{
			StatusCode: 200, Proto: "HTTP/2",
			Headers:  []exchange.Header{{Name: "content-type", Value: "application/grpc"}},
			Trailers: []exchange.Header{{Name: "grpc-status", Value: "14"}},
			Body:     []byte{0xff, 0x01}, BodySize: 100,
		},
		Flags: exchange.Incomplete | exchange.ResponseTruncated,
		Start: ts0, End: ts1,
		Process: exchange.Process{PID: 200, ExePath: "/opt/grpcc", ExeName: "grpcc"},
		Conn: exchange.Conn{
			ID: 11, Remote: netip.MustParseAddrPort("[2001:db8::2]:50051"), Local: netip.MustParseAddrPort("[2001:db8::1]:41000"),
			Source: "go",
		},
	}
	noResponse := &exchange.Exchange{
		Role: exchange.RoleClient,
		Request: &exchange.Message{
			Method: "GET", Target: "/v1/x", Proto: "HTTP/1.1",
			Headers: []exchange.Header{{Name: "Host", Value: "api.example.com"}},
		},
		Flags:   exchange.NoResponse,
		Start:   ts0,
		Process: server.Process,
		Conn: exchange.Conn{
			ID: 3, Remote: netip.MustParseAddrPort("192.0.2.1:443"), Local: netip.MustParseAddrPort("192.0.2.2:40000"),
			TLS: true, Source: "openssl",
		},
	}
	return []*exchange.Exchange{server, grpc, noResponse}
}

// sequentialIDs numbers trace and span ids in the order they are drawn.
func sequentialIDs(o otelmap.Options) otelmap.Options {
	var n byte
	o.NewTraceID = func() otelmap.TraceID { n++; return otelmap.TraceID{0xaa, n} }
	o.NewSpanID = func() otelmap.SpanID { n++; return otelmap.SpanID{0xbb, n} }
	return o
}

func contentTypeSpanHeaders(m *exchange.Message, _ bool) []exchange.Header {
	var out []exchange.Header
	for _, h := range m.Headers {
		if strings.EqualFold(h.Name, "content-type") {
			out = append(out, h)
		}
	}
	return out
}

// put adds kvs (key, value pairs) to m in order.
func put(m pcommon.Map, kvs ...any) {
	for i := 0; i < len(kvs); i += 2 {
		k := kvs[i].(string)
		switch v := kvs[i+1].(type) {
		case string:
			m.PutStr(k, v)
		case int:
			m.PutInt(k, int64(v))
		case []byte:
			m.PutEmptyBytes(k).FromRaw(v)
		case []string:
			s := m.PutEmptySlice(k)
			for _, e := range v {
				s.AppendEmpty().SetStr(e)
			}
		default:
			panic(fmt.Sprintf("%s: %T", k, v))
		}
	}
}

// TestConvertGolden compares the conversion of goldenBatch with the
// expected pdata built field by field: every attribute, in order, every
// span and log field, the resources and their order.
func TestConvertGolden(t *testing.T) {
	c := testConverter()
	c.options = sequentialIDs(otelmap.Options{SpanHeaders: contentTypeSpanHeaders})
	td, ld := convert(goldenBatch(), c)

	wantTraces, wantLogs := ptrace.NewTraces(), plog.NewLogs()
	resource := func(m pcommon.Map, pid int) {
		if pid == 100 {
			put(m, "service.name", "unknown_service:shop", "process.pid", 100, "process.parent_pid", 1, "process.creation.time", "2025-11-25T11:59:00Z",
				"process.executable.name", "shop", "process.executable.path", "/usr/bin/shop",
				"process.command_args", []string{"shop", "-p", "8443"}, "process.owner", "www",
				"container.id", "c0ffee", "host.name", "box")
		} else {
			put(m, "service.name", "unknown_service:grpcc", "process.pid", 200, "process.executable.name", "grpcc", "process.executable.path", "/opt/grpcc", "host.name", "box")
		}
	}
	var spans [2]ptrace.SpanSlice
	var logs [2]plog.LogRecordSlice
	for i, pid := range []int{100, 200} {
		rs := wantTraces.ResourceSpans().AppendEmpty()
		rs.SetSchemaUrl("https://opentelemetry.io/schemas/1.41.0")
		resource(rs.Resource().Attributes(), pid)
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("github.com/tlstap/tlstap/receiver/tlstapreceiver")
		ss.Scope().SetVersion("1.2.3")
		spans[i] = ss.Spans()
		rl := wantLogs.ResourceLogs().AppendEmpty()
		rl.SetSchemaUrl("https://opentelemetry.io/schemas/1.41.0")
		resource(rl.Resource().Attributes(), pid)
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName("github.com/tlstap/tlstap/receiver/tlstapreceiver")
		sl.Scope().SetVersion("1.2.3")
		logs[i] = sl.LogRecords()
	}
	observed := pcommon.NewTimestampFromTime(ts1.Add(time.Second))
	newLog := func(i int, s ptrace.Span, body string, sev plog.SeverityNumber, sevText string, ts time.Time) plog.LogRecord {
		l := logs[i].AppendEmpty()
		l.SetEventName("tlstap.http.exchange")
		l.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		l.SetObservedTimestamp(observed)
		l.SetSeverityNumber(sev)
		l.SetSeverityText(sevText)
		l.Body().SetStr(body)
		l.SetTraceID(s.TraceID())
		l.SetSpanID(s.SpanID())
		l.SetFlags(plog.LogRecordFlags(s.Flags() & 0xff))
		return l
	}

	// The server exchange: client address, path and query, span headers,
	// redacted and grouped headers on the log record.
	s := spans[0].AppendEmpty()
	s.SetTraceID(pcommon.TraceID{0xaa, 1})
	s.SetSpanID(pcommon.SpanID{0xbb, 2})
	s.SetFlags(1)
	s.SetName("POST")
	s.SetKind(ptrace.SpanKindServer)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(ts0))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(ts1))
	common := []any{
		"http.request.method", "POST", "url.path", "/api/items", "url.query", "id=5&x=y", "url.scheme", "https",
		"server.address", "shop.local", "server.port", 8443, "client.address", "10.0.0.9", "client.port", 40000,
		"network.peer.address", "10.0.0.9", "network.peer.port", 40000, "network.protocol.name", "http",
		"network.protocol.version", "1.1", "network.transport", "tcp", "http.response.status_code", 201,
		"user_agent.original", "ua/1", "http.request.body.size", 7, "http.response.body.size", 2,
		"tlstap.tls.library", "openssl", "tlstap.connection.id", 9,
	}
	put(s.Attributes(), common...)
	put(s.Attributes(), "http.request.header.content-type", []string{"application/json"},
		"http.response.header.content-type", []string{"application/json"})
	l := newLog(0, s, "POST https://shop.local:8443/api/items?id=5&x=y -> 201", plog.SeverityNumberInfo, "INFO", ts1)
	put(l.Attributes(), common...)
	put(l.Attributes(),
		"http.request.header.host", []string{"shop.local"}, "http.request.header.user-agent", []string{"ua/1"},
		"http.request.header.authorization", []string{"REDACTED"}, "http.request.header.cookie", []string{"REDACTED"},
		"http.request.header.x-multi", []string{"one", "two"}, "http.request.header.content-type", []string{"application/json"},
		"http.response.header.set-cookie", []string{"REDACTED"}, "http.response.header.content-type", []string{"application/json"},
		"http.request.body.content", `{"n":1}`, "http.response.body.content", "ok")

	// The gRPC exchange: trace context from the request, RPC attributes,
	// status from grpc-status, flags, :authority dropped, a body that is
	// valid UTF-8 despite its NULs and one that is not.
	s = spans[1].AppendEmpty()
	s.SetTraceID(pcommon.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36})
	s.SetSpanID(pcommon.SpanID{0xbb, 3})
	s.SetParentSpanID(pcommon.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7})
	s.SetFlags(0x301)
	s.TraceState().FromRaw("congo=t61rcWkgMzE")
	s.SetName("grpc.health.v1.Health/Check")
	s.SetKind(ptrace.SpanKindClient)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(ts0))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(ts1))
	s.Status().SetCode(ptrace.StatusCodeError)
	common = []any{
		"http.request.method", "POST", "url.full", "http://svc:50051/grpc.health.v1.Health/Check", "url.scheme", "http",
		"server.address", "svc", "server.port", 50051, "network.peer.address", "2001:db8::2", "network.peer.port", 50051,
		"network.protocol.name", "http", "network.protocol.version", "2", "network.transport", "tcp",
		"http.response.status_code", 200, "http.request.body.size", 7, "http.response.body.size", 100,
		"rpc.system.name", "grpc", "rpc.method", "grpc.health.v1.Health/Check", "rpc.response.status_code", "UNAVAILABLE",
		"error.type", "UNAVAILABLE", "tlstap.flags", []string{"incomplete", "response_truncated"},
		"tlstap.tls.library", "go", "tlstap.connection.id", 11,
	}
	put(s.Attributes(), common...)
	put(s.Attributes(), "http.request.header.content-type", []string{"application/grpc"},
		"http.response.header.content-type", []string{"application/grpc"})
	l = newLog(1, s, "POST http://svc:50051/grpc.health.v1.Health/Check -> 200", plog.SeverityNumberError, "ERROR", ts1)
	put(l.Attributes(), common...)
	put(l.Attributes(),
		"http.request.header.content-type", []string{"application/grpc"},
		"http.request.header.traceparent", []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"http.request.header.tracestate", []string{"congo=t61rcWkgMzE"},
		"http.response.header.content-type", []string{"application/grpc"},
		"http.request.body.content", "\x00\x00\x00\x00\x02\x08\x01", "http.response.body.content", []byte{0xff, 0x01})

	// No response: the status message says why; no end, so the log record
	// is stamped with the start.
	s = spans[0].AppendEmpty()
	s.SetTraceID(pcommon.TraceID{0xaa, 4})
	s.SetSpanID(pcommon.SpanID{0xbb, 5})
	s.SetFlags(1)
	s.SetName("GET")
	s.SetKind(ptrace.SpanKindClient)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(ts0))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(time.Time{}))
	s.Status().SetCode(ptrace.StatusCodeError)
	s.Status().SetMessage("no_response")
	common = []any{
		"http.request.method", "GET", "url.full", "https://api.example.com/v1/x", "url.scheme", "https",
		"server.address", "api.example.com", "server.port", 443, "network.peer.address", "192.0.2.1", "network.peer.port", 443,
		"network.protocol.name", "http", "network.protocol.version", "1.1", "network.transport", "tcp",
		"http.request.body.size", 0, "error.type", "no_response", "tlstap.flags", []string{"no_response"},
		"tlstap.tls.library", "openssl", "tlstap.connection.id", 3,
	}
	put(s.Attributes(), common...)
	l = newLog(0, s, "GET https://api.example.com/v1/x -> no response", plog.SeverityNumberError, "ERROR", ts0)
	put(l.Attributes(), common...)
	put(l.Attributes(), "http.request.header.host", []string{"api.example.com"})

	requireSameJSON(t, wantTraces, wantLogs, td, ld)
}

// requireSameJSON compares through OTLP/JSON, where attributes are ordered
// lists: equal output means equal keys, values, types and order. Indented,
// a difference shows as a line diff.
func requireSameJSON(t *testing.T, wantTraces ptrace.Traces, wantLogs plog.Logs, td ptrace.Traces, ld plog.Logs) {
	t.Helper()
	indent := func(b []byte, err error) string {
		require.NoError(t, err)
		var out bytes.Buffer
		require.NoError(t, json.Indent(&out, b, "", "  "))
		return out.String()
	}
	var tm ptrace.JSONMarshaler
	var lm plog.JSONMarshaler
	require.Equal(t, indent(tm.MarshalTraces(wantTraces)), indent(tm.MarshalTraces(td)))
	require.Equal(t, indent(lm.MarshalLogs(wantLogs)), indent(lm.MarshalLogs(ld)))
}

// convertReference is the conversion without any of convert's shortcuts:
// each exchange mapped on its own by otelmap.Map (the neutral form the
// Fluent Bit plugin encodes), each attribute put one by one.
func convertReference(batch []*exchange.Exchange, c converter) (ptrace.Traces, plog.Logs) {
	td, ld := ptrace.NewTraces(), plog.NewLogs()
	observed := pcommon.NewTimestampFromTime(c.now())
	spans := map[otelmap.ProcessKey]ptrace.SpanSlice{}
	logs := map[otelmap.ProcessKey]plog.LogRecordSlice{}
	for _, ex := range batch {
		key := otelmap.KeyOf(ex.Process)
		if _, ok := spans[key]; !ok {
			res := otelmap.Resource(ex.Process, c.hostName, c.options.ServiceNames)
			rs := td.ResourceSpans().AppendEmpty()
			rs.SetSchemaUrl(otelmap.SchemaURL)
			putAttributes(rs.Resource().Attributes(), res)
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName("github.com/tlstap/tlstap/receiver/tlstapreceiver")
			ss.Scope().SetVersion(c.scopeVersion)
			spans[key] = ss.Spans()
			rl := ld.ResourceLogs().AppendEmpty()
			rl.SetSchemaUrl(otelmap.SchemaURL)
			putAttributes(rl.Resource().Attributes(), res)
			sl := rl.ScopeLogs().AppendEmpty()
			sl.Scope().SetName("github.com/tlstap/tlstap/receiver/tlstapreceiver")
			sl.Scope().SetVersion(c.scopeVersion)
			logs[key] = sl.LogRecords()
		}
		rec := otelmap.Map(ex, c.options)
		s := spans[key].AppendEmpty()
		fillSpan(s, &rec.Span)
		putAttributes(s.Attributes(), rec.Span.Attributes)
		l := logs[key].AppendEmpty()
		fillLog(l, &rec.Log, observed)
		putAttributes(l.Attributes(), rec.Log.Attributes)
	}
	if !c.traces {
		td = ptrace.NewTraces()
	}
	if !c.logs {
		ld = plog.NewLogs()
	}
	return td, ld
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

// randomExchange draws an exchange from values that exercise every branch
// of the mapping: roles, methods, target forms, authorities, trace context,
// gRPC, duplicate and sensitive headers in any case, bodies of both kinds,
// missing responses, flags, addresses, processes.
func randomExchange(r *rand.Rand, i int) *exchange.Exchange {
	headers := func() []exchange.Header {
		var hs []exchange.Header
		for range r.IntN(9) {
			name := pick(r, "Host", "host", ":authority", ":path", "User-Agent", "Accept", "Authorization", "COOKIE",
				"Set-Cookie", "x-api-key", "X-Multi", "x-multi", "traceparent", "tracestate", "Content-Type",
				"content-type", "grpc-status", "X-Span", "\u017fet-cookie", "x-api-\u212aey", "Ünïcode")
			v := pick(r, "v1", "v2", "", "api.example.com", "api.example.com:8443", "[2001:db8::1]:81", "[::1]", "h:99999",
				"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-zz", "application/grpc", "0", "14")
			hs = append(hs, exchange.Header{Name: name, Value: v})
		}
		return hs
	}
	body := func() []byte {
		return pick(r, nil, []byte("hello"), []byte{0xff, 0}, []byte("héllo ✓"), bytes.Repeat([]byte("ab"), 600))
	}
	start := ts0.Add(time.Duration(r.IntN(1000)) * time.Millisecond)
	ex := &exchange.Exchange{
		Role: pick(r, exchange.RoleClient, exchange.RoleServer, exchange.RoleUnknown),
		Request: &exchange.Message{
			Method: pick(r, "GET", "POST", "get", "PROPFIND", "CONNECT", ""),
			Target: pick(r, "/api/v1/items?id=42", "/", "", "*", "/a?b=c#d", "http://proxy.example/p?q=1",
				"HTTPS://user:pw@h.example:9000/x", "h.example:443", "/pkg.Svc/Method", "/pkg.Svc/Method?x=1", "relative"),
			Proto:   pick(r, "HTTP/1.1", "HTTP/1.0", "HTTP/2", ""),
			Headers: headers(), Body: body(), BodySize: int64(r.IntN(5000)),
		},
		Start: start,
		End:   pick(r, start.Add(time.Millisecond), time.Time{}),
		Flags: exchange.Flags(r.IntN(64)),
		Process: exchange.Process{
			PID: pick(r, 10, 20, 30), PPID: pick(r, 0, 1), ExePath: pick(r, "", "/usr/bin/curl"), ExeName: pick(r, "", "curl"),
			CommandArgs: pick(r, []string(nil), []string{"curl", "-s"}), Owner: pick(r, "", "root"),
			CreationTime: pick(r, time.Time{}, ts0.Add(-time.Hour)), ContainerID: pick(r, "", "c0ffee"),
		},
		Conn: exchange.Conn{
			ID:     uint64(i),
			Remote: pick(r, netip.AddrPort{}, netip.MustParseAddrPort("127.0.0.1:443"), netip.MustParseAddrPort("[::ffff:10.0.0.1]:8080"), netip.MustParseAddrPort("[2001:db8::2]:0")),
			Local:  pick(r, netip.AddrPort{}, netip.MustParseAddrPort("127.0.0.1:40000"), netip.MustParseAddrPort("[::1]:0")),
			TLS:    r.IntN(2) == 0, Source: pick(r, "", "openssl", "go"),
		},
	}
	if r.IntN(4) == 0 {
		ex.Request.DecodedBody = []byte("decoded")
	}
	if r.IntN(5) > 0 {
		ex.Response = &exchange.Message{
			StatusCode: pick(r, 200, 0, 404, 500, 101), Proto: pick(r, "HTTP/1.1", "HTTP/2", ""),
			Headers: headers(), Trailers: headers(), Body: body(), BodySize: int64(r.IntN(5000)),
		}
	}
	return ex
}

// TestConvertMatchesNeutralForm checks convert's shortcuts (one Mapper and
// its scratch space per batch, shared attributes put once and copied,
// resources copied) against convertReference on random batches, for each
// combination of options and signals.
func TestConvertMatchesNeutralForm(t *testing.T) {
	variants := map[string]func(*converter){
		"default":      func(*converter) {},
		"span headers": func(c *converter) { c.options.SpanHeaders = contentTypeSpanHeaders },
		"policy redaction": func(c *converter) {
			c.options.RedactHeaders = func(hs []exchange.Header) []exchange.Header { return hs }
			c.options.SpanHeaders = contentTypeSpanHeaders
		},
		"logs only":   func(c *converter) { c.traces = false },
		"traces only": func(c *converter) { c.logs, c.hostName = false, "" },
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 40 {
		batch := make([]*exchange.Exchange, 1+r.IntN(12))
		for i := range batch {
			batch[i] = randomExchange(r, i)
		}
		batch = append(batch, goldenBatch()...)
		for name, variant := range variants {
			c := testConverter()
			variant(&c)
			base := c.options
			c.options = sequentialIDs(base)
			td, ld := convert(batch, c)
			c.options = sequentialIDs(base)
			wantTraces, wantLogs := convertReference(batch, c)
			requireSameJSON(t, wantTraces, wantLogs, td, ld)
			if t.Failed() {
				t.Fatal(name)
			}
		}
	}
}

// A resource attribute turned off (resource_attributes: {process.command_args:
// {enabled: false}}) is on neither the spans' nor the logs' resource.
func TestConvertDisabledResourceAttribute(t *testing.T) {
	c := testConverter()
	c.dropResource = map[string]bool{"process.command_args": true, "host.name": true}
	td, ld := convert([]*exchange.Exchange{testExchange(10, exchange.RoleClient, 200)}, c)
	for _, res := range []pcommon.Map{td.ResourceSpans().At(0).Resource().Attributes(), ld.ResourceLogs().At(0).Resource().Attributes()} {
		_, ok := res.Get("process.command_args")
		assert.False(t, ok)
		_, ok = res.Get("host.name")
		assert.False(t, ok)
		pid, ok := res.Get("process.pid")
		assert.True(t, ok)
		assert.Equal(t, int64(10), pid.Int())
	}
	assert.Equal(t, "https://opentelemetry.io/schemas/1.41.0", td.ResourceSpans().At(0).SchemaUrl())
}
