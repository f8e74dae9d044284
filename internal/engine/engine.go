// Package engine runs the capture pipeline: it loads the eBPF programs,
// discovers processes and TLS libraries, reads the ring buffer, reassembles
// connections, parses HTTP and hands finished exchanges to a sink.
package engine

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/tlstap/tlstap/internal/exchange"
)

// Sink receives finished exchanges. It is called from the engine's
// pipeline goroutine and must not block for long.
type Sink func(*exchange.Exchange)

// Engine is one running capture pipeline. Create it with New, then Start
// once and Shutdown once.
type Engine struct {
	cfg    Config
	logger *zap.Logger
	sink   Sink
}

// New validates cfg and prepares an engine; nothing is loaded until Start.
func New(cfg Config, logger *zap.Logger, sink Sink) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, errors.New("engine: nil sink")
	}
	return &Engine{cfg: cfg, logger: logger, sink: sink}, nil
}

// Start loads and attaches the probes and starts the pipeline. It returns a
// precise error when the host cannot run the agent (not root, no BTF, no eBPF).
func (e *Engine) Start(ctx context.Context) error {
	return errors.New("engine: not implemented yet")
}

// Shutdown detaches every probe and stops every goroutine.
func (e *Engine) Shutdown(ctx context.Context) error { return nil }

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats { return Stats{} }
