package procscan

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Library identifies the TLS implementation a Target belongs to, which
// decides the probes the engine attaches.
type Library uint8

const (
	LibraryUnknown Library = iota
	OpenSSL                // OpenSSL, BoringSSL, or anything exporting its SSL_read/SSL_write ABI
	GnuTLS                 // libgnutls: defines gnutls_record_send/gnutls_record_recv
	// OpenSSLNoSymbols is a file with OpenSSL's libssl linked in (its
	// source file names are in the read-only data) but no SSL_* symbols
	// left: a stripped static build. Nothing can be hooked; the engine
	// reports it instead of staying silent.
	OpenSSLNoSymbols
)

func (l Library) String() string {
	switch l {
	case OpenSSL:
		return "openssl"
	case GnuTLS:
		return "gnutls"
	case OpenSSLNoSymbols:
		return "openssl-stripped"
	}
	return "unknown"
}

// FileKey identifies one version of one file. Uprobes are attached per
// inode, so the engine keys its attachments on this: every process mapping
// the same file yields an equal key, whatever the path it reaches it by.
type FileKey struct {
	Dev   uint64 // st_dev encoding of the device in /proc/<pid>/maps
	Inode uint64 // inode from /proc/<pid>/maps
	// ModTime (Unix ns) and Size come from stat and tell a file rewritten in
	// place (same inode, new content) from its former self.
	ModTime int64
	Size    int64
	// BuildID is the hex GNU build-id, "" when the ELF has none.
	BuildID string
}

// Target is one file of one process to attach TLS probes to.
type Target struct {
	Library Library
	// Path opens the file from the agent's mount namespace:
	// /proc/<pid>/root/<path in the process> for a process with its own
	// root, the plain path when that root is "/", and
	// /proc/<pid>/map_files/<range> when the file was deleted or replaced
	// since the process mapped it.
	Path string
	Key  FileKey
	// Symbols maps each of SSL_read, SSL_read_ex, SSL_write, SSL_write_ex,
	// SSL_shutdown and SSL_free that the file defines to its virtual
	// address (st_value). SSL_read and SSL_write are always present.
	// For GnuTLS: gnutls_record_send and gnutls_record_recv (always), and
	// gnutls_record_send2, gnutls_bye, gnutls_deinit when defined.
	Symbols map[string]uint64
}

// FileError reports a mapped file that could not be inspected.
type FileError struct {
	Path  string // as in /proc/<pid>/maps
	Dev   uint64
	Inode uint64
	Err   error
}

func (e *FileError) Error() string { return fmt.Sprintf("procscan: inspect %s: %v", e.Path, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

// TLSTargets returns the files of pid to attach TLS probes to. A process
// that vanishes yields an error wrapping os.ErrNotExist. Files that cannot
// be inspected are skipped; ScanTLS reports them.
func (s *Scanner) TLSTargets(pid int) ([]Target, error) {
	t, _, err := s.ScanTLS(pid)
	return t, err
}

// ScanTLS is TLSTargets that also returns the files it had to skip. err is
// non-nil only when the process as a whole could not be scanned.
func (s *Scanner) ScanTLS(pid int) (targets []Target, skipped []*FileError, err error) {
	f, err := os.Open(s.pidPath(pid, "maps"))
	if err != nil {
		return nil, nil, s.goneErr(pid, "read maps", err)
	}
	mappings, err := ParseMaps(f)
	f.Close()
	if err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil, nil, s.goneErr(pid, "read maps", err)
		}
		return nil, nil, fmt.Errorf("procscan: maps of pid %d: %w", pid, err)
	}

	cands := candidates(mappings)
	if len(cands) == 0 {
		return nil, nil, nil
	}
	root, err := os.Readlink(s.pidPath(pid, "root"))
	if err != nil {
		return nil, nil, s.goneErr(pid, "read root", err)
	}

	otherNS := s.otherMountNS(pid)
	for _, m := range cands {
		t, err := s.target(pid, root, otherNS, m)
		if err != nil {
			skipped = append(skipped, &FileError{Path: m.Path, Dev: m.Dev, Inode: m.Inode, Err: err})
			continue
		}
		if t.Library != LibraryUnknown {
			targets = append(targets, t)
		}
	}
	// Files of an exiting process vanish one by one: report the process,
	// not a list of missing files.
	if len(skipped) > 0 && !s.alive(pid) {
		return nil, nil, s.goneErr(pid, "inspect files", os.ErrNotExist)
	}
	return targets, skipped, nil
}

// candidates returns one executable, file-backed mapping per distinct file,
// leaving out files that cannot define OpenSSL's API.
func candidates(ms []Mapping) []Mapping {
	type id struct{ dev, ino uint64 }
	seen := make(map[id]bool)
	var out []Mapping
	for _, m := range ms {
		if !m.Exec() || !m.File() {
			continue
		}
		k := id{m.Dev, m.Inode}
		if seen[k] {
			continue
		}
		seen[k] = true
		if skipByName(filepath.Base(m.Path)) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// skipNames are prefixes of libraries that are mapped by nearly every
// process and are known not to carry libssl's API, so they are never opened.
// libcrypto is here on purpose: OpenSSL's SSL_* functions live in libssl.
var skipNames = [...]string{
	"ld-linux", "ld-musl", "ld64.so", "libc.so", "libc-", "libm.so", "libm-",
	"libpthread", "libdl.so", "libdl-", "librt.so", "librt-", "libresolv",
	"libnss_", "libutil", "libgcc_s", "libstdc++", "libcrypto.so", "libz.so",
	"libzstd", "liblzma", "libbz2", "libffi", "libexpat", "libselinux",
	"libpcre", "libcap", "libsystemd", "libtinfo", "libncurses", "libreadline",
	"libuuid", "libmount", "libblkid", "libgmp", "libacl", "libattr",
}

func skipByName(base string) bool {
	for _, p := range skipNames {
		if strings.HasPrefix(base, p) {
			return true
		}
	}
	return false
}

// target inspects one mapped file, using the cache when the file was seen
// before (in this process or any other).
func (s *Scanner) target(pid int, root string, otherNS bool, m Mapping) (Target, error) {
	path, fi, err := s.resolve(pid, root, otherNS, m)
	if err != nil {
		return Target{}, err
	}
	key := FileKey{Dev: m.Dev, Inode: m.Inode, ModTime: fi.ModTime().UnixNano(), Size: fi.Size()}
	v, err := s.elf.get(key, func() (verdict, error) { return inspectELF(path) })
	if err != nil {
		return Target{}, err
	}
	if v.lib == LibraryUnknown {
		return Target{}, nil
	}
	key.BuildID = v.buildID
	return Target{Library: v.lib, Path: path, Key: key, Symbols: maps.Clone(v.symbols)}, nil
}

// resolve finds a path, openable from the agent's mount namespace, of the
// very file m maps, and stats it.
//
// The kernel prints the paths in maps relative to the *reader's* root when
// it can reach the file from there (host processes, chrooted processes) and
// relative to the process's mount namespace root otherwise (containers, for
// which /proc/<pid>/root also reads as "/"). So the candidates, in order of
// preference, are:
//
//   - for a chrooted process: /proc/<pid>/root plus the path below its root;
//   - for a process in another mount namespace: /proc/<pid>/root plus the path;
//   - otherwise the plain path;
//   - /proc/<pid>/map_files/<range>, which reaches the mapped inode even
//     when the file was deleted or replaced (an upgrade), or is a memfd.
//
// Each candidate must hold the inode maps names. Through /proc/<pid>/root
// the device is not compared: overlayfs reports its own st_dev from stat
// while maps shows the underlying file system's.
func (s *Scanner) resolve(pid int, root string, otherNS bool, m Mapping) (string, os.FileInfo, error) {
	type candidate struct {
		path    string
		withDev bool
	}
	var cands []candidate
	if !m.Deleted {
		procRoot := s.pidPath(pid, "root")
		if rel, ok := strings.CutPrefix(m.Path, root); root != "/" && ok && strings.HasPrefix(rel, "/") {
			cands = append(cands, candidate{procRoot + rel, false})
		}
		if otherNS {
			cands = append(cands, candidate{procRoot + m.Path, false})
		} else {
			cands = append(cands, candidate{m.Path, true})
		}
	}
	cands = append(cands, candidate{s.pidPath(pid, fmt.Sprintf("map_files/%x-%x", m.Start, m.End)), false})

	var errs []error
	for _, c := range cands {
		fi, err := os.Stat(c.path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if inodeOf(fi) != m.Inode || c.withDev && devOf(fi) != m.Dev {
			errs = append(errs, fmt.Errorf("%s is dev %#x inode %d, maps has dev %#x inode %d",
				c.path, devOf(fi), inodeOf(fi), m.Dev, m.Inode))
			continue
		}
		return c.path, fi, nil
	}
	return "", nil, errors.Join(errs...)
}

// otherMountNS reports whether pid lives in another mount namespace than
// the agent. Unknown (no ns links, as in fixtures) counts as the same.
func (s *Scanner) otherMountNS(pid int) bool {
	self, err := os.Readlink(filepath.Join(s.procRoot, "self", "ns", "mnt"))
	if err != nil {
		return false
	}
	ns, err := os.Readlink(s.pidPath(pid, "ns/mnt"))
	return err == nil && ns != self
}

func devOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Dev
	}
	return 0
}

func inodeOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// InspectFile inspects one file that no process may map yet (an executable
// about to run). path must stay valid for the call; the result is cached
// per file version like the files of TLSTargets. A file that is no TLS
// target yields a Target with LibraryUnknown.
func (s *Scanner) InspectFile(path string) (Target, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Target{}, err
	}
	key := FileKey{Dev: devOf(fi), Inode: inodeOf(fi), ModTime: fi.ModTime().UnixNano(), Size: fi.Size()}
	v, err := s.elf.get(key, func() (verdict, error) { return inspectELF(path) })
	if err != nil {
		return Target{}, err
	}
	if v.lib == LibraryUnknown {
		return Target{}, nil
	}
	key.BuildID = v.buildID
	return Target{Library: v.lib, Path: path, Key: key, Symbols: maps.Clone(v.symbols)}, nil
}
