package policy

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/tlstap/tlstap/internal/exchange"
)

func bodyExchange(ct, body string) *exchange.Exchange {
	ex := sampleExchange()
	ex.Request.Method = "POST"
	ex.Request.Headers = append(ex.Request.Headers, exchange.Header{Name: "Content-Type", Value: ct})
	ex.Request.Body = []byte(body)
	ex.Request.BodySize = int64(len(body))
	return ex
}

func TestJSONSecretFields(t *testing.T) {
	p := mustNew(t, nil)
	for _, tc := range []struct{ in, want string }{
		{`{"user":"bob","password":"hunter2"}`, `{"user":"bob","password":"REDACTED"}`},
		// Any depth, case and separators ignored, suffixes match.
		{`{"a":{"b":[{"Client_Secret":"s1"},{"newPassword":"s2","DB-PASSWD":"s3"}]},"X.Api.Key":"s4"}`,
			`{"a":{"b":[{"Client_Secret":"REDACTED"},{"newPassword":"REDACTED","DB-PASSWD":"REDACTED"}]},"X.Api.Key":"REDACTED"}`},
		// Numbers and booleans become strings; null and empty strings stay.
		{`{"pin_token":1234,"secret":true,"token":null,"apikey":""}`, `{"pin_token":"REDACTED","secret":"REDACTED","token":null,"apikey":""}`},
		// An object or array value: every scalar inside, structure kept.
		{`{"credentials":{"user":"u","keys":[1,"k",{"x":false}]},"after":"kept"}`,
			`{"credentials":{"user":"REDACTED","keys":["REDACTED","REDACTED",{"x":"REDACTED"}]},"after":"kept"}`},
		// Escaped key, white space, top-level array.
		{` [ { "pass\u0077ord" : "x\"y" } , {"ok":"token"} ] `, ` [ { "pass\u0077ord" : "REDACTED" } , {"ok":"token"} ] `},
		// Names that only look alike are kept.
		{`{"tokens_used":5,"passport":"P1","tokenizer":"bpe","secretary":"Ann"}`, `{"tokens_used":5,"passport":"P1","tokenizer":"bpe","secretary":"Ann"}`},
		// Cut by max_body_bytes inside the secret.
		{`{"a":1,"password":"hunt`, `{"a":1,"password":"REDACTED`},
	} {
		ex := bodyExchange("application/json", tc.in)
		p.Apply(ex)
		if got := string(ex.Request.Body); got != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.in, got, tc.want)
		}
		if json.Valid([]byte(tc.in)) && !json.Valid(ex.Request.Body) {
			t.Errorf("%s: output is not valid JSON: %s", tc.in, ex.Request.Body)
		}
	}
	if s := p.Stats(); s.FieldsRedacted != 13 {
		t.Errorf("FieldsRedacted = %d, want 13", s.FieldsRedacted)
	}
}

func TestFormAndMultipartSecretFields(t *testing.T) {
	p := mustNew(t, nil)
	ex := bodyExchange("application/x-www-form-urlencoded", "user=bob&password=hunter2&access%5Ftoken=t1&q=a+b&Refresh_Token=t2")
	p.Apply(ex)
	if got, want := string(ex.Request.Body), "user=bob&password=REDACTED&access%5Ftoken=REDACTED&q=a+b&Refresh_Token=REDACTED"; got != want {
		t.Errorf("form\n got %s\nwant %s", got, want)
	}
	mp := "--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nbob\r\n" +
		"--XyZ\r\nContent-Disposition: form-data; name=\"api_key\"\r\n\r\nk-123\r\n" +
		"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n"
	// multipart/form-data is not among the default content types (its
	// parts may be files): allow it.
	p = mustNew(t, func(c *Config) { c.Bodies.ContentTypes = append(c.Bodies.ContentTypes, "multipart/form-data") })
	ex = bodyExchange(`multipart/form-data; boundary="XyZ"`, mp)
	p.Apply(ex)
	want := strings.Replace(mp, "k-123", "REDACTED", 1)
	if got := string(ex.Request.Body); got != want {
		t.Errorf("multipart\n got %q\nwant %q", got, want)
	}
}

func TestQueryAndCommandLineSecretFields(t *testing.T) {
	p := mustNew(t, nil)
	ex := sampleExchange()
	ex.Request.Target = "/cb?code=c1&access_token=t1&ID_TOKEN=t2&state=s&password=p"
	p.Apply(ex)
	if want := "/cb?code=c1&access_token=REDACTED&ID_TOKEN=REDACTED&state=s&password=REDACTED"; ex.Request.Target != want {
		t.Errorf("target %s, want %s", ex.Request.Target, want)
	}
	args := []string{"curl", "--password=p1", "password=p2", "--api-key", "p3", "-d", `{"user":"u","secret":"p4"}`,
		"-d", "a=1&client_secret=p5", "https://x/?token=p6", "--token-file", "/etc/t", "-H", "X-Trace: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.p7sig"}
	got := p.RedactCommandArgs(args)
	want := []string{"curl", "--password=REDACTED", "password=REDACTED", "--api-key", "REDACTED", "-d", `{"user":"u","secret":"REDACTED"}`,
		"-d", "a=1&client_secret=REDACTED", "https://x/?token=REDACTED", "--token-file", "/etc/t", "-H", "X-Trace: REDACTED"}
	if !slices.Equal(got, want) {
		t.Errorf("args\n got %q\nwant %q", got, want)
	}
	if args[1] != "--password=p1" {
		t.Error("RedactCommandArgs modified its argument")
	}
}

func TestSecretValues(t *testing.T) {
	p := mustNew(t, nil)
	jwt := "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	pem := "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n-----END RSA PRIVATE KEY-----"
	for _, tc := range []struct{ in, want string }{
		{"session " + jwt + " end", "session REDACTED end"},
		{"id=AKIAIOSFODNN7EXAMPLE;tmp=ASIAY34FZKBOKMUTVV7A", "id=REDACTED;tmp=REDACTED"},
		{"key AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe!", "key REDACTED!"},
		{"gh 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 ok", "gh REDACTED ok"},
		{"k:\n" + pem + "\nafter", "k:\nREDACTED\nafter"},
		{"-----BEGIN PRIVATE KEY-----\nMIIEv", "REDACTED"}, // cut
		// Look-alikes stay: too short, embedded in a word, a public key.
		{"XAKIAIOSFODNN7EXAMPLE AKIA123 eyJhbGc.x -----BEGIN PUBLIC KEY-----\nMII\n-----END PUBLIC KEY-----",
			"XAKIAIOSFODNN7EXAMPLE AKIA123 eyJhbGc.x -----BEGIN PUBLIC KEY-----\nMII\n-----END PUBLIC KEY-----"},
	} {
		ex := bodyExchange("text/plain", tc.in)
		p.Apply(ex)
		if got := string(ex.Request.Body); got != tc.want {
			t.Errorf("%q\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
	// In JSON the PEM block (with \n escapes) and the JWT stay inside
	// their strings.
	doc, _ := json.Marshal(map[string]string{"k": pem, "t": "Bearer " + jwt, "n": "x"})
	ex := bodyExchange("application/json", string(doc))
	p.Apply(ex)
	if want := `{"k":"REDACTED","n":"x","t":"REDACTED"}`; string(ex.Request.Body) != want {
		t.Errorf("json\n got %s\nwant %s", ex.Request.Body, want)
	}
	if s := p.Stats(); s.SecretValuesRedacted != 9 {
		t.Errorf("SecretValuesRedacted = %d, want 9", s.SecretValuesRedacted)
	}
}

func TestPIIDetection(t *testing.T) {
	for _, tc := range []struct {
		in    string
		kinds []string
		spans []string // what pii.redact replaces
	}{
		{"mail bob.smith+x@mail.example.co.uk now", []string{"email"}, []string{"bob.smith+x@mail.example.co.uk"}},
		{"email=bob%40example.com&x=1", []string{"email"}, []string{"bob%40example.com"}},
		{"iban DE89 3704 0044 0532 0130 00 and GB82WEST12345698765432.", []string{"iban"}, []string{"DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"}},
		{"card 4111-1111-1111-1111, 5500 0000 0000 0004", []string{"payment_card"}, []string{"4111-1111-1111-1111", "5500 0000 0000 0004"}},
		{"call +1 415 555 2671 or +44 (0)20 7946 0958 or (415) 555-2671", []string{"phone"},
			[]string{"+1 415 555 2671", "+44 (0)20 7946 0958", "(415) 555-2671"}},
		{`{"to":"a@b.io","tel":"+33123456789","acct":"FR1420041010050500013M02606"}`, []string{"email", "iban", "phone"},
			[]string{"a@b.io", "+33123456789", "FR1420041010050500013M02606"}},
		// Not personal data: bad checksums, timestamps, versions, ids.
		{"x@y git@localhost DE88 3704 0044 0532 0130 00 4111111111111112 2024-05-01T10:00:00+02:00 v1.2.3 " +
			"1714557600000 +12 34 x (123) 456-7890 +0123456789012 user@@host a@b.c GB82WEST1234569876543", nil, nil},
	} {
		p := mustNew(t, nil)
		ex := bodyExchange("text/plain", tc.in)
		p.Apply(ex)
		if !slices.Equal(ex.PII, tc.kinds) {
			t.Errorf("%q: kinds %v, want %v", tc.in, ex.PII, tc.kinds)
		}
		for _, s := range tc.spans {
			if !bytes.Contains(ex.Request.Body, []byte(s)) && !slices.Contains(tc.kinds, "payment_card") {
				t.Errorf("%q: %q gone without pii.redact: %s", tc.in, s, ex.Request.Body)
			}
		}
		r := mustNew(t, func(c *Config) { c.PII.Redact = true })
		ex = bodyExchange("text/plain", tc.in)
		r.Apply(ex)
		if !slices.Equal(ex.PII, tc.kinds) {
			t.Errorf("redact %q: kinds %v, want %v", tc.in, ex.PII, tc.kinds)
		}
		want := tc.in
		for _, s := range tc.spans {
			want = strings.Replace(want, s, Redacted, 1)
		}
		if string(ex.Request.Body) != want {
			t.Errorf("redact %q\n got %q\nwant %q", tc.in, ex.Request.Body, want)
		}
		st := r.Stats()
		for _, k := range PIIKinds() {
			want := uint64(0)
			if slices.Contains(tc.kinds, k) {
				want = 1
			}
			if st.PII[k] != want {
				t.Errorf("%q: Stats.PII[%s] = %d, want %d", tc.in, k, st.PII[k], want)
			}
		}
	}
}

func TestPIIRequestAndResponseDecoded(t *testing.T) {
	p := mustNew(t, func(c *Config) { c.PII.Redact = true })
	ex := bodyExchange("application/json", `{"n":1}`)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"email":"carol@example.org","card":4111111111111111}`))
	zw.Close()
	ex.Response.Headers = []exchange.Header{{Name: "Content-Type", Value: "application/json"}, {Name: "Content-Encoding", Value: "gzip"}}
	ex.Response.Body = gz.Bytes()
	ex.Response.DecodedBody = []byte(`{"email":"carol@example.org","card":4111111111111111}`)
	ex.Response.BodySize = int64(gz.Len())
	p.Apply(ex)
	if want := []string{"email", "payment_card"}; !slices.Equal(ex.PII, want) {
		t.Errorf("kinds %v, want %v", ex.PII, want)
	}
	if ex.Response.Body != nil || string(ex.Response.DecodedBody) != `{"email":"REDACTED","card":"REDACTED"}` {
		t.Errorf("response body %q decoded %q", ex.Response.Body, ex.Response.DecodedBody)
	}
}

func TestBodiesNotInspected(t *testing.T) {
	p := mustNew(t, nil)
	ex := bodyExchange("image/png", "\x89PNG a@b.io")
	ex.Response.Body, ex.Response.BodySize = nil, 100 // nothing captured
	p.Apply(ex)
	if !ex.Flags.Has(exchange.RequestBodyNotInspected | exchange.ResponseBodyNotInspected) {
		t.Errorf("flags %v", ex.Flags.Names())
	}
	if ex.PII != nil {
		t.Errorf("PII %v from an uninspected body", ex.PII)
	}
	ex = bodyExchange("application/json", `{"a":"a@b.io"}`)
	p.Apply(ex)
	if ex.Flags.Has(exchange.RequestBodyNotInspected) || ex.Flags.Has(exchange.ResponseBodyNotInspected) {
		t.Errorf("flags %v on inspected bodies", ex.Flags.Names())
	}
	if s := p.Stats(); s.BodiesNotInspected != 2 {
		t.Errorf("BodiesNotInspected = %d, want 2", s.BodiesNotInspected)
	}
}

func TestInspectionConfigErrors(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Redaction.ExtraFields = []string{"", "--", "ok"}
	cfg.Redaction.SecretValues = []string{"jwt", "JWT", "slack"}
	cfg.PII.Kinds = []string{"email", "ssn"}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`redaction.extra_fields[0]: empty name`,
		`redaction.extra_fields[1]: "--" has only separators`,
		`redaction.secret_values[1]: "JWT" listed twice`,
		`redaction.secret_values[2]: unknown detector "slack" (known: jwt, aws_access_key, google_api_key, github_token, private_key)`,
		`pii.kinds[1]: unknown kind "ssn" (known: email, iban, payment_card, phone)`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// Everything off: bodies untouched.
	p := mustNew(t, inspectionOff)
	in := `{"password":"x","mail":"a@b.io","t":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"}`
	ex := bodyExchange("application/json", in)
	p.Apply(ex)
	if string(ex.Request.Body) != in || ex.PII != nil {
		t.Errorf("inspection off changed %s / %v", ex.Request.Body, ex.PII)
	}
}
