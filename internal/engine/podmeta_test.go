package engine

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPodMetadataFromRealCgroups: k8s.pod.uid and container.id come from
// real cgroups laid out the way the kubelet and the container runtimes lay
// them out. The test creates the groups (v2 and v1 hierarchies), moves a
// shell into the leaf, which then becomes curl, and expects both ids on
// curl's HTTPS exchange.
func TestPodMetadataFromRealCgroups(t *testing.T) {
	requireRoot(t)
	v2 := cgroup2Root(t)
	c := startCapture(t, DefaultConfig())
	mux := http.NewServeMux()
	mux.Handle("/hello", echoHandler())
	// /slow keeps curl alive until the engine has read its /proc entry:
	// a v1-only layout is not in the exec record, only in /proc.
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(1500 * time.Millisecond)
		fmt.Fprint(w, "slow\n")
	})
	srv := startGoServer(t, true, mux)

	top := fmt.Sprintf("tlstap-test-k8s-%d", os.Getpid())
	cases := []struct {
		name string
		root string // hierarchy the groups are made in
		path func(uid, cid string) string
		url  string
		body string
	}{
		{"kubelet cgroupfs, containerd, v2", v2, func(uid, cid string) string {
			return filepath.Join("kubepods", "burstable", "pod"+uid, cid)
		}, "/hello", "hello world\n"},
		{"kubelet cgroupfs, Guaranteed, v2", v2, func(uid, cid string) string {
			return filepath.Join("kubepods", "pod"+uid, cid)
		}, "/hello", "hello world\n"},
		{"kubelet systemd, containerd, v2", v2, func(uid, cid string) string {
			us := strings.ReplaceAll(uid, "-", "_")
			return filepath.Join("kubepods.slice", "kubepods-burstable.slice",
				"kubepods-burstable-pod"+us+".slice", "cri-containerd-"+cid+".scope")
		}, "/hello", "hello world\n"},
		{"kubelet systemd, CRI-O, v2", v2, func(uid, cid string) string {
			us := strings.ReplaceAll(uid, "-", "_")
			return filepath.Join("kubepods.slice", "kubepods-besteffort.slice",
				"kubepods-besteffort-pod"+us+".slice", "crio-"+cid+".scope")
		}, "/hello", "hello world\n"},
		{"kubelet cgroupfs, v1 pids hierarchy", v1Hierarchy(t, "pids"), func(uid, cid string) string {
			return filepath.Join("kubepods", "besteffort", "pod"+uid, cid)
		}, "/slow", "slow\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			uid, cid := randomUUID(t), randomHex(t, 32)
			rel := tc.path(uid, cid)
			dir := filepath.Join(tc.root, top, rel)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				// Leaf first; the groups are empty once curl has exited. The
				// top group goes with the last case.
				for d := dir; strings.HasPrefix(d, filepath.Join(tc.root, top)); d = filepath.Dir(d) {
					os.Remove(d)
				}
			})
			// The shell moves itself into the group, then becomes curl.
			pid, out := run(t, "sh", "-c", fmt.Sprintf("echo $$ > %s/cgroup.procs && exec curl -sk https://127.0.0.1:%d%s", dir, srv.port, tc.url))
			if string(out) != tc.body {
				t.Fatalf("curl got %q", out)
			}
			ex := c.waitFor(t, pid, tc.url, 15*time.Second)
			p := ex.Process
			if p.PodUID != uid || p.ContainerID != cid || p.ExeName != "curl" {
				t.Errorf("cgroup %s: process %+v\nwant k8s.pod.uid %s, container.id %s, curl", rel, p, uid, cid)
			}
			if ex.Response == nil || ex.Response.StatusCode != 200 || method(ex) != "GET" {
				t.Errorf("exchange %s %s -> %+v", method(ex), target(ex), ex.Response)
			}
		})
	}
}

// v1Hierarchy returns where the cgroup v1 hierarchy of controller is
// mounted (hybrid hosts).
func v1Hierarchy(t *testing.T, controller string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		pre, post, ok := strings.Cut(strings.TrimSpace(line), " - ")
		f, p := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(p) < 3 || p[0] != "cgroup" {
			continue
		}
		for _, o := range strings.Split(p[2], ",") {
			if o == controller {
				return f[4]
			}
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("no cgroup v1 %s hierarchy mounted", controller)
	}
	t.Skipf("no cgroup v1 %s hierarchy mounted", controller)
	return ""
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func randomUUID(t *testing.T) string {
	h := randomHex(t, 16)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
