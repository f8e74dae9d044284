package procscan

import (
	"os/exec"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/testenv"
)

// start runs a child process and kills it (by PID) when the test ends.
func start(t *testing.T, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func requireRoot(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	return testenv.RequireCommand(t, name)
}

// waitTargets polls TLSTargets until cond holds: children map their
// libraries some time after exec (Python imports ssl, node boots).
func waitTargets(t *testing.T, s *Scanner, pid int, cond func([]Target) bool) []Target {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := s.TLSTargets(pid)
		if err != nil {
			t.Fatalf("TLSTargets(%d): %v", pid, err)
		}
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("TLSTargets(%d) never satisfied the condition; last: %+v", pid, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
