// Package procscan discovers processes and the TLS libraries they map, so
// the engine can attach uprobes per file and attribute captured traffic to
// processes.
//
// Everything is read from a proc file system rooted at a configurable
// directory, so tests can use fixture trees; no cgo, no global state.
package procscan

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Scanner reads processes from a proc file system. It caches what does not
// change (boot time, clock rate), what rarely changes (the user database)
// and what is expensive (the ELF verdict per file). It is safe for
// concurrent use.
type Scanner struct {
	procRoot   string
	passwdPath string // "" means: the host's, see passwdFile

	bootOnce sync.Once
	boot     time.Time
	bootErr  error

	hzOnce sync.Once
	hz     uint64

	users userCache
	elf   elfCache
}

// Option configures a Scanner.
type Option func(*Scanner)

// WithPasswdFile makes the Scanner resolve user names from path instead of
// the host's /etc/passwd.
func WithPasswdFile(path string) Option {
	return func(s *Scanner) { s.passwdPath = path }
}

// WithELFCacheLimit bounds the number of per-file ELF verdicts kept; when
// the limit is reached the cache is emptied (files are cheap to re-inspect,
// and a churn of upgraded binaries must not grow memory without bound).
// The default is 4096.
func WithELFCacheLimit(n int) Option {
	return func(s *Scanner) { s.elf.limit = n }
}

// New returns a Scanner reading the proc file system at procRoot ("/proc"
// in production).
func New(procRoot string, opts ...Option) *Scanner {
	s := &Scanner{procRoot: filepath.Clean(procRoot)}
	s.elf.limit = 4096
	for _, o := range opts {
		o(s)
	}
	return s
}

// Stats are counters for observability and tests.
type Stats struct {
	ELFOpens     int64 // files opened and parsed as ELF
	ELFCacheHits int64 // per-file verdicts served from the cache
}

// Stats returns the Scanner's counters.
func (s *Scanner) Stats() Stats {
	return Stats{ELFOpens: s.elf.opens.Load(), ELFCacheHits: s.elf.hits.Load()}
}

// PIDs lists every numeric entry of the proc root. The kernel lists only
// thread-group leaders there, so these are processes, not threads.
func (s *Scanner) PIDs() ([]int, error) {
	ents, err := os.ReadDir(s.procRoot)
	if err != nil {
		return nil, fmt.Errorf("procscan: list %s: %w", s.procRoot, err)
	}
	pids := make([]int, 0, len(ents))
	for _, e := range ents {
		name := e.Name()
		if name == "" || name[0] < '0' || name[0] > '9' {
			continue
		}
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// pidPath returns <procRoot>/<pid>/<name>.
func (s *Scanner) pidPath(pid int, name string) string {
	return filepath.Join(s.procRoot, strconv.Itoa(pid), name)
}

// bootTime returns the wall-clock boot time from the btime line of
// <procRoot>/stat. It is read once: it only moves if the administrator
// steps the clock, and then every process's start time moves with it.
func (s *Scanner) bootTime() (time.Time, error) {
	s.bootOnce.Do(func() {
		b, err := os.ReadFile(filepath.Join(s.procRoot, "stat"))
		if err != nil {
			s.bootErr = fmt.Errorf("procscan: read boot time: %w", err)
			return
		}
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "btime "); ok {
				sec, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
				if err != nil {
					s.bootErr = fmt.Errorf("procscan: parse btime: %w", err)
					return
				}
				s.boot = time.Unix(sec, 0)
				return
			}
		}
		s.bootErr = fmt.Errorf("procscan: no btime line in %s/stat", s.procRoot)
	})
	return s.boot, s.bootErr
}

// clockTicks returns USER_HZ, the unit of starttime in /proc/<pid>/stat.
// Without cgo there is no sysconf(_SC_CLK_TCK); the kernel hands the same
// value to every process in the AT_CLKTCK auxiliary vector entry, so read
// our own. USER_HZ is 100 on every mainstream Linux architecture, which is
// the fallback.
func (s *Scanner) clockTicks() uint64 {
	s.hzOnce.Do(func() {
		s.hz = 100
		b, err := os.ReadFile("/proc/self/auxv")
		if err != nil {
			return
		}
		const atClkTck = 17
		word := strconv.IntSize / 8 // auxv entries are pairs of native words
		for ; len(b) >= 2*word; b = b[2*word:] {
			tag, val := nativeWord(b, word), nativeWord(b[word:], word)
			if tag == atClkTck && val > 0 {
				s.hz = val
				return
			}
			if tag == 0 {
				return
			}
		}
	})
	return s.hz
}

func nativeWord(b []byte, size int) uint64 {
	if size == 4 {
		return uint64(binary.NativeEndian.Uint32(b))
	}
	return binary.NativeEndian.Uint64(b)
}
