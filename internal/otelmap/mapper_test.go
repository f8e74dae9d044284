package otelmap

import (
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tlstap/tlstap/internal/exchange"
)

// mapperExchanges covers the branches whose scratch space or caches a
// reused Mapper could get wrong: headers repeated across exchanges,
// duplicate names, pseudo-headers, span headers, gRPC, bodies of both kinds.
func mapperExchanges() []*exchange.Exchange {
	grpc := clientExchange()
	grpc.Request.Proto, grpc.Request.Method, grpc.Request.Target = "HTTP/2", "POST", "/grpc.health.v1.Health/Check"
	grpc.Request.Headers = []exchange.Header{
		{Name: ":authority", Value: "svc:50051"}, {Name: "content-type", Value: "application/grpc"},
		{Name: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{Name: "tracestate", Value: "congo=t61rcWkgMzE"},
	}
	grpc.Response.Headers = []exchange.Header{{Name: "content-type", Value: "application/grpc"}} // also a request header
	grpc.Response.Trailers = []exchange.Header{{Name: "grpc-status", Value: "14"}}
	grpc.Response.Body = []byte{0, 0, 0, 0, 2, 8, 1}
	grpc.Flags = exchange.Incomplete | exchange.ResponseTruncated

	noResp := serverExchange()
	noResp.Response = nil
	noResp.Flags = exchange.NoResponse
	noResp.Request.Headers = append(noResp.Request.Headers,
		exchange.Header{Name: "COOKIE", Value: "a=b"}, exchange.Header{Name: "X-Span-Id", Value: "s1"},
		exchange.Header{Name: "cookie", Value: "c=d"}, exchange.Header{Name: "x-api-\u212aey", Value: "kelvin"})

	return []*exchange.Exchange{clientExchange(), serverExchange(), grpc, noResp, clientExchange(), grpc, serverExchange()}
}

func spanHeaders(m *exchange.Message, response bool) []exchange.Header {
	var out []exchange.Header
	for _, h := range m.Headers {
		if strings.HasPrefix(strings.ToLower(h.Name), "x-span") || (response && strings.EqualFold(h.Name, "content-type")) {
			out = append(out, h)
		}
	}
	return out
}

// mapperWant is what one exchange of mapperExchanges maps to, written out
// by hand from the semantic conventions, not computed by Map.
type mapperWant struct {
	name      string
	kind      SpanKind
	status    StatusCode
	statusMsg string
	traceID   TraceID
	parent    SpanID
	span      Attributes // without the span headers
	spanHdrs  Attributes // the span headers spanHeaders selects
	logBody   string
	severity  int32
	logOwn    Attributes // the log record's attributes after the shared ones
}

func mapperWants() []mapperWant {
	fixedTrace, fixedSpan := fixedIDs().NewTraceID(), SpanID{}
	client := mapperWant{
		name: "GET", kind: SpanKindClient, status: StatusUnset, traceID: fixedTrace, parent: fixedSpan,
		span:     clientGETSpanAttributes(),
		spanHdrs: Attributes{Strings("http.response.header.content-type", []string{"application/json"})},
		logBody:  "GET https://api.example.com/v1/x?a=1 -> 200", severity: int32(SeverityInfo),
		logOwn: Attributes{
			Strings("http.request.header.host", []string{"api.example.com"}),
			Strings("http.request.header.user-agent", []string{"curl/7.88.1"}),
			Strings("http.request.header.accept", []string{"*/*"}),
			Strings("http.request.header.authorization", []string{"REDACTED"}),
			Strings("http.request.header.x-multi", []string{"one", "two"}),
			Strings("http.response.header.content-type", []string{"application/json"}),
			Strings("http.response.header.set-cookie", []string{"REDACTED"}),
			String("http.response.body.content", `{"ok":true}`),
		},
	}
	serverCommon := Attributes{
		String("http.request.method", "POST"),
		String("url.path", "/api/items"),
		String("url.query", "id=5&x=y"),
		String("url.scheme", "https"),
		String("server.address", "shop.local"),
		Int("server.port", 8443),
		String("client.address", "10.0.0.9"),
		Int("client.port", 40000),
		String("network.peer.address", "10.0.0.9"),
		Int("network.peer.port", 40000),
		String("network.protocol.name", "http"),
		String("network.protocol.version", "1.0"),
		String("network.transport", "tcp"),
	}
	server := mapperWant{
		name: "POST", kind: SpanKindServer, status: StatusError, traceID: fixedTrace, parent: fixedSpan,
		span: append(slices.Clone(serverCommon),
			Int("http.response.status_code", 503),
			Int("http.request.body.size", 3),
			Int("http.response.body.size", 3),
			String("error.type", "503"),
			String("tlstap.tls.library", "openssl"),
			Int("tlstap.connection.id", 9),
		),
		logBody: "POST https://shop.local:8443/api/items?id=5&x=y -> 503", severity: int32(SeverityError),
		logOwn: Attributes{
			Strings("http.request.header.host", []string{"shop.local"}),
			Strings("http.request.header.content-length", []string{"3"}),
			String("http.request.body.content", "abc"),
			Bytes("http.response.body.content", []byte{0xff, 0xfe, 0x00}),
		},
	}
	grpc := mapperWant{
		name: "grpc.health.v1.Health/Check", kind: SpanKindClient, status: StatusError,
		// the request's traceparent
		traceID: TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		parent:  SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		span: Attributes{
			String("http.request.method", "POST"),
			String("url.full", "https://svc:50051/grpc.health.v1.Health/Check"),
			String("url.scheme", "https"),
			String("server.address", "svc"),
			Int("server.port", 50051),
			String("network.peer.address", "93.184.216.34"),
			Int("network.peer.port", 443),
			String("network.protocol.name", "http"),
			String("network.protocol.version", "2"),
			String("network.transport", "tcp"),
			Int("http.response.status_code", 200),
			Int("http.request.body.size", 0),
			Int("http.response.body.size", 11),
			String("rpc.system.name", "grpc"),
			String("rpc.method", "grpc.health.v1.Health/Check"),
			String("rpc.response.status_code", "UNAVAILABLE"), // grpc-status 14
			String("error.type", "UNAVAILABLE"),
			Strings("tlstap.flags", []string{"incomplete", "response_truncated"}),
			String("tlstap.tls.library", "openssl"),
			Int("tlstap.connection.id", 7),
		},
		spanHdrs: Attributes{Strings("http.response.header.content-type", []string{"application/grpc"})},
		logBody:  "POST https://svc:50051/grpc.health.v1.Health/Check -> 200", severity: int32(SeverityError),
		logOwn: Attributes{
			Strings("http.request.header.content-type", []string{"application/grpc"}),
			Strings("http.request.header.traceparent", []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}),
			Strings("http.request.header.tracestate", []string{"congo=t61rcWkgMzE"}),
			Strings("http.response.header.content-type", []string{"application/grpc"}),
			String("http.response.body.content", "\x00\x00\x00\x00\x02\x08\x01"),
		},
	}
	noResp := mapperWant{
		name: "POST", kind: SpanKindServer, status: StatusError, statusMsg: "no_response", traceID: fixedTrace, parent: fixedSpan,
		span: append(slices.Clone(serverCommon),
			Int("http.request.body.size", 3),
			String("error.type", "no_response"),
			Strings("tlstap.flags", []string{"no_response"}),
			String("tlstap.tls.library", "openssl"),
			Int("tlstap.connection.id", 9),
		),
		spanHdrs: Attributes{Strings("http.request.header.x-span-id", []string{"s1"})},
		logBody:  "POST https://shop.local:8443/api/items?id=5&x=y -> no response", severity: int32(SeverityError),
		logOwn: Attributes{
			Strings("http.request.header.host", []string{"shop.local"}),
			Strings("http.request.header.content-length", []string{"3"}),
			Strings("http.request.header.cookie", []string{"REDACTED", "REDACTED"}), // COOKIE and cookie are one header
			Strings("http.request.header.x-span-id", []string{"s1"}),
			Strings("http.request.header.x-api-key", []string{"REDACTED"}), // Kelvin sign lowers to k
			String("http.request.body.content", "abc"),
		},
	}
	// the order of mapperExchanges
	return []mapperWant{client, server, grpc, noResp, client, grpc, server}
}

// A reused Mapper gives, exchange after exchange, the records written out
// in mapperWants: nothing of an earlier exchange (scratch attributes, header
// keys, cached peer address, span headers) leaks into a later one.
func TestMapperReuseMatchesMap(t *testing.T) {
	wantRes := Attributes{
		String("service.name", "unknown_service:curl"),
		Int("process.pid", 4242),
		Int("process.parent_pid", 1),
		String("process.creation.time", "2025-11-25T11:59:59Z"),
		String("process.executable.name", "curl"),
		String("process.executable.path", "/usr/bin/curl"),
		Strings("process.command_args", []string{"curl", "https://api.example.com/v1/x?a=1"}),
		String("process.owner", "root"),
		String("host.name", "box"),
	}
	for _, withSpanHeaders := range []bool{false, true} {
		opts := fixedIDs()
		if withSpanHeaders {
			opts.SpanHeaders = spanHeaders
		}
		m := NewMapper(opts)
		wants := mapperWants()
		for i, ex := range mapperExchanges() {
			w := wants[i]
			got := m.Map(ex)
			s, l := got.Span, got.Log
			assert.Equal(t, w.name, s.Name, "exchange %d", i)
			assert.Equal(t, w.kind, s.Kind, "exchange %d", i)
			assert.Equal(t, w.status, s.Status, "exchange %d", i)
			assert.Equal(t, w.statusMsg, s.StatusMsg, "exchange %d", i)
			assert.Equal(t, w.traceID, s.TraceID, "exchange %d", i)
			assert.Equal(t, fixedIDs().NewSpanID(), s.SpanID, "exchange %d", i)
			assert.Equal(t, w.parent, s.ParentSpanID, "exchange %d", i)
			assert.Equal(t, t0, s.Start, "exchange %d", i)
			assert.Equal(t, t1, s.End, "exchange %d", i)
			wantSpan := slices.Clone(w.span)
			if withSpanHeaders {
				wantSpan = append(wantSpan, w.spanHdrs...)
			}
			assert.Equal(t, wantSpan, s.Attributes, "exchange %d (span headers %v)", i, withSpanHeaders)

			assert.Equal(t, len(w.span), got.Shared, "exchange %d", i)
			assert.Equal(t, "tlstap.http.exchange", l.EventName, "exchange %d", i)
			assert.Equal(t, w.logBody, l.Body, "exchange %d", i)
			assert.Equal(t, w.severity, l.Severity, "exchange %d", i)
			assert.Equal(t, t1, l.Timestamp, "exchange %d", i)
			assert.Equal(t, s.TraceID, l.TraceID, "exchange %d", i)
			assert.Equal(t, s.SpanID, l.SpanID, "exchange %d", i)
			assert.Equal(t, append(slices.Clone(w.span), w.logOwn...), l.Attributes, "exchange %d", i)

			res := wantRes
			if ex.Process.PID == 0 {
				res = Attributes{String("service.name", "unknown_service"), Int("process.pid", 0), String("host.name", "box")}
			}
			assert.Equal(t, res, m.Resource(ex.Process, "box"), "exchange %d", i)
		}
	}
}

func TestMapKeepsSpanAndLogApart(t *testing.T) {
	r := Map(clientExchange(), fixedIDs())
	r.Span.Attributes[0].Value.Str = "changed"
	assert.Equal(t, "GET", r.Log.Attributes[0].Value.Str)
}

func TestMapperAllocations(t *testing.T) {
	m := NewMapper(fixedIDs())
	ex := clientExchange()
	m.Map(ex) // fills the caches
	// The log body, which holds url.full too, is the only new string; the
	// header keys and the peer address come from the caches, the body
	// content is the exchange's.
	assert.Equal(t, 1.0, testing.AllocsPerRun(100, func() { m.Map(ex) }))
}

func TestSensitiveHeaderIsToLower(t *testing.T) {
	want := map[string]bool{}
	for _, s := range sensitiveHeaders {
		want[s] = true
	}
	for _, name := range []string{
		"authorization", "Authorization", "AUTHORIZATION", "proxy-authorization", "Proxy-Authorization",
		"cookie", "Cookie", "COOKIE", "set-cookie", "Set-Cookie", "x-api-key", "X-Api-Key", "X-API-KEY",
		"cookie2", "cooki", "Set-Cookie2", "x-api-keys", "accept", "", ":authority",
		"x-api-\u212aey",  // Kelvin sign: ToLower makes it "x-api-key"
		"\u017fet-cookie", // long s: ToLower keeps it, EqualFold would not
		"Ünïcode",
	} {
		assert.Equal(t, want[strings.ToLower(name)], isSensitiveHeader(name), "%q", name)
	}
}

func TestHeaderKeyIsToLower(t *testing.T) {
	for _, single := range []bool{true, false} {
		m := &Mapper{single: single}
		for range 2 { // the second round comes from the cache
			for _, name := range []string{"Host", "host", "HOST", "Content-Type", "x-Ümlaut", "\u212a-Kelvin", "İ-Dotted"} {
				assert.Equal(t, KeyHTTPRequestHeaderPrefix+strings.ToLower(name), m.headerKey(reqHeaderCache, name))
				assert.Equal(t, KeyHTTPResponseHeaderPrefix+strings.ToLower(name), m.headerKey(respHeaderCache, name))
			}
		}
		assert.Equal(t, single, m.keyCache[0] == nil)
	}
	m := &Mapper{}
	for i := range 2 * maxCachedKeys {
		m.headerKey(reqHeaderCache, "X-"+strings.Repeat("a", i))
	}
	assert.Len(t, m.keyCache[reqHeaderCache], maxCachedKeys, "names are whatever peers send")
}

func TestRPCName(t *testing.T) {
	assert.Equal(t, "pkg.Svc/Method", rpcName("/pkg.Svc/Method", "pkg.Svc", "Method"))
	assert.Equal(t, "pkg.Svc/Method", rpcName("/pkg.Svc/Method?x=1", "pkg.Svc", "Method"))
	assert.Equal(t, "other/M", rpcName("/pkg.Svc/Method", "other", "M"))
	assert.Equal(t, "a/b", rpcName("", "a", "b"))
}

func TestMapperRandomIDs(t *testing.T) {
	m := NewMapper(Options{})
	traces, spans := map[TraceID]bool{}, map[SpanID]bool{}
	for range 10 * 32 { // across several refills of the buffer
		r := m.Map(clientExchange())
		require.False(t, r.Span.TraceID.IsZero())
		require.False(t, r.Span.SpanID.IsZero())
		traces[r.Span.TraceID], spans[r.Span.SpanID] = true, true
	}
	assert.Len(t, traces, 10*32)
	assert.Len(t, spans, 10*32)
}

func TestBodyContentAliasesExchange(t *testing.T) {
	ex := clientExchange()
	v, ok := Map(ex, fixedIDs()).Log.Attributes.Get(KeyHTTPResponseBodyContent)
	require.True(t, ok)
	assert.Equal(t, `{"ok":true}`, v.Str)
	assert.Same(t, &ex.Response.Body[0], unsafe.StringData(v.Str), "no copy of the body")
}

// BenchmarkMapper is Mapper.Map alone on the exchange of the receiver's
// BenchmarkConvert (HTTP/1.1, five headers, 1 KiB body), random ids.
func BenchmarkMapper(b *testing.B) {
	body := make([]byte, 1024)
	for j := range body {
		body[j] = 'a' + byte(j%26)
	}
	ex := serverExchange()
	ex.Request.Method, ex.Request.Target, ex.Request.Proto = "GET", "/api/v1/items?id=42", "HTTP/1.1"
	ex.Request.Headers = []exchange.Header{{Name: "Host", Value: "api.example.com"}, {Name: "User-Agent", Value: "bench/1.0"}, {Name: "Accept", Value: "*/*"}}
	ex.Response = &exchange.Message{
		StatusCode: 200, Reason: "OK", Proto: "HTTP/1.1",
		Headers: []exchange.Header{{Name: "Content-Type", Value: "application/json"}, {Name: "Content-Length", Value: "1024"}},
		Body:    body, BodySize: 1024,
	}
	m := NewMapper(Options{})
	b.ReportAllocs()
	for b.Loop() {
		m.Map(ex)
	}
}
