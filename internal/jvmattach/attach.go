// Package jvmattach loads a Java agent into a running HotSpot JVM through
// the JVM's dynamic attach mechanism, without the JDK's tools.
//
// The protocol (HotSpot, Linux): the JVM's attach listener serves a Unix
// socket /tmp/.java_pid<pid> (pid and /tmp as the JVM sees them, i.e. in
// its own pid and mount namespaces). The listener starts lazily: a client
// creates the trigger file .attach_pid<pid> in /tmp, owned by the JVM's
// user, and sends SIGQUIT; the JVM's signal dispatcher sees the file and
// starts the listener instead of printing a thread dump. A request is
// "1\0<command>\0<arg0>\0<arg1>\0<arg2>\0"; the reply is the command's
// status as a decimal line, then its output.
//
// SIGQUIT reaches a JVM that has not yet installed its handler as the
// default action, which kills it; Attach therefore signals only a JVM whose
// "Signal Dispatcher" thread exists.
package jvmattach

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrDisabled reports a JVM started with -XX:+DisableAttachMechanism.
var ErrDisabled = errors.New("the JVM runs with -XX:+DisableAttachMechanism")

// ErrNotReady reports a JVM still starting up: it cannot be signalled yet.
var ErrNotReady = errors.New("the JVM has not finished starting (no Signal Dispatcher thread yet)")

// Target is a JVM seen from the host.
type Target struct {
	PID   int // host pid
	NSPID int // pid in the JVM's own pid namespace
	UID   int // effective uid and gid of the JVM
	GID   int
	Root  string // /proc/<pid>/root: the JVM's file system
}

// Inspect reads what attaching needs from /proc/<pid>. It never signals.
func Inspect(proc string, pid int) (Target, error) {
	t := Target{PID: pid, NSPID: pid, Root: fmt.Sprintf("%s/%d/root", proc, pid)}
	status, err := os.ReadFile(fmt.Sprintf("%s/%d/status", proc, pid))
	if err != nil {
		return t, fmt.Errorf("read status of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		switch k {
		case "Uid":
			if len(f) > 1 {
				t.UID, _ = strconv.Atoi(f[1])
			}
		case "Gid":
			if len(f) > 1 {
				t.GID, _ = strconv.Atoi(f[1])
			}
		case "NSpid":
			if len(f) > 0 {
				t.NSPID, _ = strconv.Atoi(f[len(f)-1])
			}
		}
	}
	return t, nil
}

// Disabled reports whether the JVM's options turn the attach mechanism off:
// on its command line, or in the environment variables the launcher reads.
func Disabled(proc string, pid int) bool {
	const opt = "-XX:+DisableAttachMechanism"
	if b, err := os.ReadFile(fmt.Sprintf("%s/%d/cmdline", proc, pid)); err == nil && bytes.Contains(b, []byte(opt)) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/environ", proc, pid))
	if err != nil {
		return false
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		for _, name := range []string{"JAVA_TOOL_OPTIONS=", "JDK_JAVA_OPTIONS=", "_JAVA_OPTIONS="} {
			if bytes.HasPrefix(kv, []byte(name)) && bytes.Contains(kv, []byte(opt)) {
				return true
			}
		}
	}
	return false
}

// Ready reports whether the JVM's signal dispatcher runs, so that SIGQUIT
// is handled by the JVM rather than killing it.
func Ready(proc string, pid int) bool {
	dir := fmt.Sprintf("%s/%d/task", proc, pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, task := range tasks {
		comm, err := os.ReadFile(filepath.Join(dir, task.Name(), "comm"))
		if err == nil && strings.HasPrefix(string(comm), "Signal Dispatch") {
			return true
		}
	}
	return false
}

func (t Target) socketPath() string {
	return filepath.Join(t.Root, "tmp", fmt.Sprintf(".java_pid%d", t.NSPID))
}

// LoadAgent loads the Java agent jar (a path as the JVM sees it) with
// options into the JVM: "load instrument false <jar>=<options>". The JVM
// runs the agent's agentmain before it replies. ctx bounds the whole attach.
func LoadAgent(ctx context.Context, proc string, t Target, jar, options string) error {
	if Disabled(proc, t.PID) {
		return ErrDisabled
	}
	if err := startListener(ctx, proc, t); err != nil {
		return err
	}
	out, err := request(ctx, t, "load", "instrument", "false", jar+"="+options)
	if err != nil {
		return err
	}
	// The command's output is the agent's return code, "return code: N"
	// (JDK 9+) or a bare number (JDK 8); 0 is success.
	msg := strings.TrimSpace(out)
	code := strings.TrimSpace(strings.TrimPrefix(msg, "return code:"))
	if n, err := strconv.Atoi(code); err == nil && n == 0 {
		return nil
	}
	return fmt.Errorf("load agent into JVM %d: %s", t.PID, firstLine(msg))
}

// RefusedError is a JVM's answer to an attach command that did not
// succeed: its status and what it printed (for an agent, the exception
// its agentmain threw).
type RefusedError struct {
	PID     int
	Command string
	Status  string
	Reply   string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("JVM %d refused %s (status %q): %s", e.PID, e.Command, e.Status, firstLine(e.Reply))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	if line == "" {
		return "(no reply)"
	}
	return line
}

// startListener makes the JVM open its attach socket if it has not yet.
func startListener(ctx context.Context, proc string, t Target) error {
	sock := t.socketPath()
	if isSocket(sock) {
		return nil
	}
	if !Ready(proc, t.PID) {
		return ErrNotReady
	}
	trigger := filepath.Join(t.Root, "tmp", fmt.Sprintf(".attach_pid%d", t.NSPID))
	f, err := os.OpenFile(trigger, os.O_CREATE|os.O_WRONLY|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create attach trigger %s: %w", trigger, err)
	}
	if err == nil {
		f.Close()
		defer os.Remove(trigger)
		// The JVM accepts a trigger only from its own user (or root).
		if err := os.Lchown(trigger, t.UID, t.GID); err != nil {
			return fmt.Errorf("chown attach trigger %s: %w", trigger, err)
		}
	}
	if err := syscall.Kill(t.PID, syscall.SIGQUIT); err != nil {
		return fmt.Errorf("signal JVM %d: %w", t.PID, err)
	}
	for wait := 5 * time.Millisecond; !isSocket(sock); wait = min(2*wait, 200*time.Millisecond) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("JVM %d did not open its attach socket %s: %w", t.PID, sock, ctx.Err())
		case <-time.After(wait):
		}
	}
	return nil
}

func isSocket(path string) bool {
	st, err := os.Lstat(path)
	return err == nil && st.Mode()&os.ModeSocket != 0
}

// request sends one command and returns its output, or an error for a
// non-zero status.
func request(ctx context.Context, t Target, cmd string, args ...string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", t.socketPath())
	if err != nil {
		return "", fmt.Errorf("connect to JVM %d: %w", t.PID, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var b bytes.Buffer
	b.WriteString("1\x00" + cmd + "\x00")
	for i := 0; i < 3; i++ {
		if i < len(args) {
			b.WriteString(args[i])
		}
		b.WriteByte(0)
	}
	if _, err := conn.Write(b.Bytes()); err != nil {
		return "", fmt.Errorf("send %s to JVM %d: %w", cmd, t.PID, err)
	}
	r := bufio.NewReader(io.LimitReader(conn, 1<<20))
	status, err := r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read reply of JVM %d: %w", t.PID, err)
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("read reply of JVM %d: %w", t.PID, err)
	}
	if n, err := strconv.Atoi(strings.TrimSpace(status)); err != nil || n != 0 {
		return "", &RefusedError{PID: t.PID, Command: cmd, Status: strings.TrimSpace(status), Reply: strings.TrimSpace(string(rest))}
	}
	return string(rest), nil
}
