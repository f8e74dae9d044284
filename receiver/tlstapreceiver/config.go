package tlstapreceiver

import (
	"reflect"

	"github.com/tlstap/tlstap/internal/engine"
	"github.com/tlstap/tlstap/receiver/tlstapreceiver/internal/metadata"
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

	// ResourceAttributes turns single resource attributes off, the way
	// every mdatagen component does:
	//   resource_attributes: { process.command_args: { enabled: false } }
	ResourceAttributes metadata.ResourceAttributesConfig `mapstructure:"resource_attributes"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// EngineConfig returns the engine configuration the receiver runs with.
func (c *Config) EngineConfig() engine.Config { return c.engineConfig }

// Validate checks every field; each error names its field.
func (c *Config) Validate() error {
	return c.engineConfig.Validate()
}

// disabledResourceAttributes returns the resource attribute keys the
// configuration turns off. The keys are read from the generated config's
// mapstructure tags, so a resource attribute added to metadata.yaml can be
// turned off without a change here.
func (c *Config) disabledResourceAttributes() map[string]bool {
	var off map[string]bool
	v := reflect.ValueOf(c.ResourceAttributes)
	for i := range v.NumField() {
		rac, ok := v.Field(i).Interface().(metadata.ResourceAttributeConfig)
		if ok && !rac.Enabled {
			if off == nil {
				off = make(map[string]bool)
			}
			off[v.Type().Field(i).Tag.Get("mapstructure")] = true
		}
	}
	return off
}
