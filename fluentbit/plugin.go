package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tlstap/tlstap/internal/engine"
	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/otelmap"
	"github.com/tlstap/tlstap/internal/policy"
)

const (
	pluginName        = "tlstap"
	pluginDescription = "HTTP and HTTPS exchanges captured with eBPF (tlstap)"
	shutdownTimeout   = 15 * time.Second
	// maxRetainedBuf is the largest encoding buffer kept between collects.
	maxRetainedBuf = 1 << 20
)

// plugin is one running tlstap input: the engine, the queue it feeds and the
// encoder the collect callback drains the queue through.
type plugin struct {
	cfg    pluginConfig
	logger *zap.Logger
	eng    *engine.Engine // nil in unit tests
	queue  *queue

	mu  sync.Mutex // serialises collect (Fluent Bit calls it from one thread)
	enc *recordEncoder
	buf []byte

	records      atomic.Uint64 // records handed to Fluent Bit
	encodeErrors atomic.Uint64
	outstanding  atomic.Int64 // C buffers handed to Fluent Bit and not yet freed
}

// newLogger writes human-readable lines to stderr, where Fluent Bit's own
// log goes.
func newLogger() *zap.Logger {
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "time"
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	ec.EncodeLevel = zapcore.LowercaseLevelEncoder
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(ec), zapcore.Lock(os.Stderr), zap.InfoLevel)
	return zap.New(core).Named(pluginName)
}

func newPlugin(cfg pluginConfig, logger *zap.Logger) *plugin {
	host, _ := os.Hostname()
	p := &plugin{cfg: cfg, logger: logger, queue: newQueue(cfg.QueueSize, logger)}
	p.enc = newRecordEncoder(host, otelmap.Options{ServiceNames: cfg.Engine.ServiceNames})
	return p
}

// start creates and starts the capture engine; its sink feeds the queue.
func (p *plugin) start(ctx context.Context) error {
	eng, err := engine.New(p.cfg.Engine, p.logger, func(ex *exchange.Exchange) { p.queue.push(ex) })
	if err != nil {
		return err
	}
	if err := eng.Start(ctx); err != nil {
		return err
	}
	// The engine's policy redacted already; the span-header opt-in is its too.
	p.enc.opts = otelmap.Options{RedactHeaders: policy.PassHeaders, SpanHeaders: eng.SpanHeaders, ServiceNames: p.cfg.Engine.ServiceNames}
	p.eng = eng
	p.logger.Info("tlstap input started",
		zap.Int("max_body_bytes", p.cfg.Engine.MaxBodyBytes),
		zap.Int("ring_buffer_size", p.cfg.Engine.RingBufferSize),
		zap.Strings("tls_probes", p.cfg.Engine.TLSProbes),
		zap.Int("queue_size", p.cfg.QueueSize))
	return nil
}

// collect encodes every queued exchange (at most one queue's worth) into
// concatenated msgpack records. It never blocks on the engine. The returned
// slice is reused by the next call.
func (p *plugin) collect() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cap(p.buf) > maxRetainedBuf {
		p.buf = nil // a burst's buffer is not kept for ever
	}
	p.buf = p.buf[:0]
	p.queue.drain(func(ex *exchange.Exchange) {
		b, err := p.enc.appendRecord(p.buf, ex)
		if err != nil {
			if p.encodeErrors.Add(1) == 1 {
				p.logger.Error("cannot encode exchange, dropped (further encode errors are counted, not logged)", zap.Error(err))
			}
			return
		}
		p.buf = b
		p.records.Add(1)
	})
	return p.buf
}

// stop shuts the engine down (every probe detached, every goroutine
// stopped) and logs what happened to the exchanges.
func (p *plugin) stop() error {
	var err error
	if p.eng != nil {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		err = p.eng.Shutdown(ctx)
		cancel()
		// The engine keeps its kernel loss counters from just before the
		// kernel side was released: one snapshot after Shutdown is complete.
		s := p.eng.Stats()
		var filtered uint64
		for _, n := range s.Policy.Filtered {
			filtered += n
		}
		redacted := s.Policy.HeadersRedacted + s.Policy.QueryParametersRedacted + s.Policy.URLCredentialsRedacted + s.Policy.BodyMatchesRedacted
		p.logger.Info("tlstap input stopped",
			zap.Uint64("exchanges", s.ExchangesEmitted),
			zap.Uint64("records", p.records.Load()),
			zap.Uint64("queue_dropped", p.queue.Dropped()),
			zap.Int("discarded_at_exit", p.queue.Len()),
			zap.Uint64("encode_errors", p.encodeErrors.Load()),
			zap.Uint64("ring_buffer_events_lost", s.EventsLost),
			zap.Uint64("bytes_lost", s.BytesLost),
			zap.Uint64("bytes_shed", s.BytesShed),
			zap.Uint64("control_events_lost", s.ControlEventsLost),
			zap.Uint64("stream_gaps", s.StreamGaps),
			zap.Uint64("exchanges_incomplete", s.ExchangesIncomplete),
			zap.Uint64("h2_streams_dropped", s.H2StreamsDropped),
			zap.Uint64("responses_unpaired", s.ResponsesUnpaired),
			zap.Uint64("discovery_dropped", s.DiscoveryDropped),
			zap.Uint64("attach_errors", s.AttachErrors),
			zap.Uint64("jvm_attach_failures", s.JVMAttachFailed),
			zap.Uint64("files_skipped", s.FilesSkipped),
			zap.Uint64("filtered", filtered),
			zap.Uint64("sampled_out", s.Policy.SampledOut),
			zap.Uint64("redacted", redacted),
			zap.Uint64("execs_gated", s.ExecsGated),
			zap.Uint64("execs_allowed_on_timeout", s.ExecsAllowedOnTimeout),
			zap.Uint64("exec_analysis_failures", s.ExecAnalysisFailures),
			zap.Uint64("execs_ungated", s.ExecsUngated),
			zap.Uint64("secrets_redacted", s.Policy.FieldsRedacted+s.Policy.SecretValuesRedacted),
			zap.Uint64("bodies_not_inspected", s.Policy.BodiesNotInspected),
			zap.Any("pii_exchanges", s.Policy.PII),
			zap.Int64("buffers_not_freed", p.outstanding.Load()))
	}
	_ = p.logger.Sync()
	return err
}

// The plugin's global state: Fluent Bit loads one Go runtime per process and
// the Go proxy's input callbacks carry no instance context, so one tlstap
// input runs per Fluent Bit process.
var (
	stateMu sync.Mutex
	active  *plugin
)

// initPlugin parses the configuration and starts capturing. Errors are
// returned as one line, naming the offending field.
func initPlugin(get func(string) string) error {
	stateMu.Lock()
	defer stateMu.Unlock()
	if active != nil {
		return errors.New("only one tlstap input per Fluent Bit process is supported (one engine captures every process on the host)")
	}
	cfg, err := parseConfig(get)
	if err != nil {
		return fmt.Errorf("invalid configuration: %s", oneLine(err))
	}
	p := newPlugin(cfg, newLogger())
	if err := p.start(context.Background()); err != nil {
		return fmt.Errorf("cannot start capture: %s", oneLine(err))
	}
	active = p
	return nil
}

func current() *plugin {
	stateMu.Lock()
	defer stateMu.Unlock()
	return active
}

// exitPlugin stops the running input, if any.
func exitPlugin() error {
	stateMu.Lock()
	p := active
	active = nil
	stateMu.Unlock()
	if p == nil {
		return nil
	}
	return p.stop()
}
