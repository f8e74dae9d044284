package tlstapreceiver

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/confmap/xconfmap"

	"github.com/tlstap/tlstap/internal/engine"
	"github.com/tlstap/tlstap/internal/otelmap"
	"github.com/tlstap/tlstap/internal/policy"
	"github.com/tlstap/tlstap/receiver/tlstapreceiver/internal/metadata"
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
		"java_agent_dir":   "/opt/tlstap/java",
		"exec_gate":        map[string]any{"enabled": false, "timeout": "250ms"},
	})
	require.NoError(t, cm.Unmarshal(cfg))
	assert.Equal(t, engine.Config{MaxBodyBytes: 1024, RingBufferSize: 1 << 23, TLSProbes: []string{"none"}, JavaAgentDir: "/opt/tlstap/java",
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

// TestLoadConfig loads the named receivers of testdata/config.yaml the way
// the Collector does (strict unmarshalling, then validation) and checks the
// result, or the exact error.
func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	custom := NewFactory().CreateDefaultConfig().(*Config)
	custom.MaxBodyBytes, custom.RingBufferSize, custom.TLSProbes = 4096, 8<<20, []string{"openssl"}
	p := &custom.Policy
	p.Filters.Include.Executables = []string{"curl", "/usr/bin/python3*"}
	p.Filters.Include.Ports = []int{443, 8443}
	p.Filters.Exclude.Hosts = []string{"*.internal"}
	p.Filters.Direction, p.Filters.Loopback = "egress", false
	p.Sampling.Ratio, p.Sampling.PerHost = 0.5, map[string]float64{"api.example.com": 0.1}
	p.Redaction.ExtraHeaders = []string{"x-session"}
	p.Redaction.ExtraQueryParameters = []string{"token"}
	p.Bodies.Capture = false
	p.SpanHeaders.Request, p.SpanHeaders.Response = []string{"content-type"}, []string{"server"}
	custom.ServiceNames = otelmap.ServiceNames{{Executable: "python3*", Name: "checkout"}, {Executable: "/usr/sbin/nginx", Name: "web"}}
	// Unmarshalled, as the Collector does: the generated config records
	// that the user set the field.
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"process.command_args": map[string]any{"enabled": false},
	}).Unmarshal(&custom.ResourceAttributes))
	require.False(t, custom.ResourceAttributes.ProcessCommandArgs.Enabled)

	for _, tc := range []struct {
		id      component.ID
		want    *Config
		wantErr string
	}{
		{id: component.NewID(metadata.Type), want: NewFactory().CreateDefaultConfig().(*Config)},
		{id: component.NewIDWithName(metadata.Type, "custom"), want: custom},
		{id: component.NewIDWithName(metadata.Type, "bad_body"), wantErr: "max_body_bytes: -1 out of range [0, 67108864]"},
		{id: component.NewIDWithName(metadata.Type, "bad_probes"), wantErr: `tls_probes: unknown probe "wolfssl" (known: "openssl", "go", "gnutls", "java", "none")` + "\n" +
			`tls_probes: "none" cannot be combined with other probes`},
		{id: component.NewIDWithName(metadata.Type, "bad_service_names"), wantErr: `service_names[0].executable: "[": syntax error in pattern` + "\n" +
			"service_names[1].name: empty"},
		{id: component.NewIDWithName(metadata.Type, "bad_sampling"), wantErr: "sampling.ratio: 2 not in [0,1]"},
		{id: component.NewIDWithName(metadata.Type, "unknown_key"), wantErr: "decoding failed due to the following error(s):\n\n'tlstapreceiver.Config' has invalid keys: max_body_byte"},
	} {
		t.Run(tc.id.String(), func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig()
			sub, err := cm.Sub(tc.id.String())
			require.NoError(t, err)
			err = sub.Unmarshal(cfg)
			if err == nil {
				err = xconfmap.Validate(cfg)
			}
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Equal(t, tc.wantErr, err.Error())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, cfg)
		})
	}
}

func TestDisabledResourceAttributes(t *testing.T) {
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	assert.Empty(t, cfg.disabledResourceAttributes())
	cfg.ResourceAttributes.ProcessCommandArgs.Enabled = false
	cfg.ResourceAttributes.HostName.Enabled = false
	assert.Equal(t, map[string]bool{"process.command_args": true, "host.name": true}, cfg.disabledResourceAttributes())
}
