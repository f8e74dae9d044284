package engine

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tlstap/tlstap/internal/execgate"
	"github.com/tlstap/tlstap/internal/otelmap"
	"github.com/tlstap/tlstap/internal/policy"
)

// TLS probe families the engine can attach.
const (
	ProbeOpenSSL = "openssl"
	ProbeGo      = "go"
	ProbeGnuTLS  = "gnutls"
	ProbeJava    = "java"
	ProbeNone    = "none"
)

// Config is the engine configuration shared by every front end. Front ends
// map their own option syntax onto it and call Validate.
type Config struct {
	// MaxBodyBytes caps the captured body of each request and response.
	// Bodies beyond it are flagged truncated; their real size is still counted.
	MaxBodyBytes int `mapstructure:"max_body_bytes"`
	// RingBufferSize is the size in bytes of the kernel-to-agent ring buffer:
	// a power of two, at least one page. The default, 4 MiB, holds ~80 ms of
	// a 50 MB/s capture, well above the reader's 1 ms polling; it is mapped
	// twice into the agent (wrap-around reads), so RSS shows twice its size.
	RingBufferSize int `mapstructure:"ring_buffer_size"`
	// TLSProbes selects the TLS libraries to hook: "openssl", "go" (Go's
	// crypto/tls), "gnutls", "java" (JSSE, through an agent attached to running
	// JVMs), or "none" for plain sockets only.
	TLSProbes []string `mapstructure:"tls_probes"`
	// ExecGate holds every exec until its executable is hooked, so the
	// first run of a new TLS program is captured from its first request.
	ExecGate ExecGateConfig `mapstructure:"exec_gate"`
	// JavaAgentDir holds tlstap-agent.jar and tlstap-hook.jar (built by
	// `make java-agent` into build/java). Empty: the directory tlstap-java
	// next to the executable.
	JavaAgentDir string `mapstructure:"java_agent_dir"`
	// Policy holds filters, sampling, redaction and the body policy. Its
	// keys (filters, sampling, redaction, bodies, span_headers) sit at the
	// top level next to the keys above; see policy.Config.
	Policy policy.Config `mapstructure:",squash"`
	// ServiceNames set the resource's service.name per executable (glob →
	// name, first match wins); other processes are
	// "unknown_service:<executable name>". The front ends apply them.
	ServiceNames otelmap.ServiceNames `mapstructure:"service_names"`
}

// ExecGateConfig configures the exec gate (fanotify FAN_OPEN_EXEC_PERM).
type ExecGateConfig struct {
	// Enabled turns the gate on (the default).
	Enabled bool `mapstructure:"enabled"`
	// Timeout bounds how long any exec on the host waits for its
	// executable to be analysed and hooked; past it the exec runs anyway
	// (counted in ExecsAllowedOnTimeout). Known files and files without a
	// TLS stack are answered at once.
	Timeout time.Duration `mapstructure:"timeout"`
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes:   64 << 10,
		RingBufferSize: 4 << 20,
		TLSProbes:      []string{ProbeOpenSSL, ProbeGo, ProbeGnuTLS},
		ExecGate:       ExecGateConfig{Enabled: true, Timeout: execgate.DefaultTimeout},
		Policy:         policy.DefaultConfig(),
	}
}

const maxBodyLimit = 64 << 20

// Validate reports every invalid field, each error naming it.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxBodyBytes < 0 || c.MaxBodyBytes > maxBodyLimit {
		errs = append(errs, fmt.Errorf("max_body_bytes: %d out of range [0, %d]", c.MaxBodyBytes, maxBodyLimit))
	}
	if c.RingBufferSize < 4096 || c.RingBufferSize&(c.RingBufferSize-1) != 0 {
		errs = append(errs, fmt.Errorf("ring_buffer_size: %d must be a power of two >= 4096", c.RingBufferSize))
	} else if c.RingBufferSize > 1<<30 {
		errs = append(errs, fmt.Errorf("ring_buffer_size: %d exceeds 1 GiB", c.RingBufferSize))
	}
	for _, p := range c.TLSProbes {
		switch p {
		case ProbeOpenSSL, ProbeGo, ProbeGnuTLS, ProbeJava:
		case ProbeNone:
			if len(c.TLSProbes) > 1 {
				errs = append(errs, errors.New(`tls_probes: "none" cannot be combined with other probes`))
			}
		default:
			errs = append(errs, fmt.Errorf("tls_probes: unknown probe %q (known: %q, %q, %q, %q, %q)", p, ProbeOpenSSL, ProbeGo, ProbeGnuTLS, ProbeJava, ProbeNone))
		}
	}
	if c.ExecGate.Enabled && (c.ExecGate.Timeout < execgate.MinTimeout || c.ExecGate.Timeout > execgate.MaxTimeout) {
		errs = append(errs, fmt.Errorf("exec_gate.timeout: %v out of range [%v, %v]", c.ExecGate.Timeout, execgate.MinTimeout, execgate.MaxTimeout))
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.ServiceNames.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// probeEnabled reports whether the named TLS probe family is selected.
func (c *Config) probeEnabled(name string) bool {
	return slices.Contains(c.TLSProbes, name)
}
