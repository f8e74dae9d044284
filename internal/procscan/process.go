package procscan

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tlstap/tlstap/internal/exchange"
)

// Process reads the identity of pid from /proc. A process that has exited
// yields an error wrapping os.ErrNotExist.
//
// ExePath is the executable as the process sees it, i.e. relative to its own
// root for a containerised process. Kernel threads have no executable; their
// ExeName is the kernel's comm.
func (s *Scanner) Process(pid int) (exchange.Process, error) {
	p := exchange.Process{PID: pid}

	// stat first: it exists for every live process, so its absence is the
	// authoritative "process is gone".
	st, err := s.readStat(pid)
	if err != nil {
		return p, err
	}
	p.PPID = st.ppid
	bt, err := s.bootTime()
	if err != nil {
		return p, err
	}
	p.CreationTime = bt.Add(ticksToDuration(st.startTicks, s.clockTicks()))

	exe, err := os.Readlink(s.pidPath(pid, "exe"))
	switch {
	case err == nil:
		p.ExePath = s.pathInRoot(pid, strings.TrimSuffix(exe, deletedSuffix))
		p.ExeName = filepath.Base(p.ExePath)
	case s.alive(pid):
		// Kernel threads and zombies have no exe link; keep going with comm.
		p.ExeName = st.comm
	default:
		return p, s.goneErr(pid, "read exe", err)
	}

	cmdline, err := os.ReadFile(s.pidPath(pid, "cmdline"))
	if err != nil {
		return p, s.goneErr(pid, "read cmdline", err)
	}
	p.CommandArgs = splitCmdline(cmdline)

	uid, euid, err := s.readUID(pid)
	if err != nil {
		return p, err
	}
	p.Owner = s.userName(uid)
	p.UID, p.UIDKnown = euid, true

	cg, err := os.ReadFile(s.pidPath(pid, "cgroup"))
	// A kernel without cgroups has no cgroup file; only a vanished process
	// makes a missing file an error.
	if err != nil && (!errors.Is(err, os.ErrNotExist) || !s.alive(pid)) {
		return p, s.goneErr(pid, "read cgroup", err)
	}
	p.ContainerID = ContainerIDFromCgroup(cg)
	p.PodUID = PodUIDFromCgroup(cg)
	return p, nil
}

// Exec is what the kernel reports of a process at exec (see exec_event in
// bpf/tlstap.h), enough to name a process that is gone from /proc.
type Exec struct {
	PID, PPID     int
	UID           uint32
	StartBoottime time.Duration // task start since boot, as /proc/<pid>/stat counts it
	Path          string        // the file executed, as execve named it
	Args          []byte        // NUL-separated argv, possibly cut
	CgroupPath    string        // the cgroup v2 path's last elements, "" when unknown
}

// FromExec builds a process identity from an exec record, the way Process
// would have read it from /proc: the creation time is rounded down to
// clock ticks so both give the same value. The container comes from the
// cgroup v2 path only (a runtime that places containers in v1 hierarchies
// alone is not recognised).
func (s *Scanner) FromExec(e Exec) (exchange.Process, error) {
	created, err := s.CreationTime(e.StartBoottime)
	if err != nil {
		return exchange.Process{PID: e.PID}, err
	}
	p := exchange.Process{
		PID:          e.PID,
		PPID:         e.PPID,
		ExePath:      e.Path,
		CommandArgs:  splitCmdline(e.Args),
		Owner:        s.userName(e.UID),
		UID:          e.UID,
		UIDKnown:     true,
		CreationTime: created,
	}
	if e.CgroupPath != "" {
		p.ContainerID = containerIDFromPath(e.CgroupPath)
		p.PodUID = podUIDFromPath(e.CgroupPath)
	}
	if e.Path != "" {
		p.ExeName = filepath.Base(e.Path)
	}
	return p, nil
}

// CreationTime is the creation time Process reports for a task that
// started startBoottime after boot: rounded down to clock ticks, as
// /proc/<pid>/stat counts them.
func (s *Scanner) CreationTime(startBoottime time.Duration) (time.Time, error) {
	bt, err := s.bootTime()
	if err != nil {
		return time.Time{}, err
	}
	hz := s.clockTicks()
	ns, sec := uint64(startBoottime), uint64(time.Second)
	ticks := ns/sec*hz + ns%sec*hz/sec
	return bt.Add(ticksToDuration(ticks, hz)), nil
}

// pathInRoot turns a path the kernel printed relative to the agent's root
// into the path the process itself uses. That differs only for a chrooted
// process: for a process in its own mount namespace the kernel already
// prints paths relative to that namespace's root.
func (s *Scanner) pathInRoot(pid int, path string) string {
	root, err := os.Readlink(s.pidPath(pid, "root"))
	if err != nil || root == "/" {
		return path
	}
	if rel, ok := strings.CutPrefix(path, root); ok && strings.HasPrefix(rel, "/") {
		return rel
	}
	return path
}

// procStat holds the fields of /proc/<pid>/stat this package uses.
type procStat struct {
	comm       string
	ppid       int
	startTicks uint64 // field 22: start time in clock ticks after boot
}

func (s *Scanner) readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(s.pidPath(pid, "stat"))
	if err != nil {
		return procStat{}, s.goneErr(pid, "read stat", err)
	}
	st, err := parseStat(b)
	if err != nil {
		return st, fmt.Errorf("procscan: parse stat of pid %d: %w", pid, err)
	}
	return st, nil
}

// parseStat parses /proc/<pid>/stat. comm (field 2) is wrapped in
// parentheses and may itself contain spaces and parentheses, so the fields
// after it are located from the last ')'.
func parseStat(b []byte) (procStat, error) {
	var st procStat
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return st, errors.New("no (comm) field")
	}
	st.comm = string(b[open+1 : closing])
	// fields[0] is field 3 (state).
	fields := strings.Fields(string(b[closing+1:]))
	const (
		ppidIdx  = 4 - 3
		startIdx = 22 - 3
	)
	if len(fields) <= startIdx {
		return st, fmt.Errorf("%d fields after comm, want at least %d", len(fields), startIdx+1)
	}
	var err error
	if st.ppid, err = strconv.Atoi(fields[ppidIdx]); err != nil {
		return st, fmt.Errorf("bad ppid: %w", err)
	}
	if st.startTicks, err = strconv.ParseUint(fields[startIdx], 10, 64); err != nil {
		return st, fmt.Errorf("bad starttime: %w", err)
	}
	return st, nil
}

func ticksToDuration(ticks, hz uint64) time.Duration {
	sec := ticks / hz
	rem := ticks % hz
	return time.Duration(sec)*time.Second + time.Duration(rem)*time.Second/time.Duration(hz)
}

// splitCmdline splits the NUL-separated argv of /proc/<pid>/cmdline. The
// trailing NUL is dropped; a process that rewrote its argv as one
// space-separated string (setproctitle) comes back as a single argument.
func splitCmdline(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// readUID returns the real and the effective uid from the "Uid:" line of
// /proc/<pid>/status (real, effective, saved, filesystem).
func (s *Scanner) readUID(pid int) (real, effective uint32, err error) {
	b, err := os.ReadFile(s.pidPath(pid, "status"))
	if err != nil {
		return 0, 0, s.goneErr(pid, "read status", err)
	}
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "Uid:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			break
		}
		uid, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("procscan: parse uid of pid %d: %w", pid, err)
		}
		euid, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("procscan: parse effective uid of pid %d: %w", pid, err)
		}
		return uint32(uid), uint32(euid), nil
	}
	return 0, 0, fmt.Errorf("procscan: no Uid line in status of pid %d", pid)
}

// alive reports whether /proc/<pid> still exists.
func (s *Scanner) alive(pid int) bool {
	_, err := os.Stat(s.pidPath(pid, ""))
	return err == nil
}

// goneErr wraps err with context. ESRCH (some /proc files return it while a
// process is being reaped) is reported as os.ErrNotExist so that callers
// have one condition to test for "the process vanished".
func (s *Scanner) goneErr(pid int, what string, err error) error {
	if errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("procscan: %s of pid %d: %w (%w)", what, pid, os.ErrNotExist, err)
	}
	return fmt.Errorf("procscan: %s of pid %d: %w", what, pid, err)
}
