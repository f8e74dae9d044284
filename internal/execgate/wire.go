package execgate

import (
	"encoding/binary"
	"fmt"
)

// The warden and the agent talk over a SOCK_SEQPACKET socket pair in
// fixed-size messages of little 32-bit words: one message is one packet,
// so neither side ever parses a stream.
//
//	warden → agent: kind, slot, seq, pid, mask, timedOut, full, fd, cached
//	agent → warden: kind, slot, seq, then (msgAllowNoTLS) the file's Key
//	                as dev, ino, size, mtime, ctime in 64-bit words
//
// An event message carries the event's file descriptor (SCM_RIGHTS). slot
// and seq name the held event in the warden: the kernel matches an answer
// to its event by the warden's descriptor number, which is reused once
// closed, so a late answer must not reach a newer event that got the same
// number — seq tells them apart.
const (
	msgHello      uint32 = iota + 1 // warden is serving; carries nothing else
	msgEvent                        // an exec is held; carries its descriptor
	msgAllow                        // agent → warden: allow slot/seq now
	msgAllowNoTLS                   // agent → warden: allow, and allow this file at once from now on
	msgTotals                       // warden → agent: its running totals, nothing held
)

const (
	wardenMsgLen = 9 * 4
	agentMsgLen  = 3*4 + 5*8
)

// wardenMsg is one message from the warden.
type wardenMsg struct {
	kind, slot, seq uint32
	pid             int32
	mask            uint32
	// timedOut and full are the warden's running totals: execs it allowed
	// at its own deadline, and execs it allowed at once because its table
	// or the socket to a stalled agent was full.
	timedOut, full uint32
	// fd is the event's descriptor number in the warden: the key of the
	// kernel's answer, which the agent uses when the warden is gone.
	fd int32
	// cached is the warden's running total of execs it allowed at once
	// from its cache of files without TLS.
	cached uint32
}

func (m *wardenMsg) encode(b []byte) {
	binary.LittleEndian.PutUint32(b[0:], m.kind)
	binary.LittleEndian.PutUint32(b[4:], m.slot)
	binary.LittleEndian.PutUint32(b[8:], m.seq)
	binary.LittleEndian.PutUint32(b[12:], uint32(m.pid))
	binary.LittleEndian.PutUint32(b[16:], m.mask)
	binary.LittleEndian.PutUint32(b[20:], m.timedOut)
	binary.LittleEndian.PutUint32(b[24:], m.full)
	binary.LittleEndian.PutUint32(b[28:], uint32(m.fd))
	binary.LittleEndian.PutUint32(b[32:], m.cached)
}

func decodeWardenMsg(b []byte) (wardenMsg, error) {
	if len(b) != wardenMsgLen {
		return wardenMsg{}, fmt.Errorf("decode gate process message: %d bytes, want %d", len(b), wardenMsgLen)
	}
	m := wardenMsg{
		kind: binary.LittleEndian.Uint32(b[0:]), slot: binary.LittleEndian.Uint32(b[4:]),
		seq: binary.LittleEndian.Uint32(b[8:]), pid: int32(binary.LittleEndian.Uint32(b[12:])),
		mask: binary.LittleEndian.Uint32(b[16:]), timedOut: binary.LittleEndian.Uint32(b[20:]),
		full: binary.LittleEndian.Uint32(b[24:]), fd: int32(binary.LittleEndian.Uint32(b[28:])),
		cached: binary.LittleEndian.Uint32(b[32:]),
	}
	if m.kind != msgHello && m.kind != msgEvent && m.kind != msgTotals {
		return wardenMsg{}, fmt.Errorf("decode gate process message: unknown kind %d", m.kind)
	}
	return m, nil
}

// agentMsg is one answer from the agent; key is set for msgAllowNoTLS.
type agentMsg struct {
	kind, slot, seq uint32
	key             Key
}

func (m agentMsg) encode(b []byte) {
	binary.LittleEndian.PutUint32(b[0:], m.kind)
	binary.LittleEndian.PutUint32(b[4:], m.slot)
	binary.LittleEndian.PutUint32(b[8:], m.seq)
	binary.LittleEndian.PutUint64(b[12:], m.key.Dev)
	binary.LittleEndian.PutUint64(b[20:], m.key.Ino)
	binary.LittleEndian.PutUint64(b[28:], uint64(m.key.Size))
	binary.LittleEndian.PutUint64(b[36:], uint64(m.key.MtimeNs))
	binary.LittleEndian.PutUint64(b[44:], uint64(m.key.CtimeNs))
}

func decodeAgentMsg(b []byte) (agentMsg, error) {
	if len(b) != agentMsgLen {
		return agentMsg{}, fmt.Errorf("decode agent answer: %d bytes, want %d", len(b), agentMsgLen)
	}
	m := agentMsg{kind: binary.LittleEndian.Uint32(b[0:]), slot: binary.LittleEndian.Uint32(b[4:]), seq: binary.LittleEndian.Uint32(b[8:]),
		key: Key{
			Dev: binary.LittleEndian.Uint64(b[12:]), Ino: binary.LittleEndian.Uint64(b[20:]),
			Size: int64(binary.LittleEndian.Uint64(b[28:])), MtimeNs: int64(binary.LittleEndian.Uint64(b[36:])),
			CtimeNs: int64(binary.LittleEndian.Uint64(b[44:])),
		}}
	if m.kind != msgAllow && m.kind != msgAllowNoTLS {
		return agentMsg{}, fmt.Errorf("decode agent answer: unknown kind %d", m.kind)
	}
	return m, nil
}
