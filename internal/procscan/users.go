package procscan

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// userCache maps uids to names from a passwd file, re-read only when the
// file's mtime or size changes.
type userCache struct {
	mu    sync.Mutex
	path  string
	mtime time.Time
	size  int64
	names map[uint32]string
}

// passwdFile returns the user database to read. By default that is the
// host's: <procRoot>/1/root/etc/passwd reaches it even when the agent runs
// in its own container with the host's /proc mounted, falling back to the
// agent's /etc/passwd when init's root is not readable.
func (s *Scanner) passwdFile() (string, os.FileInfo, error) {
	if s.passwdPath != "" {
		fi, err := os.Stat(s.passwdPath)
		return s.passwdPath, fi, err
	}
	host := filepath.Join(s.procRoot, "1", "root", "etc", "passwd")
	if fi, err := os.Stat(host); err == nil {
		return host, fi, nil
	}
	fi, err := os.Stat("/etc/passwd")
	return "/etc/passwd", fi, err
}

// userName returns the name of uid, or the uid in decimal when the user
// database has no entry for it or cannot be read.
func (s *Scanner) userName(uid uint32) string {
	path, fi, err := s.passwdFile()
	c := &s.users
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && (c.names == nil || c.path != path || !fi.ModTime().Equal(c.mtime) || fi.Size() != c.size) {
		if names, err := readPasswd(path); err == nil {
			c.names, c.path, c.mtime, c.size = names, path, fi.ModTime(), fi.Size()
		}
	}
	if name, ok := c.names[uid]; ok {
		return name
	}
	return strconv.FormatUint(uint64(uid), 10)
}

// readPasswd parses passwd(5) lines "name:password:uid:gid:gecos:dir:shell".
// The first entry for a uid wins, as with getpwuid.
func readPasswd(path string) (map[uint32]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names := make(map[uint32]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		// Skip comments and NIS compat entries ("+", "-"), which carry no uid.
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		f := strings.SplitN(line, ":", 4)
		if len(f) < 4 || f[0] == "" {
			continue
		}
		uid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		if _, dup := names[uint32(uid)]; !dup {
			names[uint32(uid)] = f[0]
		}
	}
	return names, sc.Err()
}
