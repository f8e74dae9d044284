package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/goinfo"
	"github.com/tlstap/tlstap/internal/policy"
	"github.com/tlstap/tlstap/internal/procscan"
)

// processTTL is how long a process's identity outlives its exit: exchanges
// still in the pipeline when it exits are attributed from this cache.
const processTTL = 30 * time.Second

// procCache keeps the identity of every process seen, read from /proc while
// the process is alive.
type procCache struct {
	scan *procscan.Scanner
	// redactArgs removes secrets from command lines once per process: they
	// are exported on every exchange's resource.
	redactArgs func([]string) []string

	mu    sync.Mutex
	procs map[uint32]*procEntry
}

type procEntry struct {
	info   exchange.Process
	exited time.Time
}

func newProcCache(scan *procscan.Scanner) *procCache {
	return &procCache{scan: scan, procs: map[uint32]*procEntry{}}
}

// refresh (re)reads a process, after exec or when first seen.
func (c *procCache) refresh(pid uint32) (exchange.Process, bool) {
	info, err := c.scan.Process(int(pid))
	if err != nil {
		return exchange.Process{PID: int(pid)}, false
	}
	if c.redactArgs != nil {
		info.CommandArgs = c.redactArgs(info.CommandArgs)
	}
	c.mu.Lock()
	c.procs[pid] = &procEntry{info: info}
	c.mu.Unlock()
	return info, true
}

// exec records a process's new image. /proc is read first (it also gives
// the container); the kernel's exec record stands in when the process is
// already gone, or when its pid now belongs to a process that started
// later (pid reuse).
func (c *procCache) exec(r *record) {
	info, ok := c.refresh(r.tgid)
	if !r.execOK {
		return
	}
	if ok {
		// The usual case: /proc describes this very process.
		if created, err := c.scan.CreationTime(r.exec.StartBoottime); err != nil || info.CreationTime.Equal(created) {
			return
		}
	}
	fromKernel, err := c.scan.FromExec(r.exec)
	if err != nil {
		return
	}
	if c.redactArgs != nil {
		fromKernel.CommandArgs = c.redactArgs(fromKernel.CommandArgs)
	}
	c.mu.Lock()
	c.procs[r.tgid] = &procEntry{info: fromKernel}
	c.mu.Unlock()
}

// get returns the cached identity, reading /proc on a miss.
func (c *procCache) get(pid uint32) exchange.Process {
	c.mu.Lock()
	e := c.procs[pid]
	c.mu.Unlock()
	if e != nil {
		return e.info
	}
	info, _ := c.refresh(pid)
	return info
}

func (c *procCache) exited(pid uint32, now time.Time) {
	c.mu.Lock()
	if e := c.procs[pid]; e != nil {
		e.exited = now
	}
	c.mu.Unlock()
}

// expire forgets processes that exited more than processTTL ago.
func (c *procCache) expire(now time.Time) {
	c.mu.Lock()
	for pid, e := range c.procs {
		if !e.exited.IsZero() && now.Sub(e.exited) > processTTL {
			delete(c.procs, pid)
		}
	}
	c.mu.Unlock()
}

// discoverer finds TLS libraries in processes and attaches probes to them.
// It runs on its own goroutine: attaching is slow and must not stall the
// ring buffer reader.
type discoverer struct {
	logger *zap.Logger
	cfg    Config
	scan   *procscan.Scanner
	kern   *kernel
	procs  *procCache
	stats  *counters
	work   chan notification
	goBins *goinfo.Cache
	policy *policy.Policy
	guard  *analysisGuard // every file analysis runs inside it (analysis.go)
	java   *javaAttacher  // nil unless the java probe is selected
	// notGo remembers executables that are not Go TLS programs, so the
	// exec of a shell or coreutil costs one stat. Keyed by file version:
	// an inode number is reused once its file is deleted (test and build
	// binaries in /tmp), and a stale "not Go" would hide the new program.
	notGo map[fileVersion]struct{}
	// stripped remembers files reported by reportStripped.
	stripped map[procscan.FileKey]struct{}

	// Which processes use each hooked file. Probes on a file no process
	// has used for releaseAfter are detached; the host's own libssl files
	// stay hooked (pinned) so new processes never race their attach.
	releaseAfter time.Duration
	users        map[fileID]map[uint32]struct{}
	byPID        map[uint32][]fileID
	pinned       map[fileID]bool
	idleSince    map[fileID]time.Time
	// gated holds the files the exec gate let run hooked; their probes are
	// not released before the discoverer has seen the process.
	gated *recentFiles
}

// use records that pid maps the hooked file id.
func (d *discoverer) use(id fileID, pid uint32) {
	set := d.users[id]
	if set == nil {
		set = map[uint32]struct{}{}
		d.users[id] = set
	}
	if _, ok := set[pid]; !ok {
		set[pid] = struct{}{}
		d.byPID[pid] = append(d.byPID[pid], id)
	}
	delete(d.idleSince, id)
}

// release forgets pid's use of files (exit, or exec of a new image).
func (d *discoverer) release(pid uint32, now time.Time) {
	for _, id := range d.byPID[pid] {
		set := d.users[id]
		delete(set, pid)
		if len(set) == 0 && !d.pinned[id] {
			delete(d.users, id)
			d.idleSince[id] = now
		}
	}
	delete(d.byPID, pid)
}

// detachIdle releases the probes of files unused for releaseAfter.
func (d *discoverer) detachIdle(now time.Time) {
	for id, since := range d.idleSince {
		if now.Sub(since) < d.releaseAfter || d.gated.recent(id, now) {
			continue
		}
		delete(d.idleSince, id)
		if n := d.kern.detach(id); n > 0 {
			d.logger.Debug("released probes of a file no process uses", zap.Uint64("inode", id.ino), zap.Int("probes", n))
		}
	}
}

// notification asks the discoverer to look at a process again.
type notification struct {
	pid  uint32
	exec bool // a new image: its identity changed too
	exit bool // the process is gone: release its files
}

// initial hooks the host's libssl and every running process.
func (d *discoverer) initial() {
	if d.cfg.probeEnabled(ProbeOpenSSL) {
		d.attachSystemLibs("libssl", systemLibSSL(), d.kern.attachOpenSSL)
	}
	if d.cfg.probeEnabled(ProbeGnuTLS) {
		d.attachSystemLibs("libgnutls", systemLibGnuTLS(), d.kern.attachGnuTLS)
	}
	pids, err := d.scan.PIDs()
	if err != nil {
		d.logger.Warn("cannot list processes", zap.Error(err))
		return
	}
	self := os.Getpid()
	for _, pid := range pids {
		if pid == self {
			continue
		}
		d.procs.refresh(uint32(pid))
		d.identify(uint32(pid))
		d.attachProcess(uint32(pid))
	}
}

// identify reads a process's identity and applies the process rules in the
// kernel: an excluded process costs the data paths one map lookup.
func (d *discoverer) identify(pid uint32) {
	if !d.policy.HasProcessRules() {
		return
	}
	// The pipeline refreshed the identity at exec; initial() finds it
	// missing and get reads it.
	info := d.procs.get(pid)
	if info.ExePath != "" {
		d.kern.skipProcess(pid, d.policy.ProcessExcluded(info))
	}
}

func (d *discoverer) attachProcess(pid uint32) {
	if d.java != nil {
		d.java.consider(pid)
	}
	if d.cfg.probeEnabled(ProbeGo) {
		d.attachGo(pid)
	}
	if !d.cfg.probeEnabled(ProbeOpenSSL) && !d.cfg.probeEnabled(ProbeGnuTLS) {
		return
	}
	targets, err := d.scan.TLSTargets(int(pid))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			d.logger.Debug("cannot inspect process", zap.Uint32("pid", pid), zap.Error(err))
		}
		return
	}
	for _, t := range targets {
		if t.Library == procscan.OpenSSLNoSymbols && d.cfg.probeEnabled(ProbeOpenSSL) {
			d.reportStripped(pid, t)
			continue
		}
		ver, err := statVersion(t.Path)
		if err != nil {
			continue // the process (or its mount namespace) is gone
		}
		if d.kern.current(ver) {
			d.use(ver.id, pid)
			continue
		}
		switch res, err := d.hookLibrary(t.Library, t.Path, ver, pid); res {
		case hookFailed:
			d.attachFailed("cannot hook TLS library", pid, t.Path, err)
		case hookDone:
			d.use(ver.id, pid)
		}
	}
}

// run serves exec and executable-mmap notifications until ctx ends. A burst
// of notifications for one process collapses into one inspection.
func (d *discoverer) run(ctx context.Context) {
	pending := map[uint32]struct{}{}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	sweep := time.NewTicker(max(d.releaseAfter/4, 10*time.Millisecond))
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-sweep.C:
			d.detachIdle(now)
		case n := <-d.work:
			if n.exit {
				delete(pending, n.pid)
				d.release(n.pid, time.Now())
				if d.java != nil {
					d.java.exited(n.pid)
				}
				continue
			}
			if n.exec {
				d.release(n.pid, time.Now()) // the old image's files
				// Read the identity now, while the process surely lives:
				// a short-lived client may be gone by the time its
				// exchange is emitted.
				d.identify(n.pid)
			}
			if len(pending) == 0 {
				timer.Reset(2 * time.Millisecond)
			}
			pending[n.pid] = struct{}{}
		case <-timer.C:
			for pid := range pending {
				if ctx.Err() != nil {
					return // shutting down: the kernel side is being closed
				}
				delete(pending, pid)
				d.attachProcess(pid)
			}
		}
	}
}

// reportStripped counts and logs, once per file version, a file with
// OpenSSL linked in whose symbols were stripped: its TLS traffic cannot be
// captured, and the operator must hear of it rather than see nothing.
func (d *discoverer) reportStripped(pid uint32, t procscan.Target) {
	k := t.Key
	if _, seen := d.stripped[k]; seen {
		return
	}
	if len(d.stripped) > 4096 {
		clear(d.stripped)
	}
	d.stripped[k] = struct{}{}
	d.stats.attachErrors.Add(1)
	d.logger.Warn("statically linked OpenSSL without symbols (stripped): its TLS traffic is not captured",
		zap.Uint32("pid", pid), zap.String("path", t.Path), zap.String("build_id", k.BuildID))
}

// attachFailed counts and logs a failed attach, except when the process
// simply exited meanwhile (its file is hooked on its next run).
func (d *discoverer) attachFailed(msg string, pid uint32, path string, err error) {
	if errors.Is(err, os.ErrNotExist) {
		d.logger.Debug(msg+": the process exited", zap.Uint32("pid", pid), zap.String("path", path))
		return
	}
	d.stats.attachErrors.Add(1)
	d.logger.Warn(msg, zap.Uint32("pid", pid), zap.String("path", path), zap.Error(err))
}

// notify queues a process for inspection without ever blocking the reader.
func (d *discoverer) notify(n notification) {
	select {
	case d.work <- n:
	default:
		d.stats.discoveryDropped.Add(1)
	}
}

// attachGo hooks crypto/tls when the process's executable is a Go program
// that links it. /proc/<pid>/exe reaches the file in any mount namespace.
func (d *discoverer) attachGo(pid uint32) {
	exe := fmt.Sprintf("/proc/%d/exe", pid)
	ver, err := statVersion(exe)
	if err != nil {
		return
	}
	if _, ok := d.notGo[ver]; ok {
		return
	}
	if d.kern.current(ver) {
		d.use(ver.id, pid)
		return
	}
	switch res, err := d.hookGo(exe, ver, pid); res {
	case hookNone:
		if len(d.notGo) > 65536 {
			clear(d.notGo)
		}
		d.notGo[ver] = struct{}{}
		if err != nil {
			d.logger.Warn("Go executable not supported", zap.Uint32("pid", pid), zap.Error(err))
		}
	case hookFailed:
		d.attachFailed("cannot hook Go crypto/tls", pid, exe, err)
	case hookDone:
		d.use(ver.id, pid)
	}
}
