package engine

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// javaAddrs completes the addresses of Java SSLEngine streams. An SSLEngine
// knows its peer only as the host and port it was created with (the
// socket is the application's business), so its records carry the peer
// port, and the peer address when the host was an IP literal. The
// connection is the JVM's one established TCP socket to that port, found
// in /proc/<pid>/net/tcp{,6} among the sockets the JVM holds. An
// ambiguous match (several connections to one server port) leaves the
// local end unknown rather than guess.
type javaAddrs struct {
	proc  string
	known map[uint64]addrPair // by stream id: looked up once per stream
}

type addrPair struct{ local, remote netip.AddrPort }

const maxJavaAddrs = 65536

func newJavaAddrs(proc string) *javaAddrs {
	return &javaAddrs{proc: proc, known: map[uint64]addrPair{}}
}

// fill sets r.local and r.remote when they can be told.
func (j *javaAddrs) fill(r *record) {
	p, ok := j.known[r.connID]
	if !ok {
		p = j.lookup(r.tgid, r.remote, r.peerPort)
		if len(j.known) >= maxJavaAddrs {
			clear(j.known)
		}
		j.known[r.connID] = p
	}
	if p.remote.IsValid() {
		r.local, r.remote = p.local, p.remote
	}
}

func (j *javaAddrs) forget(connID uint64) { delete(j.known, connID) }

func (j *javaAddrs) lookup(tgid uint32, remote netip.AddrPort, port uint16) addrPair {
	if port == 0 {
		return addrPair{}
	}
	inodes := j.socketInodes(tgid)
	if len(inodes) == 0 {
		return addrPair{}
	}
	var found []addrPair
	for _, f := range []string{"tcp", "tcp6"} {
		fh, err := os.Open(fmt.Sprintf("%s/%d/net/%s", j.proc, tgid, f))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			e, ok := parseProcNetTCP(sc.Text())
			if !ok || e.state != tcpEstablished || e.remote.Port() != port {
				continue
			}
			if _, mine := inodes[e.inode]; !mine {
				continue
			}
			if remote.IsValid() && e.remote.Addr() != remote.Addr() {
				continue
			}
			found = append(found, addrPair{e.local, e.remote})
		}
		fh.Close()
	}
	if len(found) != 1 {
		return addrPair{}
	}
	return found[0]
}

// socketInodes lists the inodes of the sockets pid holds.
func (j *javaAddrs) socketInodes(tgid uint32) map[uint64]struct{} {
	dir := fmt.Sprintf("%s/%d/fd", j.proc, tgid)
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	out := map[uint64]struct{}{}
	for _, n := range names {
		link, err := os.Readlink(dir + "/" + n)
		if err != nil || !strings.HasPrefix(link, "socket:[") || !strings.HasSuffix(link, "]") {
			continue
		}
		if ino, err := strconv.ParseUint(link[len("socket:["):len(link)-1], 10, 64); err == nil {
			out[ino] = struct{}{}
		}
	}
	return out
}

const tcpEstablished = 1

type procNetEntry struct {
	local, remote netip.AddrPort
	state         uint8
	inode         uint64
}

// parseProcNetTCP parses one line of /proc/net/tcp or tcp6:
// "sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...",
// addresses as hex words in host (little-endian) byte order, ports in hex.
func parseProcNetTCP(line string) (procNetEntry, bool) {
	f := strings.Fields(line)
	if len(f) < 10 {
		return procNetEntry{}, false
	}
	var e procNetEntry
	var ok bool
	if e.local, ok = parseHexAddrPort(f[1]); !ok {
		return e, false
	}
	if e.remote, ok = parseHexAddrPort(f[2]); !ok {
		return e, false
	}
	st, err := strconv.ParseUint(f[3], 16, 8)
	if err != nil {
		return e, false
	}
	e.state = uint8(st)
	if e.inode, err = strconv.ParseUint(f[9], 10, 64); err != nil {
		return e, false
	}
	return e, true
}

func parseHexAddrPort(s string) (netip.AddrPort, bool) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	// Each 32-bit word is printed in host byte order (little endian here).
	for i := 0; i+4 <= len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	var addr netip.Addr
	if len(raw) == 4 {
		addr = netip.AddrFrom4([4]byte(raw))
	} else {
		addr = netip.AddrFrom16([16]byte(raw)).Unmap()
	}
	return netip.AddrPortFrom(addr, uint16(port)), true
}
