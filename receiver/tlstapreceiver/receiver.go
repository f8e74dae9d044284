package tlstapreceiver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/tlstap/tlstap/internal/engine"
	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/otelmap"
	"github.com/tlstap/tlstap/internal/policy"
	"github.com/tlstap/tlstap/receiver/tlstapreceiver/internal/metadata"
)

const (
	// transport and format name the receive operations in the Collector's
	// receiver telemetry (otelcol_receiver_accepted_spans{transport="ebpf"}).
	transport = "ebpf"
	format    = "tlstap"

	// queueSize bounds the exchanges waiting for conversion. When it is full
	// the engine's sink blocks, the engine stops reading the ring buffer and
	// the kernel counts the loss (events_lost): loss stays visible.
	queueSize = 1024
	// maxBatch bounds the exchanges converted into one ConsumeTraces /
	// ConsumeLogs call. Exchanges already queued are batched; the receiver
	// never waits for more to arrive.
	maxBatch = 256
)

// captureEngine is what the receiver needs from the engine; tests replace it.
type captureEngine interface {
	Start(ctx context.Context) error
	Shutdown(ctx context.Context) error
	Stats() engine.Stats
}

type engineFactory func(cfg engine.Config, logger *zap.Logger, sink engine.Sink) (captureEngine, error)

func newRealEngine(cfg engine.Config, logger *zap.Logger, sink engine.Sink) (captureEngine, error) {
	return engine.New(cfg, logger, sink)
}

// tlstapReceiver runs one capture engine and feeds a logs and/or a traces
// consumer. One instance exists per component ID (see sharedComponents).
type tlstapReceiver struct {
	cfg       *Config
	settings  receiver.Settings
	logger    *zap.Logger
	hostName  string
	obsrecv   *receiverhelper.ObsReport
	telemetry *metadata.TelemetryBuilder
	statsReg  metric.Registration // the one callback feeding every tlstap metric
	engine    captureEngine

	mu         sync.Mutex
	nextLogs   consumer.Logs
	nextTraces consumer.Traces
	started    bool
	stopped    bool

	host         component.Host
	queue        chan *exchange.Exchange
	stopping     chan struct{} // closed once the engine stopped calling the sink
	drained      chan struct{} // closed when the conversion loop exited
	ctx          context.Context
	cancel       context.CancelFunc
	failing      atomic.Bool   // the last consume failed (status reported)
	dropped      atomic.Uint64 // exchanges that arrived after shutdown
	mapOptions   otelmap.Options
	dropResource map[string]bool
}

func newReceiver(cfg *Config, set receiver.Settings, newEngine engineFactory) (*tlstapReceiver, error) {
	obsrecv, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID:             set.ID,
		Transport:              transport,
		ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, err
	}
	hostName, err := os.Hostname()
	if err != nil {
		set.Logger.Warn("cannot read the host name; host.name will be missing", zap.Error(err))
	}
	r := &tlstapReceiver{
		cfg:      cfg,
		settings: set,
		logger:   set.Logger,
		hostName: hostName,
		obsrecv:  obsrecv,
		queue:    make(chan *exchange.Exchange, queueSize),
		stopping: make(chan struct{}),
		drained:  make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.engine, err = newEngine(cfg.EngineConfig(), set.Logger, r.sink)
	if err != nil {
		r.cancel()
		return nil, err
	}
	r.mapOptions.ServiceNames = cfg.ServiceNames
	r.dropResource = cfg.disabledResourceAttributes()
	if eng, ok := r.engine.(*engine.Engine); ok {
		// The engine's policy already redacted what its configuration
		// says (a user may have removed a header from the list); the
		// span carries the headers the configuration promotes.
		r.mapOptions.RedactHeaders = policy.PassHeaders
		r.mapOptions.SpanHeaders = eng.SpanHeaders
	}
	if r.telemetry, err = metadata.NewTelemetryBuilder(set.TelemetrySettings); err != nil {
		r.cancel()
		return nil, err
	}
	if err := r.registerStats(); err != nil {
		r.unregisterStats()
		r.cancel()
		return nil, err
	}
	return r, nil
}

func (r *tlstapReceiver) registerLogs(next consumer.Logs) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextLogs = next
}

func (r *tlstapReceiver) registerTraces(next consumer.Traces) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextTraces = next
}

// Start starts the conversion loop and then the engine. When the engine
// cannot start (not root, no BTF, no eBPF…), its error is returned as is:
// the engine's message says precisely why.
func (r *tlstapReceiver) Start(ctx context.Context, host component.Host) error {
	r.mu.Lock()
	if r.started || r.stopped {
		r.mu.Unlock()
		return errors.New("tlstap receiver: Start called twice or after Shutdown")
	}
	r.started = true
	r.host = host
	r.mu.Unlock()

	go r.run()
	if err := r.engine.Start(ctx); err != nil {
		// No status report here: the collector reports a permanent error
		// for a component whose Start fails.
		r.stopLoop(ctx)
		return err
	}
	r.logger.Info("tlstap capture engine started",
		zap.Int("max_body_bytes", r.cfg.MaxBodyBytes),
		zap.Int("ring_buffer_size", r.cfg.RingBufferSize),
		zap.Strings("tls_probes", r.cfg.TLSProbes))
	return nil
}

// Shutdown stops the engine first (it may still hand over exchanges while
// stopping), then lets the conversion loop drain the queue.
func (r *tlstapReceiver) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return nil
	}
	r.stopped = true
	started := r.started
	r.mu.Unlock()

	var err error
	if started {
		select {
		case <-r.stopping: // Start failed; the engine never ran
		default:
			err = r.engine.Shutdown(ctx)
		}
		r.stopLoop(ctx)
	}
	r.cancel()
	r.unregisterStats()
	if n := r.dropped.Load(); n > 0 {
		r.logger.Warn("exchanges arrived after shutdown and were dropped", zap.Uint64("count", n))
	}
	return err
}

// stopLoop tells the conversion loop that no more exchanges come and waits
// for it to drain the queue, or for ctx to expire (then pending consumer
// calls are cancelled).
func (r *tlstapReceiver) stopLoop(ctx context.Context) {
	select {
	case <-r.stopping:
	default:
		close(r.stopping)
	}
	select {
	case <-r.drained:
	case <-ctx.Done():
		r.cancel()
		<-r.drained
	}
}

// sink is the engine's Sink. It blocks while the queue is full (the loss
// then happens, counted, in the kernel ring buffer).
func (r *tlstapReceiver) sink(ex *exchange.Exchange) {
	select {
	case <-r.stopping:
		r.dropped.Add(1)
		return
	default:
	}
	select {
	case r.queue <- ex:
	case <-r.stopping:
		r.dropped.Add(1)
	}
}

// run converts queued exchanges into pdata until stopping is closed and the
// queue is empty.
func (r *tlstapReceiver) run() {
	defer close(r.drained)
	batch := make([]*exchange.Exchange, 0, maxBatch)
	for {
		select {
		case ex := <-r.queue:
			batch = append(batch[:0], ex)
		fill:
			for len(batch) < maxBatch {
				select {
				case ex := <-r.queue:
					batch = append(batch, ex)
				default:
					break fill
				}
			}
			r.consume(batch)
			clear(batch)
		case <-r.stopping:
			for {
				batch = batch[:0]
			drain:
				for len(batch) < maxBatch {
					select {
					case ex := <-r.queue:
						batch = append(batch, ex)
					default:
						break drain
					}
				}
				if len(batch) == 0 {
					return
				}
				r.consume(batch)
				clear(batch)
			}
		}
	}
}

// consume converts one batch and hands it to the registered consumers.
func (r *tlstapReceiver) consume(batch []*exchange.Exchange) {
	r.mu.Lock()
	nextLogs, nextTraces := r.nextLogs, r.nextTraces
	r.mu.Unlock()

	td, ld := convert(batch, converter{
		hostName:     r.hostName,
		scopeVersion: r.settings.BuildInfo.Version,
		traces:       nextTraces != nil,
		logs:         nextLogs != nil,
		options:      r.mapOptions,
		dropResource: r.dropResource,
	})
	var errs []error
	if nextTraces != nil {
		ctx := r.obsrecv.StartTracesOp(r.ctx)
		n := td.SpanCount()
		err := nextTraces.ConsumeTraces(ctx, td)
		r.obsrecv.EndTracesOp(ctx, format, n, err)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if nextLogs != nil {
		ctx := r.obsrecv.StartLogsOp(r.ctx)
		n := ld.LogRecordCount()
		err := nextLogs.ConsumeLogs(ctx, ld)
		r.obsrecv.EndLogsOp(ctx, format, n, err)
		if err != nil {
			errs = append(errs, err)
		}
	}
	r.reportConsume(errors.Join(errs...), len(batch))
}

// reportConsume turns consumer failures into a recoverable-error status and
// reports OK again once data flows.
func (r *tlstapReceiver) reportConsume(err error, n int) {
	r.mu.Lock()
	host := r.host
	r.mu.Unlock()
	if err != nil {
		r.logger.Warn("the pipeline refused captured exchanges", zap.Int("exchanges", n), zap.Error(err))
		if !r.failing.Swap(true) && host != nil {
			componentstatus.ReportStatus(host, componentstatus.NewRecoverableErrorEvent(err))
		}
		return
	}
	if r.failing.Swap(false) && host != nil {
		componentstatus.ReportStatus(host, componentstatus.NewEvent(componentstatus.StatusOK))
	}
}

// registerStats feeds the receiver's telemetry from Engine.Stats: one
// callback for every instrument, so each collection takes one snapshot
// (a consistent set of values, and one read of the kernel's per-CPU maps
// instead of one per metric).
func (r *tlstapReceiver) registerStats() error {
	t := r.telemetry
	counters := []struct {
		inst metric.Int64Observable
		get  func(engine.Stats) uint64
	}{
		{t.TlstapExchangesEmitted, func(s engine.Stats) uint64 { return s.ExchangesEmitted }},
		{t.TlstapExchangesIncomplete, func(s engine.Stats) uint64 { return s.ExchangesIncomplete }},
		{t.TlstapBodiesTruncated, func(s engine.Stats) uint64 { return s.BodiesTruncated }},
		{t.TlstapParseErrors, func(s engine.Stats) uint64 { return s.ParseErrors }},
		{t.TlstapEventsRead, func(s engine.Stats) uint64 { return s.EventsRead }},
		{t.TlstapEventsLost, func(s engine.Stats) uint64 { return s.EventsLost }},
		{t.TlstapBytesLost, func(s engine.Stats) uint64 { return s.BytesLost }},
		{t.TlstapBytesShed, func(s engine.Stats) uint64 { return s.BytesShed }},
		{t.TlstapH2StreamsDropped, func(s engine.Stats) uint64 { return s.H2StreamsDropped }},
		{t.TlstapResponsesUnpaired, func(s engine.Stats) uint64 { return s.ResponsesUnpaired }},
		{t.TlstapStreamGaps, func(s engine.Stats) uint64 { return s.StreamGaps }},
		{t.TlstapProbesAttached, func(s engine.Stats) uint64 { return s.ProbesAttached }},
		{t.TlstapAttachErrors, func(s engine.Stats) uint64 { return s.AttachErrors }},
		{t.TlstapConnectionsTracked, func(s engine.Stats) uint64 { return s.ConnsTracked }},
		{t.TlstapConnectionsEvicted, func(s engine.Stats) uint64 { return s.ConnsEvicted }},
		{t.TlstapDiscoveryDropped, func(s engine.Stats) uint64 { return s.DiscoveryDropped }},
		{t.TlstapControlEventsLost, func(s engine.Stats) uint64 { return s.ControlEventsLost }},
		{t.TlstapBadRecords, func(s engine.Stats) uint64 { return s.BadRecords }},
		{t.TlstapFilesSkipped, func(s engine.Stats) uint64 { return s.FilesSkipped }},
		{t.TlstapExchangesSampledOut, func(s engine.Stats) uint64 { return s.Policy.SampledOut }},
		{t.TlstapUprobeLinks, func(s engine.Stats) uint64 { return s.UprobeLinks }},
		{t.TlstapSecretsRedacted, func(s engine.Stats) uint64 { return s.Policy.FieldsRedacted + s.Policy.SecretValuesRedacted }},
		{t.TlstapBodiesNotInspected, func(s engine.Stats) uint64 { return s.Policy.BodiesNotInspected }},
		{t.TlstapExecsGated, func(s engine.Stats) uint64 { return s.ExecsGated }},
		{t.TlstapExecsAllowedOnTimeout, func(s engine.Stats) uint64 { return s.ExecsAllowedOnTimeout }},
		{t.TlstapExecAnalysisFailures, func(s engine.Stats) uint64 { return s.ExecAnalysisFailures }},
		{t.TlstapExecsUngated, func(s engine.Stats) uint64 { return s.ExecsUngated }},
		{t.TlstapExecGateErrors, func(s engine.Stats) uint64 { return s.ExecGateErrors }},
		{t.TlstapJvmsAttached, func(s engine.Stats) uint64 { return s.JVMsAttached }},
		{t.TlstapJvmAttachFailures, func(s engine.Stats) uint64 { return s.JVMAttachFailed }},
	}
	insts := []metric.Observable{t.TlstapExchangesFiltered, t.TlstapRedactions, t.TlstapPiiExchanges}
	for _, c := range counters {
		insts = append(insts, c.inst)
	}
	reg, err := metadata.Meter(r.settings.TelemetrySettings).RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := r.engine.Stats()
		for _, c := range counters {
			o.ObserveInt64(c.inst, int64(c.get(s)))
		}
		for reason, n := range s.Policy.Filtered {
			o.ObserveInt64(t.TlstapExchangesFiltered, int64(n), metric.WithAttributes(attribute.String("reason", reason)))
		}
		for kind, n := range map[string]uint64{
			"header":          s.Policy.HeadersRedacted,
			"query_parameter": s.Policy.QueryParametersRedacted,
			"url_credentials": s.Policy.URLCredentialsRedacted,
			"body_match":      s.Policy.BodyMatchesRedacted,
		} {
			o.ObserveInt64(t.TlstapRedactions, int64(n), metric.WithAttributes(attribute.String("kind", kind)))
		}
		for _, kind := range policy.PIIKinds() {
			o.ObserveInt64(t.TlstapPiiExchanges, int64(s.Policy.PII[kind]), metric.WithAttributes(attribute.String("pii_kind", kind)))
		}
		return nil
	}, insts...)
	if err != nil {
		return fmt.Errorf("register tlstap metrics: %w", err)
	}
	r.statsReg = reg
	return nil
}

// unregisterStats ends the metrics callback (with the telemetry builder's).
func (r *tlstapReceiver) unregisterStats() {
	if r.statsReg != nil {
		_ = r.statsReg.Unregister()
	}
	r.telemetry.Shutdown()
}
