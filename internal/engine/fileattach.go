package engine

import (
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/tlstap/tlstap/internal/goinfo"
	"github.com/tlstap/tlstap/internal/procscan"
)

// hookResult is what hooking one file came to.
type hookResult uint8

const (
	hookNone   hookResult = iota // no TLS stack the engine hooks
	hookDone                     // hooked (now or before)
	hookFailed                   // a TLS stack was found but could not be hooked
)

// hookExecutable analyses one executable file and hooks every TLS stack it
// carries: Go's crypto/tls, then an exported OpenSSL API (node) or any other
// library procscan recognises. It is the one per-file path shared by the
// discoverer (a running process's executable) and the exec gate (a file
// about to run), so a stack added to hookLibrary is gated as well. path
// must stay valid during the call (/proc/<pid>/exe, /proc/self/fd/<n>).
// Safe for concurrent use: it touches only the kernel, the caches and
// atomic counters.
func (d *discoverer) hookExecutable(path string, ver fileVersion, pid uint32) (hookResult, error) {
	if d.kern.current(ver) {
		return hookDone, nil
	}
	if d.cfg.probeEnabled(ProbeGo) {
		res, err := d.hookGo(path, ver, pid)
		if res != hookNone {
			return res, err
		}
	}
	t, err := analysed(d.guard, pid, path, ver, func() (procscan.Target, error) { return d.scan.InspectFile(path) })
	if errors.Is(err, errFileSkipped) {
		return hookNone, nil
	}
	if err != nil {
		return hookFailed, fmt.Errorf("inspect %s: %w", path, err)
	}
	if t.Library == procscan.LibraryUnknown {
		return hookNone, nil
	}
	return d.hookLibrary(t.Library, path, ver, pid)
}

// hookLibrary hooks one file procscan recognised as a TLS library (a
// shared library or an executable exporting its API). The attach, which
// decodes the file's code, runs inside the analysis boundary: a hostile
// file is skipped and counted, never a crash.
func (d *discoverer) hookLibrary(lib procscan.Library, path string, ver fileVersion, pid uint32) (hookResult, error) {
	attach := func(f func(string, fileVersion) (int, error)) (int, error) {
		return analysed(d.guard, pid, path, ver, func() (int, error) { return f(path, ver) })
	}
	switch lib {
	case procscan.OpenSSL:
		if !d.cfg.probeEnabled(ProbeOpenSSL) {
			return hookNone, nil
		}
		n, err := attach(d.kern.attachOpenSSL)
		if errors.Is(err, errFileSkipped) {
			return hookNone, nil
		}
		if err != nil {
			return hookFailed, err
		}
		if n > 0 {
			d.logger.Info("hooked OpenSSL", zap.String("path", path), zap.Int("probes", n))
		}
		return hookDone, nil
	case procscan.GnuTLS:
		if !d.cfg.probeEnabled(ProbeGnuTLS) {
			return hookNone, nil
		}
		n, err := attach(d.kern.attachGnuTLS)
		if errors.Is(err, errFileSkipped) {
			return hookNone, nil
		}
		if err != nil {
			return hookFailed, err
		}
		if n > 0 {
			d.logger.Info("hooked GnuTLS", zap.String("path", path), zap.Int("probes", n))
		}
		return hookDone, nil
	}
	return hookNone, nil
}

// hookGo hooks crypto/tls when the file is a Go program that links it;
// hookNone when it is not (or its Go is not supported).
func (d *discoverer) hookGo(path string, ver fileVersion, pid uint32) (hookResult, error) {
	info, err := analysed(d.guard, pid, path, ver, func() (goinfo.Info, error) { return d.goBins.Inspect(path) })
	if errors.Is(err, errFileSkipped) {
		return hookNone, nil
	}
	if err != nil {
		if errors.Is(err, goinfo.ErrNotGo) || errors.Is(err, goinfo.ErrNoTLS) {
			return hookNone, nil
		}
		if errors.Is(err, goinfo.ErrUnsupported) {
			return hookNone, err
		}
		return hookFailed, fmt.Errorf("inspect Go executable %s: %w", path, err)
	}
	if info.OffsetsNearest() {
		d.logger.Warn("unknown Go version: using the nearest known struct layout", zap.String("path", path),
			zap.String("go", info.GoVersion), zap.String("layout", info.OffsetsFrom))
	}
	n, err := analysed(d.guard, pid, path, ver, func() (int, error) { return d.kern.attachGo(path, ver, info) })
	if errors.Is(err, errFileSkipped) {
		return hookNone, nil
	}
	if err != nil {
		return hookFailed, err
	}
	if n > 0 {
		d.logger.Info("hooked Go crypto/tls", zap.Uint32("pid", pid), zap.String("path", path), zap.String("go", info.GoVersion),
			zap.String("functions", info.FuncsFrom), zap.String("layout", info.OffsetsFrom), zap.String("read", info.ReadScheme()), zap.Int("probes", n))
	}
	return hookDone, nil
}
