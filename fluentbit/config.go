package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tlstap/tlstap/internal/engine"
)

// Plugin-only options. Every other option (max_body_bytes, ring_buffer_size,
// tls_probes, ...) belongs to the engine and is parsed by
// engine.ConfigFromProperties, so the plugin and the Collector receiver
// accept the same names and values.
const (
	// optQueueSize is the capacity, in exchanges, of the queue between the
	// capture engine and Fluent Bit's collect callback.
	optQueueSize     = "queue_size"
	defaultQueueSize = 8192
	maxQueueSize     = 1 << 20
)

// pluginConfig is the whole configuration of one tlstap input instance.
type pluginConfig struct {
	Engine    engine.Config
	QueueSize int
}

// parseConfig reads every option through get (Fluent Bit's property lookup)
// and reports every invalid one, each error naming its field.
func parseConfig(get func(key string) string) (pluginConfig, error) {
	var errs []error
	cfg, err := engine.ConfigFromProperties(get)
	if err != nil {
		errs = append(errs, err)
	}
	pc := pluginConfig{Engine: cfg, QueueSize: defaultQueueSize}
	if v := strings.TrimSpace(get(optQueueSize)); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %q is not an integer (a number of exchanges)", optQueueSize, v))
		case n < 1 || n > maxQueueSize:
			errs = append(errs, fmt.Errorf("%s: %d out of range [1, %d]", optQueueSize, n, maxQueueSize))
		default:
			pc.QueueSize = n
		}
	}
	return pc, errors.Join(errs...)
}

// oneLine flattens a (possibly joined) error into a single line for stderr.
func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}
