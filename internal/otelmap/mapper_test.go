package otelmap

import (
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

func TestMapperReuseMatchesMap(t *testing.T) {
	for _, opts := range []Options{fixedIDs(), func() Options { o := fixedIDs(); o.SpanHeaders = spanHeaders; return o }()} {
		m := NewMapper(opts)
		for i, ex := range mapperExchanges() {
			want := Map(ex, opts)
			got := m.Map(ex)
			assert.Equal(t, want.Span, got.Span, "exchange %d", i)
			assert.Equal(t, want.Log, got.Log, "exchange %d", i)
			assert.Equal(t, want.Shared, got.Shared, "exchange %d", i)
			assert.Equal(t, got.Span.Attributes[:got.Shared], got.Log.Attributes[:got.Shared], "exchange %d", i)

			res := Resource(ex.Process, "box", nil)
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
