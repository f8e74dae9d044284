package execgate

import (
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// A warden that dies is replaced; one that keeps dying is given up on and
// the host runs ungated (fail-open) rather than in a restart loop.
const (
	maxRestarts   = 5
	restartWindow = time.Minute
)

// serveWardens takes the events of the current warden until Close, and
// replaces a warden that dies.
func (g *Gate) serveWardens() {
	defer close(g.work)
	var recent []time.Time
	for {
		g.wmu.RLock()
		w := g.warden
		g.wmu.RUnlock()
		err := g.serveWarden(w)
		g.wmu.RLock()
		shut := g.shut
		g.wmu.RUnlock()
		if shut {
			return
		}
		g.restarts.Add(1)
		now := time.Now()
		recent = append(recent, now)
		for len(recent) > 0 && now.Sub(recent[0]) > restartWindow {
			recent = recent[1:]
		}
		if len(recent) > maxRestarts {
			g.logger.Error("exec gate off: the gate process keeps dying; execs run ungated, first runs of new TLS executables may be missed",
				zap.Int("deaths", len(recent)), zap.Duration("within", restartWindow), zap.Error(err))
			g.drop(w)
			return
		}
		g.logger.Warn("exec gate: the gate process died, every exec it held ran at once; restarting it",
			zap.Int("pid", w.pid()), zap.Error(err))
		if rerr := g.restart(w); rerr != nil {
			g.logger.Error("exec gate off: cannot restart the gate process; execs run ungated", zap.Error(rerr))
			g.wmu.RLock()
			cur := g.warden
			g.wmu.RUnlock()
			if cur != nil {
				g.drop(cur)
			}
			return
		}
	}
}

// serveWarden hands w's events to handle until w's socket fails.
func (g *Gate) serveWarden(w *wardenConn) error {
	buf := make([]byte, wardenMsgLen+1)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		m, fd, err := w.recv(buf, oob)
		if err != nil {
			return err
		}
		g.wTimedOut.Store(uint64(m.timedOut))
		g.wFull.Store(uint64(m.full))
		g.wCached.Store(uint64(m.cached))
		if m.kind != msgEvent {
			continue
		}
		w.track(m)
		g.handle(&event{g: g, fd: int32(fd), w: w, slot: m.slot, seq: m.seq}, m.pid, uint64(m.mask))
	}
}

// drop closes the group and forgets the dead warden w: the kernel allows
// whatever is still pending in it.
func (g *Gate) drop(w *wardenConn) {
	w.stop()
	g.mounts.mu.Lock()
	defer g.mounts.mu.Unlock()
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if !g.shut {
		g.releaseGroup(w)
	}
	g.wTimedOutBase += g.wTimedOut.Swap(0)
	g.wFullBase += g.wFull.Swap(0)
	g.wCachedBase += g.wCached.Swap(0)
	if g.warden == w {
		g.warden = nil
	}
	if !g.shut {
		g.fan.Close()
		g.shut = true
	}
}

// releaseGroup lets go what the dead warden w held, in the group: closing
// the agent's descriptor alone does not release the group while a child
// of the agent, held in its exec, still has a copy. g.wmu is held.
func (g *Gate) releaseGroup(w *wardenConn) {
	for _, fd := range w.heldFDs() {
		allowFD(g.fd, fd)
	}
	releaseGroup(g.fd, make([]byte, 16<<10))
}

// restart replaces the dead warden w: a new group (closing the old one
// allows what it still held), a new warden, then the marks again.
func (g *Gate) restart(w *wardenConn) error {
	w.stop()
	g.mounts.mu.Lock()
	g.wmu.Lock()
	if g.shut {
		g.wmu.Unlock()
		g.mounts.mu.Unlock()
		return nil
	}
	g.wTimedOutBase += g.wTimedOut.Swap(0)
	g.wFullBase += g.wFull.Swap(0)
	g.wCachedBase += g.wCached.Swap(0)
	g.releaseGroup(w)
	g.fan.Close()
	fd, err := unix.FanotifyInit(fanotifyClass, fanotifyEventFlags)
	if err != nil {
		g.warden, g.shut = nil, true
		g.wmu.Unlock()
		g.mounts.mu.Unlock()
		return fmt.Errorf("create fanotify group for the exec gate: %w", err)
	}
	g.fd, g.fan = fd, os.NewFile(uintptr(fd), "fanotify")
	nw, err := startWarden(g.fan, g.cfg.Timeout)
	if err != nil {
		g.fan.Close()
		g.warden, g.shut = nil, true
		g.wmu.Unlock()
		g.mounts.mu.Unlock()
		return err
	}
	clear(g.mounts.byDev)
	clear(g.mounts.ns)
	g.wmu.Unlock()
	g.mounts.mu.Unlock()
	err = g.mounts.markSelf()
	// Published once marked: Stats shows a gate process that gates.
	g.wmu.Lock()
	if g.shut || err != nil {
		g.wmu.Unlock()
		nw.stop()
		if err != nil {
			return fmt.Errorf("mark file systems again: %w", err)
		}
		return nil
	}
	g.warden = nw
	g.wmu.Unlock()
	return nil
}
