package execgate

import (
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The warden is the gate's answering side in a process of its own: it
// reads the permission events, hands each to the agent, and answers ALLOW
// when the agent says so, at the exec's deadline, or at once when the
// agent's end of the socket closes. A stopped or stalled agent (SIGSTOP, a
// debugger, a stop-the-world that does not end) can then delay no exec
// past the bound: the warden's own clock answers it.
//
// It is the agent's own executable run again with wardenEnv set: the
// init below takes over before main. It has one thread of work, a fixed
// table and fixed buffers: it allocates nothing per event.

const (
	wardenEnv = "TLSTAP_EXECGATE_WARDEN" // "<timeout ns>,<agent pid>"
	// Descriptors the agent hands the warden.
	wardenFanFD  = 3
	wardenSockFD = 4
	// maxHeld bounds the warden's table; an exec beyond it is allowed at
	// once and counted.
	maxHeld = 2048
	// maxHolds remembers when recent execs were first held: the bound is
	// per exec, which opens several files (program, interpreter).
	maxHolds = 512
	// totalsEvery is how often at most the warden reports its totals when
	// no event carries them.
	totalsEvery = int64(100 * time.Millisecond)
	// noTLSCache is the warden's direct-mapped cache of files without TLS
	// (a power of two): their execs, most of a host's, are answered
	// without a round trip to the agent.
	noTLSCache = 4096
)

func init() {
	if v, ok := os.LookupEnv(wardenEnv); ok {
		os.Exit(runWarden(v))
	}
}

type heldExec struct {
	fd       int32 // the warden's descriptor: the key of the kernel's answer
	seq      uint32
	deadline int64 // monotonic ns
}

type holdStart struct {
	pid   int32
	start int64
}

type warden struct {
	fan, sock int
	timeout   int64
	agent     int32
	held      [maxHeld]heldExec
	free      []uint32 // free slots, a stack over a fixed array
	freeArr   [maxHeld]uint32
	nheld     int
	holds     [maxHolds]holdStart
	nextHold  int
	seq       uint32
	timedOut  uint32
	full      uint32
	cached    uint32
	sentAt    int64 // when totals last went to the agent
	dirty     bool  // totals changed since
	noTLS     [noTLSCache]Key
	st        unix.Stat_t
	evbuf     [16 << 10]byte
	out       [wardenMsgLen]byte
	in        [64]byte
	oob       []byte
	fdAt      int
	resp      unix.FanotifyResponse
}

func runWarden(arg string) int {
	var timeout int64
	var agent int
	if i := indexByte(arg, ','); i > 0 {
		timeout, _ = strconv.ParseInt(arg[:i], 10, 64)
		agent, _ = strconv.Atoi(arg[i+1:])
	}
	if timeout <= 0 || agent <= 0 {
		return 2
	}
	// Die with the agent even before its socket end closes; the socket's
	// EOF covers an agent whose forking thread is still alive.
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	if os.Getppid() != agent {
		return 3 // the agent died before the death signal was armed
	}
	if err := unix.SetNonblock(wardenSockFD, true); err != nil {
		return 4
	}
	w := &warden{fan: wardenFanFD, sock: wardenSockFD, timeout: timeout, agent: int32(agent)}
	w.free = w.freeArr[:0]
	for i := maxHeld - 1; i >= 0; i-- {
		w.free = append(w.free, uint32(i))
	}
	w.oob = unix.UnixRights(0)
	w.fdAt = unix.CmsgLen(0)
	if !w.send(wardenMsg{kind: msgHello}, -1) {
		return 5
	}
	w.serve()
	w.release()
	return 0
}

// release lets everything go before the warden exits. Closing its
// descriptor is not enough: a child the agent forked holds a copy of the
// group until its exec completes, and that exec may be one of those held
// — the group would never be released and every exec on the host would
// wait. So: no new events (the marks go), every held exec allowed, every
// queued event read and allowed.
func (w *warden) release() {
	releaseGroup(w.fan, w.evbuf[:])
	for i := range w.held {
		if w.held[i].fd > 0 {
			w.allow(uint32(i))
		}
	}
}

// releaseGroup removes the group's marks and allows every event still
// queued in it.
func releaseGroup(fan int, buf []byte) {
	_ = unix.FanotifyMark(fan, unix.FAN_MARK_FLUSH|unix.FAN_MARK_FILESYSTEM, 0, unix.AT_FDCWD, "")
	const metaLen = int(unsafe.Sizeof(unix.FanotifyEventMetadata{}))
	for {
		n, err := unix.Read(fan, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		for off := 0; off+metaLen <= n; {
			m := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&buf[off]))
			if m.Event_len < uint32(metaLen) || off+int(m.Event_len) > n {
				break
			}
			off += int(m.Event_len)
			if m.Fd >= 0 {
				allowFD(fan, m.Fd)
				unix.Close(int(m.Fd))
			}
		}
	}
}

func allowFD(fan int, fd int32) {
	r := unix.FanotifyResponse{Fd: fd, Response: unix.FAN_ALLOW}
	b := (*[unsafe.Sizeof(r)]byte)(unsafe.Pointer(&r))[:]
	_, _ = unix.Write(fan, b)
}

func cacheSlot(dev, ino uint64) uint32 {
	h := (dev*0x9e3779b97f4a7c15 ^ ino) * 0xbf58476d1ce4e5b9
	return uint32(h>>40) & (noTLSCache - 1)
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func monotonic() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// serve runs until the agent's end closes. Returning closes the group's
// last descriptor the warden holds; with the agent gone too, the kernel
// allows everything pending.
func (w *warden) serve() {
	fds := [2]unix.PollFd{{Fd: int32(w.fan), Events: unix.POLLIN}, {Fd: int32(w.sock), Events: unix.POLLIN}}
	for {
		wait := -1
		if w.dirty {
			wait = int(totalsEvery / 1e6)
		}
		if w.nheld > 0 {
			next := int64(1<<63 - 1)
			for i := range w.held {
				if h := &w.held[i]; h.fd > 0 && h.deadline < next {
					next = h.deadline
				}
			}
			d := (next - monotonic() + 999_999) / 1_000_000
			if wait < 0 {
				wait = 60_000
			}
			wait = int(max(0, min(d, int64(wait))))
		}
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds[:], wait); err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if fds[1].Revents != 0 && !w.readAnswers() {
			return
		}
		if fds[0].Revents&unix.POLLIN != 0 && !w.readEvents() {
			return
		}
		now := monotonic()
		w.expire(now)
		if w.dirty && now-w.sentAt >= totalsEvery {
			w.sendTotals(now)
		}
	}
}

// readAnswers applies the agent's answers; false when the agent is gone.
func (w *warden) readAnswers() bool {
	for {
		n, err := unix.Read(w.sock, w.in[:])
		switch {
		case errors.Is(err, unix.EAGAIN):
			return true
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil || n == 0:
			return false
		}
		m, err := decodeAgentMsg(w.in[:n])
		if err != nil || m.slot >= maxHeld {
			continue
		}
		if m.kind == msgAllowNoTLS {
			w.noTLS[cacheSlot(m.key.Dev, m.key.Ino)] = m.key
		}
		if h := &w.held[m.slot]; h.fd > 0 && h.seq == m.seq {
			w.allow(m.slot)
		}
	}
}

// readEvents takes the kernel's events; false when the group is unusable.
func (w *warden) readEvents() bool {
	const metaLen = int(unsafe.Sizeof(unix.FanotifyEventMetadata{}))
	for {
		n, err := unix.Read(w.fan, w.evbuf[:])
		switch {
		case errors.Is(err, unix.EAGAIN):
			return true
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return false
		}
		now := monotonic()
		for off := 0; off+metaLen <= n; {
			m := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&w.evbuf[off]))
			if m.Vers != unix.FANOTIFY_METADATA_VERSION || m.Event_len < uint32(metaLen) || off+int(m.Event_len) > n {
				return false
			}
			off += int(m.Event_len)
			w.take(m, now)
		}
	}
}

// take holds one event and hands it to the agent, or allows it at once.
func (w *warden) take(m *unix.FanotifyEventMetadata, now int64) {
	if m.Fd < 0 {
		w.full++ // the kernel's queue overflowed; nothing to answer
		w.dirty = true
		return
	}
	if m.Pid == w.agent || m.Mask&unix.FAN_OPEN_EXEC_PERM == 0 || len(w.free) == 0 {
		if len(w.free) == 0 {
			w.full++
			w.dirty = true
		}
		w.respond(m.Fd)
		unix.Close(int(m.Fd))
		return
	}
	if unix.Fstat(int(m.Fd), &w.st) == nil && w.st.Mode&unix.S_IFMT == unix.S_IFREG {
		if k := keyOf(&w.st); w.noTLS[cacheSlot(k.Dev, k.Ino)] == k {
			w.cached++
			w.dirty = true
			w.respond(m.Fd)
			unix.Close(int(m.Fd))
			return
		}
	}
	deadline := w.deadline(m.Pid, now)
	if deadline <= now {
		w.timedOut++
		w.dirty = true
		w.respond(m.Fd)
		unix.Close(int(m.Fd))
		return
	}
	slot := w.free[len(w.free)-1]
	w.seq++
	msg := wardenMsg{kind: msgEvent, slot: slot, seq: w.seq, pid: m.Pid, mask: uint32(m.Mask), timedOut: w.timedOut, full: w.full, fd: m.Fd, cached: w.cached}
	w.sentAt, w.dirty = now, false
	if !w.send(msg, m.Fd) {
		// A stalled agent's socket is full (or it is gone): nobody would
		// answer before the deadline.
		w.full++
		w.dirty = true
		w.respond(m.Fd)
		unix.Close(int(m.Fd))
		return
	}
	w.free = w.free[:len(w.free)-1]
	w.held[slot] = heldExec{fd: m.Fd, seq: w.seq, deadline: deadline}
	w.nheld++
}

// sendTotals reports the totals alone; a full socket (stalled agent)
// leaves them for the next event.
func (w *warden) sendTotals(now int64) {
	if w.send(wardenMsg{kind: msgTotals, timedOut: w.timedOut, full: w.full, cached: w.cached}, -1) {
		w.sentAt, w.dirty = now, false
	}
}

// deadline is when pid's exec must be allowed: the bound from its first
// held file.
func (w *warden) deadline(pid int32, now int64) int64 {
	for i := range w.holds {
		h := &w.holds[i]
		if h.pid == pid && now-h.start <= 2*w.timeout {
			return h.start + w.timeout
		}
	}
	w.holds[w.nextHold] = holdStart{pid: pid, start: now}
	w.nextHold = (w.nextHold + 1) % maxHolds
	return now + w.timeout
}

func (w *warden) expire(now int64) {
	if w.nheld == 0 {
		return
	}
	for i := range w.held {
		if h := &w.held[i]; h.fd > 0 && h.deadline <= now {
			w.timedOut++
			w.dirty = true
			w.allow(uint32(i))
		}
	}
}

func (w *warden) allow(slot uint32) {
	h := &w.held[slot]
	w.respond(h.fd)
	unix.Close(int(h.fd))
	*h = heldExec{}
	w.free = append(w.free, slot)
	w.nheld--
}

func (w *warden) respond(fd int32) {
	w.resp = unix.FanotifyResponse{Fd: fd, Response: unix.FAN_ALLOW}
	b := (*[unsafe.Sizeof(w.resp)]byte)(unsafe.Pointer(&w.resp))[:]
	_, _ = unix.Write(w.fan, b)
}

// send writes one message, with fd attached when fd >= 0, without
// blocking.
func (w *warden) send(m wardenMsg, fd int32) bool {
	m.encode(w.out[:])
	var oob []byte
	if fd >= 0 {
		binary.NativeEndian.PutUint32(w.oob[w.fdAt:], uint32(fd))
		oob = w.oob
	}
	for {
		err := unix.Sendmsg(w.sock, w.out[:], oob, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		if !errors.Is(err, unix.EINTR) {
			return err == nil
		}
	}
}
