package bpf

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tlstap/tlstap/internal/testenv"
)

// TestGeneratedUpToDate rebuilds the eBPF object from the committed C sources
// and fails when it differs from the committed one: `make generate` was not run.
func TestGeneratedUpToDate(t *testing.T) {
	if _, err := exec.LookPath("clang"); err != nil {
		testenv.Missing(t, "clang not installed: run `make deps` (CI must check generated objects)")
	}
	// Generate inside this module so `go tool bpf2go` resolves the pinned version.
	dir, err := os.MkdirTemp(".", ".gencheck-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Every header: the program includes one file per concern.
	headers, err := filepath.Glob("*.h")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append([]string{"gen.go", "tlstap.bpf.c"}, headers...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "generate", "./"+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go generate: %v\n%s", err, out)
	}
	for _, f := range []string{"tlstap_x86_bpfel.o", "tlstap_x86_bpfel.go"} {
		want, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run `make generate` and commit the result", f)
		}
	}
}
