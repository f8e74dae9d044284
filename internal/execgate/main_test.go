package execgate

import (
	"testing"

	"go.uber.org/goleak"
)

// Every gate goroutine must be gone once Close returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
