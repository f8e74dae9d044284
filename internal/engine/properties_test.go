package engine

import (
	"strings"
	"testing"
)

func TestConfigFromProperties(t *testing.T) {
	props := map[string]string{"max_body_bytes": "8KiB", "ring_buffer_size": "32M", "tls_probes": "OpenSSL"}
	cfg, err := ConfigFromProperties(func(k string) string { return props[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxBodyBytes != 8192 || cfg.RingBufferSize != 32<<20 || len(cfg.TLSProbes) != 1 || cfg.TLSProbes[0] != "openssl" {
		t.Errorf("cfg = %+v", cfg)
	}
	def, err := ConfigFromProperties(func(string) string { return "" })
	if err != nil || def.MaxBodyBytes != DefaultConfig().MaxBodyBytes {
		t.Errorf("defaults: %+v %v", def, err)
	}
	for key, bad := range map[string]string{"max_body_bytes": "lots", "ring_buffer_size": "3000", "tls_probes": "wolfssl"} {
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
