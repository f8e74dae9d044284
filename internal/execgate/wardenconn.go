package execgate

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// wardenStart is how long a new warden has to say hello.
const wardenStart = 5 * time.Second

// wardenConn is the agent's side of one warden.
type wardenConn struct {
	cmd  *exec.Cmd
	conn *net.UnixConn
	wmu  sync.Mutex
	dead bool
	// held maps the warden's slots of events not answered yet to their
	// descriptor numbers in the warden: when it dies, the agent answers
	// them itself.
	held map[uint32]int32
	// exited is closed once the warden process is reaped.
	exited chan struct{}
}

// selfExecutable reports whether the agent's executable carries the
// warden: false in a shared library loaded by another program (the Fluent
// Bit plugin), whose /proc/self/exe is that program.
func selfExecutable() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return true
	}
	for _, s := range bi.Settings {
		if s.Key == "-buildmode" && (s.Value == "c-shared" || s.Value == "c-archive") {
			return false
		}
	}
	return true
}

// startWarden runs the agent's executable again as the warden of group
// fan. It must run before fan has marks: the warden's own exec would wait
// on a group nobody reads yet.
func startWarden(fan *os.File, timeout time.Duration) (*wardenConn, error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create gate process socket: %w", err)
	}
	mine, theirs := os.NewFile(uintptr(pair[0]), "gate-agent"), os.NewFile(uintptr(pair[1]), "gate-warden")
	defer theirs.Close()
	c, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return nil, fmt.Errorf("wrap gate process socket: %w", err)
	}
	w := &wardenConn{conn: c.(*net.UnixConn), exited: make(chan struct{}), held: map[uint32]int32{}}
	w.cmd = exec.Command("/proc/self/exe")
	w.cmd.Args = []string{"tlstap-execgate"}
	w.cmd.Env = []string{wardenEnv + "=" + strconv.FormatInt(timeout.Nanoseconds(), 10) + "," + strconv.Itoa(os.Getpid()),
		"GOMAXPROCS=1", "GODEBUG=" + os.Getenv("GODEBUG")}
	w.cmd.ExtraFiles = []*os.File{fan, theirs} // descriptors 3 and 4
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// The death signal follows the thread that forks: start from a
	// thread no locked goroutine can take down with it.
	runtime.LockOSThread()
	err = w.cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		w.conn.Close()
		return nil, fmt.Errorf("start gate process: %w", err)
	}
	go func() { _ = w.cmd.Wait(); close(w.exited) }()
	buf := make([]byte, wardenMsgLen+1)
	_ = w.conn.SetReadDeadline(time.Now().Add(wardenStart))
	n, err := w.conn.Read(buf)
	_ = w.conn.SetReadDeadline(time.Time{})
	if err == nil {
		var m wardenMsg
		if m, err = decodeWardenMsg(buf[:n]); err == nil && m.kind != msgHello {
			err = fmt.Errorf("first message of kind %d, want hello", m.kind)
		}
	}
	if err != nil {
		w.stop()
		return nil, fmt.Errorf("gate process did not start: %w", err)
	}
	return w, nil
}

// allow asks the warden to allow one event; a gone warden allowed it
// already (or the kernel did).
// With noTLS, key is a file without TLS the warden then allows at once.
func (w *wardenConn) allow(slot, seq uint32, key Key, noTLS bool) {
	var b [agentMsgLen]byte
	m := agentMsg{kind: msgAllow, slot: slot, seq: seq}
	if noTLS {
		m.kind, m.key = msgAllowNoTLS, key
	}
	m.encode(b[:])
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.dead {
		return
	}
	delete(w.held, slot)
	_, _ = w.conn.Write(b[:])
}

// track remembers a held event until it is answered.
func (w *wardenConn) track(m wardenMsg) {
	w.wmu.Lock()
	if !w.dead {
		w.held[m.slot] = m.fd
	}
	w.wmu.Unlock()
}

// heldFDs returns the warden's descriptor numbers of the events it held
// unanswered; call after stop.
func (w *wardenConn) heldFDs() []int32 {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	fds := make([]int32, 0, len(w.held))
	for _, fd := range w.held {
		fds = append(fds, fd)
	}
	return fds
}

// recv reads one event: its message and its descriptor in the agent.
// io.EOF (or another error) means the warden is gone.
func (w *wardenConn) recv(buf, oob []byte) (wardenMsg, int, error) {
	n, oobn, _, _, err := w.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return wardenMsg{}, -1, err
	}
	if n == 0 {
		return wardenMsg{}, -1, errors.New("gate process closed its socket")
	}
	fd := -1
	if oobn > 0 {
		if cms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, cm := range cms {
				fds, err := unix.ParseUnixRights(&cm)
				if err != nil {
					continue
				}
				for _, f := range fds {
					if fd < 0 {
						fd = f
					} else {
						unix.Close(f)
					}
				}
			}
		}
	}
	m, err := decodeWardenMsg(buf[:n])
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return wardenMsg{}, -1, err
	}
	if m.kind == msgEvent && fd < 0 {
		return m, -1, errors.New("gate process event without a descriptor")
	}
	return m, fd, nil
}

// stop closes the agent's end (the warden exits on its EOF, allowing what
// it holds) and reaps the warden, killing it if it does not go at once.
func (w *wardenConn) stop() {
	w.wmu.Lock()
	w.dead = true
	w.conn.Close()
	w.wmu.Unlock()
	select {
	case <-w.exited:
	case <-time.After(time.Second):
		_ = w.cmd.Process.Kill()
		<-w.exited
	}
}

func (w *wardenConn) pid() int { return w.cmd.Process.Pid }
