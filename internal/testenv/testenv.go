// Package testenv decides what a test does when something it needs is
// missing on the host: on a developer's machine it skips; in CI
// (CI=true, as .ci/run sets it) it fails, because CI installs every
// prerequisite (make deps) and a skip there would hide a regression.
//
// Every test that depends on the host (root, a command, a library, a
// kernel feature, a toolchain download) goes through Missing or one of
// the Require helpers, never through t.Skip directly.
package testenv

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// InCI reports whether the tests run in CI, where nothing may be skipped
// for want of a prerequisite.
func InCI() bool {
	v := os.Getenv("CI")
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b // any non-boolean value counts as set, like most CI tools
}

// Missing reports a missing prerequisite: the test fails in CI and skips
// elsewhere.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("prerequisite missing in CI (CI=%s): %s", os.Getenv("CI"), msg)
	}
	t.Skip(msg)
}

// RequireRoot stops the test unless it runs as root (eBPF, namespaces).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root")
	}
}

// RequireCommand returns the path of the named command, or stops the test.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not installed", name)
	}
	return p
}

// RequireFile stops the test unless path exists.
func RequireFile(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, "%s: %v", path, err)
	}
}

// FuzzWorker reports whether this process is a fuzzing worker. Workers get
// their inputs from the coordinator and ignore F.Add: fuzz targets whose
// seeds are costly to make (executables built by the test) skip making
// them there.
func FuzzWorker() bool {
	f := flag.Lookup("test.fuzzworker")
	return f != nil && f.Value.String() == "true"
}
