package engine

import (
	"strings"
	"testing"

	"go.opentelemetry.io/collector/confmap"

	"github.com/tlstap/tlstap/internal/policy"
)

// TestConfigPolicyKeys decodes the policy keys the way the Collector
// receiver does (confmap, squashed engine config) and checks that partial
// settings keep the other defaults.
func TestConfigPolicyKeys(t *testing.T) {
	cfg := DefaultConfig()
	cm := confmap.NewFromStringMap(map[string]any{
		"max_body_bytes": 4096,
		"filters": map[string]any{
			"include":   map[string]any{"executables": []any{"curl", "/usr/bin/*"}, "ports": []any{443}},
			"exclude":   map[string]any{"pids": []any{1}, "hosts": []any{"10.0.0.0/8"}},
			"direction": "egress",
			"loopback":  false,
		},
		"sampling": map[string]any{"ratio": 0.5, "per_host": map[string]any{"api.example.com": 0.1}},
		"redaction": map[string]any{
			"extra_headers":       []any{"x-internal-secret"},
			"extra_body_patterns": []any{map[string]any{"name": "ssn", "regex": `\d{3}-\d{2}-\d{4}`}},
		},
		"bodies":       map[string]any{"content_types": []any{"application/json"}},
		"span_headers": map[string]any{"request": []any{"content-type"}},
	})
	if err := cm.Unmarshal(&cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p := cfg.Policy
	f := p.Filters
	if cfg.MaxBodyBytes != 4096 || strings.Join(f.Include.Executables, ",") != "curl,/usr/bin/*" || len(f.Include.Ports) != 1 ||
		f.Include.Ports[0] != 443 || f.Exclude.PIDs[0] != 1 || f.Exclude.Hosts[0] != "10.0.0.0/8" || f.Direction != "egress" || f.Loopback {
		t.Errorf("filters %+v", f)
	}
	if p.Sampling.Ratio != 0.5 || p.Sampling.PerHost["api.example.com"] != 0.1 {
		t.Errorf("sampling %+v", p.Sampling)
	}
	// Untouched keys keep their defaults; extra_ lists add to them.
	def := policy.DefaultConfig()
	if len(p.Redaction.Headers) != len(def.Redaction.Headers) || p.Redaction.ExtraHeaders[0] != "x-internal-secret" ||
		!p.Redaction.URLCredentials || len(p.Redaction.BodyPatterns) != 2 || p.Redaction.ExtraBodyPatterns[0].Name != "ssn" {
		t.Errorf("redaction %+v", p.Redaction)
	}
	if !p.Bodies.Capture || len(p.Bodies.ContentTypes) != 1 || p.SpanHeaders.Request[0] != "content-type" {
		t.Errorf("bodies %+v span %+v", p.Bodies, p.SpanHeaders)
	}
	if _, err := policy.New(p); err != nil {
		t.Fatal(err)
	}

	// A typo in a nested key is rejected by strict unmarshalling.
	bad := DefaultConfig()
	err := confmap.NewFromStringMap(map[string]any{"filters": map[string]any{"include": map[string]any{"executable": []any{"x"}}}}).Unmarshal(&bad)
	if err == nil || !strings.Contains(err.Error(), "executable") {
		t.Errorf("typo accepted: %v", err)
	}
}

func TestConfigValidatePolicy(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Policy.Sampling.Ratio = 1.5
	cfg.Policy.Filters.Include.Executables = []string{"a", "b", "[x"}
	cfg.MaxBodyBytes = -1
	err := cfg.Validate()
	for _, want := range []string{"max_body_bytes:", "sampling.ratio: 1.5 not in [0,1]", "filters.include.executables[2]: bad pattern"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
