package jvmattach

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeProc builds a /proc-like tree for one pid.
func fakeProc(t *testing.T, pid string, files map[string]string) string {
	t.Helper()
	proc := t.TempDir()
	for name, content := range files {
		p := filepath.Join(proc, pid, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return proc
}

func TestInspectNamespacedJVM(t *testing.T) {
	proc := fakeProc(t, "4242", map[string]string{
		"status": "Name:\tjava\nUid:\t1000\t1001\t1001\t1001\nGid:\t2000\t2002\t2002\t2002\nNSpid:\t4242\t7\n",
	})
	tg, err := Inspect(proc, 4242)
	if err != nil {
		t.Fatal(err)
	}
	if tg.PID != 4242 || tg.NSPID != 7 || tg.UID != 1001 || tg.GID != 2002 || tg.Root != proc+"/4242/root" {
		t.Errorf("target %+v", tg)
	}
	if _, err := Inspect(proc, 1); err == nil {
		t.Error("a missing process inspected")
	}
}

func TestDisabled(t *testing.T) {
	for _, tc := range []struct {
		cmdline, environ string
		want             bool
	}{
		{"java\x00-XX:+DisableAttachMechanism\x00-jar\x00app.jar\x00", "", true},
		{"java\x00-jar\x00app.jar\x00", "PATH=/bin\x00JAVA_TOOL_OPTIONS=-Xmx1g -XX:+DisableAttachMechanism\x00", true},
		{"java\x00-jar\x00app.jar\x00", "JDK_JAVA_OPTIONS=-XX:+DisableAttachMechanism\x00", true},
		{"java\x00-XX:-DisableAttachMechanism\x00", "OTHER=-XX:+DisableAttachMechanism\x00", false},
	} {
		proc := fakeProc(t, "9", map[string]string{"cmdline": tc.cmdline, "environ": tc.environ})
		if got := Disabled(proc, 9); got != tc.want {
			t.Errorf("cmdline %q environ %q: disabled %v", tc.cmdline, tc.environ, got)
		}
	}
}

// A JVM still starting (no Signal Dispatcher thread) is never signalled:
// the attach fails with ErrNotReady before any kill.
func TestNotReadyIsNotSignalled(t *testing.T) {
	proc := fakeProc(t, "9", map[string]string{
		"status":         "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
		"task/9/comm":    "java\n",
		"task/10/comm":   "VM Thread\n",
		"root/tmp/.keep": "",
	})
	tg, err := Inspect(proc, 9)
	if err != nil {
		t.Fatal(err)
	}
	if Ready(proc, 9) {
		t.Fatal("ready without a signal dispatcher")
	}
	// pid 9 on the host is not ours to signal: reaching kill would fail
	// the test with a different error (or worse).
	err = LoadAgent(context.Background(), proc, tg, "/x.jar", "start")
	if !errors.Is(err, ErrNotReady) {
		t.Fatalf("got %v, want ErrNotReady", err)
	}
	if err := os.MkdirAll(filepath.Join(proc, "9/task/11"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "9/task/11/comm"), []byte("Signal Dispatch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !Ready(proc, 9) {
		t.Error("not ready with a signal dispatcher")
	}
}

// A JVM that refuses the command: its status line and message come back
// in the error. The listener is a fake serving the attach socket.
func TestRequestRefused(t *testing.T) {
	proc := t.TempDir()
	root := filepath.Join(proc, "5", "root")
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	tg := Target{PID: 5, NSPID: 5, Root: root}
	ln, err := net.Listen("unix", tg.socketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 256)
		n, _ := c.Read(buf)
		got <- string(buf[:n])
		c.Write([]byte("101\nOperation failed: agent threw\n"))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = request(ctx, tg, "load", "instrument", "false", "/a.jar=start")
	if err == nil || !strings.Contains(err.Error(), `status "101"`) || !strings.Contains(err.Error(), "agent threw") {
		t.Errorf("error %v", err)
	}
	if req := <-got; req != "1\x00load\x00instrument\x00false\x00/a.jar=start\x00" {
		t.Errorf("request %q", req)
	}
}
