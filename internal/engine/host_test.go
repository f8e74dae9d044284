package engine

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	tlsbpf "github.com/tlstap/tlstap/bpf"
	"github.com/tlstap/tlstap/internal/exchange"

	"github.com/tlstap/tlstap/internal/testenv"
)

// TestStartNotRoot re-runs this test binary as an unprivileged user: Start
// must fail with a message that says what to do, not a raw EPERM.
func TestStartNotRoot(t *testing.T) {
	if os.Getenv("TLSTAP_AS_NOBODY") == "1" {
		e, err := New(ungatedConfig(), nil, func(*exchange.Exchange) {})
		if err != nil {
			t.Fatal(err)
		}
		err = e.Start(context.Background())
		if err == nil {
			t.Fatal("Start succeeded without root")
		}
		os.Stdout.WriteString("START-ERROR: " + err.Error() + "\n")
		return
	}
	requireRoot(t)
	// The test binary lives in a root-only build directory: copy it where
	// nobody can execute it.
	dir, err := os.MkdirTemp("", "tlstap-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "engine.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", "^TestStartNotRoot$", "-test.v")
	cmd.Env = append(os.Environ(), "TLSTAP_AS_NOBODY=1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "START-ERROR: tlstap lacks capabilities CAP_BPF (load eBPF programs and maps), CAP_PERFMON (") || !strings.Contains(string(out), "CAP_SYS_PTRACE (") {
		t.Errorf("unexpected error from an unprivileged start:\n%s", out)
	}
}

// TestStartWithoutBTF: on a kernel without BTF, Start says so. The child
// runs in its own mount namespace where /sys/kernel/btf is an empty tmpfs,
// which is what such a kernel shows.
func TestStartWithoutBTF(t *testing.T) {
	if os.Getenv("TLSTAP_NO_BTF") == "1" {
		e, err := New(ungatedConfig(), nil, func(*exchange.Exchange) {})
		if err != nil {
			t.Fatal(err)
		}
		err = e.Start(context.Background())
		if err == nil {
			e.Shutdown(context.Background())
			t.Fatal("Start succeeded without kernel BTF")
		}
		os.Stdout.WriteString("START-ERROR: " + err.Error() + "\n")
		return
	}
	requireRoot(t)
	testenv.RequireCommand(t, "unshare")
	// unshare -m makes the new namespace's mounts private: the host keeps its BTF.
	cmd := exec.Command("unshare", "-m", "sh", "-c",
		`mount -t tmpfs tlstap-no-btf /sys/kernel/btf && exec "$0" -test.run '^TestStartWithoutBTF$' -test.v`, os.Args[0])
	cmd.Env = append(os.Environ(), "TLSTAP_NO_BTF=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "START-ERROR: kernel BTF not available") ||
		!strings.Contains(string(out), "CONFIG_DEBUG_INFO_BTF=y") {
		t.Errorf("unexpected error from a start without BTF:\n%s", out)
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Errorf("the host lost its BTF: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"negative body", func(c *Config) { c.MaxBodyBytes = -1 }, "max_body_bytes"},
		{"huge body", func(c *Config) { c.MaxBodyBytes = 1 << 30 }, "max_body_bytes"},
		{"ring not power of two", func(c *Config) { c.RingBufferSize = 5000 }, "ring_buffer_size"},
		{"ring too small", func(c *Config) { c.RingBufferSize = 1024 }, "ring_buffer_size"},
		{"unknown probe", func(c *Config) { c.TLSProbes = []string{"wolfssl"} }, "tls_probes"},
		{"none with others", func(c *Config) { c.TLSProbes = []string{"none", "openssl"} }, "tls_probes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
				t.Errorf("Validate() = %v, want an error naming %s", err, tc.field)
			}
		})
	}
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Errorf("default config invalid: %v", err)
	}
	if !c.probeEnabled(ProbeGnuTLS) || !c.probeEnabled(ProbeOpenSSL) || !c.probeEnabled(ProbeGo) {
		t.Errorf("default tls_probes = %v, want openssl, go and gnutls on", c.TLSProbes)
	}
	c.TLSProbes = []string{ProbeGnuTLS}
	if err := c.Validate(); err != nil {
		t.Errorf("tls_probes [gnutls]: %v", err)
	}
}

// TestShutdownDetachesEverything checks the kernel side after Shutdown: none
// of the programs and maps this engine loaded is left (by id, so engines of
// other processes on the host do not disturb the count).
func TestShutdownDetachesEverything(t *testing.T) {
	requireRoot(t)
	noGCWhileGating(t, DefaultConfig())
	e, err := New(ungatedConfig(), nil, func(*exchange.Exchange) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	objs := engineObjectsOf(t, e)
	spec, err := tlsbpf.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.progs) != len(spec.Programs) || len(objs.maps) < len(spec.Maps)-1 { // .rodata may be folded into constants
		t.Fatalf("%d of %d programs and %d of %d maps loaded", len(objs.progs), len(spec.Programs), len(objs.maps), len(spec.Maps))
	}
	ctx, cancel := context.WithTimeout(context.Background(), scaled(10*time.Second))
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	objs.waitReleased(t)
}

// engineObjects are the IDs of one engine's eBPF programs and maps.
type engineObjects struct {
	progs []ebpf.ProgramID
	maps  map[ebpf.MapID]string
}

func engineObjectsOf(t *testing.T, e *Engine) engineObjects {
	t.Helper()
	objs := engineObjects{maps: map[ebpf.MapID]string{}}
	for _, p := range e.kern.progs {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		objs.progs = append(objs.progs, id)
	}
	for name, m := range e.kern.maps.Maps {
		info, err := m.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		objs.maps[id] = name
	}
	return objs
}

// links counts the kernel's links to the engine's programs by link type,
// as the kernel lists them (uprobe_multi, perf-event, raw tracepoint).
func (objs engineObjects) links() map[link.Type]int {
	ours := map[ebpf.ProgramID]bool{}
	for _, id := range objs.progs {
		ours[id] = true
	}
	n := map[link.Type]int{}
	it := new(link.Iterator)
	for it.Next() {
		if info, err := it.Link.Info(); err == nil && ours[info.Program] {
			n[info.Type]++
		}
	}
	return n
}

// waitReleased fails unless every program and map is gone soon after
// Shutdown. A link (uprobe_multi, perf-event or tracepoint) holds its
// program, so a program gone means nothing is attached any more.
func (objs engineObjects) waitReleased(t *testing.T) {
	t.Helper()
	// The kernel frees maps and programs once their last reference goes,
	// some of it deferred past an RCU grace period; cilium/ebpf's memory
	// mappings of .rodata/.bss are released by a GC cleanup. Allow both.
	deadline := time.Now().Add(scaled(3 * time.Second))
	for {
		runtime.GC()
		var left []string
		for _, id := range objs.progs {
			if p, err := ebpf.NewProgramFromID(id); err == nil {
				p.Close()
				left = append(left, fmt.Sprintf("program %d", id))
			}
		}
		for id, name := range objs.maps {
			if m, err := ebpf.NewMapFromID(id); err == nil {
				m.Close()
				left = append(left, fmt.Sprintf("map %d (%s)", id, name))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still present %v after Shutdown: %v", scaled(3*time.Second), left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Probes on a file whose processes all exited are released (after
// probeRelease); the host's own libssl stays hooked.
func TestProbesReleasedAfterExit(t *testing.T) {
	requireRoot(t)
	noGCWhileGating(t, DefaultConfig())
	e, err := New(ungatedConfig(), nil, func(*exchange.Exchange) {})
	if err != nil {
		t.Fatal(err)
	}
	e.probeRelease = 300 * time.Millisecond
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	node, err := filepath.EvalSymlinks("/usr/bin/node")
	if err != nil {
		testenv.Missing(t, "no node: %v", err)
	}
	id, _ := statID(node)
	lib, _ := statID("/usr/lib/x86_64-linux-gnu/libssl.so.3")
	cmd := exec.Command(node, "-e", "setTimeout(() => {}, 60000)")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(scaled(10 * time.Second))
	for !e.kern.attached(id) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("node never hooked")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline = time.Now().Add(scaled(10 * time.Second))
	for e.kern.attached(id) {
		if time.Now().After(deadline) {
			t.Fatal("probes on node still attached 10 s after its only process exited")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !e.kern.attached(lib) {
		t.Error("the host's libssl was released; it must stay hooked")
	}
}
