package engine

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/tlstap/tlstap/internal/jvmattach"
)

// fakeJVM serves a JVM attach socket under a fake /proc that answers the
// first `refusals` load commands with agentmain's exception and the next
// with success; it returns the fake /proc, the target and the number of
// load commands served so far.
func fakeJVM(t *testing.T, refusals int) (string, jvmattach.Target, func() int) {
	t.Helper()
	proc := t.TempDir()
	root := filepath.Join(proc, "7", "root")
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	tg := jvmattach.Target{PID: 7, NSPID: 7, Root: root}
	ln, err := net.Listen("unix", filepath.Join(root, "tmp", ".java_pid7"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var served atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 512)
			k, _ := c.Read(buf)
			if !strings.Contains(string(buf[:k]), "load\x00instrument") {
				c.Close()
				continue
			}
			// Counted before the reply: the client returns once it has it.
			if n := served.Add(1); int(n) <= refusals {
				c.Write([]byte("-1\njava.lang.NullPointerException\n\tat tlstap.jsse.Agent.agentmain(Agent.java:1)\n"))
			} else {
				c.Write([]byte("0\nreturn code: 0\n"))
			}
			c.Close()
		}
	}()
	return proc, tg, func() int { return int(served.Load()) }
}

// A JVM that refuses the agent once (an exception from agentmain, as a JVM
// caught while starting did in CI) takes it at the next try.
func TestJavaLoadAgentRetriesRefusal(t *testing.T) {
	proc, tg, served := fakeJVM(t, 1)
	a := &javaAttacher{logger: zaptest.NewLogger(t), proc: proc}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.loadAgent(ctx, tg, "/a.jar", "start,s,l"); err != nil {
		t.Fatalf("loadAgent: %v", err)
	}
	if n := served(); n != 2 {
		t.Errorf("%d load commands, want 2 (one refused, one taken)", n)
	}
}

// A JVM that keeps refusing is given up after three tries, with the
// JVM's own answer in the error.
func TestJavaLoadAgentGivesUp(t *testing.T) {
	proc, tg, served := fakeJVM(t, 100)
	a := &javaAttacher{logger: zaptest.NewLogger(t), proc: proc}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := a.loadAgent(ctx, tg, "/a.jar", "start,s,l")
	var refused *jvmattach.RefusedError
	if !errors.As(err, &refused) || refused.Status != "-1" || !strings.Contains(refused.Reply, "NullPointerException") {
		t.Fatalf("loadAgent: %v, want the JVM's refusal", err)
	}
	if n := served(); n != 3 {
		t.Errorf("%d load commands, want 3", n)
	}
}
