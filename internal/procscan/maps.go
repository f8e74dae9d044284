package procscan

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// deletedSuffix is what the kernel appends to the path of a mapping whose
// file has been unlinked since it was mapped (typically a library upgraded
// under a running process).
const deletedSuffix = " (deleted)"

// Mapping is one line of /proc/<pid>/maps.
type Mapping struct {
	Start, End uint64 // virtual address range [Start, End)
	Perms      string // "r-xp" etc., exactly as the kernel prints it
	Offset     uint64 // offset of Start in the mapped file
	Dev        uint64 // device of the mapped file, encoded like stat's st_dev
	Inode      uint64 // 0 for anonymous and pseudo mappings
	Path       string // without the " (deleted)" suffix; "" for anonymous mappings
	Deleted    bool   // the kernel marked the path " (deleted)"
}

// Exec reports whether the mapping is executable.
func (m Mapping) Exec() bool { return len(m.Perms) >= 3 && m.Perms[2] == 'x' }

// File reports whether the mapping is backed by a file with a path, as
// opposed to anonymous memory or a pseudo mapping such as [vdso] or [heap].
func (m Mapping) File() bool { return m.Inode != 0 && strings.HasPrefix(m.Path, "/") }

// ParseMaps parses the text of /proc/<pid>/maps.
func ParseMaps(r io.Reader) ([]Mapping, error) {
	var out []Mapping
	sc := bufio.NewScanner(r)
	// A line is at most ~100 bytes of fields plus PATH_MAX; leave headroom.
	sc.Buffer(make([]byte, 0, 8192), 64*1024)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if text == "" {
			continue
		}
		m, err := parseMapsLine(text)
		if err != nil {
			return nil, fmt.Errorf("procscan: maps line %d %q: %w", line, text, err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("procscan: read maps: %w", err)
	}
	return out, nil
}

// parseMapsLine parses "start-end perms offset major:minor inode   path".
// The path is everything after the inode and the column padding, so it may
// contain spaces.
func parseMapsLine(s string) (Mapping, error) {
	var m Mapping
	var f [5]string
	rest := s
	for i := range f {
		rest = strings.TrimLeft(rest, " ")
		end := strings.IndexByte(rest, ' ')
		if end < 0 {
			if i < len(f)-1 {
				return m, fmt.Errorf("want at least 5 fields")
			}
			end = len(rest)
		}
		f[i], rest = rest[:end], rest[end:]
	}

	lo, hi, ok := strings.Cut(f[0], "-")
	if !ok {
		return m, fmt.Errorf("bad address range %q", f[0])
	}
	var err error
	if m.Start, err = strconv.ParseUint(lo, 16, 64); err != nil {
		return m, fmt.Errorf("bad start address: %w", err)
	}
	if m.End, err = strconv.ParseUint(hi, 16, 64); err != nil {
		return m, fmt.Errorf("bad end address: %w", err)
	}
	if len(f[1]) != 4 {
		return m, fmt.Errorf("bad permissions %q", f[1])
	}
	m.Perms = f[1]
	if m.Offset, err = strconv.ParseUint(f[2], 16, 64); err != nil {
		return m, fmt.Errorf("bad offset: %w", err)
	}
	maj, min, ok := strings.Cut(f[3], ":")
	if !ok {
		return m, fmt.Errorf("bad device %q", f[3])
	}
	major, err := strconv.ParseUint(maj, 16, 32)
	if err != nil {
		return m, fmt.Errorf("bad device major: %w", err)
	}
	minor, err := strconv.ParseUint(min, 16, 32)
	if err != nil {
		return m, fmt.Errorf("bad device minor: %w", err)
	}
	m.Dev = mkdev(uint32(major), uint32(minor))
	if m.Inode, err = strconv.ParseUint(f[4], 10, 64); err != nil {
		return m, fmt.Errorf("bad inode: %w", err)
	}

	path := strings.TrimLeft(rest, " ")
	if p, ok := strings.CutSuffix(path, deletedSuffix); ok && m.Inode != 0 {
		path, m.Deleted = p, true
	}
	m.Path = path
	return m, nil
}

// mkdev encodes a device number the way Linux's new_encode_dev does, which
// is what stat(2) reports in st_dev, so keys built from maps and from stat
// compare equal.
func mkdev(major, minor uint32) uint64 {
	return uint64(minor&0xff) | uint64(major&0xfff)<<8 |
		uint64(minor&^0xff)<<12 | uint64(major&^0xfff)<<32
}
