package engine

import (
	"testing"

	"go.uber.org/goleak"
)

// Every engine goroutine must be gone once Shutdown returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
