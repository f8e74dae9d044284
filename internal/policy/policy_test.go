package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/tlstap/tlstap/internal/exchange"
)

func mustNew(t testing.TB, mod func(*Config)) *Policy {
	t.Helper()
	cfg := DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sampleExchange is curl (client) talking to api.example.com:443.
func sampleExchange() *exchange.Exchange {
	return &exchange.Exchange{
		Role: exchange.RoleClient,
		Request: &exchange.Message{
			Method: "GET", Target: "/v1/items?id=7", Proto: "HTTP/1.1",
			Headers: []exchange.Header{{Name: "Host", Value: "api.example.com"}, {Name: "Accept", Value: "*/*"}},
		},
		Response: &exchange.Message{
			StatusCode: 200, Proto: "HTTP/1.1",
			Headers:  []exchange.Header{{Name: "Content-Type", Value: "application/json"}},
			Body:     []byte(`{"ok":true}`),
			BodySize: 11,
		},
		Process: exchange.Process{PID: 4242, ExeName: "curl", ExePath: "/usr/bin/curl", ContainerID: ""},
		Conn: exchange.Conn{
			Local:  netip.MustParseAddrPort("10.1.2.3:50000"),
			Remote: netip.MustParseAddrPort("93.184.216.34:443"),
			TLS:    true,
		},
	}
}

func TestDefaultConfigValid(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	// Defaults keep an ordinary exchange untouched.
	p := mustNew(t, nil)
	ex := sampleExchange()
	if v := p.Apply(ex); !v.Keep() {
		t.Fatalf("verdict %v", v)
	}
	want := sampleExchange()
	if ex.Request.Target != want.Request.Target || string(ex.Response.Body) != string(want.Response.Body) ||
		!slices.Equal(ex.Request.Headers, want.Request.Headers) {
		t.Errorf("exchange changed: %+v", ex.Request)
	}
	s := p.Stats()
	if s.Kept != 1 || s.FilteredTotal() != 0 || s.SampledOut != 0 || s.HeadersRedacted != 0 {
		t.Errorf("stats %+v", s)
	}
}

func allHeaders(ex *exchange.Exchange) []exchange.Header {
	var out []exchange.Header
	for _, m := range []*exchange.Message{ex.Request, ex.Response} {
		if m != nil {
			out = append(out, m.Headers...)
			out = append(out, m.Trailers...)
		}
	}
	return out
}

func TestHeaderRedactionDefaults(t *testing.T) {
	const secret = "Basic dXNlcjpodW50ZXIy"
	p := mustNew(t, nil)
	ex := sampleExchange()
	ex.Request.Headers = []exchange.Header{
		{Name: "Host", Value: "api.example.com"},
		{Name: "Authorization", Value: secret},
		{Name: "AUTHORIZATION", Value: secret}, // odd case
		{Name: "authorization", Value: secret}, // HTTP/2 lowercase, duplicate
		{Name: "Proxy-Authorization", Value: secret},
		{Name: "X-Forwarded-Authorization", Value: secret}, // *-authorization
		{Name: "Cookie", Value: "session=abc"},
		{Name: "X-Api-Key", Value: "k-123"},
		{Name: "X-Stripe-Api-Key", Value: "k-456"}, // *-api-key
		{Name: "X-Auth-Token", Value: "t-1"},
		{Name: "Accept", Value: "application/json"},
		{Name: "Authorization", Value: ""}, // empty stays empty
	}
	ex.Request.Trailers = []exchange.Header{{Name: "Authorization", Value: secret}}
	ex.Response.Headers = append(ex.Response.Headers,
		exchange.Header{Name: "Set-Cookie", Value: "session=abc; HttpOnly"},
		exchange.Header{Name: "set-cookie", Value: "other=1"})
	ex.Response.Trailers = []exchange.Header{{Name: "x-access-token", Value: "zzz"}}

	if v := p.Apply(ex); !v.Keep() {
		t.Fatalf("verdict %v", v)
	}
	for _, h := range allHeaders(ex) {
		if strings.Contains(h.Value, "dXNlcjpodW50ZXIy") {
			t.Errorf("secret survived in %s: %q", h.Name, h.Value)
		}
		if strings.EqualFold(h.Name, "authorization") && h.Value != Redacted && h.Value != "" {
			t.Errorf("%s = %q", h.Name, h.Value)
		}
	}
	want := []exchange.Header{
		{Name: "Host", Value: "api.example.com"},
		{Name: "Authorization", Value: Redacted},
		{Name: "AUTHORIZATION", Value: Redacted},
		{Name: "authorization", Value: Redacted},
		{Name: "Proxy-Authorization", Value: Redacted},
		{Name: "X-Forwarded-Authorization", Value: Redacted},
		{Name: "Cookie", Value: Redacted},
		{Name: "X-Api-Key", Value: Redacted},
		{Name: "X-Stripe-Api-Key", Value: Redacted},
		{Name: "X-Auth-Token", Value: Redacted},
		{Name: "Accept", Value: "application/json"},
		{Name: "Authorization", Value: ""},
	}
	if !slices.Equal(ex.Request.Headers, want) {
		t.Errorf("request headers\n got %v\nwant %v", ex.Request.Headers, want)
	}
	if ex.Request.Trailers[0].Value != Redacted || ex.Response.Trailers[0].Value != Redacted {
		t.Errorf("trailers %v %v", ex.Request.Trailers, ex.Response.Trailers)
	}
	wantResp := []exchange.Header{
		{Name: "Content-Type", Value: "application/json"},
		{Name: "Set-Cookie", Value: Redacted},
		{Name: "set-cookie", Value: Redacted},
	}
	if !slices.Equal(ex.Response.Headers, wantResp) {
		t.Errorf("response headers %v", ex.Response.Headers)
	}
	if got := p.Stats().HeadersRedacted; got != 13 {
		t.Errorf("HeadersRedacted = %d, want 13", got)
	}
}

func TestHeaderListReplaceAndExtend(t *testing.T) {
	p := mustNew(t, func(c *Config) {
		c.Redaction.Headers = []string{"authorization"}
		c.Redaction.ExtraHeaders = []string{"X-Internal-*"}
	})
	ex := sampleExchange()
	ex.Request.Headers = []exchange.Header{
		{Name: "Authorization", Value: "Bearer x"},
		{Name: "Cookie", Value: "a=b"}, // no longer in the list
		{Name: "X-Internal-Secret", Value: "s"},
	}
	p.Apply(ex)
	want := []exchange.Header{{Name: "Authorization", Value: Redacted}, {Name: "Cookie", Value: "a=b"}, {Name: "X-Internal-Secret", Value: Redacted}}
	if !slices.Equal(ex.Request.Headers, want) {
		t.Errorf("got %v", ex.Request.Headers)
	}
	// An empty list disables header redaction.
	p = mustNew(t, func(c *Config) { c.Redaction.Headers = nil })
	ex = sampleExchange()
	ex.Request.Headers = []exchange.Header{{Name: "Authorization", Value: "Bearer x"}}
	p.Apply(ex)
	if ex.Request.Headers[0].Value != "Bearer x" {
		t.Errorf("got %v", ex.Request.Headers)
	}
}

func TestURLRedactionInExchange(t *testing.T) {
	p := mustNew(t, nil)
	ex := sampleExchange()
	// Proxy request: absolute-form target with credentials.
	ex.Request.Target = "http://alice:s3cret@proxy.example.com:8080/path?q=1"
	ex.Request.Headers = []exchange.Header{
		{Name: "Host", Value: "bob:pw@proxy.example.com:8080"},
		{Name: "Referer", Value: "https://u:p@www.example.com/page?sig=abc&x=1"},
	}
	ex.Response.Headers = []exchange.Header{
		{Name: "Location", Value: "https://bucket.s3.amazonaws.com/k?X-Amz-Signature=deadbeef&X-Amz-Expires=60"},
		{Name: "Content-Location", Value: "/k?AWSAccessKeyId=AKIA&Expires=1"},
	}
	p.Apply(ex)
	if want := "http://REDACTED:REDACTED@proxy.example.com:8080/path?q=1"; ex.Request.Target != want {
		t.Errorf("target %q, want %q", ex.Request.Target, want)
	}
	wantReq := []exchange.Header{
		{Name: "Host", Value: "REDACTED:REDACTED@proxy.example.com:8080"},
		{Name: "Referer", Value: "https://REDACTED:REDACTED@www.example.com/page?sig=REDACTED&x=1"},
	}
	if !slices.Equal(ex.Request.Headers, wantReq) {
		t.Errorf("request headers %v", ex.Request.Headers)
	}
	wantResp := []exchange.Header{
		{Name: "Location", Value: "https://bucket.s3.amazonaws.com/k?X-Amz-Signature=REDACTED&X-Amz-Expires=60"},
		{Name: "Content-Location", Value: "/k?AWSAccessKeyId=REDACTED&Expires=1"},
	}
	if !slices.Equal(ex.Response.Headers, wantResp) {
		t.Errorf("response headers %v", ex.Response.Headers)
	}
	s := p.Stats()
	if s.URLCredentialsRedacted != 3 || s.QueryParametersRedacted != 3 {
		t.Errorf("stats %+v", s)
	}
}

func TestSignedS3Target(t *testing.T) {
	p := mustNew(t, nil)
	ex := sampleExchange()
	ex.Request.Target = "/my-bucket/report.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256" +
		"&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240501%2Fus-east-1%2Fs3%2Faws4_request" +
		"&X-Amz-Date=20240501T000000Z&X-Amz-Expires=3600&X-Amz-Security-Token=FwoGZXIvYXdzEJr" +
		"&X-Amz-SignedHeaders=host&X-Amz-Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"
	// HTTP/2: the same target in :path.
	ex.Request.Headers = append(ex.Request.Headers, exchange.Header{Name: ":path", Value: ex.Request.Target})
	p.Apply(ex)
	want := "/my-bucket/report.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=REDACTED" +
		"&X-Amz-Date=20240501T000000Z&X-Amz-Expires=3600&X-Amz-Security-Token=REDACTED" +
		"&X-Amz-SignedHeaders=host&X-Amz-Signature=REDACTED"
	if ex.Request.Target != want {
		t.Errorf("target\n got %s\nwant %s", ex.Request.Target, want)
	}
	if v, _ := ex.Request.Get(":path"); v != want {
		t.Errorf(":path %s", v)
	}
}

func TestRedactURL(t *testing.T) {
	r := urlRedactor{credentials: true, params: DefaultQueryParameters}
	for _, tc := range []struct{ in, want string }{
		{"/plain/path", "/plain/path"},
		{"/p?a=1&b=2", "/p?a=1&b=2"},
		{"/p?sig=abc", "/p?sig=REDACTED"},
		{"/p?SIG=abc&Sig=def", "/p?SIG=REDACTED&Sig=REDACTED"},        // case-insensitive
		{"/p?x-amz-signature=abc", "/p?x-amz-signature=REDACTED"},     // case-insensitive
		{"/p?X%2DAmz-Signature=abc", "/p?X%2DAmz-Signature=REDACTED"}, // percent-encoded name
		{"/p?sig=&a=1", "/p?sig=&a=1"},                                // empty value: nothing to hide
		{"/p?sig", "/p?sig"},                                          // no value
		{"/p?sig=REDACTED", "/p?sig=REDACTED"},                        // idempotent
		{"/p?signature=a=b=c&z", "/p?signature=REDACTED&z"},           // '=' inside the value
		{"/p?a=1#frag?sig=x", "/p?a=1#frag?sig=x"},                    // fragment is not query
		{"/p?sig=x#frag", "/p?sig=REDACTED#frag"},                     // fragment kept
		{"/p#f?sig=x", "/p#f?sig=x"},                                  // '?' inside the fragment
		{"/p?a=1&&sig=x&", "/p?a=1&&sig=REDACTED&"},                   // empty parameters kept
		{"https://user@host/", "https://REDACTED@host/"},              // user only
		{"https://user:pw@host", "https://REDACTED:REDACTED@host"},    // no path
		{"https://a:b@c@host/x?sig=1", "https://REDACTED:REDACTED@host/x?sig=REDACTED"},
		{"https://host/x@y?sig=1", "https://host/x@y?sig=REDACTED"}, // '@' in the path is not userinfo
		{"https://host?u@x=1", "https://host?u@x=1"},                // '@' in the query
		{"ftp+x.y://u:p@h/", "ftp+x.y://REDACTED:REDACTED@h/"},      // any scheme
		{"1http://u:p@h/", "1http://u:p@h/"},                        // not a scheme
		{"*", "*"},
		{"example.com:443", "example.com:443"}, // authority-form
	} {
		got, _, _ := r.redactURL(tc.in)
		if got != tc.want {
			t.Errorf("redactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	off := urlRedactor{}
	if got, n, c := off.redactURL("https://u:p@h/?sig=1"); got != "https://u:p@h/?sig=1" || n != 0 || c {
		t.Errorf("disabled: %q %d %v", got, n, c)
	}
}

func TestRedactURLNoAlloc(t *testing.T) {
	r := urlRedactor{credentials: true, params: DefaultQueryParameters}
	u := "https://api.example.com/v1/items?id=7&page=2&sort=name"
	if n := testing.AllocsPerRun(100, func() { r.redactURL(u) }); n != 0 {
		t.Errorf("allocs = %v", n)
	}
}

func jsonExchange(body string) *exchange.Exchange {
	ex := sampleExchange()
	ex.Request.Method = "POST"
	ex.Request.Headers = append(ex.Request.Headers, exchange.Header{Name: "Content-Type", Value: "application/json; charset=utf-8"})
	ex.Request.Body = []byte(body)
	ex.Request.BodySize = int64(len(body))
	return ex
}

func TestBodyCardRedaction(t *testing.T) {
	p := mustNew(t, nil)
	body := `{"card":"4111 1111 1111 1111","other":"4111-1111-1111-1111","plain":4242424242424242,"ts":1714557600000,"order":12345678901234,"amount":12}`
	ex := jsonExchange(body)
	p.Apply(ex)
	// 1714557600000 and 12345678901234 fail the Luhn check: not card numbers.
	// A card written as a JSON number becomes a string: the document stays
	// valid JSON.
	want := `{"card":"REDACTED","other":"REDACTED","plain":"REDACTED","ts":1714557600000,"order":12345678901234,"amount":12}`
	if string(ex.Request.Body) != want {
		t.Errorf("body\n got %s\nwant %s", ex.Request.Body, want)
	}
	if ex.Request.BodySize != int64(len(body)) {
		t.Errorf("BodySize = %d, want the real %d", ex.Request.BodySize, len(body))
	}
	if got := p.Stats().BodyMatchesRedacted; got != 3 {
		t.Errorf("BodyMatchesRedacted = %d", got)
	}
}

func TestBodyBearerRedaction(t *testing.T) {
	p := mustNew(t, nil)
	ex := jsonExchange(`{"note":"use BEARER eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln== to call"}`)
	p.Apply(ex)
	if want := `{"note":"use REDACTED to call"}`; string(ex.Request.Body) != want {
		t.Errorf("got %s", ex.Request.Body)
	}
}

func TestBodyDecodedRedaction(t *testing.T) {
	p := mustNew(t, nil)
	ex := jsonExchange("")
	ex.Request.Headers = append(ex.Request.Headers, exchange.Header{Name: "Content-Encoding", Value: "gzip"})
	ex.Request.Body = []byte{0x1f, 0x8b, 8, 0, 1, 2, 3}
	ex.Request.DecodedBody = []byte(`{"pan":"5555555555554444"}`)
	ex.Request.BodySize = 7
	p.Apply(ex)
	if string(ex.Request.DecodedBody) != `{"pan":"REDACTED"}` || ex.Request.Body != nil || ex.Request.BodySize != 7 {
		t.Errorf("decoded %q body %v size %d", ex.Request.DecodedBody, ex.Request.Body, ex.Request.BodySize)
	}
	// Undecodable encoding: opaque bytes, size only.
	ex = jsonExchange("")
	ex.Request.Headers = append(ex.Request.Headers, exchange.Header{Name: "Content-Encoding", Value: "br"})
	ex.Request.Body, ex.Request.BodySize = []byte{1, 2, 3}, 3
	p.Apply(ex)
	if ex.Request.Body != nil || ex.Request.BodySize != 3 {
		t.Errorf("br body %v", ex.Request.Body)
	}
}

func TestBodyContentTypes(t *testing.T) {
	p := mustNew(t, nil)
	for _, tc := range []struct {
		ct        string
		body      string
		keep      bool
		truncated bool
	}{
		{"application/json", `{"a":1}`, true, false},
		{"Application/JSON; charset=utf-8", `{"a":1}`, true, false},
		{"application/vnd.api+json", `{"a":1}`, true, false},
		{"application/problem+xml", `<a/>`, true, false},
		{"text/html", `<p>hi</p>`, true, false},
		{"application/x-www-form-urlencoded", `a=1&b=2`, true, false},
		{"application/octet-stream", "\x00\x01\x02", false, false},
		{"image/png", "\x89PNG\r\n", false, false},
		{"application/grpc", "\x00\x00\x00\x00\x02hi", true, false}, // gRPC frames are kept (issue 4)
		{"application/grpc+proto", "\x00\x00\x00\x00\x02hi", true, false},
		{"", "hello text", true, false},          // no type: valid UTF-8 text kept
		{"", "\x00\x01binary\xff", false, false}, // no type: binary is size only
		{"application/yaml", "a: 1\n", true, false},
		{"application/openapi+yaml", "openapi: 3.1.0\n", true, false},
		{"application/x-ndjson; charset=utf-8", `{"a":1}` + "\n", true, false}, // charset: text
		{"application/x-ndjson;format=x; Charset=\"UTF-8\"", `{"a":1}`, true, false},
		{"application/x-ndjson", `{"a":1}`, false, false}, // no charset, not listed
		// No type, cut by max_body_bytes inside "é": still text.
		{"", "caf\xc3", true, true},
		{"", "caf\xc3", false, false}, // the same bytes, not cut: invalid UTF-8
	} {
		ex := sampleExchange()
		ex.Response.Headers = nil
		if tc.ct != "" {
			ex.Response.Headers = []exchange.Header{{Name: "Content-Type", Value: tc.ct}}
		}
		ex.Response.Body, ex.Response.BodySize = []byte(tc.body), 1234
		ex.Response.DecodedBody = nil
		ex.Response.BodyTruncated = tc.truncated
		p.Apply(ex)
		if got := ex.Response.Body != nil; got != tc.keep {
			t.Errorf("%q: kept=%v, want %v", tc.ct, got, tc.keep)
		}
		if ex.Response.BodySize != 1234 {
			t.Errorf("%q: BodySize changed to %d", tc.ct, ex.Response.BodySize)
		}
	}
	if got := p.Stats().BodiesSizeOnly; got != 5 {
		t.Errorf("BodiesSizeOnly = %d, want 5", got)
	}

	// Without text/* in the list a charset does not make a body text.
	pj := mustNew(t, func(c *Config) { c.Bodies.ContentTypes = []string{"application/json"} })
	ex0 := sampleExchange()
	ex0.Response.Headers = []exchange.Header{{Name: "Content-Type", Value: "application/x-ndjson; charset=utf-8"}}
	ex0.Response.Body, ex0.Response.DecodedBody = []byte(`{"a":1}`), nil
	pj.Apply(ex0)
	if ex0.Response.Body != nil {
		t.Error("charset kept a body although text/* is not allowed")
	}

	// Binary type: neither Body nor DecodedBody survives, and patterns never
	// run (the card would otherwise be counted).
	ex := sampleExchange()
	ex.Response.Headers = []exchange.Header{{Name: "Content-Type", Value: "application/pdf"}, {Name: "Content-Encoding", Value: "gzip"}}
	ex.Response.Body, ex.Response.DecodedBody, ex.Response.BodySize = []byte{0x1f, 0x8b}, []byte("4111111111111111"), 2
	before := p.Stats().BodyMatchesRedacted
	p.Apply(ex)
	if ex.Response.Body != nil || ex.Response.DecodedBody != nil || ex.Response.BodySize != 2 || p.Stats().BodyMatchesRedacted != before {
		t.Errorf("pdf: %+v", ex.Response)
	}

	// A custom list; "*" allows everything.
	p = mustNew(t, func(c *Config) { c.Bodies.ContentTypes = []string{"*"} })
	ex = sampleExchange()
	ex.Response.Headers = []exchange.Header{{Name: "Content-Type", Value: "image/png"}}
	ex.Response.Body = []byte{0x89}
	p.Apply(ex)
	if ex.Response.Body == nil {
		t.Error(`"*" dropped a body`)
	}
}

func TestBodyCaptureOff(t *testing.T) {
	p := mustNew(t, func(c *Config) { c.Bodies.Capture = false })
	ex := jsonExchange(`{"a":1}`)
	p.Apply(ex)
	if ex.Request.Body != nil || ex.Response.Body != nil || ex.Request.BodySize != 7 || ex.Response.BodySize != 11 {
		t.Errorf("bodies kept: %q %q", ex.Request.Body, ex.Response.Body)
	}
	if s := p.Stats(); s.BodiesNotCaptured != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestCustomBodyPatterns(t *testing.T) {
	p := mustNew(t, func(c *Config) {
		c.Redaction.BodyPatterns = nil // defaults off
		c.Redaction.ExtraBodyPatterns = []BodyPattern{{Name: "ssn", Regex: `\b\d{3}-\d{2}-\d{4}\b`, Replacement: "[ssn]"}}
	})
	ex := jsonExchange(`{"ssn":"123-45-6789","card":"4111111111111111"}`)
	p.Apply(ex)
	if want := `{"ssn":"[ssn]","card":"4111111111111111"}`; string(ex.Request.Body) != want {
		t.Errorf("got %s", ex.Request.Body)
	}
}

func TestProcessFilters(t *testing.T) {
	proc := func(pid int, path, container string) exchange.Process {
		name := path[strings.LastIndexByte(path, '/')+1:]
		return exchange.Process{PID: pid, ExeName: name, ExePath: path, ContainerID: container}
	}
	const cid = "4f3a9c0d1e2b4f3a9c0d1e2b4f3a9c0d1e2b4f3a9c0d1e2b4f3a9c0d1e2b4f3a"
	for _, tc := range []struct {
		name   string
		mod    func(*Config)
		proc   exchange.Process
		reason Reason
	}{
		{"exclude glob on path", func(c *Config) { c.Filters.Exclude.Executables = []string{"/usr/bin/*"} }, proc(1, "/usr/bin/curl", ""), ReasonExecutable},
		{"exclude glob other dir", func(c *Config) { c.Filters.Exclude.Executables = []string{"/usr/bin/*"} }, proc(1, "/opt/app/curl", ""), ReasonNone},
		{"exclude glob on name", func(c *Config) { c.Filters.Exclude.Executables = []string{"python3*"} }, proc(1, "/usr/bin/python3.11", ""), ReasonExecutable},
		{"exclude exact name", func(c *Config) { c.Filters.Exclude.Executables = []string{"wget", "curl"} }, proc(1, "/usr/bin/curl", ""), ReasonExecutable},
		{"include exact path", func(c *Config) { c.Filters.Include.Executables = []string{"/usr/bin/curl"} }, proc(1, "/usr/bin/curl", ""), ReasonNone},
		{"include miss", func(c *Config) { c.Filters.Include.Executables = []string{"curl"} }, proc(1, "/usr/bin/wget", ""), ReasonExecutable},
		{"include pid", func(c *Config) { c.Filters.Include.PIDs = []int{7, 8} }, proc(8, "/x", ""), ReasonNone},
		{"include pid miss", func(c *Config) { c.Filters.Include.PIDs = []int{7} }, proc(8, "/x", ""), ReasonPID},
		{"exclude pid", func(c *Config) { c.Filters.Exclude.PIDs = []int{8} }, proc(8, "/x", ""), ReasonPID},
		{"exclude container short id", func(c *Config) { c.Filters.Exclude.ContainerIDs = []string{"4F3A9C0D1E2B"} }, proc(1, "/x", cid), ReasonContainerID},
		{"exclude container too short prefix", func(c *Config) { c.Filters.Exclude.ContainerIDs = []string{"4f3a"} }, proc(1, "/x", cid), ReasonNone},
		{"exclude container glob", func(c *Config) { c.Filters.Exclude.ContainerIDs = []string{"4f3a*"} }, proc(1, "/x", cid), ReasonContainerID},
		{"include container, host process", func(c *Config) { c.Filters.Include.ContainerIDs = []string{cid} }, proc(1, "/x", ""), ReasonContainerID},
		{"include container full id", func(c *Config) { c.Filters.Include.ContainerIDs = []string{cid} }, proc(1, "/x", cid), ReasonNone},
		{"exclude wins over include", func(c *Config) {
			c.Filters.Include.Executables = []string{"curl"}
			c.Filters.Exclude.PIDs = []int{9}
		}, proc(9, "/usr/bin/curl", ""), ReasonPID},
		{"star does not match a missing name", func(c *Config) { c.Filters.Exclude.Executables = []string{"*"} }, exchange.Process{PID: 3}, ReasonNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustNew(t, tc.mod)
			ex := sampleExchange()
			ex.Process = tc.proc
			ex.Request.Headers = append(ex.Request.Headers, exchange.Header{Name: "Authorization", Value: "secret"})
			v := p.Apply(ex)
			if p.ProcessExcluded(tc.proc) != (tc.reason != ReasonNone) {
				t.Errorf("ProcessExcluded = %v", !(tc.reason != ReasonNone))
			}
			if tc.reason == ReasonNone {
				if !v.Keep() {
					t.Errorf("verdict %v, want keep", v)
				}
				return
			}
			if v.Outcome != Filtered || v.Reason != tc.reason {
				t.Errorf("verdict %v, want filtered:%v", v, tc.reason)
			}
			if ex.Request.Headers[len(ex.Request.Headers)-1].Value != "secret" {
				t.Error("a filtered exchange was modified")
			}
			if got := p.Stats().Filtered[tc.reason.String()]; got != 1 {
				t.Errorf("Filtered[%s] = %d", tc.reason, got)
			}
		})
	}
	if mustNew(t, nil).HasProcessRules() {
		t.Error("defaults have process rules")
	}
	var nilPolicy *Policy
	if nilPolicy.ProcessExcluded(proc(1, "/x", "")) || !nilPolicy.Apply(sampleExchange()).Keep() {
		t.Error("nil policy must keep everything")
	}
}

func TestDestinationFilters(t *testing.T) {
	type exMod func(*exchange.Exchange)
	host := func(h string) exMod {
		return func(ex *exchange.Exchange) { ex.Request.Headers[0] = exchange.Header{Name: "Host", Value: h} }
	}
	for _, tc := range []struct {
		name   string
		mod    func(*Config)
		ex     exMod
		reason Reason
	}{
		{"include host glob", func(c *Config) { c.Filters.Include.Hosts = []string{"*.example.com"} }, nil, ReasonNone},
		{"include host case and port", func(c *Config) { c.Filters.Include.Hosts = []string{"*.example.com"} }, host("API.Example.COM:8443"), ReasonNone},
		{"include host trailing dot", func(c *Config) { c.Filters.Include.Hosts = []string{"api.example.com"} }, host("api.example.com."), ReasonNone},
		{"include host miss", func(c *Config) { c.Filters.Include.Hosts = []string{"*.example.com"} }, host("example.org"), ReasonHost},
		{"include host apex is not *.", func(c *Config) { c.Filters.Include.Hosts = []string{"*.example.com"} }, host("example.com"), ReasonHost},
		{"exclude host", func(c *Config) { c.Filters.Exclude.Hosts = []string{"api.example.com"} }, nil, ReasonHost},
		{"exclude host from absolute target", func(c *Config) { c.Filters.Exclude.Hosts = []string{"proxy.test"} }, func(ex *exchange.Exchange) {
			ex.Request.Target = "http://u:p@Proxy.Test:3128/x"
		}, ReasonHost},
		{"exclude host from :authority", func(c *Config) { c.Filters.Exclude.Hosts = []string{"h2.test"} }, func(ex *exchange.Exchange) {
			ex.Request.Headers = []exchange.Header{{Name: ":authority", Value: "h2.test:443"}}
		}, ReasonHost},
		{"exclude CIDR on remote address", func(c *Config) { c.Filters.Exclude.Hosts = []string{"93.184.0.0/16"} }, nil, ReasonHost},
		{"exclude IP on remote address", func(c *Config) { c.Filters.Exclude.Hosts = []string{"93.184.216.34"} }, nil, ReasonHost},
		{"include glob falls back to the address", func(c *Config) { c.Filters.Include.Hosts = []string{"93.184.*"} }, func(ex *exchange.Exchange) {
			ex.Request.Headers = nil
		}, ReasonNone},
		{"exclude IPv6 literal host", func(c *Config) { c.Filters.Exclude.Hosts = []string{"2001:db8::/32"} }, host("[2001:db8::1]:8080"), ReasonHost},
		{"include port", func(c *Config) { c.Filters.Include.Ports = []int{443, 8443} }, nil, ReasonNone},
		{"include port miss", func(c *Config) { c.Filters.Include.Ports = []int{8443} }, nil, ReasonPort},
		{"exclude port", func(c *Config) { c.Filters.Exclude.Ports = []int{443} }, nil, ReasonPort},
		{"server role uses the local port", func(c *Config) { c.Filters.Include.Ports = []int{50000} }, func(ex *exchange.Exchange) {
			ex.Role = exchange.RoleServer
		}, ReasonNone},
		{"unknown remote: port from Host", func(c *Config) { c.Filters.Include.Ports = []int{8443} }, func(ex *exchange.Exchange) {
			ex.Conn = exchange.Conn{TLS: true}
			ex.Request.Headers[0].Value = "api.example.com:8443"
		}, ReasonNone},
		{"unknown remote: default TLS port", func(c *Config) { c.Filters.Include.Ports = []int{443} }, func(ex *exchange.Exchange) {
			ex.Conn = exchange.Conn{TLS: true}
		}, ReasonNone},
		{"egress keeps client", func(c *Config) { c.Filters.Direction = DirectionEgress }, nil, ReasonNone},
		{"egress drops server", func(c *Config) { c.Filters.Direction = DirectionEgress }, func(ex *exchange.Exchange) { ex.Role = exchange.RoleServer }, ReasonDirection},
		{"ingress drops client", func(c *Config) { c.Filters.Direction = DirectionIngress }, nil, ReasonDirection},
		{"ingress keeps server", func(c *Config) { c.Filters.Direction = DirectionIngress }, func(ex *exchange.Exchange) { ex.Role = exchange.RoleServer }, ReasonNone},
		{"ingress drops unknown role", func(c *Config) { c.Filters.Direction = DirectionIngress }, func(ex *exchange.Exchange) { ex.Role = exchange.RoleUnknown }, ReasonDirection},
		{"both keeps unknown role", nil, func(ex *exchange.Exchange) { ex.Role = exchange.RoleUnknown }, ReasonNone},
		{"loopback on", nil, func(ex *exchange.Exchange) { ex.Conn.Remote = netip.MustParseAddrPort("127.0.0.1:8080") }, ReasonNone},
		{"loopback off", func(c *Config) { c.Filters.Loopback = false }, func(ex *exchange.Exchange) {
			ex.Conn.Local = netip.MustParseAddrPort("[::1]:50000")
			ex.Conn.Remote = netip.MustParseAddrPort("[::1]:8080")
		}, ReasonLoopback},
		{"loopback off, mapped v4", func(c *Config) { c.Filters.Loopback = false }, func(ex *exchange.Exchange) {
			ex.Conn.Remote = netip.MustParseAddrPort("[::ffff:127.0.0.1]:8080")
		}, ReasonLoopback},
		{"loopback off, remote traffic kept", func(c *Config) { c.Filters.Loopback = false }, nil, ReasonNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustNew(t, tc.mod)
			ex := sampleExchange()
			if tc.ex != nil {
				tc.ex(ex)
			}
			v := p.Apply(ex)
			if tc.reason == ReasonNone {
				if !v.Keep() {
					t.Errorf("verdict %v, want keep", v)
				}
			} else if v.Outcome != Filtered || v.Reason != tc.reason {
				t.Errorf("verdict %v, want filtered:%v", v, tc.reason)
			}
		})
	}
}

func traceparent(i int) string {
	return fmt.Sprintf("00-%016x%016x-00f067aa0ba902b7-01", uint64(i+1)*0x9e3779b97f4a7c15, uint64(i+1)*0xbf58476d1ce4e5b9)
}

func withTrace(ex *exchange.Exchange, tp string) *exchange.Exchange {
	ex.Request.Headers = append(ex.Request.Headers, exchange.Header{Name: "traceparent", Value: tp})
	return ex
}

func TestSamplingRatios(t *testing.T) {
	p0 := mustNew(t, func(c *Config) { c.Sampling.Ratio = 0 })
	p1 := mustNew(t, func(c *Config) { c.Sampling.Ratio = 1 })
	for i := range 200 {
		ex := sampleExchange()
		if i%2 == 0 {
			withTrace(ex, traceparent(i))
		}
		if v := p0.Apply(ex); v.Outcome != SampledOut {
			t.Fatalf("ratio 0 kept %d: %v", i, v)
		}
		if v := p1.Apply(sampleExchange()); !v.Keep() {
			t.Fatalf("ratio 1 dropped %d", i)
		}
	}
	if s := p0.Stats(); s.SampledOut != 200 || s.Kept != 0 {
		t.Errorf("ratio 0 stats %+v", s)
	}
	if s := p1.Stats(); s.Kept != 200 || s.SampledOut != 0 {
		t.Errorf("ratio 1 stats %+v", s)
	}
}

func TestSamplingDeterministicByTraceID(t *testing.T) {
	// Two agents (two Policy instances), one sees the client side, the other
	// the server side of the same traces: they must agree.
	client := mustNew(t, func(c *Config) { c.Sampling.Ratio = 0.3 })
	server := mustNew(t, func(c *Config) { c.Sampling.Ratio = 0.3 })
	const n = 2000
	kept := 0
	for i := range n {
		tp := traceparent(i)
		a := client.Apply(withTrace(sampleExchange(), tp))
		sx := withTrace(sampleExchange(), tp)
		sx.Role = exchange.RoleServer
		b := server.Apply(sx)
		if a != b {
			t.Fatalf("trace %s: client %v, server %v", tp, a, b)
		}
		// The same instance decides the same way again.
		if c := client.Apply(withTrace(sampleExchange(), tp)); c != a {
			t.Fatalf("trace %s: %v then %v", tp, a, c)
		}
		if a.Keep() {
			kept++
		}
	}
	if frac := float64(kept) / n; frac < 0.25 || frac > 0.35 {
		t.Errorf("kept fraction %.3f, want about 0.3", frac)
	}
	// The low 56 bits decide: all-zero randomness is always kept, all-one
	// randomness is dropped below ratio 1.
	low := "00-abcdef0123456789ab00000000000000-00f067aa0ba902b7-01"
	high := "00-abcdef0123456789abffffffffffffff-00f067aa0ba902b7-01"
	p := mustNew(t, func(c *Config) { c.Sampling.Ratio = 0.001 })
	if !p.Apply(withTrace(sampleExchange(), low)).Keep() || p.Apply(withTrace(sampleExchange(), high)).Keep() {
		t.Error("threshold comparison on the trace id is wrong")
	}
	for _, bad := range []string{"", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "ff-abcdef0123456789abffffffffffffff-00f067aa0ba902b7-01",
		"00-ABCDEF0123456789ABFFFFFFFFFFFFFF-00f067aa0ba902b7-01", "00-abcdef0123456789abffffffffffffff-00f067aa0ba902b7-01-extra"} {
		if _, ok := traceRandomness(bad); ok {
			t.Errorf("traceRandomness(%q) accepted", bad)
		}
	}
}

func TestSamplingRandomWithoutTrace(t *testing.T) {
	p := mustNew(t, func(c *Config) { c.Sampling.Ratio = 0.5 })
	kept := 0
	for range 2000 {
		if p.Apply(sampleExchange()).Keep() {
			kept++
		}
	}
	if kept < 850 || kept > 1150 {
		t.Errorf("kept %d of 2000 at ratio 0.5", kept)
	}
}

func TestSamplingPerHost(t *testing.T) {
	p := mustNew(t, func(c *Config) {
		c.Sampling.Ratio = 1
		c.Sampling.PerHost = map[string]float64{"API.example.com": 0, "*.internal": 0, "keep.internal": 1, "*.example.com": 0.5}
	})
	for _, tc := range []struct {
		host string
		keep bool
	}{
		{"api.example.com", false},     // exact, case-insensitive
		{"api.example.com:443", false}, // port ignored
		{"other.org", true},            // global ratio
		{"db.internal", false},         // glob
		{"keep.internal", true},        // exact beats glob
	} {
		for i := range 20 {
			ex := withTrace(sampleExchange(), traceparent(i))
			ex.Request.Headers[0].Value = tc.host
			if got := p.Apply(ex).Keep(); got != tc.keep {
				t.Errorf("%s: keep=%v", tc.host, got)
				break
			}
		}
	}
	// The longest glob wins: *.example.com at 0.5 keeps some, not all.
	kept := 0
	for i := range 400 {
		ex := withTrace(sampleExchange(), traceparent(i))
		ex.Request.Headers[0].Value = "www.example.com"
		if p.Apply(ex).Keep() {
			kept++
		}
	}
	if kept < 150 || kept > 250 {
		t.Errorf("*.example.com at 0.5 kept %d of 400", kept)
	}
}

func TestSpanHeaders(t *testing.T) {
	p := mustNew(t, func(c *Config) {
		c.SpanHeaders.Request = []string{"Content-Type", "authorization", "x-trace-*"}
		c.SpanHeaders.Response = []string{"server"}
	})
	ex := sampleExchange()
	ex.Request.Headers = append(ex.Request.Headers,
		exchange.Header{Name: "content-type", Value: "text/plain"},
		exchange.Header{Name: "Authorization", Value: "Bearer x"},
		exchange.Header{Name: "X-Trace-Id", Value: "1"})
	ex.Response.Headers = append(ex.Response.Headers, exchange.Header{Name: "Server", Value: "nginx"})
	p.Apply(ex)
	want := []exchange.Header{{Name: "content-type", Value: "text/plain"}, {Name: "Authorization", Value: Redacted}, {Name: "X-Trace-Id", Value: "1"}}
	if got := p.SpanHeaders(ex.Request, false); !slices.Equal(got, want) {
		t.Errorf("request span headers %v", got)
	}
	if got := p.SpanHeaders(ex.Response, true); !slices.Equal(got, []exchange.Header{{Name: "Server", Value: "nginx"}}) {
		t.Errorf("response span headers %v", got)
	}
	def := mustNew(t, nil)
	if got := def.SpanHeaders(ex.Request, false); got != nil {
		t.Errorf("defaults: %v", got)
	}
	if n := testing.AllocsPerRun(50, func() { def.SpanHeaders(ex.Request, false) }); n != 0 {
		t.Errorf("allocs %v", n)
	}
}

func TestValidateNamesFields(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Filters.Include.Executables = []string{"curl", "wget", "[bad"} }, `filters.include.executables[2]: bad pattern "[bad"`},
		{func(c *Config) { c.Filters.Exclude.Executables = []string{""} }, `filters.exclude.executables[0]: empty pattern`},
		{func(c *Config) { c.Filters.Include.PIDs = []int{1, 0} }, `filters.include.pids[1]: 0 is not a pid`},
		{func(c *Config) { c.Filters.Exclude.ContainerIDs = []string{"ab[c"} }, `filters.exclude.container_ids[0]: bad pattern`},
		{func(c *Config) { c.Filters.Include.Hosts = []string{"10.0.0.0/33"} }, `filters.include.hosts[0]: bad CIDR prefix "10.0.0.0/33"`},
		{func(c *Config) { c.Filters.Exclude.Hosts = []string{"[x"} }, `filters.exclude.hosts[0]: bad pattern`},
		{func(c *Config) { c.Filters.Include.Ports = []int{443, 70000} }, `filters.include.ports[1]: 70000 not in [1, 65535]`},
		{func(c *Config) { c.Filters.Direction = "outbound" }, `filters.direction: "outbound" is not one of egress, ingress, both`},
		{func(c *Config) { c.Sampling.Ratio = 1.5 }, `sampling.ratio: 1.5 not in [0,1]`},
		{func(c *Config) { c.Sampling.Ratio = -0.1 }, `sampling.ratio: -0.1 not in [0,1]`},
		{func(c *Config) { c.Sampling.PerHost = map[string]float64{"a.example.com": 2} }, `sampling.per_host["a.example.com"]: 2 not in [0,1]`},
		{func(c *Config) { c.Redaction.Headers = []string{"authorization", "bad header"} }, `redaction.headers[1]: "bad header": invalid character ' '`},
		{func(c *Config) { c.Redaction.ExtraHeaders = []string{""} }, `redaction.extra_headers[0]: empty name`},
		{func(c *Config) { c.Redaction.QueryParameters = []string{""} }, `redaction.query_parameters[0]: empty name`},
		{func(c *Config) { c.Redaction.BodyPatterns = []BodyPattern{{Name: "x", Regex: "(unclosed"}} }, "redaction.body_patterns[0].regex: error parsing regexp: missing closing )"},
		{func(c *Config) { c.Redaction.BodyPatterns = []BodyPattern{{Name: "x", Regex: "a*"}} }, `redaction.body_patterns[0].regex: "a*" can match the empty string`},
		{func(c *Config) { c.Redaction.BodyPatterns = []BodyPattern{{Regex: "abc"}} }, `redaction.body_patterns[0].name: empty name`},
		{func(c *Config) { c.Redaction.ExtraBodyPatterns = []BodyPattern{{Name: "card", Regex: "abc"}} }, `redaction.extra_body_patterns[0].name: "card" already used by redaction.body_patterns[0]`},
		{func(c *Config) { c.Bodies.ContentTypes = []string{"json"} }, `bodies.content_types[0]: "json" is not a media type`},
		{func(c *Config) { c.Bodies.ContentTypes = []string{"text/plain; charset=utf-8"} }, `bodies.content_types[0]: "text/plain; charset=utf-8": give the media type without parameters`},
		{func(c *Config) { c.SpanHeaders.Response = []string{"a:b"} }, `span_headers.response[0]: "a:b": invalid character ':'`},
	} {
		cfg := DefaultConfig()
		tc.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v\n does not contain %s", err, tc.want)
		}
		if _, nerr := New(cfg); nerr == nil || nerr.Error() != err.Error() {
			t.Errorf("New error %v differs from Validate %v", nerr, err)
		}
	}
	// Several errors are all reported.
	cfg := DefaultConfig()
	cfg.Sampling.Ratio = 2
	cfg.Filters.Direction = "x"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "sampling.ratio") || !strings.Contains(err.Error(), "filters.direction") {
		t.Errorf("joined error %v", err)
	}
}

func TestStatsSnapshot(t *testing.T) {
	p := mustNew(t, func(c *Config) { c.Filters.Exclude.PIDs = []int{1} })
	ex := sampleExchange()
	ex.Process.PID = 1
	p.Apply(ex)
	s := p.Stats()
	if len(s.Filtered) != len(Reasons()) || s.Filtered["pid"] != 1 || s.FilteredTotal() != 1 {
		t.Errorf("stats %+v", s)
	}
	var nilPolicy *Policy
	if s := nilPolicy.Stats(); len(s.Filtered) != len(Reasons()) {
		t.Errorf("nil stats %+v", s)
	}
}

func TestApplyNoAllocWhenClean(t *testing.T) {
	p := mustNew(t, nil)
	ex := benchExchange(false)
	reset := ex.snapshot()
	if n := testing.AllocsPerRun(100, func() { reset(); p.Apply(ex.ex) }); n != 0 {
		t.Errorf("Apply allocates %v times on an exchange with nothing to redact", n)
	}
}

func TestApplyConcurrent(t *testing.T) {
	p := mustNew(t, func(c *Config) { c.Sampling.Ratio = 0.5 })
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 200 {
				ex := jsonExchange(`{"card":"4111111111111111"}`)
				withTrace(ex, traceparent(i))
				if p.Apply(ex).Keep() && string(ex.Request.Body) != `{"card":"REDACTED"}` {
					t.Error("not redacted")
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
	if s := p.Stats(); s.Kept+s.SampledOut != 800 || s.BodyMatchesRedacted != s.Kept {
		t.Errorf("stats %+v", s)
	}
}

func TestRedactCommandArgs(t *testing.T) {
	p, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"curl", "-sk", "-H", "Authorization: Bearer abc", "-H", "X-Test: keep", "-u", "alice:pw",
		"https://bob:pw2@s3.example.com/o?X-Amz-Signature=sig&x=1", "-H", "cookie:a=b"}
	got := p.RedactCommandArgs(args)
	want := []string{"curl", "-sk", "-H", "Authorization: REDACTED", "-H", "X-Test: keep", "-u", "alice:REDACTED",
		"https://REDACTED:REDACTED@s3.example.com/o?X-Amz-Signature=REDACTED&x=1", "-H", "cookie: REDACTED"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if args[3] != "Authorization: Bearer abc" {
		t.Error("the input slice was modified")
	}
	clean := []string{"python3", "server.py", "8443"}
	if got := p.RedactCommandArgs(clean); &got[0] != &clean[0] {
		t.Error("a clean command line was copied")
	}
}
