// Package engine runs the capture pipeline: it loads the eBPF programs,
// discovers processes and TLS libraries, reads the ring buffer, reassembles
// connections, parses HTTP and hands finished exchanges to a sink.
package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	tlsbpf "github.com/tlstap/tlstap/bpf"
	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/execgate"
	"github.com/tlstap/tlstap/internal/goinfo"
	"github.com/tlstap/tlstap/internal/httpparse"
	"github.com/tlstap/tlstap/internal/policy"
	"github.com/tlstap/tlstap/internal/procscan"
)

// Sink receives finished exchanges. It is called from the engine's
// pipeline goroutine and must not block for long.
type Sink func(*exchange.Exchange)

const (
	maxStreams  = 16384
	idleTimeout = 5 * time.Minute
	sweepEvery  = 10 * time.Second
	// Ring buffer polling (see pipeline): ~1 ms of added latency under
	// load; when idle, 4 wake-ups a second (the engine alone idles at
	// 0.18 % of a core, 0.3 % with a 64 ms ceiling) and up to 250 ms
	// before a lone exchange is read.
	pollMin      = time.Millisecond
	pollMax      = 250 * time.Millisecond
	discoveryCap = 4096
	// probeReleaseAfter keeps probes on a file for a while after its last
	// process exited: a binary run again and again (cron, CI) is not
	// re-analysed and re-attached every time.
	probeReleaseAfter = 30 * time.Second
)

// Engine is one running capture pipeline. Create it with New, then Start
// once and Shutdown once.
type Engine struct {
	cfg    Config
	logger *zap.Logger
	sink   Sink
	policy *policy.Policy
	// debug (TLSTAP_DEBUG set) prints every data record to stderr.
	debug bool
	// probeRelease is how long probes stay on a file no process uses.
	probeRelease time.Duration
	// perProbeLinks: one uprobe link per probe even where uprobe_multi
	// exists, the path of kernels before 6.6 (tests set it).
	perProbeLinks bool
	stats         counters

	kernMu sync.Mutex // guards kern against Stats during Shutdown
	kern   *kernel
	// lastLoss keeps the kernel's loss counters read just before the
	// kernel side is released, so the Stats of a stopped engine (a front
	// end's stop log) still report the loss instead of zeros.
	lastLoss Stats
	reader   *ringbuf.Reader
	gate     *execgate.Gate
	// gateMounts, when set (tests), limits the file systems the gate marks.
	gateMounts func(execgate.Mount) bool
	// gateHook, when set (tests), runs before each gate analysis.
	gateHook func(execgate.File)
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	monoOff  int64 // wall clock ns minus kernel monotonic ns
	started  atomic.Bool
	java     *javaAttacher // nil unless the java probe is selected
}

// counters are the engine's own; kernel-side loss is read from the stats map.
type counters struct {
	exchanges, incomplete, truncated, parseErrors atomic.Uint64
	eventsRead, streamGaps, badRecords            atomic.Uint64
	attachErrors, connsEvicted, discoveryDropped  atomic.Uint64
	h2Dropped, filesSkipped, gateErrors           atomic.Uint64
	h1Unpaired                                    atomic.Uint64
	javaAttached, javaFailed                      atomic.Uint64
	conns                                         atomic.Int64
}

// New validates cfg and prepares an engine; nothing is loaded until Start.
func New(cfg Config, logger *zap.Logger, sink Sink) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, errors.New("engine: nil sink")
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	pol, err := policy.New(cfg.Policy)
	if err != nil {
		return nil, err
	}
	return &Engine{cfg: cfg, logger: logger, sink: sink, policy: pol, probeRelease: probeReleaseAfter,
		debug: os.Getenv("TLSTAP_DEBUG") != ""}, nil
}

// Start loads and attaches the probes and starts the pipeline. It returns a
// precise error when the host cannot run the agent (not root, no BTF, no
// eBPF). Processes already running are hooked before Start returns.
func (e *Engine) Start(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return errors.New("engine: already started")
	}
	t0 := time.Now()
	kern, err := loadKernel(e.cfg, e.logger, e.perProbeLinks)
	if err != nil {
		return err
	}
	rd, err := ringbuf.NewReader(kern.maps.Maps["events"])
	if err != nil {
		kern.close()
		return fmt.Errorf("open ring buffer: %w", err)
	}
	e.kernMu.Lock()
	e.kern, e.reader = kern, rd
	e.kernMu.Unlock()
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	e.monoOff = time.Now().UnixNano() - ts.Nano()

	scan := procscan.New("/proc")
	procs := newProcCache(scan)
	procs.redactArgs = e.policy.RedactCommandArgs
	disc := &discoverer{logger: e.logger, cfg: e.cfg, scan: scan, kern: kern, procs: procs, stats: &e.stats, policy: e.policy,
		work: make(chan notification, discoveryCap), goBins: goinfo.NewCache(), notGo: map[fileVersion]struct{}{},
		stripped:     map[procscan.FileKey]struct{}{},
		releaseAfter: e.probeRelease, users: map[fileID]map[uint32]struct{}{}, byPID: map[uint32][]fileID{},
		pinned: map[fileID]bool{}, idleSince: map[fileID]time.Time{}, guard: newAnalysisGuard(e.logger, &e.stats.filesSkipped)}
	if e.cfg.probeEnabled(ProbeJava) {
		disc.java = newJavaAttacher(e.logger, kern, &e.stats, e.cfg.JavaAgentDir)
		e.java = disc.java
	}
	disc.initial()
	gate := e.openGate(disc)
	e.kernMu.Lock()
	e.gate = gate
	e.kernMu.Unlock()
	// The first scan reads the symbol tables of every Go executable on the
	// host (tens of MB for large binaries), garbage once analysed, which the
	// runtime would otherwise keep mapped for minutes: idle RSS added by the
	// receiver was 18.8 MB with it kept, 9.9 MB with it returned here.
	debug.FreeOSMemory()

	runCtx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.wg.Add(2)
	go func() { defer e.wg.Done(); disc.run(runCtx) }()
	go func() { defer e.wg.Done(); e.pipeline(runCtx, disc, procs) }()
	e.logger.Info("tlstap capture started",
		zap.Int("probes", kern.probeCount()),
		zap.Duration("startup", time.Since(t0)),
		zap.Strings("tls_probes", e.cfg.TLSProbes))
	return nil
}

// pipeline reads the ring buffer until it is closed by Shutdown.
func (e *Engine) pipeline(ctx context.Context, disc *discoverer, procs *procCache) {
	opts := httpparse.Options{MaxBodyBytes: e.cfg.MaxBodyBytes}
	tr := newTracker(opts, maxStreams, &e.stats, func(s *stream, ex *exchange.Exchange) {
		e.emit(s, ex, procs)
	})
	var rec ringbuf.Record
	var r record
	jaddrs := newJavaAddrs("/proc")
	lastSweep := time.Now()
	// The kernel submits data records without waking this reader (see
	// data_wakeup in the eBPF program): it polls, every pollMin while
	// records come, backing off to pollMax when idle. Records that need
	// prompt handling wake it at once.
	poll := pollMin
	for {
		// ReadInto returns each record the ring holds, then waits until
		// a wake-up or the deadline (os.ErrDeadlineExceeded).
		e.reader.SetDeadline(time.Now().Add(poll))
		n := 0
		for {
			err := e.reader.ReadInto(&rec)
			if err != nil {
				if errors.Is(err, ringbuf.ErrClosed) {
					tr.closeAll(e.monoNow())
					return
				}
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					e.logger.Warn("ring buffer read failed", zap.Error(err))
				}
				break
			}
			n++
			e.stats.eventsRead.Add(1)
			if derr := decodeRecord(rec.RawSample, &r); derr != nil {
				e.stats.badRecords.Add(1)
			} else {
				if r.source == tlsbpf.SrcJava {
					if r.typ == tlsbpf.EvData && r.local.Port() == 0 {
						jaddrs.fill(&r)
					} else if r.typ == tlsbpf.EvClose {
						jaddrs.forget(r.connID)
					}
				}
				e.handle(tr, disc, procs, &r)
			}
			if n%1024 == 0 {
				e.stats.conns.Store(int64(len(tr.streams)))
			}
		}
		e.stats.conns.Store(int64(len(tr.streams)))
		if now := time.Now(); now.Sub(lastSweep) > sweepEvery {
			lastSweep = now
			tr.sweep(e.monoNow() - int64(idleTimeout))
			procs.expire(now)
		}
		if n > 0 {
			poll = pollMin
		} else {
			poll = min(2*poll, pollMax)
		}
	}
}

func (e *Engine) handle(tr *tracker, disc *discoverer, procs *procCache, r *record) {
	switch r.typ {
	case tlsbpf.EvData:
		if e.debug {
			fmt.Fprintf(os.Stderr, "DBG data tgid=%d fd=%d src=%d dir=%d conn=%d pos=%d len=%d cap=%d %q\n", r.tgid, r.fd, r.source, r.dir, r.connID, r.pos, r.len, r.capLen, r.payload[:min(len(r.payload), 40)])
		}
		tr.data(r)
	case tlsbpf.EvClose:
		tr.closeConn(r)
	case tlsbpf.EvExec:
		// Read the new image's identity here, before anything else: a
		// short-lived client may be gone by the time the discoverer
		// gets to it, and its exchanges need an owner.
		procs.exec(r)
		disc.notify(notification{pid: r.tgid, exec: true})
		if e.gate != nil {
			// A process in a mount namespace not seen yet (a container)
			// brings file systems to mark.
			e.gate.WatchProcess(int(r.tgid))
		}
	case tlsbpf.EvMmap:
		disc.notify(notification{pid: r.tgid})
	case tlsbpf.EvExit:
		tr.processExit(r.tgid, r.ts)
		disc.notify(notification{pid: r.tgid, exit: true})
		if e.policy.HasProcessRules() {
			e.kern.skipProcess(r.tgid, false)
		}
		procs.exited(r.tgid, time.Now())
	default:
		e.stats.badRecords.Add(1)
	}
}

// emit completes an exchange with what the engine knows and hands it on.
func (e *Engine) emit(s *stream, ex *exchange.Exchange, procs *procCache) {
	ex.Process = procs.get(s.tgid)
	ex.Conn = exchange.Conn{
		ID:     s.id,
		Local:  s.local,
		Remote: s.remote,
		TLS:    s.source != tlsbpf.SrcSocket,
		Source: sourceName(s.source),
	}
	var first, last int64
	if ex.Request != nil {
		first, last = ex.Request.FirstByte, ex.Request.LastByte
	}
	if ex.Response != nil && ex.Response.LastByte > last {
		last = ex.Response.LastByte
	}
	ex.Start = time.Unix(0, first+e.monoOff)
	ex.End = time.Unix(0, last+e.monoOff)
	// Filters, sampling, redaction and body rules: nothing leaves the
	// engine before this.
	if !e.policy.Apply(ex).Keep() {
		return
	}
	e.stats.exchanges.Add(1)
	if ex.Flags.Has(exchange.Incomplete) {
		e.stats.incomplete.Add(1)
	}
	if ex.Flags.Has(exchange.RequestTruncated) {
		e.stats.truncated.Add(1)
	}
	if ex.Flags.Has(exchange.ResponseTruncated) {
		e.stats.truncated.Add(1)
	}
	if ex.Flags.Has(exchange.ParseError) {
		e.stats.parseErrors.Add(1)
	}
	e.sink(ex)
}

func sourceName(src uint8) string {
	switch src {
	case tlsbpf.SrcOpenSSL:
		return ProbeOpenSSL
	case tlsbpf.SrcGoTLS:
		return ProbeGo
	case tlsbpf.SrcGnuTLS:
		return ProbeGnuTLS
	case tlsbpf.SrcJava:
		return ProbeJava
	case tlsbpf.SrcSocket:
		return "socket"
	}
	return "unknown"
}

func (e *Engine) monoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// Shutdown detaches every probe and stops every goroutine. Exchanges still
// in flight are flushed to the sink first.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.kernMu.Lock()
	k := e.kern
	e.kernMu.Unlock()
	if k == nil {
		return nil
	}
	// Stop the goroutines first (the discoverer may be attaching; the
	// pipeline drains and flushes every stream), then detach and free.
	t0 := time.Now()
	if e.java != nil {
		// First: the JVMs' hooks go inert while the kernel side still runs.
		e.java.stop(ctx)
	}
	gerr := closeGate(e.gate)
	e.cancel()
	rerr := e.reader.Close()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	var late error
	select {
	case <-done:
	case <-ctx.Done():
		// Detach anyway: probes must never outlive the agent's intent to
		// stop, even when a goroutine is slow to notice.
		late = fmt.Errorf("engine shutdown: goroutines still running: %w", ctx.Err())
	}
	t1 := time.Now()
	e.kernMu.Lock()
	e.kern.lossStats(&e.lastLoss)
	kerr := e.kern.close()
	e.kern = nil
	e.kernMu.Unlock()
	e.logger.Info("tlstap capture stopped", zap.Duration("drain", t1.Sub(t0)), zap.Duration("detach", time.Since(t1)))
	return errors.Join(gerr, late, kerr, rerr)
}

// SpanHeaders returns the headers of m the configuration promotes to span
// attributes (opt-in per the semantic conventions); nil when none.
func (e *Engine) SpanHeaders(m *exchange.Message, response bool) []exchange.Header {
	return e.policy.SpanHeaders(m, response)
}

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	s := Stats{
		ExchangesEmitted:    e.stats.exchanges.Load(),
		ExchangesIncomplete: e.stats.incomplete.Load(),
		BodiesTruncated:     e.stats.truncated.Load(),
		ParseErrors:         e.stats.parseErrors.Load(),
		EventsRead:          e.stats.eventsRead.Load(),
		StreamGaps:          e.stats.streamGaps.Load(),
		AttachErrors:        e.stats.attachErrors.Load(),
		ConnsTracked:        uint64(e.stats.conns.Load()),
		ConnsEvicted:        e.stats.connsEvicted.Load(),
		DiscoveryDropped:    e.stats.discoveryDropped.Load(),
		BadRecords:          e.stats.badRecords.Load(),
		H2StreamsDropped:    e.stats.h2Dropped.Load(),
		ResponsesUnpaired:   e.stats.h1Unpaired.Load(),
		FilesSkipped:        e.stats.filesSkipped.Load(),
		ExecGateErrors:      e.stats.gateErrors.Load(),
		JVMsAttached:        e.stats.javaAttached.Load(),
		JVMAttachFailed:     e.stats.javaFailed.Load(),
		Policy:              e.policy.Stats(),
	}
	e.kernMu.Lock()
	g := e.gate
	e.kernMu.Unlock()
	if g != nil {
		gs := g.Stats()
		s.ExecsGated, s.ExecsAllowedOnTimeout, s.ExecAnalysisFailures, s.ExecsUngated =
			gs.Gated, gs.TimedOut, gs.Failed, gs.Overflow+gs.Memfd
		s.ExecGateErrors += gs.MarkErrors + gs.Restarts
	}
	e.kernMu.Lock()
	if k := e.kern; k != nil {
		k.lossStats(&s)
		s.ProbesAttached = uint64(k.probeCount())
		s.UprobeLinks = uint64(k.uprobeLinks())
	} else {
		s.EventsLost, s.BytesLost = e.lastLoss.EventsLost, e.lastLoss.BytesLost
		s.ControlEventsLost, s.BytesShed = e.lastLoss.ControlEventsLost, e.lastLoss.BytesShed
	}
	e.kernMu.Unlock()
	return s
}
