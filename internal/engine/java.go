package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/tlstap/tlstap/internal/jvmattach"
)

// Java (JSSE) capture. JSSE is Java code, so there is no library function
// to probe: tlstap loads an agent into each JVM through HotSpot's dynamic
// attach (internal/jvmattach). The agent instruments JSSE and writes the
// plaintext as framed records to /dev/null, on an fd it reports in a
// status file; registered in the kernel's java_fds map, that fd's writes
// become data records (bpf/java.h). Nothing but the attach crosses into
// the JVM; the JVM needs no restart and no option.

const (
	agentJar = "tlstap-agent.jar"
	// jvmReadyWait bounds how long a starting JVM is waited for (its
	// signal dispatcher must run before it may be signalled).
	jvmReadyWait = 30 * time.Second
	// jvmAttachTimeout bounds one attach: signal, listener start, agent
	// load and the instrumentation of JSSE (~0.3-1 s on a busy 2-core VM).
	jvmAttachTimeout = 20 * time.Second
	// jvmDetachTimeout bounds the stop command sent to every JVM at shutdown.
	jvmDetachTimeout = 2 * time.Second
	maxJVMAttaches   = 4 // attaches running at once
)

// jvmState is tlstap's view of one JVM.
type jvmState struct {
	start  string // /proc/<pid>/stat start time: a reused pid is another JVM
	target jvmattach.Target
	done   bool   // attach finished (attached or failed)
	fd     int    // registered record fd, -1 when not attached
	jar    string // the agent jar and status file as the JVM sees them
	status string
	lease  *javaLease // held while attached: the hook's proof we live
}

// javaAttacher attaches the agent to JVMs as discovery finds them.
type javaAttacher struct {
	logger *zap.Logger
	kern   *kernel
	stats  *counters
	dir    string // directory holding the agent jars (java_agent_dir)
	proc   string
	selfNS string // our mount namespace: JVMs in it read the jars in place

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{}

	mu   sync.Mutex
	jvms map[uint32]*jvmState
}

func newJavaAttacher(logger *zap.Logger, kern *kernel, stats *counters, dir string) *javaAttacher {
	if dir == "" {
		if exe, err := os.Executable(); err == nil {
			dir = filepath.Join(filepath.Dir(exe), "tlstap-java")
		}
	}
	a := &javaAttacher{logger: logger, kern: kern, stats: stats, dir: dir, proc: "/proc",
		sem: make(chan struct{}, maxJVMAttaches), jvms: map[uint32]*jvmState{}}
	a.selfNS, _ = os.Readlink("/proc/self/ns/mnt")
	a.ctx, a.cancel = context.WithCancel(context.Background())
	if err := a.checkJars(); err != nil {
		logger.Warn("Java agent not found: JVMs will not be captured (build it with `make java-agent`, or set java_agent_dir)", zap.String("path", filepath.Join(dir, agentJar)), zap.Error(err))
	}
	return a
}

func (a *javaAttacher) checkJars() error {
	if _, err := os.Stat(filepath.Join(a.dir, agentJar)); err != nil {
		return fmt.Errorf("find %s: %w", agentJar, err)
	}
	return nil
}

// isJVM reports whether pid runs a HotSpot JVM: the libjvm it maps.
func isJVM(proc string, pid uint32) bool {
	f, err := os.Open(fmt.Sprintf("%s/%d/maps", proc, pid))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasSuffix(sc.Text(), "/libjvm.so") {
			return true
		}
	}
	return false
}

func procStart(proc string, pid uint32) string {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", proc, pid))
	if err != nil {
		return ""
	}
	// Field 22 (starttime), counted after the parenthesised command name.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// consider starts attaching to pid if it is a JVM not yet handled. It is
// called from the discoverer on every process it inspects, and never blocks.
func (a *javaAttacher) consider(pid uint32) {
	if a.ctx.Err() != nil || !isJVM(a.proc, pid) {
		return
	}
	start := procStart(a.proc, pid)
	a.mu.Lock()
	if s, ok := a.jvms[pid]; ok && s.start == start {
		a.mu.Unlock()
		return
	}
	st := &jvmState{start: start, fd: -1}
	a.jvms[pid] = st
	a.mu.Unlock()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		err := a.attach(pid, st)
		a.mu.Lock()
		st.done = true
		a.mu.Unlock()
		if err == nil {
			return
		}
		if errors.Is(err, os.ErrNotExist) && procStart(a.proc, pid) != start {
			return // the JVM exited meanwhile
		}
		if a.ctx.Err() != nil {
			return
		}
		a.stats.javaFailed.Add(1)
		a.stats.attachErrors.Add(1)
		a.logger.Warn("cannot attach to JVM: its TLS traffic is not captured", zap.Uint32("pid", pid), zap.Error(err))
	}()
}

func (a *javaAttacher) attach(pid uint32, st *jvmState) error {
	select {
	case a.sem <- struct{}{}:
		defer func() { <-a.sem }()
	case <-a.ctx.Done():
		return a.ctx.Err()
	}
	if err := a.checkJars(); err != nil {
		return fmt.Errorf("java agent: %w", err)
	}
	if jvmattach.Disabled(a.proc, int(pid)) {
		return jvmattach.ErrDisabled
	}
	// A JVM seen at its exec is still starting: wait for its signal
	// dispatcher, never signal it before (SIGQUIT would kill it).
	deadline := time.Now().Add(jvmReadyWait)
	for !jvmattach.Ready(a.proc, int(pid)) {
		if time.Now().After(deadline) {
			return jvmattach.ErrNotReady
		}
		if _, err := os.Stat(fmt.Sprintf("%s/%d", a.proc, pid)); err != nil {
			return err
		}
		select {
		case <-a.ctx.Done():
			return a.ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	t, err := jvmattach.Inspect(a.proc, int(pid))
	if err != nil {
		return err
	}
	st.target = t
	if err := a.placeJars(t, st); err != nil {
		return err
	}
	ns, _ := os.Readlink(fmt.Sprintf("%s/%d/ns/mnt", a.proc, pid))
	lease, err := newJavaLease(t, ns != "" && ns == a.selfNS)
	if err != nil {
		return err
	}
	// Named after the lease: another tlstap on the host may attach to the
	// same JVM at the same time.
	st.status = lease.jvm + ".status"
	statusHost := filepath.Join(t.Root, st.status)
	attached := false
	defer func() {
		if !attached {
			lease.release()
		}
	}()
	ctx, cancel := context.WithTimeout(a.ctx, jvmAttachTimeout)
	defer cancel()
	if err := a.loadAgent(ctx, t, st.jar, "start,"+st.status+","+lease.jvm); err != nil {
		return err
	}
	status, err := readAgentStatus(statusHost, t.UID)
	_ = os.Remove(statusHost) // read once; the JVM's /tmp keeps nothing of ours but the jar
	if err != nil {
		return err
	}
	fd, err := strconv.Atoi(status["fd"])
	if err != nil || fd < 0 {
		return fmt.Errorf("agent status %s: bad fd %q", statusHost, status["fd"])
	}
	// The fd must be what the agent said it opened: a record fd that is a
	// socket or a file would make its writes look like records.
	if link, err := os.Readlink(fmt.Sprintf("%s/%d/fd/%d", a.proc, pid, fd)); err != nil || link != "/dev/null" {
		return fmt.Errorf("agent record fd %d of JVM %d is %q, not /dev/null: %v", fd, pid, link, err)
	}
	if err := a.kern.javaRegister(pid, int32(fd)); err != nil {
		return err
	}
	a.mu.Lock()
	st.fd = fd
	st.lease = lease
	attached = true
	a.mu.Unlock()
	a.stats.javaAttached.Add(1)
	a.logger.Info("attached to JVM", zap.Uint32("pid", pid), zap.Int("record_fd", fd), zap.Int("uid", t.UID))
	return nil
}

// placeJars makes the agent jar readable by the JVM: in place when it
// shares our mount namespace, else copied into its /tmp.
func (a *javaAttacher) placeJars(t jvmattach.Target, st *jvmState) error {
	ns, _ := os.Readlink(fmt.Sprintf("%s/%d/ns/mnt", a.proc, t.PID))
	if ns != "" && ns == a.selfNS {
		st.jar = filepath.Join(a.dir, agentJar)
		return nil
	}
	dir, err := os.MkdirTemp(filepath.Join(t.Root, "tmp"), "tlstap-java-")
	if err != nil {
		return fmt.Errorf("copy java agent into the JVM's /tmp: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("copy java agent: %w", err)
	}
	if err := copyJar(filepath.Join(a.dir, agentJar), filepath.Join(dir, agentJar)); err != nil {
		return fmt.Errorf("copy java agent: %w", err)
	}
	st.jar = "/tmp/" + filepath.Base(dir) + "/" + agentJar
	return nil
}

func copyJar(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// readAgentStatus reads the key=value lines the agent wrote, refusing a
// file not owned by the JVM's user (or root).
func readAgentStatus(path string, uid int) (map[string]string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|openNoFollow, 0)
	if err != nil {
		return nil, fmt.Errorf("read agent status: %w", err)
	}
	defer f.Close()
	if owner, ok := fileOwner(f); !ok || (owner != uid && owner != 0) {
		return nil, fmt.Errorf("agent status %s: not owned by the JVM's user %d", path, uid)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("read agent status: %w", err)
	}
	return parseAgentStatus(string(b)), nil
}

func parseAgentStatus(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// exited forgets a JVM that exited.
func (a *javaAttacher) exited(pid uint32) {
	a.mu.Lock()
	st, ok := a.jvms[pid]
	if ok && st.done {
		delete(a.jvms, pid)
	}
	a.mu.Unlock()
	if ok && st.fd >= 0 {
		st.lease.release()
		a.kern.javaUnregister(pid, int32(st.fd))
		a.stats.javaAttached.Add(^uint64(0))
	}
}

// stop ends pending attaches and turns the agent in every attached JVM
// inert ("stop"): no more records, and it has no thread to end. The JVMs
// are told in parallel, each within jvmDetachTimeout.
func (a *javaAttacher) stop(ctx context.Context) {
	a.cancel()
	a.wg.Wait()
	a.mu.Lock()
	var attached []*jvmState
	var pids []uint32
	for pid, st := range a.jvms {
		if st.fd >= 0 {
			attached = append(attached, st)
			pids = append(pids, pid)
		}
	}
	a.jvms = map[uint32]*jvmState{}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for i, st := range attached {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, cancel := context.WithTimeout(ctx, jvmDetachTimeout)
			defer cancel()
			if procStart(a.proc, pids[i]) != st.start {
				st.lease.release()
				return
			}
			if err := jvmattach.LoadAgent(c, a.proc, st.target, st.jar, "stop,"+st.status+","+st.lease.jvm); err != nil {
				a.logger.Warn("cannot stop the agent in a JVM (its records go to /dev/null, unread)", zap.Uint32("pid", pids[i]), zap.Error(err))
			}
			_ = os.Remove(filepath.Join(st.target.Root, st.status))
			st.lease.release() // the hook's backstop when the stop was not heard
			a.kern.javaUnregister(pids[i], int32(st.fd))
			a.stats.javaAttached.Add(^uint64(0))
		}()
	}
	wg.Wait()
}

// javaRegister lets the JVM's record fd feed the ring buffer.
func (k *kernel) javaRegister(tgid uint32, fd int32) error {
	m := k.maps.Maps["java_fds"]
	key := struct {
		TGID uint32
		FD   int32
	}{tgid, fd}
	if err := m.Put(key, uint8(1)); err != nil {
		return fmt.Errorf("register JVM record fd: %w", err)
	}
	return nil
}

func (k *kernel) javaUnregister(tgid uint32, fd int32) {
	key := struct {
		TGID uint32
		FD   int32
	}{tgid, fd}
	_ = k.maps.Maps["java_fds"].Delete(key)
}

const openNoFollow = syscall.O_NOFOLLOW

func fileOwner(f *os.File) (int, bool) {
	st, err := f.Stat()
	if err != nil {
		return 0, false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(sys.Uid), true
}

// loadAgent loads the agent, again when the JVM refused it: a JVM caught
// while still starting has once thrown from agentmain (a
// NullPointerException in CI's TestJavaJSSE) where a moment later it
// takes the same agent. Starting the agent twice is harmless (agentmain is
// idempotent), so a refusal is retried twice, 0.3 s and 0.6 s later.
func (a *javaAttacher) loadAgent(ctx context.Context, t jvmattach.Target, jar, options string) error {
	for try := 1; ; try++ {
		err := jvmattach.LoadAgent(ctx, a.proc, t, jar, options)
		var refused *jvmattach.RefusedError
		if err == nil || !errors.As(err, &refused) || try == 3 {
			return err
		}
		a.logger.Debug("JVM refused the agent; trying again", zap.Int("pid", t.PID), zap.Int("try", try), zap.String("reply", refused.Reply))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(try) * 300 * time.Millisecond):
		}
	}
}
