package execgate

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Mount is one line of a mountinfo file.
type Mount struct {
	Dev    uint64 // st_dev of the mounted file system (major:minor)
	Point  string // mount point, relative to the reader's root
	FSType string
}

// pseudoFS are file systems nobody executes programs from, or on which
// fanotify refuses permission events (proc, for one, would deadlock).
var pseudoFS = map[string]bool{
	"proc": true, "sysfs": true, "cgroup": true, "cgroup2": true, "devpts": true,
	"mqueue": true, "bpf": true, "tracefs": true, "debugfs": true, "securityfs": true,
	"pstore": true, "configfs": true, "fusectl": true, "hugetlbfs": true, "autofs": true,
	"binfmt_misc": true, "efivarfs": true, "nsfs": true, "rpc_pipefs": true, "devtmpfs": true,
	"selinuxfs": true,
}

// Executable reports whether programs may be run from the mount's file
// system, i.e. whether it is worth a mark.
func (m Mount) Executable() bool { return !pseudoFS[m.FSType] }

// ParseMountinfo reads /proc/<pid>/mountinfo (see proc(5)).
func ParseMountinfo(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		m, err := parseMountLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("parse mountinfo line %d: %w", line, err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

// parseMountLine parses
// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue".
func parseMountLine(s string) (Mount, error) {
	f := strings.Fields(s)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 7 || sep < 0 || sep+1 >= len(f) {
		return Mount{}, fmt.Errorf("malformed line %q", s)
	}
	major, minor, ok := strings.Cut(f[2], ":")
	if !ok {
		return Mount{}, fmt.Errorf("malformed device %q", f[2])
	}
	ma, err := strconv.ParseUint(major, 10, 32)
	if err != nil {
		return Mount{}, fmt.Errorf("malformed device %q: %w", f[2], err)
	}
	mi, err := strconv.ParseUint(minor, 10, 32)
	if err != nil {
		return Mount{}, fmt.Errorf("malformed device %q: %w", f[2], err)
	}
	return Mount{Dev: mkdev(uint32(ma), uint32(mi)), Point: unescapeOctal(f[4]), FSType: f[sep+1]}, nil
}

// mkdev encodes a device number as stat's st_dev does.
func mkdev(major, minor uint32) uint64 {
	return uint64(major&0xfff)<<8 | uint64(major&^0xfff)<<32 | uint64(minor&0xff) | uint64(minor&^0xff)<<12
}

// unescapeOctal undoes the kernel's \ooo escaping of spaces, tabs, newlines
// and backslashes in mount points.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOctal(s[i+1:i+4]) {
			n, _ := strconv.ParseUint(s[i+1:i+4], 8, 8)
			b.WriteByte(byte(n))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '7' {
			return false
		}
	}
	return s[0] <= '3'
}
