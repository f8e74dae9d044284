package tlstapreceiver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/xconfmap"

	"github.com/tlstap/tlstap/internal/engine"
	"github.com/tlstap/tlstap/internal/policy"
)

func TestCreateDefaultConfig(t *testing.T) {
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	assert.Equal(t, engine.DefaultConfig(), cfg.EngineConfig())
	assert.Equal(t, 64<<10, cfg.MaxBodyBytes)
	assert.Equal(t, 4<<20, cfg.RingBufferSize)
	assert.Equal(t, []string{"openssl", "go", "gnutls"}, cfg.TLSProbes)
	assert.NoError(t, xconfmap.Validate(cfg))
}

func TestUnmarshalConfig(t *testing.T) {
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cm := confmap.NewFromStringMap(map[string]any{
		"max_body_bytes":   1024,
		"ring_buffer_size": 1 << 23,
		"tls_probes":       []any{"none"},
		"exec_gate":        map[string]any{"enabled": false, "timeout": "250ms"},
	})
	require.NoError(t, cm.Unmarshal(cfg))
	assert.Equal(t, engine.Config{MaxBodyBytes: 1024, RingBufferSize: 1 << 23, TLSProbes: []string{"none"},
		ExecGate: engine.ExecGateConfig{Enabled: false, Timeout: 250 * time.Millisecond}, Policy: policy.DefaultConfig()}, cfg.EngineConfig())
	assert.NoError(t, xconfmap.Validate(cfg))

	// Unknown keys are rejected by the Collector's strict unmarshalling.
	err := confmap.NewFromStringMap(map[string]any{"max_body_byte": 1}).Unmarshal(NewFactory().CreateDefaultConfig())
	assert.ErrorContains(t, err, "max_body_byte")
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"negative body limit", func(c *Config) { c.MaxBodyBytes = -1 }, "max_body_bytes"},
		{"huge body limit", func(c *Config) { c.MaxBodyBytes = 1 << 40 }, "max_body_bytes"},
		{"ring buffer not power of two", func(c *Config) { c.RingBufferSize = 5000 }, "ring_buffer_size"},
		{"ring buffer too small", func(c *Config) { c.RingBufferSize = 1024 }, "ring_buffer_size"},
		{"ring buffer too large", func(c *Config) { c.RingBufferSize = 1 << 31 }, "ring_buffer_size"},
		{"unknown probe", func(c *Config) { c.TLSProbes = []string{"wolfssl"} }, "tls_probes"},
		{"none combined", func(c *Config) { c.TLSProbes = []string{"openssl", "none"} }, "tls_probes"},
		{"unknown pii kind", func(c *Config) { c.Policy.PII.Kinds = []string{"ssn"} }, "pii.kinds[0]"},
		{"unknown secret detector", func(c *Config) { c.Policy.Redaction.SecretValues = []string{"slack"} }, "redaction.secret_values[0]"},
		{"empty secret field", func(c *Config) { c.Policy.Redaction.ExtraFields = []string{""} }, "redaction.extra_fields[0]"},
		{"exec gate bound too long", func(c *Config) { c.ExecGate.Timeout = time.Minute }, "exec_gate.timeout"},
		{"exec gate bound too short", func(c *Config) { c.ExecGate.Timeout = time.Millisecond }, "exec_gate.timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig().(*Config)
			tc.mod(cfg)
			err := cfg.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.field+":")

			// The Collector's validator reports the error exactly once.
			err = xconfmap.Validate(cfg)
			require.Error(t, err)
			assert.Equal(t, cfg.Validate().Error(), err.Error())
		})
	}

	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.MaxBodyBytes, cfg.RingBufferSize = -5, 3
	err := cfg.Validate()
	assert.ErrorContains(t, err, "max_body_bytes")
	assert.ErrorContains(t, err, "ring_buffer_size")
}
