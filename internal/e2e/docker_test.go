package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tlstap/tlstap/internal/testenv"
)

// requireDocker makes sure a Docker daemon answers. When none does, it
// starts dockerd (a fresh CI machine has the package, not a running
// daemon) and stops that daemon, and only that one, when the test ends.
// Without docker installed the test skips, or fails under CI=true.
func requireDocker(t *testing.T) {
	t.Helper()
	testenv.RequireCommand(t, "docker")
	if exec.Command("docker", "info").Run() == nil {
		return
	}
	dockerd := testenv.RequireCommand(t, "dockerd")
	logPath := filepath.Join(t.TempDir(), "dockerd.log")
	logf, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(dockerd)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a signal to the test does not reach it, and
	// the cleanup below stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start(), "start dockerd")
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
	})
	deadline := time.Now().Add(120 * time.Second)
	for exec.Command("docker", "info").Run() != nil {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("dockerd exited: %v\n%s", err, tail(log, 40))
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("dockerd started but does not answer:\n%s", tail(log, 40))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("started dockerd (pid %d) for this test", cmd.Process.Pid)
}
