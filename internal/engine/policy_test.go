package engine

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/testenv"
)

// An excluded executable produces nothing: the kernel skips it (skip_tgids),
// while a process the rules do not name is still captured.
func TestExcludedProcessProducesNothing(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Policy.Filters.Exclude.Executables = []string{"curl"}
	c := startCapture(t, cfg)
	srv := startGoServer(t, true, echoHandler())
	dir := t.TempDir()
	curlPID, out := run(t, "curl", "-sk", fmt.Sprintf("https://127.0.0.1:%d/hello", srv.port))
	if string(out) != "hello world\n" {
		t.Fatalf("curl got %q", out)
	}
	pyPID, _ := run(t, "python3", writeFile(t, dir, "client.py", pyHTTPSClient), strconv.Itoa(srv.port), "/hello")
	// One ring buffer, read in order by one goroutine: curl's records, if
	// any got through, were read and its exchange decided before python's
	// exchange (made after curl exited) was emitted. No sleep needed.
	c.wait(t, pyPID, 1)
	if got := c.of(curlPID); len(got) != 0 {
		t.Errorf("excluded curl produced %d exchanges", len(got))
	}
	// The kernel skips curl once discovery has put its tgid in skip_tgids
	// (TestExcludedProcessSkippedInKernel); a curl faster than that is
	// dropped by the user-space filter. The count is host-wide (any curl
	// on the host is excluded), so it is only reported.
	t.Logf("user space filtered %d curl exchanges the kernel let through", c.eng.Stats().Policy.Filtered["executable"])
}

// The kernel side of process rules: an excluded process's tgid is in
// skip_tgids while it runs (so its calls are dropped before any work), and
// leaves the map when it exits.
func TestExcludedProcessSkippedInKernel(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Policy.Filters.Exclude.Executables = []string{"sleep"}
	c := startCapture(t, cfg)
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := uint32(cmd.Process.Pid)
	skip := c.eng.kern.maps.Maps["skip_tgids"]
	var v uint8
	deadline := time.Now().Add(10 * time.Second)
	for skip.Lookup(pid, &v) != nil {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("excluded sleep never entered skip_tgids")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline = time.Now().Add(10 * time.Second)
	for skip.Lookup(pid, &v) == nil {
		if time.Now().After(deadline) {
			t.Fatal("skip_tgids still holds the exited process")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Authorization and cookies never leave the engine in clear; signed query
// parameters and URL credentials neither.
func TestSecretsRedacted(t *testing.T) {
	c := startCapture(t, DefaultConfig())
	srv := startGoServer(t, true, echoHandler())
	const secret = "s3cr3t-t0ken-value"
	pid, _ := run(t, "curl", "-sk", "-H", "Authorization: Bearer "+secret, "-H", "Cookie: session="+secret,
		fmt.Sprintf("https://127.0.0.1:%d/hello?X-Amz-Signature=%s&keep=1", srv.port, secret))
	ex := c.wait(t, pid, 1)[0]
	if got := header(ex.Request, "Authorization"); got != "REDACTED" {
		t.Errorf("Authorization = %q", got)
	}
	if got := header(ex.Request, "Cookie"); got != "REDACTED" {
		t.Errorf("Cookie = %q", got)
	}
	if ex.Request.Target != "/hello?X-Amz-Signature=REDACTED&keep=1" {
		t.Errorf("target = %q", ex.Request.Target)
	}
	if strings.Contains(fmt.Sprintf("%+v %+v %+v", *ex.Request, *ex.Response, ex.Process), secret) {
		t.Errorf("the secret survives somewhere in the exchange (command line included)")
	}
	if ex.Process.CommandArgs[3] != "Authorization: REDACTED" {
		t.Errorf("command args %q", ex.Process.CommandArgs)
	}
}

// A sampled-out exchange is counted, not emitted.
func TestSampledOutIsCounted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Policy.Sampling.Ratio = 0
	c := startCapture(t, cfg)
	srv := startGoServer(t, true, echoHandler())
	pid, _ := run(t, "curl", "-sk", fmt.Sprintf("https://127.0.0.1:%d/r/[1-5]", srv.port))
	deadline := time.Now().Add(10 * time.Second)
	for c.eng.Stats().Policy.SampledOut < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("sampled out %d, want >= 5", c.eng.Stats().Policy.SampledOut)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := c.of(pid); len(got) != 0 {
		t.Errorf("%d sampled-out exchanges emitted", len(got))
	}
}

// container.id comes from a real cgroup: the test creates a cgroup v2 group
// named like docker's scope units, starts curl inside it and expects the
// 64-hex id on the exchange.
func TestContainerIDFromRealCgroup(t *testing.T) {
	requireRoot(t)
	base := "/sys/fs/cgroup/unified"
	if _, err := os.Stat(filepath.Join(base, "cgroup.procs")); err != nil {
		base = "/sys/fs/cgroup"
		if _, err := os.Stat(filepath.Join(base, "cgroup.subtree_control")); err != nil {
			testenv.Missing(t, "no cgroup v2 hierarchy mounted")
		}
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	id := hex.EncodeToString(raw)
	dir := filepath.Join(base, "tlstap-test.slice", "docker-"+id+".scope")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Remove(dir)
		os.Remove(filepath.Dir(dir))
	})
	c := startCapture(t, DefaultConfig())
	srv := startGoServer(t, true, echoHandler())
	// The shell moves itself into the group, then becomes curl.
	pid, out := run(t, "sh", "-c", fmt.Sprintf("echo $$ > %s/cgroup.procs && exec curl -sk https://127.0.0.1:%d/hello", dir, srv.port))
	if string(out) != "hello world\n" {
		t.Fatalf("curl got %q", out)
	}
	ex := c.wait(t, pid, 1)[0]
	if ex.Process.ContainerID != id || ex.Process.ExeName != "curl" {
		t.Errorf("process %+v, want container %s", ex.Process, id)
	}
}
