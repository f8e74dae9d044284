package goinfo

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/tlstap/tlstap/internal/testenv"
)

// Test binaries are built once per test run into a temporary directory
// (the Go build cache makes repeated runs link-only).

var (
	buildDir     string
	buildDirOnce sync.Once
	buildDirErr  error

	buildsMu sync.Mutex
	builds   = map[string]*buildResult{}
)

type buildResult struct {
	once sync.Once
	path string
	err  error
	skip string // toolchain unavailable: reason
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// variant is one way of building a test program.
type variant struct {
	toolchain string // "local" or e.g. "go1.20.14"
	prog      string // directory under testdata
	pie       bool
	strip     bool // -ldflags=-s -w
	trimpath  bool
	cgoExt    bool // CGO_ENABLED=1 and external linking
}

func (v variant) name() string {
	n := v.toolchain + "-" + v.prog
	for _, f := range []struct {
		on bool
		s  string
	}{{v.pie, "pie"}, {v.strip, "stripped"}, {v.trimpath, "trimpath"}, {v.cgoExt, "cgoext"}} {
		if f.on {
			n += "-" + f.s
		}
	}
	return n
}

func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// build returns the path of the variant's binary, building it on first
// use. It skips the test when a non-local toolchain cannot be fetched.
func build(t testing.TB, v variant) string {
	t.Helper()
	buildDirOnce.Do(func() { buildDir, buildDirErr = os.MkdirTemp("", "goinfo-test-") })
	if buildDirErr != nil {
		t.Fatal(buildDirErr)
	}
	buildsMu.Lock()
	r, ok := builds[v.name()]
	if !ok {
		r = &buildResult{}
		builds[v.name()] = r
	}
	buildsMu.Unlock()
	r.once.Do(func() { r.path, r.skip, r.err = doBuild(v) })
	if r.skip != "" {
		testenv.Missing(t, "%s", r.skip)
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.path
}

func doBuild(v variant) (path, skip string, err error) {
	out := filepath.Join(buildDir, v.name())
	args := []string{"build", "-o", out}
	if v.pie {
		args = append(args, "-buildmode=pie")
	}
	if v.trimpath {
		args = append(args, "-trimpath")
	}
	var ld []string
	if v.strip {
		ld = append(ld, "-s", "-w")
	}
	if v.cgoExt {
		ld = append(ld, "-linkmode=external")
	}
	if len(ld) > 0 {
		args = append(args, "-ldflags="+strings.Join(ld, " "))
	}
	args = append(args, ".")
	tc := v.toolchain
	cgo := "0"
	if v.cgoExt {
		cgo = "1"
	}
	env := append(os.Environ(), "GOTOOLCHAIN="+tc, "CGO_ENABLED="+cgo, "GOFLAGS=-mod=mod", "GOWORK=off")
	cmd := exec.Command(goCommand(), args...)
	cmd.Dir = filepath.Join("testdata", v.prog)
	cmd.Env = env
	var outb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outb, &outb
	if err := cmd.Run(); err != nil {
		if tc != "local" {
			// Is the toolchain itself unavailable (proxy refused, offline)?
			vc := exec.Command(goCommand(), "version")
			vc.Dir = cmd.Dir
			vc.Env = env
			if vout, verr := vc.CombinedOutput(); verr != nil {
				return "", fmt.Sprintf("toolchain %s unavailable from the module proxy: %v: %s", tc, verr, vout), nil
			}
		}
		return "", "", fmt.Errorf("go %s (GOTOOLCHAIN=%s CGO_ENABLED=%s): %v\n%s", strings.Join(args, " "), tc, cgo, err, outb.String())
	}
	return out, "", nil
}

// testToolchains are the toolchains of the matrix: the local one and two
// older ones; GOINFO_TEST_TOOLCHAINS=all (or a comma list) widens it.
func testToolchains() []string {
	switch s := os.Getenv("GOINFO_TEST_TOOLCHAINS"); s {
	case "":
		return []string{"local", "go1.20.14", "go1.24.13"}
	case "all":
		return append([]string{"local"}, Toolchains...)
	default:
		return strings.Split(s, ",")
	}
}
