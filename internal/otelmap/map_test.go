package otelmap

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tlstap/tlstap/internal/exchange"
)

var (
	t0 = time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)
	t1 = t0.Add(42 * time.Millisecond)
)

func fixedIDs() Options {
	return Options{
		NewTraceID: func() TraceID { return TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16} },
		NewSpanID:  func() SpanID { return SpanID{0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 1, 2} },
	}
}

func clientExchange() *exchange.Exchange {
	return &exchange.Exchange{
		Role: exchange.RoleClient,
		Request: &exchange.Message{
			Method: "GET",
			Target: "/v1/x?a=1",
			Proto:  "HTTP/1.1",
			Headers: []exchange.Header{
				{Name: "Host", Value: "api.example.com"},
				{Name: "User-Agent", Value: "curl/7.88.1"},
				{Name: "Accept", Value: "*/*"},
				{Name: "Authorization", Value: "Bearer secret"},
				{Name: "X-Multi", Value: "one"},
				{Name: "x-multi", Value: "two"},
			},
		},
		Response: &exchange.Message{
			StatusCode: 200,
			Reason:     "OK",
			Proto:      "HTTP/1.1",
			Headers: []exchange.Header{
				{Name: "Content-Type", Value: "application/json"},
				{Name: "Set-Cookie", Value: "session=abc"},
			},
			Body:     []byte(`{"ok":true}`),
			BodySize: 11,
		},
		Start: t0,
		End:   t1,
		Process: exchange.Process{
			PID: 4242, PPID: 1, ExePath: "/usr/bin/curl", ExeName: "curl",
			CommandArgs: []string{"curl", "https://api.example.com/v1/x?a=1"},
			Owner:       "root", CreationTime: t0.Add(-time.Second),
		},
		Conn: exchange.Conn{
			ID:     7,
			Local:  netip.MustParseAddrPort("10.0.0.2:51000"),
			Remote: netip.MustParseAddrPort("93.184.216.34:443"),
			TLS:    true,
			Source: "openssl",
		},
	}
}

func serverExchange() *exchange.Exchange {
	return &exchange.Exchange{
		Role: exchange.RoleServer,
		Request: &exchange.Message{
			Method: "POST",
			Target: "/api/items?id=5&x=y",
			Proto:  "HTTP/1.0",
			Headers: []exchange.Header{
				{Name: "Host", Value: "shop.local"},
				{Name: "Content-Length", Value: "3"},
			},
			Body:     []byte("abc"),
			BodySize: 3,
		},
		Response: &exchange.Message{
			StatusCode: 503,
			Proto:      "HTTP/1.0",
			Body:       []byte{0xff, 0xfe, 0x00},
			BodySize:   3,
		},
		Start: t0,
		End:   t1,
		Conn: exchange.Conn{
			ID:     9,
			Local:  netip.MustParseAddrPort("10.0.0.5:8443"),
			Remote: netip.MustParseAddrPort("10.0.0.9:40000"),
			TLS:    true,
			Source: "openssl",
		},
	}
}

func TestMapClient(t *testing.T) {
	r := Map(clientExchange(), fixedIDs())
	s := r.Span
	assert.Equal(t, "GET", s.Name)
	assert.Equal(t, SpanKindClient, s.Kind)
	assert.Equal(t, t0, s.Start)
	assert.Equal(t, t1, s.End)
	assert.Equal(t, StatusUnset, s.Status)
	assert.Equal(t, fixedIDs().NewTraceID(), s.TraceID)
	assert.Equal(t, fixedIDs().NewSpanID(), s.SpanID)
	assert.True(t, s.ParentSpanID.IsZero())

	want := clientGETSpanAttributes()
	assert.Equal(t, want, s.Attributes)

	l := r.Log
	assert.Equal(t, "tlstap.http.exchange", l.EventName)
	assert.Equal(t, "GET https://api.example.com/v1/x?a=1 -> 200", l.Body)
	assert.Equal(t, s.TraceID, l.TraceID)
	assert.Equal(t, s.SpanID, l.SpanID)
	assert.Equal(t, t1, l.Timestamp)
	assert.Equal(t, int32(SeverityInfo), l.Severity)

	wantLog := append(slices.Clone(want),
		Strings("http.request.header.host", []string{"api.example.com"}),
		Strings("http.request.header.user-agent", []string{"curl/7.88.1"}),
		Strings("http.request.header.accept", []string{"*/*"}),
		Strings("http.request.header.authorization", []string{"REDACTED"}),
		Strings("http.request.header.x-multi", []string{"one", "two"}),
		Strings("http.response.header.content-type", []string{"application/json"}),
		Strings("http.response.header.set-cookie", []string{"REDACTED"}),
		String("http.response.body.content", `{"ok":true}`),
	)
	assert.Equal(t, wantLog, l.Attributes)
}

func TestMapServer(t *testing.T) {
	r := Map(serverExchange(), fixedIDs())
	s := r.Span
	assert.Equal(t, "POST", s.Name)
	assert.Equal(t, SpanKindServer, s.Kind)
	assert.Equal(t, StatusError, s.Status)
	assert.Empty(t, s.StatusMsg)
	want := Attributes{
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
		Int("http.response.status_code", 503),
		Int("http.request.body.size", 3),
		Int("http.response.body.size", 3),
		String("error.type", "503"),
		String("tlstap.tls.library", "openssl"),
		Int("tlstap.connection.id", 9),
	}
	assert.Equal(t, want, s.Attributes)

	l := r.Log
	assert.Equal(t, "POST https://shop.local:8443/api/items?id=5&x=y -> 503", l.Body)
	assert.Equal(t, int32(SeverityError), l.Severity)
	reqBody, ok := l.Attributes.Get("http.request.body.content")
	require.True(t, ok)
	assert.Equal(t, String("", "abc").Value, reqBody)
	respBody, ok := l.Attributes.Get("http.response.body.content")
	require.True(t, ok)
	assert.Equal(t, TypeBytes, respBody.Type)
	assert.Equal(t, []byte{0xff, 0xfe, 0x00}, respBody.Bytes)
	cl, _ := l.Attributes.Get("http.request.header.content-length")
	assert.Equal(t, []string{"3"}, cl.Strings)
}

func TestStatusRules(t *testing.T) {
	for _, tc := range []struct {
		role    exchange.Role
		code    int
		flags   exchange.Flags
		noResp  bool
		status  StatusCode
		errType string
		msg     string
	}{
		{exchange.RoleClient, 200, 0, false, StatusUnset, "", ""},
		{exchange.RoleClient, 404, 0, false, StatusError, "404", ""},
		{exchange.RoleServer, 404, 0, false, StatusUnset, "", ""},
		{exchange.RoleServer, 500, 0, false, StatusError, "500", ""},
		{exchange.RoleClient, 502, 0, false, StatusError, "502", ""},
		{exchange.RoleClient, 0, exchange.NoResponse, true, StatusError, "no_response", "no_response"},
		{exchange.RoleServer, 0, exchange.ParseError | exchange.NoResponse, true, StatusError, "parse_error", "parse_error"},
		{exchange.RoleClient, 200, exchange.Incomplete, false, StatusUnset, "", ""},
	} {
		ex := clientExchange()
		ex.Role = tc.role
		ex.Flags = tc.flags
		if tc.noResp {
			ex.Response = nil
		} else {
			ex.Response.StatusCode = tc.code
		}
		r := Map(ex, fixedIDs())
		assert.Equal(t, tc.status, r.Span.Status, "%v %d", tc.role, tc.code)
		assert.Equal(t, tc.msg, r.Span.StatusMsg, "%v %d", tc.role, tc.code)
		et, ok := r.Span.Attributes.Get("error.type")
		if tc.errType == "" {
			assert.False(t, ok, "%v %d: error.type=%q", tc.role, tc.code, et.Str)
		} else {
			assert.Equal(t, tc.errType, et.Str, "%v %d", tc.role, tc.code)
		}
		if tc.noResp {
			assert.True(t, len(r.Log.Body) > 0 && r.Log.Body[len(r.Log.Body)-len("-> no response"):] == "-> no response", r.Log.Body)
			_, ok := r.Span.Attributes.Get("http.response.status_code")
			assert.False(t, ok)
			_, ok = r.Span.Attributes.Get("http.response.body.size")
			assert.False(t, ok)
		}
	}
}

func TestFlagsAttribute(t *testing.T) {
	ex := clientExchange()
	ex.Flags = exchange.Incomplete | exchange.ResponseTruncated
	v, ok := Map(ex, fixedIDs()).Span.Attributes.Get("tlstap.flags")
	require.True(t, ok)
	assert.Equal(t, []string{"incomplete", "response_truncated"}, v.Strings)

	_, ok = Map(clientExchange(), fixedIDs()).Span.Attributes.Get("tlstap.flags")
	assert.False(t, ok)
}

func TestMethods(t *testing.T) {
	ex := clientExchange()
	ex.Request.Method = "PROPFIND"
	r := Map(ex, fixedIDs())
	assert.Equal(t, "HTTP", r.Span.Name)
	m, _ := r.Span.Attributes.Get("http.request.method")
	assert.Equal(t, "_OTHER", m.Str)
	o, _ := r.Span.Attributes.Get("http.request.method_original")
	assert.Equal(t, "PROPFIND", o.Str)
	assert.Equal(t, "PROPFIND https://api.example.com/v1/x?a=1 -> 200", r.Log.Body)

	// Methods are case-sensitive.
	ex.Request.Method = "get"
	m, _ = Map(ex, fixedIDs()).Span.Attributes.Get("http.request.method")
	assert.Equal(t, "_OTHER", m.Str)

	for _, known := range []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"} {
		ex.Request.Method = known
		r := Map(ex, fixedIDs())
		assert.Equal(t, known, r.Span.Name)
		_, ok := r.Span.Attributes.Get("http.request.method_original")
		assert.False(t, ok)
	}
}

func TestURLFull(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tls     bool
		target  string
		host    string // "" = no Host header
		remote  string
		method  string
		want    string
		addr    string
		port    int64
		display string
	}{
		{name: "https default port", tls: true, target: "/a", host: "example.com", remote: "1.2.3.4:443",
			want: "https://example.com/a", addr: "example.com", port: 443},
		{name: "https explicit default port is omitted", tls: true, target: "/a", host: "example.com:443", remote: "1.2.3.4:443",
			want: "https://example.com/a", addr: "example.com", port: 443},
		{name: "http non default port", target: "/a?b=c", host: "example.com:8080", remote: "1.2.3.4:8080",
			want: "http://example.com:8080/a?b=c", addr: "example.com", port: 8080},
		{name: "http default port", target: "/", host: "example.com", remote: "1.2.3.4:80",
			want: "http://example.com/", addr: "example.com", port: 80},
		{name: "no host header uses remote", tls: true, target: "/x", remote: "127.0.0.1:8443",
			want: "https://127.0.0.1:8443/x", addr: "127.0.0.1", port: 8443},
		{name: "no host header ipv6 remote", target: "/x", remote: "[::1]:8080",
			want: "http://[::1]:8080/x", addr: "::1", port: 8080},
		{name: "ipv6 host header", target: "/x", host: "[2001:db8::1]:81", remote: "[2001:db8::1]:81",
			want: "http://[2001:db8::1]:81/x", addr: "2001:db8::1", port: 81},
		{name: "absolute form as is", target: "http://proxy.example/p?q=1", host: "proxy.example", remote: "10.1.1.1:3128",
			want: "http://proxy.example/p?q=1", addr: "proxy.example", port: 80},
		{name: "absolute form with port", target: "http://h.example:9000/p", remote: "10.1.1.1:3128",
			want: "http://h.example:9000/p", addr: "h.example", port: 9000},
		{name: "connect authority form", method: "CONNECT", target: "h.example:443", host: "h.example:443", remote: "10.1.1.1:3128",
			want: "http://h.example:443", addr: "h.example", port: 443},
		{name: "host unknown", target: "/only/path", want: "", display: "GET /only/path -> 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := clientExchange()
			ex.Conn.TLS = tc.tls
			ex.Conn.Remote = netip.AddrPort{}
			if tc.remote != "" {
				ex.Conn.Remote = netip.MustParseAddrPort(tc.remote)
			}
			ex.Request.Target = tc.target
			if tc.method != "" {
				ex.Request.Method = tc.method
			}
			ex.Request.Headers = nil
			if tc.host != "" {
				ex.Request.Headers = []exchange.Header{{Name: "Host", Value: tc.host}}
			}
			r := Map(ex, fixedIDs())
			u, ok := r.Span.Attributes.Get("url.full")
			if tc.want == "" {
				assert.False(t, ok, u.Str)
				_, ok := r.Span.Attributes.Get("server.address")
				assert.False(t, ok)
			} else {
				assert.Equal(t, tc.want, u.Str)
				a, _ := r.Span.Attributes.Get("server.address")
				assert.Equal(t, tc.addr, a.Str)
				p, _ := r.Span.Attributes.Get("server.port")
				assert.Equal(t, tc.port, p.Int)
			}
			display := tc.display
			if display == "" {
				display = r.Span.Name + " " + tc.want + " -> 200"
			}
			assert.Equal(t, display, r.Log.Body)
		})
	}
}

func TestServerURL(t *testing.T) {
	ex := serverExchange()
	ex.Conn.TLS = false
	ex.Request.Target = "/plain"
	ex.Request.Headers = nil // no Host: server address from the local end
	r := Map(ex, fixedIDs())
	a := r.Span.Attributes
	get := func(k string) any {
		v, ok := a.Get(k)
		if !ok {
			return nil
		}
		return v.AsAny()
	}
	assert.Equal(t, "/plain", get("url.path"))
	assert.Nil(t, get("url.query"))
	assert.Equal(t, "http", get("url.scheme"))
	assert.Equal(t, "10.0.0.5", get("server.address"))
	assert.Equal(t, int64(8443), get("server.port"))
	assert.Nil(t, get("url.full"))
	assert.Equal(t, "POST http://10.0.0.5:8443/plain -> 503", r.Log.Body)

	// Empty query string is still a query.
	ex.Request.Target = "/p?"
	v, ok := Map(ex, fixedIDs()).Span.Attributes.Get("url.query")
	assert.True(t, ok)
	assert.Equal(t, "", v.Str)
}

func TestTraceparent(t *testing.T) {
	ex := clientExchange()
	ex.Request.Headers = append(ex.Request.Headers,
		exchange.Header{Name: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		exchange.Header{Name: "tracestate", Value: "congo=t61rcWkgMzE"},
	)
	r := Map(ex, fixedIDs())
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", r.Span.TraceID.String())
	assert.Equal(t, "00f067aa0ba902b7", r.Span.ParentSpanID.String())
	assert.Equal(t, fixedIDs().NewSpanID(), r.Span.SpanID, "a new span id, never the parent's")
	assert.Equal(t, "congo=t61rcWkgMzE", r.Span.TraceState)
	assert.Equal(t, uint8(1), r.Span.TraceFlags)
	assert.Equal(t, r.Span.TraceID, r.Log.TraceID)
	assert.Equal(t, r.Span.SpanID, r.Log.SpanID)
	tp, ok := r.Log.Attributes.Get("http.request.header.traceparent")
	require.True(t, ok)
	assert.Equal(t, []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, tp.Strings)
}

func TestParseTraceparent(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", false},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", false},
		{"garbage", false},
		{"", false},
	} {
		_, _, _, ok := ParseTraceparent(tc.in)
		assert.Equal(t, tc.ok, ok, tc.in)
	}

	// Invalid traceparent: random trace id, no parent.
	ex := clientExchange()
	ex.Request.Headers = append(ex.Request.Headers, exchange.Header{Name: "traceparent", Value: "00-zz-yy-01"})
	r := Map(ex, Options{})
	assert.False(t, r.Span.TraceID.IsZero())
	assert.False(t, r.Span.SpanID.IsZero())
	assert.True(t, r.Span.ParentSpanID.IsZero())
}

func TestRandomIDsDiffer(t *testing.T) {
	a := Map(clientExchange(), Options{})
	b := Map(clientExchange(), Options{})
	assert.NotEqual(t, a.Span.TraceID, b.Span.TraceID)
	assert.NotEqual(t, a.Span.SpanID, b.Span.SpanID)
}

func TestRedaction(t *testing.T) {
	in := []exchange.Header{
		{Name: "authorization", Value: "Basic dXNlcjpwYXNz"},
		{Name: "Proxy-Authorization", Value: "x"},
		{Name: "COOKIE", Value: "a=b"},
		{Name: "Set-Cookie", Value: "c=d"},
		{Name: "X-Api-Key", Value: "k"},
		{Name: "Accept", Value: "text/html"},
	}
	orig := slices.Clone(in)
	out := RedactSensitiveHeaders(in)
	assert.Equal(t, orig, in, "input must not be modified")
	assert.Equal(t, []exchange.Header{
		{Name: "authorization", Value: "REDACTED"},
		{Name: "Proxy-Authorization", Value: "REDACTED"},
		{Name: "COOKIE", Value: "REDACTED"},
		{Name: "Set-Cookie", Value: "REDACTED"},
		{Name: "X-Api-Key", Value: "REDACTED"},
		{Name: "Accept", Value: "text/html"},
	}, out)

	// A replacement policy is honoured.
	ex := clientExchange()
	r := Map(ex, Options{RedactHeaders: func(h []exchange.Header) []exchange.Header { return nil }})
	_, ok := r.Log.Attributes.Get("http.request.header.host")
	assert.False(t, ok)
	// The span never carries headers.
	for _, kv := range Map(ex, Options{}).Span.Attributes {
		assert.NotContains(t, kv.Key, ".header.")
	}
}

func TestDecodedBodyPreferred(t *testing.T) {
	ex := clientExchange()
	ex.Response.Body = []byte{0x1f, 0x8b, 0x08, 0x00}
	ex.Response.DecodedBody = []byte("hello")
	v, ok := Map(ex, fixedIDs()).Log.Attributes.Get("http.response.body.content")
	require.True(t, ok)
	assert.Equal(t, TypeString, v.Type)
	assert.Equal(t, "hello", v.Str)

	ex.Response.Body, ex.Response.DecodedBody = nil, nil
	_, ok = Map(ex, fixedIDs()).Log.Attributes.Get("http.response.body.content")
	assert.False(t, ok)
}

func TestHTTP2Version(t *testing.T) {
	ex := clientExchange()
	ex.Request.Proto = "HTTP/2"
	ex.Request.Headers = []exchange.Header{{Name: ":authority", Value: "h2.example"}, {Name: ":path", Value: "/x"}}
	r := Map(ex, fixedIDs())
	v, _ := r.Span.Attributes.Get("network.protocol.version")
	assert.Equal(t, "2", v.Str)
	u, _ := r.Span.Attributes.Get("url.full")
	assert.Equal(t, "https://h2.example/v1/x?a=1", u.Str)
	_, ok := r.Log.Attributes.Get("http.request.header.:authority")
	assert.False(t, ok)
}

func TestResource(t *testing.T) {
	p := clientExchange().Process
	p.ContainerID = "abc123"
	p.UID, p.UIDKnown = 1000, true
	p.PodUID = "0c8b2b1e-5b7e-4c6e-9f1a-2d3c4b5a6f70"
	got := Resource(p, "host-1", nil)
	assert.Equal(t, Attributes{
		String("service.name", "unknown_service:curl"),
		Int("process.pid", 4242),
		Int("process.parent_pid", 1),
		String("process.creation.time", "2025-11-25T11:59:59Z"),
		String("process.executable.name", "curl"),
		String("process.executable.path", "/usr/bin/curl"),
		Strings("process.command_args", []string{"curl", "https://api.example.com/v1/x?a=1"}),
		String("process.owner", "root"),
		Int("process.user.id", 1000),
		String("container.id", "abc123"),
		String("k8s.pod.uid", "0c8b2b1e-5b7e-4c6e-9f1a-2d3c4b5a6f70"),
		String("host.name", "host-1"),
	}, got)

	// Unknown fields are omitted, the pid and service.name always present;
	// uid 0 is root, not "unknown".
	assert.Equal(t, Attributes{String("service.name", "unknown_service"), Int("process.pid", 12), Int("process.user.id", 0)},
		Resource(exchange.Process{PID: 12, UIDKnown: true}, "", nil))

	assert.Equal(t, KeyOf(p), KeyOf(p))
	q := p
	q.CreationTime = q.CreationTime.Add(time.Second)
	assert.NotEqual(t, KeyOf(p), KeyOf(q))
}

func TestServiceNames(t *testing.T) {
	names := ServiceNames{
		{Executable: "/opt/shop/*", Name: "shop"},
		{Executable: "python3*", Name: "checkout"},
		{Executable: "curl", Name: "probe"},
	}
	require.NoError(t, names.Validate())
	for _, tc := range []struct {
		p    exchange.Process
		want string
	}{
		{exchange.Process{ExeName: "python3.11", ExePath: "/usr/bin/python3.11"}, "checkout"},
		{exchange.Process{ExeName: "python3.11", ExePath: "/opt/shop/python3.11"}, "shop"}, // first rule wins
		{exchange.Process{ExeName: "curl", ExePath: "/usr/bin/curl"}, "probe"},
		{exchange.Process{ExeName: "curl-impersonate", ExePath: "/usr/bin/curl-impersonate"}, "unknown_service:curl-impersonate"},
		{exchange.Process{ExeName: "node"}, "unknown_service:node"}, // no path: path rules skip it
	} {
		assert.Equal(t, tc.want, names.Resolve(tc.p), "%+v", tc.p)
	}
	got := Resource(exchange.Process{PID: 1, ExeName: "curl"}, "", names)
	v, _ := got.Get("service.name")
	assert.Equal(t, "probe", v.Str)

	err := ServiceNames{{Executable: "[", Name: "x"}, {Executable: "", Name: " "}}.Validate()
	require.Error(t, err)
	assert.Equal(t, `service_names[0].executable: "[": syntax error in pattern
service_names[1].executable: empty
service_names[1].name: empty`, err.Error())
}

func TestAttributesMap(t *testing.T) {
	m := Attributes{String("a", "x"), Int("b", 2), Bool("c", true), Bytes("d", []byte{1}), Strings("e", []string{"y"})}.Map()
	assert.Equal(t, map[string]any{"a": "x", "b": int64(2), "c": true, "d": []byte{1}, "e": []string{"y"}}, m)
}

func TestGRPC(t *testing.T) {
	ex := clientExchange()
	ex.Request.Proto, ex.Request.Method, ex.Request.Target = "HTTP/2", "POST", "/grpc.health.v1.Health/Check"
	ex.Request.Headers = []exchange.Header{{Name: ":authority", Value: "svc:50051"}, {Name: "content-type", Value: "application/grpc"}}
	ex.Response.StatusCode = 200
	ex.Response.Trailers = []exchange.Header{{Name: "grpc-status", Value: "5"}, {Name: "grpc-message", Value: "unknown service"}}
	r := Map(ex, fixedIDs())
	assert.Equal(t, "grpc.health.v1.Health/Check", r.Span.Name)
	for k, want := range map[string]any{
		"rpc.system.name": "grpc", "rpc.method": "grpc.health.v1.Health/Check",
		"rpc.response.status_code": "NOT_FOUND", "error.type": "NOT_FOUND",
	} {
		v, ok := r.Span.Attributes.Get(k)
		assert.True(t, ok, k)
		assert.Equal(t, want, v.Str, k)
	}
	for _, old := range []string{"rpc.system", "rpc.service", "rpc.grpc.status_code"} {
		_, ok := r.Span.Attributes.Get(old)
		assert.False(t, ok, "deprecated %s", old)
	}
	assert.Equal(t, StatusError, r.Span.Status, "NOT_FOUND is an error on a client span")

	ex.Response.Trailers[0].Value = "0"
	v, _ := Map(ex, fixedIDs()).Span.Attributes.Get("rpc.response.status_code")
	assert.Equal(t, "OK", v.Str)
	ex.Response.Trailers[0].Value = "42"
	v, _ = Map(ex, fixedIDs()).Span.Attributes.Get("rpc.response.status_code")
	assert.Equal(t, "42", v.Str, "a code gRPC does not define keeps its number")
	ex.Response.Trailers[0].Value = "5"

	ex.Role = exchange.RoleServer
	assert.Equal(t, StatusUnset, Map(ex, fixedIDs()).Span.Status, "NOT_FOUND is not a server fault")
	ex.Response.Trailers[0].Value = "13"
	assert.Equal(t, StatusError, Map(ex, fixedIDs()).Span.Status, "INTERNAL is a server fault")
}

// A body cut by max_body_bytes inside a character is exported as the text
// before that character, a string; an untruncated invalid body stays bytes.
func TestBodyCutOnRuneBoundary(t *testing.T) {
	ex := clientExchange()
	ex.Response.Body, ex.Response.BodySize, ex.Response.BodyTruncated = []byte("prix: 12 \xe2\x82"), 4096, true
	v, ok := Map(ex, fixedIDs()).Log.Attributes.Get("http.response.body.content")
	require.True(t, ok)
	assert.Equal(t, TypeString, v.Type)
	assert.Equal(t, "prix: 12 ", v.Str)

	ex.Response.BodyTruncated = false
	v, _ = Map(ex, fixedIDs()).Log.Attributes.Get("http.response.body.content")
	assert.Equal(t, TypeBytes, v.Type)
	assert.Equal(t, []byte("prix: 12 \xe2\x82"), v.Bytes)
}

// clientGETSpanAttributes are the span attributes the conventions give the
// client GET of the curl fixture (written out, not derived from the mapper).
func clientGETSpanAttributes() Attributes {
	return Attributes{
		String("http.request.method", "GET"),
		String("url.full", "https://api.example.com/v1/x?a=1"),
		String("url.scheme", "https"),
		String("server.address", "api.example.com"),
		Int("server.port", 443),
		String("network.peer.address", "93.184.216.34"),
		Int("network.peer.port", 443),
		String("network.protocol.name", "http"),
		String("network.protocol.version", "1.1"),
		String("network.transport", "tcp"),
		Int("http.response.status_code", 200),
		String("user_agent.original", "curl/7.88.1"),
		Int("http.request.body.size", 0),
		Int("http.response.body.size", 11),
		String("tlstap.tls.library", "openssl"),
		Int("tlstap.connection.id", 7),
	}
}
