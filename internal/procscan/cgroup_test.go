package procscan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestContainerIDFromCgroupFixtures(t *testing.T) {
	const (
		id  = "3f4e1c2b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"
		id2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	)
	want := map[string]string{
		"docker_v1.txt":             id,
		"docker_v1_systemd.txt":     id,
		"docker_v2.txt":             id,
		"kubepods_v1.txt":           id,
		"containerd_v1_systemd.txt": id,
		"containerd_v2.txt":         id,
		"crio_v1.txt":               id,
		"crio_v2.txt":               id,
		"podman_v1.txt":             id,
		"podman_v2.txt":             id,
		"docker_in_docker_v1.txt":   id2, // innermost container
		"hybrid_v1_v2.txt":          id,  // the v2 line wins
		"crio_conmon_v2.txt":        "",  // the monitor, not the container
		"podman_conmon_v2.txt":      "",
		"host_v1.txt":               "", // 32-hex job id is not a container
		"host_v2.txt":               "",
	}
	files, err := filepath.Glob("testdata/cgroup/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Errorf("%d fixtures on disk, %d expectations: keep them in sync", len(files), len(want))
	}
	for _, f := range files {
		name := filepath.Base(f)
		exp, ok := want[name]
		if !ok {
			t.Errorf("fixture %s has no expectation", name)
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := ContainerIDFromCgroup(b); got != exp {
			t.Errorf("%s: ContainerIDFromCgroup = %q, want %q", name, got, exp)
		}
	}
}

func TestContainerIDFromCgroupEdgeCases(t *testing.T) {
	const id = "3f4e1c2b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"
	for in, want := range map[string]string{
		"":                                  "",
		"garbage":                           "",
		"0::/":                              "",
		"0::/docker/" + id[:63]:             "", // too short
		"0::/docker/" + id + "0":            "", // too long
		"0::/docker/3F4E" + id[4:]:          "", // runtimes print lower case
		"0::/docker/" + id + "\n":           id, // trailing newline
		"0::/system.slice/docker-" + id:     id, // no .scope
		"1:name=systemd:/docker/" + id + "": id, // v1 only
	} {
		if got := ContainerIDFromCgroup([]byte(in)); got != want {
			t.Errorf("ContainerIDFromCgroup(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPodUIDFromCgroupFixtures(t *testing.T) {
	const uid = "0c8b2b1e-5b7e-4c6e-9f1a-2d3c4b5a6f70"
	want := map[string]string{
		"kubepods_v1.txt":           uid, // cgroupfs driver: pod<uid>
		"containerd_v1_systemd.txt": uid, // slice:cri-containerd:id in one element
		"containerd_v2.txt":         uid, // systemd driver: pod<uid_with_underscores>.slice
		"crio_v1.txt":               uid,
		"crio_v2.txt":               uid,
		"crio_conmon_v2.txt":        uid, // the monitor sits in the pod's slice
		"docker_v1.txt":             "",
		"docker_v1_systemd.txt":     "",
		"docker_v2.txt":             "",
		"docker_in_docker_v1.txt":   "",
		"hybrid_v1_v2.txt":          "",
		"podman_v1.txt":             "", // libpod-<id> is not a pod
		"podman_v2.txt":             "",
		"podman_conmon_v2.txt":      "",
		"host_v1.txt":               "",
		"host_v2.txt":               "",
	}
	files, err := filepath.Glob("testdata/cgroup/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Errorf("%d fixtures on disk, %d expectations: keep them in sync", len(files), len(want))
	}
	for _, f := range files {
		name := filepath.Base(f)
		exp, ok := want[name]
		if !ok {
			t.Errorf("fixture %s has no expectation", name)
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := PodUIDFromCgroup(b); got != exp {
			t.Errorf("%s: PodUIDFromCgroup = %q, want %q", name, got, exp)
		}
	}
}

func TestPodUIDFromCgroupEdgeCases(t *testing.T) {
	const (
		uid    = "0c8b2b1e-5b7e-4c6e-9f1a-2d3c4b5a6f70"
		us     = "0c8b2b1e_5b7e_4c6e_9f1a_2d3c4b5a6f70"
		static = "6d3b5c1e2f4a4b8c9d0e1f2a3b4c5d6e" // mirror pods: md5 of the manifest
		cid    = "3f4e1c2b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"
	)
	for in, want := range map[string]string{
		"":                                    "",
		"0::/":                                "",
		"0::/kubepods/pod" + uid + "/" + cid:  uid, // Guaranteed QoS: no class level
		"0::/kubepods/besteffort/pod" + uid:   uid, // the pause container's parent itself
		"0::/kubepods/burstable/pod" + static: static,
		"0::/kubepods.slice/kubepods-pod" + us + ".slice/cri-containerd-" + cid + ".scope": uid,
		"0::/kubepods/burstable/pod" + uid[:35] + "/" + cid:                                "", // too short
		"0::/kubepods/burstable/pod" + uid + "0/" + cid:                                    "", // too long
		"0::/kubepods/burstable/pod0C8B" + uid[4:] + "/" + cid:                             "", // the kubelet prints lower case
		"0::/kubepods/burstable/pod" + us[:8] + "-" + us[9:] + "/" + cid:                   "", // dashes where the UUID has none
		"0::/kubepods/burstable/pod" + uid + "\n":                                          uid,
		"0::/kubepods/burstable/pod" + strings.ReplaceAll(uid, "-", "x"):                   "",
		"0::/user.slice/user-1000.slice/session-2.scope":                                   "",
		"0::/system.slice/podman-pod.slice":                                                "",
		// the v2 line wins over v1 hierarchies
		"1:name=systemd:/kubepods/burstable/pod" + static + "\n0::/kubepods/burstable/pod" + uid: uid,
	} {
		if got := PodUIDFromCgroup([]byte(in)); got != want {
			t.Errorf("PodUIDFromCgroup(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzPodUIDFromCgroup: any input parses without panicking, and what comes
// out is a pod UID in API form found in the input.
func FuzzPodUIDFromCgroup(f *testing.F) {
	files, _ := filepath.Glob("testdata/cgroup/*.txt")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("0::/kubepods/pod0c8b2b1e-5b7e-4c6e-9f1a-2d3c4b5a6f70/x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		uid := PodUIDFromCgroup(b)
		if uid == "" {
			return
		}
		if !isUUID(uid) && !isHex(uid, 32) {
			t.Fatalf("PodUIDFromCgroup(%q) = %q: not a pod UID", b, uid)
		}
		if !strings.Contains(string(b), uid) && !strings.Contains(string(b), strings.ReplaceAll(uid, "-", "_")) {
			t.Fatalf("PodUIDFromCgroup(%q) = %q: not in the input", b, uid)
		}
	})
}
