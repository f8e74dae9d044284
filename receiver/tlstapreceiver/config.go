package tlstapreceiver

import (
	"github.com/tlstap/tlstap/internal/engine"
)

// engineConfig is an unexported alias so that the embedded engine settings
// are squashed into the receiver's configuration (max_body_bytes,
// ring_buffer_size, tls_probes) without the Collector's validator walking
// into the embedded struct a second time: Config.Validate delegates once.
type engineConfig = engine.Config

// Config is the configuration of the tlstap receiver. Its keys are exactly
// the engine's:
//
//	receivers:
//	  tlstap:
//	    max_body_bytes: 65536       # body bytes captured per request/response
//	    ring_buffer_size: 4194304   # kernel-to-agent ring buffer, power of two
//	    tls_probes: [openssl]       # or [none] for plain sockets only
type Config struct {
	engineConfig `mapstructure:",squash"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// EngineConfig returns the engine configuration the receiver runs with.
func (c *Config) EngineConfig() engine.Config { return c.engineConfig }

// Validate checks every field; each error names its field.
func (c *Config) Validate() error {
	return c.engineConfig.Validate()
}
