package engine

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Every engine goroutine must be gone once Shutdown returns.
func TestMain(m *testing.M) {
	if os.Getenv(gateAgentEnv) != "" {
		runGateAgent() // the child of TestGateAgentKilledDuringStorm
		return
	}
	if list := os.Getenv(launcherEnv); list != "" {
		runLauncher(list)
		return
	}
	goleak.VerifyTestMain(m)
}
