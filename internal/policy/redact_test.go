package policy

import (
	"bytes"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tlstap/tlstap/internal/exchange"
)

// equivalencePatterns exercise the prefilter: word boundaries, anchors,
// case folding (including k and s, which fold outside ASCII), alternations,
// non-ASCII classes and dots.
var equivalencePatterns = []string{
	`\b\d(?:[ -]?\d){12,18}\b`,
	`\b(?:\d[ -]*?){13,16}\b`,
	`(?i)\bbearer\s+[a-z0-9._~+/-]+=*`,
	`(?i)sk_live_[a-z0-9]{4,}`,
	`(?m)^secret=\w+$`,
	`\Atoken:\S+`,
	`pass(?:word|wd)=[^&\s]+`,
	`(?i)ünïcode\w*`,
	`é+`,
	`x.y`,
	`(?s)<p>.+?</p>`,
	`\d{3}-\d{2}-\d{4}`,
	`[^a-z]{5}`,
	`\Bab\B`,
	`(?:a|bc)(?:d|ef)$`,
}

func compileTestPattern(t testing.TB, expr string) compiledPattern {
	var errs errList
	cp, ok := compilePattern(&errs, "p", BodyPattern{Name: "p", Regex: expr, Replacement: "#"}, map[string]string{})
	if !ok {
		t.Fatalf("%s: %v", expr, errs.err())
	}
	return cp
}

func checkEquivalent(t testing.TB, cp *compiledPattern, in []byte) {
	got, n := cp.redact(in)
	want := cp.re.ReplaceAll(in, []byte("#"))
	if !bytes.Equal(got, want) {
		t.Fatalf("pattern %s on %q:\n got %q\nwant %q", cp.re, in, got, want)
	}
	if wantN := len(cp.re.FindAllIndex(in, -1)); n != wantN {
		t.Fatalf("pattern %s on %q: %d matches, want %d", cp.re, in, n, wantN)
	}
	if n == 0 && len(in) > 0 && &got[0] != &in[0] {
		t.Fatalf("pattern %s: copied a body without matches", cp.re)
	}
}

var equivalenceInputs = []string{
	"",
	"4111 1111 1111 1111",
	`{"card":"4111-1111-1111-1111","n":12}`,
	"Authorization: Bearer abc.def-ghi== tail",
	"BEARER\tx",
	"xbearer y",
	"SK_LIVE_abcd and sK_live_ABCDE and \u212a",
	"line\nsecret=abc\nsecret=d e\n",
	"token:abc def",
	" token:abc",
	"password=hunter2&passwd=x",
	"ÜNÏCODE ünïcodeXYZ unicode",
	"éééé e é",
	"x\ny xzy x\xffy",
	"<p>a\nb</p><p></p>",
	"123-45-6789 and 1234-56-789",
	"ABCDE12345abc!!!!!",
	"xaby ab aab",
	"ad bcef aef",
	"\xff\xfe4111111111111111\xff",
}

func TestPrefilterEquivalence(t *testing.T) {
	for _, expr := range equivalencePatterns {
		cp := compileTestPattern(t, expr)
		for _, in := range equivalenceInputs {
			checkEquivalent(t, &cp, []byte(in))
		}
	}
}

func TestPrefilterShape(t *testing.T) {
	cp := compileTestPattern(t, `(?i)\bbearer\s+[a-z0-9._~+/-]+=*`)
	if len(cp.pre.literals) != 1 || string(cp.pre.literals[0].s) != "bearer" || !cp.pre.literals[0].fold || cp.pre.minLen != 8 {
		t.Errorf("bearer prefilter %+v", cp.pre)
	}
	cp = compileTestPattern(t, `\b\d(?:[ -]?\d){12,18}\b`)
	if cp.pre.minLen != 13 || !cp.pre.alphabet['7'] || !cp.pre.alphabet[' '] || cp.pre.alphabet['"'] || cp.pre.alphabet[0x80] {
		t.Errorf("card prefilter minLen %d", cp.pre.minLen)
	}
	// k folds to the Kelvin sign: no ASCII-folded literal for it.
	cp = compileTestPattern(t, `(?i)sk_live`)
	if len(cp.pre.literals) != 0 || !cp.pre.alphabet[0xe2] {
		t.Errorf("sk_live prefilter %+v", cp.pre.literals)
	}
}

func TestIndexFold(t *testing.T) {
	for _, tc := range []struct {
		s, lit string
		want   int
	}{
		{"xxBeArEr", "bearer", 2}, {"bbbbbbeare", "bearer", -1}, {"Bbearer", "bearer", 1},
		{"", "ab", -1}, {"ab", "ab", 0}, {"1-2", "-2", 1}, {"bBbBbearer", "bearer", 4},
	} {
		if got := indexFold([]byte(tc.s), []byte(tc.lit)); got != tc.want {
			t.Errorf("indexFold(%q, %q) = %d, want %d", tc.s, tc.lit, got, tc.want)
		}
	}
}

func TestLuhn(t *testing.T) {
	for s, want := range map[string]bool{
		"4111 1111 1111 1111": true, "5555555555554444": true, "378282246310005": true,
		"4111111111111112": false, "1714557600000": false, "": false,
	} {
		if luhnValid([]byte(s)) != want {
			t.Errorf("luhnValid(%q) != %v", s, want)
		}
	}
}

func FuzzBodyPrefilter(f *testing.F) {
	for i, in := range equivalenceInputs {
		f.Add(uint8(i), []byte(in))
	}
	compiled := make([]compiledPattern, len(equivalencePatterns))
	for i, expr := range equivalencePatterns {
		compiled[i] = compileTestPattern(f, expr)
	}
	f.Fuzz(func(t *testing.T, which uint8, in []byte) {
		checkEquivalent(t, &compiled[int(which)%len(compiled)], in)
	})
}

// FuzzRedactURL checks URL/query redaction against net/url's reading of the
// same string, and that it is idempotent and minimal.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{
		"/p?sig=abc&a=1", "https://u:p@host:8443/x?X-Amz-Signature=1&X-Amz-Credential=2#f",
		"http://u@h", "/p?X%2DAmz-Signature=x", "/p?a=1#f?sig=1", "https://a@b@c/?Signature=a=b",
		"/k?AWSAccessKeyId=AKIA&Expires=1&Signature=xyz", "*", "h:443", "/p?sig+=1",
	} {
		f.Add(s)
	}
	r := urlRedactor{credentials: true, params: DefaultQueryParameters}
	f.Fuzz(func(t *testing.T, in string) {
		out, n, creds := r.redactURL(in)
		if n == 0 && !creds && out != in {
			t.Fatalf("changed without redacting: %q -> %q", in, out)
		}
		if again, n2, c2 := r.redactURL(out); again != out || n2 != 0 || c2 {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, out, again)
		}
		if !creds {
			// Only parameter values change: the path, the separators and
			// the fragment stay.
			q := strings.IndexByte(in, '?')
			if q >= 0 && out[:q+1] != in[:q+1] || q < 0 && out != in ||
				strings.Count(out, "&") != strings.Count(in, "&") || strings.Count(out, "#") != strings.Count(in, "#") {
				t.Fatalf("structure changed: %q -> %q", in, out)
			}
		}
		u, err := url.Parse(out)
		if err != nil {
			return
		}
		if u.User != nil && strings.Contains(in, "://") && u.Scheme != "" {
			if name := u.User.Username(); name != Redacted {
				t.Fatalf("%q -> %q: user %q survived", in, out, name)
			}
			if pw, ok := u.User.Password(); ok && pw != Redacted {
				t.Fatalf("%q -> %q: password %q survived", in, out, pw)
			}
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return
		}
		for k, vs := range q {
			for _, p := range DefaultQueryParameters {
				if !strings.EqualFold(k, p) {
					continue
				}
				for _, v := range vs {
					if v != "" && v != Redacted {
						t.Fatalf("%q -> %q: %s=%q survived", in, out, k, v)
					}
				}
			}
		}
	})
}

// benchEx is an exchange and the original field values Apply changes, so
// that every iteration sees the same input without allocating.
type benchEx struct {
	ex                  *exchange.Exchange
	reqHeaders, resHdrs []exchange.Header
	target              string
	reqBody, resBody    []byte
}

func (b *benchEx) snapshot() func() {
	return func() {
		copy(b.ex.Request.Headers, b.reqHeaders)
		copy(b.ex.Response.Headers, b.resHdrs)
		b.ex.Request.Target = b.target
		b.ex.Request.Body = b.reqBody
		b.ex.Response.Body = b.resBody
	}
}

// benchExchange is a typical JSON API call: ~1 KiB JSON request and response
// bodies, a dozen headers, an Authorization header; withCard adds a card
// number to the request body.
func benchExchange(withCard bool) *benchEx {
	item := `{"sku":"A-1029","qty":3,"price":19.99,"desc":"a small blue widget","created":"2024-05-01T10:00:00Z"},`
	body := `{"order":{"id":"ord_8f2a91","customer":"cus_1234","items":[` + strings.Repeat(item, 9) + `{"sku":"Z"}]}}`
	if withCard {
		body = strings.Replace(body, `"cus_1234"`, `"4111 1111 1111 1111"`, 1)
	}
	ex := sampleExchange()
	ex.Request.Method = "POST"
	ex.Request.Target = "/v1/orders?expand=items&limit=10"
	ex.Request.Headers = []exchange.Header{
		{Name: "Host", Value: "api.example.com"},
		{Name: "User-Agent", Value: "curl/8.5.0"},
		{Name: "Accept", Value: "application/json"},
		{Name: "Content-Type", Value: "application/json"},
		{Name: "Content-Length", Value: "1024"},
		{Name: "Authorization", Value: "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"},
		{Name: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{Name: "X-Request-Id", Value: "f3a9c0d1-e2b4-4f3a-9c0d-1e2b4f3a9c0d"},
		{Name: "Accept-Encoding", Value: "gzip"},
		{Name: "Connection", Value: "keep-alive"},
	}
	ex.Request.Body = []byte(body)
	ex.Request.BodySize = int64(len(body))
	ex.Response.Headers = []exchange.Header{
		{Name: "Content-Type", Value: "application/json; charset=utf-8"},
		{Name: "Content-Length", Value: "1024"},
		{Name: "Date", Value: "Wed, 01 May 2024 10:00:00 GMT"},
		{Name: "Server", Value: "nginx"},
		{Name: "Cache-Control", Value: "no-store"},
		{Name: "Location", Value: "https://api.example.com/v1/orders/ord_8f2a91"},
	}
	resBody := strings.Replace(body, `"order"`, `"created"`, 1)
	ex.Response.Body = []byte(resBody)
	ex.Response.BodySize = int64(len(resBody))
	b := &benchEx{ex: ex, target: ex.Request.Target, reqBody: ex.Request.Body, resBody: ex.Response.Body}
	b.reqHeaders = append([]exchange.Header(nil), ex.Request.Headers...)
	b.resHdrs = append([]exchange.Header(nil), ex.Response.Headers...)
	return b
}

func benchmarkApply(b *testing.B, withCard bool, mod func(*Config)) {
	p := mustNew(b, mod)
	be := benchExchange(withCard)
	reset := be.snapshot()
	b.SetBytes(int64(len(be.reqBody) + len(be.resBody)))
	b.ReportAllocs()
	for b.Loop() {
		reset()
		if !p.Apply(be.ex).Keep() {
			b.Fatal("dropped")
		}
	}
}

// BenchmarkApply: defaults on a typical 1 KiB JSON exchange (an
// Authorization header to redact, nothing in the bodies).
func BenchmarkApply(b *testing.B) { benchmarkApply(b, false, nil) }

// BenchmarkApplyCard: the request body carries a card number.
func BenchmarkApplyCard(b *testing.B) { benchmarkApply(b, true, nil) }

// BenchmarkApplyFilters: include/exclude host, port and executable rules
// and per-host sampling on top of the defaults.
func BenchmarkApplyFilters(b *testing.B) {
	benchmarkApply(b, false, func(c *Config) {
		c.Filters.Include.Hosts = []string{"*.example.com"}
		c.Filters.Include.Ports = []int{443}
		c.Filters.Exclude.Executables = []string{"/usr/sbin/*", "wget"}
		c.Sampling.PerHost = map[string]float64{"*.example.com": 1}
	})
}

// BenchmarkRegexpOnly is the cost without the prefilter, for comparison.
func BenchmarkRegexpOnly(b *testing.B) {
	be := benchExchange(false)
	var res []*regexp.Regexp
	for _, bp := range DefaultBodyPatterns() {
		res = append(res, regexp.MustCompile(bp.Regex))
	}
	b.SetBytes(int64(len(be.reqBody) + len(be.resBody)))
	for b.Loop() {
		for _, re := range res {
			re.Match(be.reqBody)
			re.Match(be.resBody)
		}
	}
}
