package engine

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Every engine goroutine must be gone once Shutdown returns.
func TestMain(m *testing.M) {
	if mode := os.Getenv(gateAgentEnv); mode != "" {
		runGateAgent(mode) // the child of TestGateAgentKilledDuringStorm, BenchmarkExecGate
		return
	}
	if list := os.Getenv(launcherEnv); list != "" {
		runLauncher(list)
		return
	}
	goleak.VerifyTestMain(m)
}
