package engine

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/otelmap"
	"github.com/tlstap/tlstap/internal/policy"
)

func TestConfigFromProperties(t *testing.T) {
	props := map[string]string{"max_body_bytes": "8KiB", "ring_buffer_size": "32M", "tls_probes": "OpenSSL, java", "java_agent_dir": "/opt/tlstap/java"}
	cfg, err := ConfigFromProperties(func(k string) string { return props[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxBodyBytes != 8192 || cfg.RingBufferSize != 32<<20 || len(cfg.TLSProbes) != 2 || cfg.TLSProbes[0] != "openssl" ||
		cfg.TLSProbes[1] != "java" || cfg.JavaAgentDir != "/opt/tlstap/java" {
		t.Errorf("cfg = %+v", cfg)
	}
	gnu, err := ConfigFromProperties(func(k string) string { return map[string]string{"tls_probes": "openssl, GnuTLS"}[k] })
	if err != nil || len(gnu.TLSProbes) != 2 || gnu.TLSProbes[1] != ProbeGnuTLS {
		t.Errorf("tls_probes openssl,gnutls: %v %v", gnu.TLSProbes, err)
	}
	def, err := ConfigFromProperties(func(string) string { return "" })
	if err != nil || def.MaxBodyBytes != DefaultConfig().MaxBodyBytes {
		t.Errorf("defaults: %+v %v", def, err)
	}
	gate, err := ConfigFromProperties(func(k string) string {
		return map[string]string{"exec_gate": "off", "exec_gate_timeout": "250ms"}[k]
	})
	if err != nil || gate.ExecGate.Enabled || gate.ExecGate.Timeout != 250*time.Millisecond || !def.ExecGate.Enabled {
		t.Errorf("exec gate: %+v %v (default %+v)", gate.ExecGate, err, def.ExecGate)
	}
	if _, err := ConfigFromProperties(func(k string) string {
		return map[string]string{"exec_gate_timeout": "1h"}[k]
	}); err == nil || !strings.Contains(err.Error(), "exec_gate.timeout: 1h0m0s out of range [10ms, 30s]") {
		t.Errorf("exec_gate_timeout=1h: %v", err)
	}
	for key, bad := range map[string]string{"max_body_bytes": "lots", "ring_buffer_size": "3000", "tls_probes": "wolfssl",
		"exec_gate": "maybe", "exec_gate_timeout": "soon"} {
		_, err := ConfigFromProperties(func(k string) string {
			if k == key {
				return bad
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), key+":") {
			t.Errorf("%s=%q: error %v does not name the field", key, bad, err)
		}
	}
}

func TestConfigFromPropertiesPolicy(t *testing.T) {
	props := map[string]string{
		"include_executables":     "curl, /usr/bin/*",
		"include_ports":           "443,8443",
		"exclude_pids":            "1 2",
		"exclude_hosts":           "10.0.0.0/8",
		"direction":               "Egress",
		"loopback":                "off",
		"sampling_ratio":          "0.5",
		"sampling_per_host":       "api.example.com=0.1,*.internal=0",
		"redact_headers":          "authorization,cookie",
		"redact_extra_headers":    "x-secret",
		"redact_query_parameters": "none",
		"redact_url_credentials":  "false",
		"redact_body_patterns":    "card",
		"redact_body_pattern_1":   `ssn=\b\d{3}-\d{2}-\d{4}\b`,
		"redact_body_pattern_3":   `pin=pin=\d{4}`, // '=' inside the regex is kept
		"capture_bodies":          "no",
		"body_content_types":      "application/json text/*",
		"span_request_headers":    "content-type",
		"span_response_headers":   "server",
		"redact_fields":           "password,pin",
		"redact_extra_fields":     "otp",
		"redact_secret_values":    "jwt private_key",
		"pii_kinds":               "none",
		"redact_pii":              "yes",
	}
	cfg, err := ConfigFromProperties(func(k string) string { return props[k] })
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Policy
	f := p.Filters
	if strings.Join(f.Include.Executables, "|") != "curl|/usr/bin/*" || fmt.Sprint(f.Include.Ports) != "[443 8443]" ||
		fmt.Sprint(f.Exclude.PIDs) != "[1 2]" || f.Exclude.Hosts[0] != "10.0.0.0/8" || f.Direction != "egress" || f.Loopback {
		t.Errorf("filters %+v", f)
	}
	if p.Sampling.Ratio != 0.5 || p.Sampling.PerHost["api.example.com"] != 0.1 || p.Sampling.PerHost["*.internal"] != 0 || len(p.Sampling.PerHost) != 2 {
		t.Errorf("sampling %+v", p.Sampling)
	}
	r := p.Redaction
	if strings.Join(r.Headers, ",") != "authorization,cookie" || r.ExtraHeaders[0] != "x-secret" || r.QueryParameters == nil ||
		len(r.QueryParameters) != 0 || r.URLCredentials || len(r.BodyPatterns) != 1 || r.BodyPatterns[0].Name != "card" || !r.BodyPatterns[0].Luhn {
		t.Errorf("redaction %+v", r)
	}
	if len(r.ExtraBodyPatterns) != 2 || r.ExtraBodyPatterns[0] != (policy.BodyPattern{Name: "ssn", Regex: `\b\d{3}-\d{2}-\d{4}\b`}) ||
		r.ExtraBodyPatterns[1] != (policy.BodyPattern{Name: "pin", Regex: `pin=\d{4}`}) {
		t.Errorf("extra patterns %+v", r.ExtraBodyPatterns)
	}
	if strings.Join(r.Fields, ",") != "password,pin" || strings.Join(r.ExtraFields, ",") != "otp" ||
		strings.Join(r.SecretValues, ",") != "jwt,private_key" || p.PII.Kinds == nil || len(p.PII.Kinds) != 0 || !p.PII.Redact {
		t.Errorf("inspection %+v %+v", r, p.PII)
	}
	if p.Bodies.Capture || strings.Join(p.Bodies.ContentTypes, ",") != "application/json,text/*" ||
		p.SpanHeaders.Request[0] != "content-type" || p.SpanHeaders.Response[0] != "server" {
		t.Errorf("bodies %+v span %+v", p.Bodies, p.SpanHeaders)
	}

	// Absent properties: the policy defaults.
	def, err := ConfigFromProperties(func(string) string { return "" })
	if err != nil || !reflect.DeepEqual(def.Policy, policy.DefaultConfig()) {
		t.Errorf("defaults: %+v %v", def.Policy, err)
	}

	// Every bad value is reported under its property name.
	for key, bad := range map[string]string{
		"include_ports":         "https",
		"exclude_ports":         "70000",
		"include_executables":   "[x",
		"include_pids":          "-3",
		"direction":             "outbound",
		"loopback":              "maybe",
		"sampling_ratio":        "1.5",
		"sampling_per_host":     "a.example.com",
		"redact_headers":        "bad@name",
		"redact_body_patterns":  "iban",
		"redact_body_pattern_2": "x=(",
		"capture_bodies":        "sometimes",
		"body_content_types":    "json",
		"redact_extra_fields":   "--",
		"redact_secret_values":  "slack",
		"pii_kinds":             "ssn",
		"redact_pii":            "perhaps",
	} {
		_, err := ConfigFromProperties(func(k string) string {
			if k == key {
				return bad
			}
			return ""
		})
		if err == nil || !strings.HasPrefix(err.Error(), key+":") {
			t.Errorf("%s=%q: error %v does not name the property", key, bad, err)
		}
	}
}

func TestConfigFromPropertiesServiceNames(t *testing.T) {
	props := map[string]string{"service_names": "checkout=python3*, web=/usr/sbin/nginx"}
	cfg, err := ConfigFromProperties(func(k string) string { return props[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := otelmap.ServiceNames{{Executable: "python3*", Name: "checkout"}, {Executable: "/usr/sbin/nginx", Name: "web"}}
	if !reflect.DeepEqual(cfg.ServiceNames, want) {
		t.Errorf("ServiceNames = %+v, want %+v", cfg.ServiceNames, want)
	}
	for bad, msg := range map[string]string{
		"checkout":  `service_names: "checkout" is not name=executable`,
		"x=[":       `service_names[0].executable: "[": syntax error in pattern`,
		"=python3*": `service_names[0].name: empty`,
	} {
		_, err := ConfigFromProperties(func(k string) string {
			if k == "service_names" {
				return bad
			}
			return ""
		})
		if err == nil || err.Error() != msg {
			t.Errorf("service_names=%q: error %v, want %q", bad, err, msg)
		}
	}
}
