package engine

// Files as the engine knows them: their identity and version (a rewritten
// file is a new version), a path that stays valid while a file is
// analysed, and the host's own TLS libraries hooked up front.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// fileID identifies an attached file: uprobes live on inodes.
type fileID struct{ dev, ino uint64 }

// pinFile opens path and returns a path to the same file through this
// process's descriptor table, valid while f stays open. Paths under
// /proc/<pid>/ (exe, root/…) vanish when that process exits: a short-lived
// program used to die between two of its uprobes' attachments, failing the
// attach (and warning) each time it ran, and never getting hooked. The
// kernel resolves each uprobe's path at attach time and then holds the inode.
func pinFile(path string) (*os.File, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	return f, fmt.Sprintf("/proc/self/fd/%d", f.Fd()), nil
}

// systemLibSSL lists the host's own libssl files: hooking them up front covers
// every process that will load them later, with no race against its first call.
func systemLibSSL() []string {
	return systemLibs("libssl.so*")
}

// systemLibs lists the regular files matching pattern in the host's
// library directories, symlinks resolved, each once.
func systemLibs(pattern string) []string {
	var out []string
	seen := map[string]bool{}
	for _, dir := range []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/usr/lib", "/usr/local/lib", "/usr/local/lib64"} {
		matches, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, m := range matches {
			real, err := filepath.EvalSymlinks(m)
			if err != nil || seen[real] || strings.HasSuffix(real, ".a") {
				continue
			}
			if fi, err := os.Stat(real); err != nil || !fi.Mode().IsRegular() {
				continue
			}
			seen[real] = true
			out = append(out, real)
		}
	}
	return out
}

// fileVersion is one content of one inode: the inode number plus what
// changes when the number is reused or the file rewritten.
type fileVersion struct {
	id      fileID
	size    int64
	mtimeNs int64
	// ctimeNs catches a rewrite that keeps the size and restores the
	// mtime (utimes can set mtime, never ctime). A chmod or chown moves
	// it too: the file is then analysed again for nothing (a few ms).
	ctimeNs int64
}

func statVersion(path string) (fileVersion, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileVersion{}, err
	}
	return fileVersion{id: fileID{dev: st.Dev, ino: st.Ino}, size: st.Size, mtimeNs: st.Mtim.Nano(), ctimeNs: st.Ctim.Nano()}, nil
}

func statID(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileID{}, err
	}
	return fileID{dev: st.Dev, ino: st.Ino}, nil
}
