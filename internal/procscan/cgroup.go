package procscan

import (
	"strings"
)

// ContainerIDFromCgroup extracts a container ID from the contents of
// /proc/<pid>/cgroup, or returns "" when the process is not in a container
// this package recognises.
//
// Container runtimes name a container's cgroup after its 64-hex-digit ID,
// in one of these shapes depending on runtime and cgroup driver:
//
//	/docker/<id>                                      docker, cgroupfs driver
//	/system.slice/docker-<id>.scope                   docker, systemd driver
//	/kubepods/burstable/pod<uid>/<id>                 kubelet, cgroupfs driver
//	/kubepods.slice/.../cri-containerd-<id>.scope     containerd, systemd driver
//	/kubepods.slice/.../crio-<id>.scope               CRI-O
//	/machine.slice/libpod-<id>.scope                  podman
//	/system.slice/containerd.service/<pod>.slice:cri-containerd:<id>
//
// so the ID is found by looking, from the innermost path element outwards,
// for an element whose last "-" or ":" separated part is 64 hex digits.
// Innermost wins so that nested containers (docker in docker) report the
// container the process really runs in. The cgroup v2 line ("0::") is
// preferred over v1 hierarchies because on hybrid hosts it is the one the
// runtime manages.
func ContainerIDFromCgroup(b []byte) string {
	return fromCgroupFile(b, containerIDFromPath)
}

// fromCgroupFile applies find to each cgroup path of a /proc/<pid>/cgroup
// file: the v2 line ("0::") wins, else the first v1 hierarchy that yields
// a value.
func fromCgroupFile(b []byte, find func(path string) string) string {
	var v1 string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\n")
		// hierarchy-ID:controller-list:cgroup-path; the path may contain ':'.
		hier, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		_, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		v := find(path)
		if v == "" {
			continue
		}
		if hier == "0" {
			return v
		}
		if v1 == "" {
			v1 = v
		}
	}
	return v1
}

func containerIDFromPath(path string) string {
	elems := strings.Split(path, "/")
	for i := len(elems) - 1; i >= 0; i-- {
		if id := containerIDFromElem(elems[i]); id != "" {
			return id
		}
	}
	return ""
}

func containerIDFromElem(e string) string {
	e = strings.TrimSuffix(e, ".scope")
	// conmon, podman's and CRI-O's container monitor, lives in a scope
	// named after the container ("libpod-conmon-<id>.scope") but is not
	// part of it.
	if strings.Contains(e, "conmon") {
		return ""
	}
	if i := strings.LastIndexAny(e, "-:"); i >= 0 {
		e = e[i+1:]
	}
	if isHex64(e) {
		return e
	}
	return ""
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// PodUIDFromCgroup extracts the Kubernetes pod UID from the contents of
// /proc/<pid>/cgroup, or returns "" when the process is not in a pod's
// cgroup. Like ContainerIDFromCgroup it prefers the cgroup v2 line.
//
// The kubelet names a pod's cgroup after the pod UID, under its QoS class:
//
//	/kubepods/burstable/pod<uid>/<container>                      cgroupfs driver
//	/kubepods/pod<uid>/<container>                                cgroupfs, Guaranteed
//	/kubepods.slice/kubepods-burstable.slice/
//	    kubepods-burstable-pod<uid_with_underscores>.slice/...    systemd driver
//	/system.slice/containerd.service/
//	    kubepods-besteffort-pod<uid>.slice:cri-containerd:<id>    containerd, systemd, v1
//
// The systemd driver escapes the UID's "-" to "_" (a "-" in a slice name
// means nesting); the UID is returned in its API form, with "-". Static
// (mirror) pods have a 32-hex-digit UID instead of an RFC 4122 one.
func PodUIDFromCgroup(b []byte) string {
	return fromCgroupFile(b, podUIDFromPath)
}

// podUIDFromPath finds the innermost pod element of a cgroup path.
func podUIDFromPath(path string) string {
	elems := strings.Split(path, "/")
	for i := len(elems) - 1; i >= 0; i-- {
		// containerd's v1 systemd layout puts "slice:runtime:id" in one element.
		e, _, _ := strings.Cut(elems[i], ":")
		if uid := podUIDFromElem(e); uid != "" {
			return uid
		}
	}
	return ""
}

func podUIDFromElem(e string) string {
	e = strings.TrimSuffix(e, ".slice")
	// "pod<uid>" alone (cgroupfs) or after the last "-" (systemd slices).
	if i := strings.LastIndexByte(e, '-'); i >= 0 && strings.HasPrefix(e[i+1:], "pod") {
		e = e[i+1:]
	}
	uid, ok := strings.CutPrefix(e, "pod")
	if !ok {
		return ""
	}
	if strings.Contains(uid, "_") {
		if strings.Contains(uid, "-") {
			return "" // one escaping or the other, not both
		}
		uid = strings.ReplaceAll(uid, "_", "-")
	}
	if isUUID(uid) || isHex(uid, 32) {
		return uid
	}
	return ""
}

// isUUID reports whether s is a lower-case 8-4-4-4-12 hex UUID.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHexDigit(s[i]) {
				return false
			}
		}
	}
	return true
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHexDigit(s[i]) {
			return false
		}
	}
	return true
}

func isHexDigit(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }
