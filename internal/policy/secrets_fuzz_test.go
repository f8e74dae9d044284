package policy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzJSONSecretFields: valid JSON in, valid JSON out, with the same
// structure, and no value of a secret field survives (every scalar under a
// secret key is "REDACTED", null or "").
func FuzzJSONSecretFields(f *testing.F) {
	for _, s := range []string{
		`{"user":"bob","password":"hunter2"}`,
		`{"a":{"b":[{"Client_Secret":"s1"},{"newPassword":2}]},"credentials":{"k":[1,true,null,"x"]}}`,
		`[{"pass\u0077ord":"x\"y","t":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"}]`,
		`{"card":4111111111111111,"n":-4111111111111111e0,"m":"a@b.io \u00e9 +1 415 555 2671"}`,
		`{"k":"-----BEGIN RSA PRIVATE KEY-----\nMII\n-----END RSA PRIVATE KEY-----","token":{"":""}}`,
		`"plain string"`, `123`, `{"apikey":"","secret":null}`,
	} {
		f.Add([]byte(s))
	}
	p := mustNew(f, func(c *Config) {
		c.PII.Redact = true
		// A user pattern whose matches cross string boundaries.
		c.Redaction.ExtraBodyPatterns = []BodyPattern{{Name: "wide", Regex: `x[^y]{0,8}y`}}
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		if !json.Valid(in) {
			return
		}
		ex := bodyExchange("application/json", string(in))
		p.Apply(ex)
		out := ex.Request.Body
		if !json.Valid(out) {
			t.Fatalf("invalid JSON out\n in %s\nout %s", in, out)
		}
		din, dout := decodeNumbers(t, in), decodeNumbers(t, out)
		checkRedacted(t, p, din, dout, false, in, out)
	})
}

func checkRedacted(t *testing.T, p *Policy, in, out any, secret bool, rin, rout []byte) {
	switch v := in.(type) {
	case map[string]any:
		o, ok := out.(map[string]any)
		if !ok || (len(o) != len(v) && !keysRewritten(v, o)) {
			// A key rewritten by a value rule can split or merge duplicate
			// keys (`{"0":"x","0":"y"}`, a pattern spanning both strings):
			// the counts then differ without any member being lost.
			t.Fatalf("structure changed\n in %s\nout %s", rin, rout)
		}
		for k, x := range v {
			ov, ok := o[k]
			if !ok {
				// The key itself was rewritten by a value rule.
				continue
			}
			checkRedacted(t, p, x, ov, secret || p.insp.fields.has(k), rin, rout)
		}
	case []any:
		o, ok := out.([]any)
		if !ok || len(o) != len(v) {
			t.Fatalf("structure changed\n in %s\nout %s", rin, rout)
		}
		for i := range v {
			checkRedacted(t, p, v[i], o[i], secret, rin, rout)
		}
	default:
		if !secret || in == nil || in == "" {
			return
		}
		if out != Redacted {
			t.Fatalf("secret value %v became %v\n in %s\nout %s", in, out, rin, rout)
		}
	}
}

// decodeNumbers decodes b keeping numbers as text: a valid number such as
// 1E1000 does not fit a float64.
func decodeNumbers(t *testing.T, b []byte) any {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

// keysRewritten reports whether some key of one object is missing from
// the other.
func keysRewritten(in, out map[string]any) bool {
	for k := range out {
		if _, ok := in[k]; !ok {
			return true
		}
	}
	for k := range in {
		if _, ok := out[k]; !ok {
			return true
		}
	}
	return false
}

// sampleSecrets are secrets every default rule must remove when they stand
// alone in a body (delimited by bytes that cannot extend them).
var sampleSecrets = []string{
	"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
	"AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A",
	"AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
	"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",
	"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n-----END EC PRIVATE KEY-----",
	"Bearer mF_9.B5f-4.1JqM",
	"4111 1111 1111 1111", "5500-0000-0000-0004",
}

// FuzzSecretValuesRemoved: a known secret placed anywhere in a body, in
// plain text, in a form field and in a JSON string, does not survive.
func FuzzSecretValuesRemoved(f *testing.F) {
	for i := range sampleSecrets {
		f.Add(uint8(i), "prefix text a@b.io", "suffix {\"x\":1}")
	}
	f.Add(uint8(0), "", "")
	p := mustNew(f, nil)
	f.Fuzz(func(t *testing.T, which uint8, prefix, suffix string) {
		secret := sampleSecrets[int(which)%len(sampleSecrets)]
		for _, tc := range []struct{ ct, body string }{
			{"text/plain", prefix + "|" + secret + "|" + suffix},
			{"application/x-www-form-urlencoded", "a=" + prefix + "&b=|" + secret + "|&c=" + suffix},
			{"application/json", string(mustJSON(t, map[string]string{"a": prefix, "b": "|" + secret + "|", "c": suffix}))},
		} {
			ex := bodyExchange(tc.ct, tc.body)
			p.Apply(ex)
			// Compare on the part that carries the secret: the prefix may
			// hold a copy of it that is not delimited.
			if bytes.Contains(ex.Request.Body, []byte("|"+secret+"|")) || (tc.ct == "application/json" && strings.Contains(string(ex.Request.Body), jsonEscaped(t, secret))) {
				t.Fatalf("%s: secret survived: %q", tc.ct, ex.Request.Body)
			}
			if tc.ct == "application/json" && !json.Valid(ex.Request.Body) {
				t.Fatalf("invalid JSON out: %s", ex.Request.Body)
			}
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonEscaped(t *testing.T, s string) string {
	b := mustJSON(t, "|"+s+"|")
	return string(b[1 : len(b)-1])
}

// FuzzInspectBody runs every body parser (JSON, form, multipart, plain
// text) and detector on arbitrary bytes, with personal data redaction on:
// nothing panics, the output of a valid JSON document is valid JSON, and a
// second pass finds no secret field left in form bodies.
func FuzzInspectBody(f *testing.F) {
	f.Add(uint8(0), []byte(`{"password":"x","a":[1,{"token":2}]}`))
	f.Add(uint8(1), []byte("password=x&email=a%40b.io&phone=%2B14155552671"))
	f.Add(uint8(2), []byte("--B\r\nContent-Disposition: form-data; name=\"secret\"\r\n\r\nv\r\n--B\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nw\r\n--B--"))
	f.Add(uint8(3), []byte("mail a@b.io card 4111 1111 1111 1111 iban GB82WEST12345698765432 +1 415 555 2671 (415) 555-2671"))
	cts := []string{"application/json", "application/x-www-form-urlencoded", `multipart/form-data; boundary=B`, "text/plain"}
	p := mustNew(f, func(c *Config) {
		c.PII.Redact = true
		c.Bodies.ContentTypes = append(c.Bodies.ContentTypes, "multipart/form-data")
	})
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		ct := cts[int(which)%len(cts)]
		ex := bodyExchange(ct, string(body))
		p.Apply(ex)
		out := ex.Request.Body
		if ct == "application/json" && json.Valid(body) && !json.Valid(out) {
			t.Fatalf("invalid JSON out\n in %s\nout %s", body, out)
		}
		if ct == "application/x-www-form-urlencoded" {
			again := bodyExchange(ct, string(out))
			before := p.Stats().FieldsRedacted
			p.Apply(again)
			if n := p.Stats().FieldsRedacted - before; n != 0 {
				t.Fatalf("%d secret fields left after redaction: %q", n, out)
			}
		}
	})
}
