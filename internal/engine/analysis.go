package engine

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The agent runs as root and parses every executable and library any
// process on the host maps: ELF headers, symbol and hash tables, the Go
// runtime's pclntab, DWARF, machine code. A malformed or hostile file must
// cost the agent that file only. analysed is the one boundary all of it
// passes through: the parsers bound what they allocate to the file's size,
// and here a file too large, an analysis too slow and a panic (a case the
// parsers did not foresee) each end in the same way: the file is skipped,
// counted (files_skipped), logged once, and never analysed again in that
// version; capture goes on for everything else.

const (
	// maxAnalysedBytes: the largest Go executables seen in practice are a
	// few hundred MiB; the parsers' memory grows with the file.
	maxAnalysedBytes = 1 << 30
	// analysisTimeout: a Go binary takes ~4 ms here (~150 ms with DWARF),
	// a libssl well under 1 ms; this is three orders of magnitude above.
	analysisTimeout = 20 * time.Second
)

// errFileSkipped: the file was rejected by the analysis boundary (now or
// before); it has been counted and logged.
var errFileSkipped = errors.New("file skipped by the analysis boundary")

// analysisGuard remembers rejected file versions (logged once each).
type analysisGuard struct {
	logger   *zap.Logger
	skipped  interface{ Add(uint64) uint64 }
	maxBytes int64
	timeout  time.Duration

	mu       sync.Mutex
	rejected map[fileVersion]string // file version -> why
}

func newAnalysisGuard(logger *zap.Logger, skipped interface{ Add(uint64) uint64 }) *analysisGuard {
	return &analysisGuard{logger: logger, skipped: skipped, maxBytes: maxAnalysedBytes, timeout: analysisTimeout,
		rejected: map[fileVersion]string{}}
}

// analysed runs fn, the analysis (and attach) of the file at path, version
// ver, inside the boundary. It returns fn's result, or errFileSkipped.
//
// fn runs on its own goroutine so that a runaway analysis cannot stall
// discovery: past the timeout the file is rejected and discovery moves on;
// the goroutine ends on its own (every parser loop is bounded by the
// file's size), and whatever it attaches late is recorded by the kernel
// side as usual and released at shutdown.
func analysed[T any](g *analysisGuard, pid uint32, path string, ver fileVersion, fn func() (T, error)) (T, error) {
	var zero T
	g.mu.Lock()
	_, known := g.rejected[ver]
	g.mu.Unlock()
	if known {
		return zero, errFileSkipped
	}
	if ver.size > g.maxBytes {
		return zero, g.reject(pid, path, ver, fmt.Sprintf("file of %d bytes, more than the %d analysed", ver.size, g.maxBytes), "")
	}
	type result struct {
		v     T
		err   error
		panic any
		stack []byte
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- result{panic: r, stack: debug.Stack()}
			}
		}()
		v, err := fn()
		done <- result{v: v, err: err}
	}()
	timer := time.NewTimer(g.timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.panic != nil {
			return zero, g.reject(pid, path, ver, fmt.Sprintf("analysis failed: %v", r.panic), string(r.stack))
		}
		return r.v, r.err
	case <-timer.C:
		return zero, g.reject(pid, path, ver, fmt.Sprintf("analysis took longer than %v", g.timeout), "")
	}
}

func (g *analysisGuard) reject(pid uint32, path string, ver fileVersion, why, stack string) error {
	g.mu.Lock()
	if len(g.rejected) > 4096 {
		clear(g.rejected) // bounded; a file rejected again is counted again
	}
	g.rejected[ver] = why
	g.mu.Unlock()
	g.skipped.Add(1)
	g.logger.Warn("executable or library skipped: capture continues without it", zap.Uint32("pid", pid),
		zap.String("path", path), zap.Uint64("inode", ver.id.ino), zap.Int64("size", ver.size), zap.String("reason", why))
	if stack != "" {
		g.logger.Debug("analysis panic", zap.String("path", path), zap.String("stack", stack))
	}
	return fmt.Errorf("%s: %w: %s", path, errFileSkipped, why)
}
