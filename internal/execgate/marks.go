package execgate

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// rescanEvery is how often the agent's own mount table is re-read: new
// mounts of the host (a disk, a bind mount, a tmpfs) are marked within it.
const rescanEvery = 2 * time.Second

// marker keeps one FAN_MARK_FILESYSTEM mark per file system. A file-system
// mark covers the file system wherever it is mounted — bind mounts, the
// same disk seen from a container — so marks are kept per device, and a
// new mount namespace costs marks only for the file systems it brings
// (an overlay root, a tmpfs).
type marker struct {
	g *Gate

	mu       sync.Mutex
	byDev    map[uint64]bool // device → marked (false: marking failed, not retried)
	ns       map[string]bool // mount namespaces already scanned
	marked   uint64
	failures uint64

	pids    chan int
	lastOwn []byte
	memfd   atomic.Uint64 // execs of memfds seen (never gated)
}

func newMarker(g *Gate) *marker {
	return &marker{g: g, byDev: map[uint64]bool{}, ns: map[string]bool{}, pids: make(chan int, 1024)}
}

func (m *marker) counts() (uint64, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.marked, m.failures
}

// markSelf marks the file systems of the agent's mount namespace. Failing
// to mark even one means the gate cannot work at all.
func (m *marker) markSelf() error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read own mount table: %w", err)
	}
	m.mu.Lock()
	m.lastOwn = b
	if ns, err := os.Readlink("/proc/self/ns/mnt"); err == nil {
		m.ns[ns] = true
	}
	m.mu.Unlock()
	n, err := m.markTable(b, "")
	if err != nil {
		return err
	}
	if n == 0 {
		if _, errs := m.counts(); errs > 0 {
			return fmt.Errorf("mark file systems for the exec gate: none of %d could be marked", errs)
		}
	}
	return nil
}

// markTable marks the executable file systems of one mount table. prefix
// reaches that namespace's mount points from the agent (/proc/<pid>/root).
func (m *marker) markTable(table []byte, prefix string) (int, error) {
	mounts, err := ParseMountinfo(bytes.NewReader(table))
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, mt := range mounts {
		if !mt.Executable() || (m.g.cfg.Mounts != nil && !m.g.cfg.Mounts(mt)) {
			continue
		}
		if _, ok := m.byDev[mt.Dev]; ok {
			continue
		}
		if m.mark(mt.Dev, unix.AT_FDCWD, prefix+mt.Point, mt.Point) {
			n++
		}
	}
	return n, nil
}

// mark adds one file-system mark; m.mu is held.
func (m *marker) mark(dev uint64, dirfd int, path, what string) bool {
	err := unix.FanotifyMark(m.g.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, unix.FAN_OPEN_EXEC_PERM, dirfd, path)
	m.byDev[dev] = err == nil
	if err != nil {
		m.failures++
		m.g.logger.Debug("exec gate: cannot mark file system", zap.String("mount", what), zap.Error(err))
		return false
	}
	m.marked++
	m.g.logger.Debug("exec gate: marked file system", zap.String("mount", what))
	return true
}

// watch queues pid for a look at its mount namespace; never blocks.
func (m *marker) watch(pid int) {
	select {
	case m.pids <- pid:
	default: // the next exec in that namespace brings it again
	}
}

// run marks new mounts until done is closed.
func (m *marker) run(done <-chan struct{}) {
	t := time.NewTicker(rescanEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			b, err := os.ReadFile("/proc/self/mountinfo")
			if err != nil {
				continue
			}
			m.mu.Lock()
			same := bytes.Equal(b, m.lastOwn)
			m.lastOwn = b
			m.mu.Unlock()
			if same {
				continue
			}
			if _, err := m.markTable(b, ""); err != nil {
				m.g.logger.Warn("exec gate: cannot read own mount table", zap.Error(err))
			}
		case pid := <-m.pids:
			m.scanNamespace(pid)
		}
	}
}

// scanNamespace marks the file systems of pid's mount namespace the first
// time the namespace is seen.
func (m *marker) scanNamespace(pid int) {
	base := "/proc/" + strconv.Itoa(pid)
	// A memfd's file system cannot be marked (the kernel refuses marks on
	// its internal mount): such an exec ran ungated; count it.
	if exe, err := os.Readlink(base + "/exe"); err == nil && strings.HasPrefix(exe, "/memfd:") {
		m.memfd.Add(1)
	}
	ns, err := os.Readlink(base + "/ns/mnt")
	if err != nil {
		return // gone
	}
	m.mu.Lock()
	seen := m.ns[ns]
	if !seen {
		if len(m.ns) > 4096 {
			clear(m.ns)
		}
		m.ns[ns] = true
	}
	m.mu.Unlock()
	if seen {
		return
	}
	b, err := os.ReadFile(base + "/mountinfo")
	if err != nil {
		return
	}
	// Mount points in a namespace's table are relative to its root, which
	// /proc/<pid>/root reaches.
	if _, err := m.markTable(b, base+"/root"); err != nil {
		m.g.logger.Debug("exec gate: cannot read mount table", zap.Int("pid", pid), zap.Error(err))
	}
}
