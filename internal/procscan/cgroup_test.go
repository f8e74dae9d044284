package procscan

import (
	"os"
	"path/filepath"
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
