package main

import (
	"strings"
	"testing"

	"github.com/tlstap/tlstap/internal/engine"
)

func props(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := parseConfig(props(nil))
	if err != nil {
		t.Fatal(err)
	}
	def := engine.DefaultConfig()
	if cfg.QueueSize != defaultQueueSize || cfg.Engine.MaxBodyBytes != def.MaxBodyBytes || cfg.Engine.RingBufferSize != def.RingBufferSize {
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestParseConfigValues(t *testing.T) {
	cfg, err := parseConfig(props(map[string]string{
		"max_body_bytes": "1000", "ring_buffer_size": "4MiB", "tls_probes": "none", "queue_size": " 100 ",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Engine.MaxBodyBytes != 1000 || cfg.Engine.RingBufferSize != 4<<20 || cfg.Engine.TLSProbes[0] != "none" || cfg.QueueSize != 100 {
		t.Errorf("cfg = %+v", cfg)
	}
}

// Every bad value is reported, on one line, naming its field.
func TestParseConfigErrorsNameTheField(t *testing.T) {
	for key, bad := range map[string]string{
		"max_body_bytes":   "lots",
		"ring_buffer_size": "3000",
		"tls_probes":       "wolfssl",
		"queue_size":       "0",
	} {
		_, err := parseConfig(props(map[string]string{key: bad}))
		if err == nil || !strings.HasPrefix(oneLine(err), key+":") {
			t.Errorf("%s=%q: error %v does not name the field", key, bad, err)
		}
	}
	for _, bad := range []string{"abc", "-1", "1048577", "1.5"} {
		_, err := parseConfig(props(map[string]string{"queue_size": bad}))
		if err == nil || !strings.Contains(err.Error(), "queue_size: ") {
			t.Errorf("queue_size=%q: %v", bad, err)
		}
	}
	_, err := parseConfig(props(map[string]string{"max_body_bytes": "x", "queue_size": "y"}))
	line := oneLine(err)
	if strings.Contains(line, "\n") || !strings.Contains(line, "max_body_bytes:") || !strings.Contains(line, "queue_size:") {
		t.Errorf("two bad fields: %q", line)
	}
}
