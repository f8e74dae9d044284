package engine

import (
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tlstap/tlstap/internal/execgate"
)

// gateGrace is how long a file the gate let run hooked keeps its probes
// even when idle: the discoverer sees the new process a few milliseconds
// later and then counts it as a user.
const gateGrace = 10 * time.Second

// recentFiles remembers when the gate last let each hooked file run. A nil
// *recentFiles (gate off) remembers nothing.
type recentFiles struct {
	mu sync.Mutex
	m  map[fileID]time.Time
}

func (r *recentFiles) touch(id fileID, now time.Time) {
	if r == nil {
		return
	}
	r.mu.Lock()
	if len(r.m) > 65536 {
		clear(r.m)
	}
	r.m[id] = now
	r.mu.Unlock()
}

func (r *recentFiles) recent(id fileID, now time.Time) bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.m[id]
	if ok && now.Sub(t) >= gateGrace {
		delete(r.m, id)
		return false
	}
	return ok
}

// gateAnalyzer is the engine's side of the exec gate: the file about to
// run goes through the discoverer's per-file path, hookExecutable.
type gateAnalyzer struct {
	d *discoverer
	// hook, when set (tests), runs before each analysis: a test stalls it.
	hook func(execgate.File)
}

func versionOf(k execgate.Key) fileVersion {
	return fileVersion{id: fileID{dev: k.Dev, ino: k.Ino}, size: k.Size, mtimeNs: k.MtimeNs, ctimeNs: k.CtimeNs}
}

// Known answers on the gate's event loop, so it never waits for the
// kernel lock an attach in progress holds: a busy lock sends the file to
// a worker, which waits there under the gate's bound.
func (a *gateAnalyzer) Known(f execgate.File) bool {
	ver := versionOf(f.Key)
	if !a.d.kern.hookedNow(ver) {
		return false
	}
	a.d.gated.touch(ver.id, time.Now())
	return true
}

func (a *gateAnalyzer) Analyze(f execgate.File) execgate.Verdict {
	if a.hook != nil {
		a.hook(f)
	}
	ver := versionOf(f.Key)
	res, err := a.d.hookExecutable(f.Path, ver, uint32(f.PID))
	switch res {
	case hookDone:
		a.d.gated.touch(ver.id, time.Now())
		return execgate.Ready
	case hookFailed:
		a.d.stats.attachErrors.Add(1)
		a.d.logger.Warn("exec gate: cannot hook the executable about to run", zap.Int("pid", f.PID), zap.Error(err))
		return execgate.Failed
	}
	if err != nil {
		a.d.logger.Warn("exec gate: executable not supported", zap.Int("pid", f.PID), zap.Error(err))
	}
	return execgate.NoTLS
}

// hookedNow is current without waiting: false when the lock is busy or the
// file is hooked for other content (the worker re-analyses it).
func (k *kernel) hookedNow(ver fileVersion) bool {
	if !k.mu.TryLock() {
		return false
	}
	h, ok := k.uprobes[ver.id]
	k.mu.Unlock()
	return ok && h.ver.size == ver.size && h.ver.mtimeNs == ver.mtimeNs
}

// openGate starts the exec gate when configured. A host without fanotify
// permission events runs without it: capture works, first runs of new
// TLS executables may be missed, and the log says so.
func (e *Engine) openGate(d *discoverer) *execgate.Gate {
	if !e.cfg.ExecGate.Enabled || len(e.cfg.TLSProbes) == 0 || e.cfg.TLSProbes[0] == ProbeNone {
		return nil
	}
	d.gated = &recentFiles{m: map[fileID]time.Time{}}
	g, err := execgate.Open(execgate.Config{
		Timeout: e.cfg.ExecGate.Timeout,
		Mounts:  e.gateMounts,
		Logger:  e.logger.Named("execgate"),
	}, &gateAnalyzer{d: d, hook: e.gateHook})
	if err != nil {
		e.stats.gateErrors.Add(1)
		e.logger.Warn("exec gate unavailable: the first run of a new TLS executable may be missed", zap.Error(err))
		return nil
	}
	s := g.Stats()
	e.logger.Info("exec gate on: execs wait until their executable is hooked", zap.Duration("bound", e.cfg.ExecGate.Timeout),
		zap.Uint64("file_systems", s.FileSystems), zap.Int("gate_process", s.GateProcess), zap.Bool("in_process", s.InProcess))
	return g
}

// closeGate stops the gate before the kernel side goes: its workers may be
// attaching.
func closeGate(g *execgate.Gate) error {
	if g == nil {
		return nil
	}
	if err := g.Close(); err != nil {
		return fmt.Errorf("close exec gate: %w", err)
	}
	return nil
}
