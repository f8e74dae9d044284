package execgate

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Bounds of Config.Timeout.
const (
	MinTimeout     = 10 * time.Millisecond
	MaxTimeout     = 30 * time.Second
	DefaultTimeout = time.Second
)

// File is the executable of one gated exec, as the kernel is about to run
// it.
type File struct {
	// Path opens the very file the exec opened, in any mount namespace and
	// even when it was deleted or is a memfd: /proc/self/fd/<n> of the
	// descriptor the event carries. Valid until Analyze returns.
	Path string
	// PID is the process calling exec (still running its former image).
	PID int
	Key Key
}

// Key identifies one content of one file. ctime is part of it because no
// user can set it: a file rewritten in place and given its old mtime back
// still gets a new ctime.
type Key struct {
	Dev, Ino         uint64
	Size             int64
	MtimeNs, CtimeNs int64
}

func keyOf(st *unix.Stat_t) Key {
	return Key{Dev: st.Dev, Ino: st.Ino, Size: st.Size, MtimeNs: st.Mtim.Nano(), CtimeNs: st.Ctim.Nano()}
}

// Verdict is what an analysis concluded about a file.
type Verdict uint8

const (
	// Ready: the file is hooked, or was looked at and needs nothing now.
	// The next exec of it asks Analyzer.Known again: the hooks may be
	// released meanwhile.
	Ready Verdict = iota
	// NoTLS: the file carries no TLS stack the engine hooks. The gate
	// remembers it by Key and answers the next exec of it at once.
	NoTLS
	// Failed: the analysis or the attach failed; the exec is allowed.
	Failed
)

// Analyzer readies capture for a file about to run. Known is called on the
// gate's event loop and must answer in microseconds (a map lookup); Analyze
// runs on a worker and may take as long as it needs: the exec waits for it
// at most Config.Timeout.
type Analyzer interface {
	Known(f File) bool
	Analyze(f File) Verdict
}

// Config sets up a gate.
type Config struct {
	// Timeout bounds how long any exec waits.
	Timeout time.Duration
	// Workers analyse distinct files in parallel (default 2).
	Workers int
	// Mounts selects the file systems to mark; nil marks every file system
	// programs can be run from.
	Mounts func(Mount) bool
	Logger *zap.Logger
}

// Validate checks the bound.
func (c Config) Validate() error {
	if c.Timeout < MinTimeout || c.Timeout > MaxTimeout {
		return fmt.Errorf("exec gate timeout: %v out of range [%v, %v]", c.Timeout, MinTimeout, MaxTimeout)
	}
	if c.Workers < 0 || c.Workers > 64 {
		return fmt.Errorf("exec gate workers: %d out of range [0, 64]", c.Workers)
	}
	return nil
}

// Stats counts what the gate did.
type Stats struct {
	Gated       uint64 // execs held and answered
	Known       uint64 // of Gated: answered at once (file known)
	TimedOut    uint64 // of Gated: allowed because the bound expired
	Failed      uint64 // analyses that failed (the exec was allowed)
	Overflow    uint64 // execs allowed unanalysed: queue full or kernel queue overflow
	FileSystems uint64 // file systems marked
	MarkErrors  uint64 // file systems that could not be marked
	// Restarts counts gate processes that died and were replaced; each
	// death lets every exec it held run at once.
	Restarts uint64
	// InProcess is set when the answers come from the agent itself (no
	// separate gate process): the bound then holds only while the agent
	// runs.
	InProcess bool
	// GateProcess is the pid of the current gate process, 0 without one.
	GateProcess int
	// Memfd counts execs of memfd files seen after the fact: they run
	// ungated (the kernel refuses marks on memfds' internal mount) and are
	// hooked by discovery once running.
	Memfd uint64
}

// Gate holds execs until their files are analysed. Open starts it; Close
// stops it.
type Gate struct {
	cfg    Config
	an     Analyzer
	logger *zap.Logger
	self   int32

	fan  *os.File // the fanotify group; closing it allows every pending exec
	fd   int
	wmu  sync.RWMutex // responses, the group and the warden vs Close and restarts
	shut bool         // the group is closed
	// closed is set by Close.
	closed bool
	// warden answers the kernel in a process of its own; nil: this
	// process reads and answers the group itself.
	warden *wardenConn
	// Warden totals: of the wardens gone (base) and of the current one.
	wTimedOutBase, wFullBase, wCachedBase uint64
	wTimedOut, wFull, wCached             atomic.Uint64
	restarts                              atomic.Uint64

	mu      sync.Mutex
	flights map[Key]*flight
	// holds is when each process's current exec was first held: one exec
	// opens several files (the program, its ELF interpreter, a script's
	// interpreter) and the bound is for the exec, not for each file.
	holds map[int32]time.Time
	noTLS map[Key]struct{}
	work  chan *flight

	mounts *marker

	gated, known, timedOut, failed, overflow atomic.Uint64

	wg   sync.WaitGroup
	done chan struct{}
}

// flight is one analysis; every exec of the same file waits for it.
type flight struct {
	file    File
	first   *event
	waiters []*event
}

// event is one held exec. Its descriptor is closed once the exec is
// answered and no analysis reads through it any more.
type event struct {
	g  *Gate
	fd int32 // this process's descriptor of the file
	// w, slot and seq name the event in the warden that holds it; nil w:
	// fd is the group's event descriptor itself.
	w         *wardenConn
	slot, seq uint32
	key       Key         // the file's, once known
	noTLS     atomic.Bool // answered as a file without TLS: the warden caches it
	answered  atomic.Bool
	refs      atomic.Int32
	timer     *time.Timer
}

// The group: permission events, never blocking its reader, and a queue
// with no limit (an overflow would leave execs unanalysed).
const (
	fanotifyClass      = unix.FAN_CLASS_CONTENT | unix.FAN_CLOEXEC | unix.FAN_NONBLOCK | unix.FAN_UNLIMITED_QUEUE
	fanotifyEventFlags = unix.O_RDONLY | unix.O_LARGEFILE | unix.O_CLOEXEC
)

const (
	maxNoTLS  = 1 << 16
	workQueue = 1024
)

// Open creates the fanotify group, marks the file systems of the agent's
// mount namespace and of memfds, and starts serving. It fails when the
// kernel lacks fanotify permission events or the agent lacks
// CAP_SYS_ADMIN.
func Open(cfg Config, an Analyzer) (*Gate, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Workers == 0 {
		cfg.Workers = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	fd, err := unix.FanotifyInit(fanotifyClass, fanotifyEventFlags)
	if err != nil {
		return nil, fmt.Errorf("create fanotify group for the exec gate: %w", err)
	}
	g := &Gate{
		cfg: cfg, an: an, logger: cfg.Logger, self: int32(os.Getpid()),
		fd: fd, fan: os.NewFile(uintptr(fd), "fanotify"),
		flights: map[Key]*flight{}, holds: map[int32]time.Time{}, noTLS: map[Key]struct{}{},
		work: make(chan *flight, workQueue), done: make(chan struct{}),
	}
	g.mounts = newMarker(g)
	// The warden starts before the group has marks: its own exec must
	// not wait on a group nobody reads yet.
	if selfExecutable() {
		w, err := startWarden(g.fan, cfg.Timeout)
		if err != nil {
			g.logger.Warn("exec gate: no separate gate process, answering from the agent: the bound holds only while the agent runs", zap.Error(err))
		}
		g.warden = w
	} else {
		g.logger.Warn("exec gate: the agent is a library in another program, which cannot run the gate process: answering from the agent, the bound holds only while the agent runs")
	}
	if err := g.mounts.markSelf(); err != nil {
		if g.warden != nil {
			g.warden.stop()
		}
		g.fan.Close()
		return nil, err
	}
	g.wg.Add(2 + cfg.Workers)
	if g.warden != nil {
		go func() { defer g.wg.Done(); g.serveWardens() }()
	} else {
		go func() { defer g.wg.Done(); g.read() }()
	}
	go func() { defer g.wg.Done(); g.mounts.run(g.done) }()
	for range cfg.Workers {
		go func() { defer g.wg.Done(); g.analyse() }()
	}
	return g, nil
}

// WatchProcess marks the file systems of pid's mount namespace when it is
// one the gate has not seen (a container or a chroot with its own mounts).
// It never blocks.
func (g *Gate) WatchProcess(pid int) { g.mounts.watch(pid) }

// Stats returns a snapshot of the counters.
func (g *Gate) Stats() Stats {
	fs, errs := g.mounts.counts()
	g.wmu.RLock()
	wTimedOut, wFull := g.wTimedOutBase+g.wTimedOut.Load(), g.wFullBase+g.wFull.Load()
	wCached := g.wCachedBase + g.wCached.Load()
	pid := 0
	if g.warden != nil {
		pid = g.warden.pid()
	}
	inProcess := g.warden == nil && g.restarts.Load() == 0
	g.wmu.RUnlock()
	return Stats{
		Gated: g.gated.Load() + wCached, Known: g.known.Load() + wCached, TimedOut: g.timedOut.Load() + wTimedOut,
		Failed: g.failed.Load(), Overflow: g.overflow.Load() + wFull, FileSystems: fs, MarkErrors: errs,
		Restarts: g.restarts.Load(), InProcess: inProcess, GateProcess: pid, Memfd: g.mounts.memfd.Load(),
	}
}

// Close stops the gate. The kernel allows every exec still pending when the
// group's descriptor closes.
func (g *Gate) Close() error {
	g.wmu.Lock()
	if g.closed {
		g.wmu.Unlock()
		return nil
	}
	g.closed = true
	var err error
	if !g.shut {
		if g.warden == nil {
			// A child of the agent held in its exec keeps the group open:
			// no new events, and what is queued is allowed.
			releaseGroup(g.fd, make([]byte, 16<<10))
		}
		err = g.fan.Close() // unblocks read; the kernel allows what is pending
	}
	g.shut = true
	w := g.warden
	g.wmu.Unlock()
	if w != nil {
		w.stop() // unblocks serveWardens; the warden's exit allows what it held
	}
	close(g.done)
	g.wg.Wait()
	return err
}

// read serves the group's events until Close.
func (g *Gate) read() {
	defer close(g.work)
	buf := make([]byte, 64<<10)
	const metaLen = int(unsafe.Sizeof(unix.FanotifyEventMetadata{}))
	for {
		n, err := g.fan.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				g.logger.Error("exec gate stopped: cannot read fanotify events", zap.Error(err))
			}
			return
		}
		for off := 0; off+metaLen <= n; {
			m := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&buf[off]))
			if m.Vers != unix.FANOTIFY_METADATA_VERSION {
				g.logger.Error("exec gate stopped: unknown fanotify metadata version", zap.Uint8("version", m.Vers))
				return
			}
			if m.Event_len < uint32(metaLen) || off+int(m.Event_len) > n {
				break
			}
			off += int(m.Event_len)
			if m.Fd < 0 { // FAN_NOFD: the kernel's queue overflowed
				g.overflow.Add(1)
				continue
			}
			g.handle(&event{g: g, fd: m.Fd}, m.Pid, m.Mask)
		}
	}
}

// handle holds or allows one exec of the file e.fd.
func (g *Gate) handle(e *event, pid int32, mask uint64) {
	e.refs.Store(1)
	g.gated.Add(1)
	// The agent's own execs are never held: its analysis might be what
	// they wait for.
	if pid == g.self || mask&unix.FAN_OPEN_EXEC_PERM == 0 {
		g.known.Add(1)
		e.allow()
		e.unref()
		return
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(e.fd), &st); err != nil || !isRegular(st.Mode) {
		g.known.Add(1)
		e.allow()
		e.unref()
		return
	}
	e.key = keyOf(&st)
	f := File{Path: fmt.Sprintf("/proc/self/fd/%d", e.fd), PID: int(pid), Key: keyOf(&st)}
	g.mu.Lock()
	_, noTLS := g.noTLS[f.Key]
	g.mu.Unlock()
	e.noTLS.Store(noTLS)
	if noTLS || g.an.Known(f) {
		g.known.Add(1)
		e.allow()
		e.unref()
		return
	}
	// Held from here on: the watchdog allows it when the exec's budget is
	// spent, whatever the analysis does.
	left := g.budget(pid, time.Now())
	if left <= 0 {
		g.timedOut.Add(1)
		e.allow()
		e.unref()
		return
	}
	if e.w != nil {
		// The warden answers at the bound whatever this process does; this
		// watchdog answers a little before it, so a running agent counts
		// its own timeouts.
		left -= left / 10
	}
	e.refs.Add(1) // the watchdog's
	e.timer = time.AfterFunc(left, func() {
		if e.answer(true) {
			g.timedOut.Add(1)
		}
		e.unref()
	})
	g.mu.Lock()
	if fl := g.flights[f.Key]; fl != nil {
		fl.waiters = append(fl.waiters, e)
		g.mu.Unlock()
		return
	}
	fl := &flight{file: f, first: e}
	e.refs.Add(1) // the analysis reads through this descriptor
	g.flights[f.Key] = fl
	g.mu.Unlock()
	select {
	case g.work <- fl:
	default:
		g.overflow.Add(1)
		g.finish(fl, Failed)
	}
}

// budget returns how long pid's exec may still be held.
func (g *Gate) budget(pid int32, now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	start, ok := g.holds[pid]
	if !ok || now.Sub(start) > 2*g.cfg.Timeout {
		// A new exec (an old entry is another exec of a reused pid).
		if len(g.holds) > 4096 {
			for p, t := range g.holds {
				if now.Sub(t) > 2*g.cfg.Timeout {
					delete(g.holds, p)
				}
			}
		}
		g.holds[pid] = now
		return g.cfg.Timeout
	}
	return g.cfg.Timeout - now.Sub(start)
}

// analyse runs the analyses until read stops.
func (g *Gate) analyse() {
	for fl := range g.work {
		select {
		case <-g.done:
			g.finish(fl, Ready) // stopping: the kernel allowed it already
			continue
		default:
		}
		v := g.an.Analyze(fl.file)
		if v == Failed {
			g.failed.Add(1)
		}
		g.finish(fl, v)
	}
}

// finish answers every exec waiting on fl.
func (g *Gate) finish(fl *flight, v Verdict) {
	g.mu.Lock()
	if g.flights[fl.file.Key] == fl {
		delete(g.flights, fl.file.Key)
	}
	if v == NoTLS {
		if len(g.noTLS) >= maxNoTLS {
			clear(g.noTLS)
		}
		g.noTLS[fl.file.Key] = struct{}{}
	}
	waiters := fl.waiters
	g.mu.Unlock()
	if v == NoTLS {
		fl.first.noTLS.Store(true)
		for _, e := range waiters {
			e.noTLS.Store(true)
		}
	}
	fl.first.allow()
	for _, e := range waiters {
		e.allow()
		e.unref()
	}
	fl.first.unref() // the analysis's reference
	fl.first.unref() // the exec's
}

// allow answers the exec once; it reports whether this call answered.
func (e *event) allow() bool { return e.answer(false) }

// answer allows the exec unless it was answered already. A caller other
// than the watchdog stops the watchdog and drops its reference when it
// had not fired yet.
func (e *event) answer(fromWatchdog bool) bool {
	if !e.answered.CompareAndSwap(false, true) {
		return false
	}
	if !fromWatchdog && e.timer != nil && e.timer.Stop() {
		e.unref()
	}
	if e.w != nil {
		e.w.allow(e.slot, e.seq, e.key, e.noTLS.Load())
	} else {
		e.g.respond(e.fd)
	}
	return true
}

// unref closes the event's descriptor with its last reference: the exec's
// own, the analysis's, the watchdog's. The number stays valid until every
// response through it is written, so no answer can reach another exec
// that was given the same number.
func (e *event) unref() {
	if e.refs.Add(-1) == 0 {
		unix.Close(int(e.fd))
	}
}

func (g *Gate) respond(fd int32) {
	r := unix.FanotifyResponse{Fd: fd, Response: unix.FAN_ALLOW}
	b := (*[unsafe.Sizeof(r)]byte)(unsafe.Pointer(&r))[:]
	g.wmu.RLock()
	defer g.wmu.RUnlock()
	if g.shut {
		return // the group is closed: the kernel allowed it
	}
	// ENOENT: the exec was already answered (by the kernel, at close).
	_, _ = unix.Write(g.fd, b)
}

func isRegular(mode uint32) bool { return mode&unix.S_IFMT == unix.S_IFREG }
