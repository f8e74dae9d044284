package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unsafe"

	tlsbpf "github.com/tlstap/tlstap/bpf"
	"github.com/tlstap/tlstap/internal/procscan"
)

// Sizes of the kernel record headers; a unit test pins them to the generated
// Go types so a change in tlstap.h cannot go unnoticed.
const (
	dataHdrSize = int(unsafe.Sizeof(tlsbpf.DataEvent{}))
	ctlSize     = int(unsafe.Sizeof(tlsbpf.CtlEvent{}))
	execSize    = int(unsafe.Sizeof(tlsbpf.ExecEvent{}))
)

// Field offsets of the exec record.
var (
	execPPID  = int(unsafe.Offsetof(tlsbpf.ExecEvent{}.Ppid))
	execUID   = int(unsafe.Offsetof(tlsbpf.ExecEvent{}.Uid))
	execStart = int(unsafe.Offsetof(tlsbpf.ExecEvent{}.StartBoottime))
	execPLen  = int(unsafe.Offsetof(tlsbpf.ExecEvent{}.PathLen))
	execALen  = int(unsafe.Offsetof(tlsbpf.ExecEvent{}.ArgsLen))
	execPath  = int(unsafe.Offsetof(tlsbpf.ExecEvent{}.Path))
	execArgs  = int(unsafe.Offsetof(tlsbpf.ExecEvent{}.Args))
	execCg    = int(unsafe.Offsetof(tlsbpf.ExecEvent{}.Cgroup))
	cgLevels  = len(tlsbpf.ExecEvent{}.Cgroup)
	cgName    = len(tlsbpf.ExecEvent{}.Cgroup[0])
)

var errShortRecord = errors.New("short ring buffer record")

// record is one decoded ring buffer record. Payload aliases the ring buffer
// sample: it is valid only until the next read.
type record struct {
	typ    uint8
	source uint8
	dir    uint8
	flags  uint8 // data records: tlsbpf.DfCallStart
	tgid   uint32
	tid    uint32
	fd     int32
	ts     int64
	connID uint64
	pos    uint64
	len    uint32
	capLen uint32
	ssl    uint64
	// lost: per direction, the end of the bytes the kernel failed to
	// send (0: none).
	lost   [2]uint64
	local  netip.AddrPort
	remote netip.AddrPort
	// peerPort is the record's remote port even when its address is
	// unknown (Java SSLEngine records know only the peer's port).
	peerPort uint16
	payload  []byte
	// exec: exec records only (execOK), path and args alias the sample.
	exec   procscan.Exec
	execOK bool
}

// decodeRecord parses a raw sample without allocating.
func decodeRecord(b []byte, r *record) error {
	if len(b) < ctlSize {
		return errShortRecord
	}
	le := binary.LittleEndian
	r.typ = b[0]
	r.source = b[1]
	r.dir = b[2]
	r.flags = b[3]
	r.tgid = le.Uint32(b[4:])
	r.tid = le.Uint32(b[8:])
	r.fd = int32(le.Uint32(b[12:]))
	r.ts = int64(le.Uint64(b[16:]))
	r.connID = le.Uint64(b[24:])
	r.payload = nil
	r.local, r.remote, r.peerPort = netip.AddrPort{}, netip.AddrPort{}, 0
	r.execOK = false
	if r.typ == tlsbpf.EvExec {
		if len(b) < execSize {
			return errShortRecord
		}
		plen := min(int(le.Uint16(b[execPLen:])), execArgs-execPath)
		alen := min(int(le.Uint16(b[execALen:])), execCg-execArgs)
		r.exec = procscan.Exec{
			PID:           int(r.tgid),
			PPID:          int(le.Uint32(b[execPPID:])),
			UID:           le.Uint32(b[execUID:]),
			StartBoottime: time.Duration(le.Uint64(b[execStart:])),
			Path:          string(b[execPath : execPath+plen]),
			Args:          b[execArgs : execArgs+alen],
			CgroupPath:    cgroupPath(b[execCg : execCg+cgLevels*cgName]),
		}
		r.execOK = true
		return nil
	}
	if r.typ != tlsbpf.EvData {
		return nil
	}
	if len(b) < dataHdrSize {
		return errShortRecord
	}
	r.pos = le.Uint64(b[32:])
	r.len = le.Uint32(b[40:])
	r.capLen = le.Uint32(b[44:])
	r.ssl = le.Uint64(b[48:])
	// struct conn_addr at 56: family, lport, rport, pad, laddr[16], raddr[16]
	family := le.Uint16(b[56:])
	lport, rport := le.Uint16(b[58:]), le.Uint16(b[60:])
	r.peerPort = rport
	switch family {
	case 2: // AF_INET
		r.local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[64:68])), lport)
		r.remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[80:84])), rport)
	case 10: // AF_INET6
		r.local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[64:80])).Unmap(), lport)
		r.remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[80:96])).Unmap(), rport)
	}
	r.lost[0], r.lost[1] = le.Uint64(b[96:]), le.Uint64(b[104:])
	if int(r.capLen) > len(b)-dataHdrSize || r.capLen > r.len {
		return errShortRecord
	}
	r.payload = b[dataHdrSize : dataHdrSize+int(r.capLen)]
	return nil
}

// cgroupPath joins the exec record's cgroup names (leaf first, an empty
// name ends them) into a path from the outermost name captured.
func cgroupPath(b []byte) string {
	var names []string
	for i := 0; i < cgLevels; i++ {
		slot := b[i*cgName : (i+1)*cgName]
		n := bytes.IndexByte(slot, 0)
		if n <= 0 {
			break
		}
		names = append(names, string(slot[:n]))
	}
	if len(names) == 0 {
		return ""
	}
	slices.Reverse(names)
	return "/" + strings.Join(names, "/")
}
