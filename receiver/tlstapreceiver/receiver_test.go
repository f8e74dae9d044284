package tlstapreceiver

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.uber.org/zap"

	"github.com/tlstap/tlstap/internal/engine"
	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/policy"
	"github.com/tlstap/tlstap/receiver/tlstapreceiver/internal/metadata"
	"github.com/tlstap/tlstap/receiver/tlstapreceiver/internal/metadatatest"
)

// fakeEngines creates fake engines and records what happens to them.
type fakeEngines struct {
	mu       sync.Mutex
	engines  []*fakeEngine
	events   []string
	startErr error
	// onShutdown runs inside Shutdown, before it returns (an engine flushes
	// its last exchanges there).
	onShutdown func(e *fakeEngine)
}

type fakeEngine struct {
	owner *fakeEngines
	idx   int
	cfg   engine.Config
	sink  engine.Sink
	stats engine.Stats
	// statsCalls counts Stats snapshots: one per metrics collection.
	statsCalls atomic.Int64
}

func (f *fakeEngines) factory() engineFactory {
	return func(cfg engine.Config, _ *zap.Logger, sink engine.Sink) (captureEngine, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		e := &fakeEngine{owner: f, idx: len(f.engines), cfg: cfg, sink: sink}
		f.engines = append(f.engines, e)
		f.events = append(f.events, "new")
		return e, nil
	}
}

func (f *fakeEngines) record(ev string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, ev)
}

func (f *fakeEngines) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.events...)
}

func (f *fakeEngines) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.engines)
}

func (e *fakeEngine) Start(context.Context) error {
	e.owner.record("start")
	return e.owner.startErr
}

func (e *fakeEngine) Shutdown(context.Context) error {
	if e.owner.onShutdown != nil {
		e.owner.onShutdown(e)
	}
	e.owner.record("shutdown")
	return nil
}

func (e *fakeEngine) Stats() engine.Stats {
	e.statsCalls.Add(1)
	return e.stats
}

// statusHost records the status events reported to it.
type statusHost struct {
	component.Host
	mu     sync.Mutex
	events []*componentstatus.Event
}

func newStatusHost() *statusHost { return &statusHost{Host: componenttest.NewNopHost()} }

func (h *statusHost) Report(ev *componentstatus.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, ev)
}

func (h *statusHost) statuses() []componentstatus.Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []componentstatus.Status
	for _, ev := range h.events {
		out = append(out, ev.Status())
	}
	return out
}

func settings(name string) receiver.Settings {
	set := receivertest.NewNopSettings(metadata.Type)
	set.ID = component.NewIDWithName(metadata.Type, name)
	return set
}

func createBoth(t *testing.T, f receiver.Factory, set receiver.Settings, logs consumer.Logs, traces consumer.Traces) (receiver.Logs, receiver.Traces) {
	t.Helper()
	cfg := f.CreateDefaultConfig()
	lr, err := f.CreateLogs(context.Background(), set, cfg, logs)
	require.NoError(t, err)
	tr, err := f.CreateTraces(context.Background(), set, cfg, traces)
	require.NoError(t, err)
	return lr, tr
}

func TestSharedEngine(t *testing.T) {
	fakes := &fakeEngines{}
	f := newFactory(fakes.factory())
	logsSink, tracesSink := new(consumertest.LogsSink), new(consumertest.TracesSink)

	lr, tr := createBoth(t, f, settings("shared"), logsSink, tracesSink)
	assert.Same(t, lr, tr, "logs and traces of one component ID are one receiver")
	assert.Equal(t, 1, fakes.count(), "one engine for both pipelines")

	// Another ID gets its own engine.
	other, err := f.CreateTraces(context.Background(), settings("other"), f.CreateDefaultConfig(), consumertest.NewNop())
	require.NoError(t, err)
	assert.NotSame(t, tr, other)
	assert.Equal(t, 2, fakes.count())
	require.NoError(t, other.Shutdown(context.Background()))

	host1, host2 := newStatusHost(), newStatusHost()
	require.NoError(t, lr.Start(context.Background(), host1))
	require.NoError(t, tr.Start(context.Background(), host2))
	assert.Equal(t, []string{"new", "new", "start"}, fakes.log(), "started once")

	// One exchange reaches both pipelines, once each.
	e := fakes.engines[0]
	e.sink(testExchange(42, exchange.RoleClient, 200))
	require.Eventually(t, func() bool { return logsSink.LogRecordCount() == 1 && tracesSink.SpanCount() == 1 }, 5*time.Second, 5*time.Millisecond)
	span := tracesSink.AllTraces()[0].ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	rec := logsSink.AllLogs()[0].ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	assert.Equal(t, span.TraceID(), rec.TraceID())
	assert.Equal(t, span.SpanID(), rec.SpanID())

	require.NoError(t, lr.Shutdown(context.Background()))
	require.NoError(t, tr.Shutdown(context.Background()))
	assert.Equal(t, []string{"new", "new", "start", "shutdown"}, fakes.log(), "shut down once")
	assert.False(t, receivers.has(settings("shared").ID), "shut down receivers are forgotten")

	// A new build of the pipelines (config reload) gets a fresh engine.
	lr2, _ := createBoth(t, f, settings("shared"), logsSink, tracesSink)
	assert.NotSame(t, lr, lr2)
	assert.Equal(t, 3, fakes.count())
	require.NoError(t, lr2.Shutdown(context.Background()))
}

func TestShutdownDrainsExchanges(t *testing.T) {
	fakes := &fakeEngines{}
	// The engine hands over its last exchanges while it shuts down.
	fakes.onShutdown = func(e *fakeEngine) {
		for i := range 50 {
			e.sink(testExchange(100+i%3, exchange.RoleServer, 200))
		}
	}
	f := newFactory(fakes.factory())
	logsSink, tracesSink := new(consumertest.LogsSink), new(consumertest.TracesSink)
	lr, tr := createBoth(t, f, settings("drain"), logsSink, tracesSink)
	require.NoError(t, lr.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, tr.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, tr.Shutdown(context.Background()))
	require.NoError(t, lr.Shutdown(context.Background()))
	assert.Equal(t, 50, tracesSink.SpanCount(), "every exchange delivered before Shutdown returns")
	assert.Equal(t, 50, logsSink.LogRecordCount())
	// Batched: fewer consume calls than exchanges, resources grouped per process.
	for _, td := range tracesSink.AllTraces() {
		assert.LessOrEqual(t, td.ResourceSpans().Len(), 3)
	}

	// Exchanges handed over after Shutdown are dropped, not blocking.
	done := make(chan struct{})
	go func() {
		fakes.engines[0].sink(testExchange(1, exchange.RoleClient, 200))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("sink blocked after shutdown")
	}
}

func TestStartError(t *testing.T) {
	fakes := &fakeEngines{startErr: errors.New("engine: loading eBPF programs: operation not permitted (run as root)")}
	f := newFactory(fakes.factory())
	lr, tr := createBoth(t, f, settings("fail"), consumertest.NewNop(), consumertest.NewNop())
	host1, host2 := newStatusHost(), newStatusHost()
	err := lr.Start(context.Background(), host1)
	require.Error(t, err)
	assert.Equal(t, fakes.startErr, err, "the engine's error is returned as is")
	assert.Equal(t, fakes.startErr, tr.Start(context.Background(), host2), "the second pipeline sees the same error")
	// The collector reports the permanent error of a component whose Start
	// fails; a report of the receiver's own would be the same event twice.
	assert.Empty(t, host1.statuses())
	assert.Empty(t, host2.statuses())

	require.NoError(t, lr.Shutdown(context.Background()))
	require.NoError(t, tr.Shutdown(context.Background()))
	assert.Equal(t, []string{"new", "start"}, fakes.log(), "an engine that did not start is not shut down")
}

func TestShutdownWithoutStart(t *testing.T) {
	fakes := &fakeEngines{}
	lr, tr := createBoth(t, newFactory(fakes.factory()), settings("idle"), consumertest.NewNop(), consumertest.NewNop())
	require.NoError(t, tr.Shutdown(context.Background()))
	require.NoError(t, lr.Shutdown(context.Background()))
	assert.Equal(t, []string{"new"}, fakes.log())
	assert.False(t, receivers.has(settings("idle").ID))
}

func TestConsumerErrorStatus(t *testing.T) {
	fakes := &fakeEngines{}
	f := newFactory(fakes.factory())
	failing := &toggleLogs{err: errors.New("memory limit exceeded")}
	lr, err := f.CreateLogs(context.Background(), settings("status"), f.CreateDefaultConfig(), failing)
	require.NoError(t, err)
	host := newStatusHost()
	require.NoError(t, lr.Start(context.Background(), host))
	sink := fakes.engines[0].sink

	sink(testExchange(1, exchange.RoleClient, 200))
	require.Eventually(t, func() bool { return failing.calls() == 1 }, 5*time.Second, 5*time.Millisecond)
	sink(testExchange(1, exchange.RoleClient, 200))
	require.Eventually(t, func() bool { return failing.calls() == 2 }, 5*time.Second, 5*time.Millisecond)
	failing.setErr(nil)
	sink(testExchange(1, exchange.RoleClient, 200))
	require.Eventually(t, func() bool { return failing.calls() == 3 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, lr.Shutdown(context.Background()))

	assert.Equal(t, []componentstatus.Status{componentstatus.StatusRecoverableError, componentstatus.StatusOK}, host.statuses(),
		"one recoverable error while failing, OK once data flows again")
}

type toggleLogs struct {
	mu  sync.Mutex
	err error
	n   int
}

func (c *toggleLogs) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

func (c *toggleLogs) ConsumeLogs(context.Context, plog.Logs) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.err
}

func (c *toggleLogs) setErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

func (c *toggleLogs) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func TestTelemetry(t *testing.T) {
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tt.Shutdown(context.Background())) })

	fakes := &fakeEngines{}
	f := newFactory(fakes.factory())
	set := metadatatest.NewSettings(tt)
	tracesSink := new(consumertest.TracesSink)
	tr, err := f.CreateTraces(context.Background(), set, f.CreateDefaultConfig(), tracesSink)
	require.NoError(t, err)
	require.NoError(t, tr.Start(context.Background(), componenttest.NewNopHost()))
	e := fakes.engines[0]
	e.stats = engine.Stats{
		ExchangesEmitted: 7, ExchangesIncomplete: 1, BodiesTruncated: 2, ParseErrors: 3, EventsRead: 100,
		EventsLost: 4, BytesLost: 4096, BytesShed: 2048, StreamGaps: 5, ProbesAttached: 12, AttachErrors: 6,
		ConnsTracked: 9, ConnsEvicted: 8, DiscoveryDropped: 10, ControlEventsLost: 11, BadRecords: 13, H2StreamsDropped: 14,
		UprobeLinks: 30, FilesSkipped: 15,
		Policy: policy.Stats{
			SampledOut: 16, Filtered: map[string]uint64{"host": 17, "path": 18},
			HeadersRedacted: 19, QueryParametersRedacted: 20, URLCredentialsRedacted: 21, BodyMatchesRedacted: 22,
			FieldsRedacted: 23, SecretValuesRedacted: 24, BodiesNotInspected: 25,
			PII: map[string]uint64{"email": 26, "iban": 27, "payment_card": 28, "phone": 29},
		},
		ExecsGated: 32, ExecsAllowedOnTimeout: 33, ExecAnalysisFailures: 34, ExecsUngated: 35, ExecGateErrors: 36,
		JVMsAttached: 37, JVMAttachFailed: 38,
	}
	e.sink(testExchange(1, exchange.RoleClient, 200))
	e.sink(testExchange(1, exchange.RoleClient, 200))
	require.Eventually(t, func() bool { return tracesSink.SpanCount() == 2 }, 5*time.Second, 5*time.Millisecond)

	dp := func(v int64) []metricdata.DataPoint[int64] { return []metricdata.DataPoint[int64]{{Value: v}} }
	opts := []metricdatatest.Option{metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars()}
	metadatatest.AssertEqualTlstapExchangesEmitted(t, tt, dp(7), opts...)
	metadatatest.AssertEqualTlstapExchangesIncomplete(t, tt, dp(1), opts...)
	metadatatest.AssertEqualTlstapBodiesTruncated(t, tt, dp(2), opts...)
	metadatatest.AssertEqualTlstapParseErrors(t, tt, dp(3), opts...)
	metadatatest.AssertEqualTlstapEventsRead(t, tt, dp(100), opts...)
	metadatatest.AssertEqualTlstapEventsLost(t, tt, dp(4), opts...)
	metadatatest.AssertEqualTlstapBytesLost(t, tt, dp(4096), opts...)
	metadatatest.AssertEqualTlstapBytesShed(t, tt, dp(2048), opts...)
	metadatatest.AssertEqualTlstapStreamGaps(t, tt, dp(5), opts...)
	metadatatest.AssertEqualTlstapProbesAttached(t, tt, dp(12), opts...)
	metadatatest.AssertEqualTlstapAttachErrors(t, tt, dp(6), opts...)
	metadatatest.AssertEqualTlstapConnectionsTracked(t, tt, dp(9), opts...)
	metadatatest.AssertEqualTlstapConnectionsEvicted(t, tt, dp(8), opts...)
	metadatatest.AssertEqualTlstapDiscoveryDropped(t, tt, dp(10), opts...)
	metadatatest.AssertEqualTlstapControlEventsLost(t, tt, dp(11), opts...)
	metadatatest.AssertEqualTlstapBadRecords(t, tt, dp(13), opts...)
	metadatatest.AssertEqualTlstapH2StreamsDropped(t, tt, dp(14), opts...)
	metadatatest.AssertEqualTlstapUprobeLinks(t, tt, dp(30), opts...)
	metadatatest.AssertEqualTlstapSecretsRedacted(t, tt, dp(23+24), opts...)
	metadatatest.AssertEqualTlstapBodiesNotInspected(t, tt, dp(25), opts...)
	metadatatest.AssertEqualTlstapFilesSkipped(t, tt, dp(15), opts...)
	metadatatest.AssertEqualTlstapExchangesSampledOut(t, tt, dp(16), opts...)
	metadatatest.AssertEqualTlstapJvmsAttached(t, tt, dp(37), opts...)
	metadatatest.AssertEqualTlstapJvmAttachFailures(t, tt, dp(38), opts...)
	attr := func(k, v string, n int64) metricdata.DataPoint[int64] {
		return metricdata.DataPoint[int64]{Value: n, Attributes: attribute.NewSet(attribute.String(k, v))}
	}
	metadatatest.AssertEqualTlstapPiiExchanges(t, tt, []metricdata.DataPoint[int64]{
		attr("pii_kind", "email", 26), attr("pii_kind", "iban", 27), attr("pii_kind", "payment_card", 28), attr("pii_kind", "phone", 29),
	}, opts...)
	metadatatest.AssertEqualTlstapExchangesFiltered(t, tt, []metricdata.DataPoint[int64]{attr("reason", "host", 17), attr("reason", "path", 18)},
		opts...)
	metadatatest.AssertEqualTlstapRedactions(t, tt, []metricdata.DataPoint[int64]{
		attr("kind", "header", 19), attr("kind", "query_parameter", 20), attr("kind", "url_credentials", 21), attr("kind", "body_match", 22),
	}, opts...)

	// One engine snapshot per collection, not one per metric.
	before := e.statsCalls.Load()
	if _, err := tt.GetMetric("otelcol_tlstap_events_lost"); err != nil {
		t.Fatal(err)
	}
	if n := e.statsCalls.Load() - before; n != 1 {
		t.Errorf("one collection took %d Stats snapshots, want 1", n)
	}
	metadatatest.AssertEqualTlstapExecsGated(t, tt, dp(32), opts...)
	metadatatest.AssertEqualTlstapExecsAllowedOnTimeout(t, tt, dp(33), opts...)
	metadatatest.AssertEqualTlstapExecAnalysisFailures(t, tt, dp(34), opts...)
	metadatatest.AssertEqualTlstapExecsUngated(t, tt, dp(35), opts...)
	metadatatest.AssertEqualTlstapExecGateErrors(t, tt, dp(36), opts...)

	// The receive operations are reported through receiverhelper.ObsReport.
	got, err := tt.GetMetric("otelcol_receiver_accepted_spans")
	require.NoError(t, err)
	sum := got.Data.(metricdata.Sum[int64])
	require.Len(t, sum.DataPoints, 1)
	assert.Equal(t, int64(2), sum.DataPoints[0].Value)
	tv, _ := sum.DataPoints[0].Attributes.Value("transport")
	assert.Equal(t, "ebpf", tv.AsString())

	require.NoError(t, tr.Shutdown(context.Background()))
}
