package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"gopkg.in/yaml.v3"
)

// testImage is what `make image-only` tags for the tests (not the release
// tag, so a test run does not overwrite an image a user built).
const testImage = "tlstap/tlstap-collector:e2e"

// TestImageCapturesHostAndContainer builds the container image with
// `make image`'s recipe and runs it the way the DaemonSet in
// deploy/kubernetes/tlstap.yaml runs it on a node: host PID namespace, the
// DaemonSet's capabilities (all dropped but the engine's minimal set), its
// seccomp profile and host mounts. It must capture (a) an HTTPS exchange
// of curl on the host and (b) one of curl in another container, a
// container made here from a root file system assembled from the host's
// curl and its libraries (docker import: no registry is needed), each
// with the right container.id. Then the same with --privileged; the
// image's default configuration (no arguments: debug exporter,
// health_check); and without CAP_SYS_PTRACE, which must refuse to start
// naming it.
func TestImageCapturesHostAndContainer(t *testing.T) {
	needRoot(t)
	requireDocker(t)
	root := repoRoot(t)
	collector := buildCollector(t, root)
	makeImage(t, root, collector)
	curlImage := importCurlImage(t)
	ds := daemonSetSettings(t, root)
	// Docker before 23.0 knows no CAP_BPF or CAP_PERFMON; CAP_SYS_ADMIN
	// stands in for both (the engine accepts it, as older kernels ask it).
	if out, err := exec.Command("docker", "run", "--rm", "--cap-add", "BPF", testImage, "--version").CombinedOutput(); err != nil &&
		strings.Contains(string(out), "unknown capability") {
		t.Logf("this Docker knows no CAP_BPF/CAP_PERFMON: CAP_SYS_ADMIN instead")
		ds.capAdd = legacyCaps(ds.capAdd)
	}

	dir := t.TempDir()
	certFile, keyFile := writeSelfSignedCert(t, dir)
	port := startHTTPSServer(t, dir, certFile, keyFile)
	base := fmt.Sprintf("https://127.0.0.1:%d", port)

	t.Run("daemonset settings", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		require.NoError(t, os.MkdirAll(out, 0o777))
		require.NoError(t, os.WriteFile(filepath.Join(out, "config.yaml"), []byte(fileConfig), 0o644))
		args := append([]string{"--pid=host", "--network=host", "-v", out + ":/out"}, ds.dockerArgs()...)
		// Arguments after the image replace its default command.
		name := runCollectorContainer(t, args, "--config", "/out/config.yaml")
		res := fileResults(filepath.Join(out, "otlp.json"))
		checkHostAndContainer(t, res, base, curlImage, name)
	})

	t.Run("privileged", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		require.NoError(t, os.MkdirAll(out, 0o777))
		require.NoError(t, os.WriteFile(filepath.Join(out, "config.yaml"), []byte(fileConfig), 0o644))
		args := append([]string{"--pid=host", "--network=host", "-v", out + ":/out"}, privilegedArgs(t)...)
		name := runCollectorContainer(t, args, "--config", "/out/config.yaml")
		checkHostAndContainer(t, fileResults(filepath.Join(out, "otlp.json")), base, curlImage, name)
	})

	t.Run("default config", func(t *testing.T) {
		// No arguments: the image's own configuration, debug exporter to
		// the container's log, health_check answering.
		health := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		args := append([]string{"--pid=host", "--network=host", "-e", "TLSTAP_DEBUG_VERBOSITY=detailed",
			"-e", "TLSTAP_HEALTH_ENDPOINT=" + health}, ds.dockerArgs()...)
		name := runCollectorContainer(t, args)
		resp, err := http.Get("http://" + health + "/")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 200, resp.StatusCode, "health_check")
		found := false
		deadline := time.Now().Add(90 * time.Second)
		for i := 0; !found && time.Now().Before(deadline); i++ {
			url := fmt.Sprintf("%s/hello/default/%d", base, i)
			curl(t, "-o", "/dev/null", url)
			for end := time.Now().Add(3 * time.Second); !found && time.Now().Before(end); {
				logs, _ := exec.Command("docker", "logs", name).CombinedOutput()
				found = bytes.Contains(logs, []byte("url.full: Str("+url+")"))
				time.Sleep(200 * time.Millisecond)
			}
		}
		assert.True(t, found, "the debug exporter printed no exchange of the host's curl")
	})

	t.Run("kubernetes pipeline validates", func(t *testing.T) {
		// The ConfigMap's pipeline, checked by the image's collector as the
		// DaemonSet would run it: every component must be in the
		// distribution and accept its settings. k8sattributes and the
		// k8snode detector build an API client from the pod's service
		// account, so the test gives them one (nothing contacts an API
		// server before the pipeline starts).
		dir := t.TempDir()
		sa := filepath.Join(dir, "serviceaccount")
		require.NoError(t, os.MkdirAll(sa, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(sa, "token"), []byte("e2e"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(sa, "namespace"), []byte("tlstap"), 0o644))
		caCert, _ := writeSelfSignedCert(t, dir)
		require.NoError(t, os.Rename(caCert, filepath.Join(sa, "ca.crt")))
		cfg := manifestPipeline(t, root)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.yaml"),
			[]byte(strings.Replace(cfg, "pod_association:", "pod_associations:", 1)), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o644))
		validate := func(file string, inCluster bool) (string, error) {
			args := []string{"run", "--rm", "-e", "POD_IP=127.0.0.1", "-e", "K8S_NODE_NAME=node-1", "-v", dir + ":/cfg:ro"}
			if inCluster {
				args = append(args, "-e", "KUBERNETES_SERVICE_HOST=127.0.0.1", "-e", "KUBERNETES_SERVICE_PORT=6443",
					"-v", sa+":/var/run/secrets/kubernetes.io/serviceaccount:ro")
			}
			out, err := exec.Command("docker", append(args, testImage, "validate", "--config", "/cfg/"+file)...).CombinedOutput()
			return string(out), err
		}
		out, err := validate("config.yaml", true)
		assert.NoError(t, err, "the ConfigMap's pipeline does not validate:\n%s", out)
		out, err = validate("bad.yaml", true)
		assert.Error(t, err, "a misspelt k8sattributes field validated")
		assert.Contains(t, out, "pod_associations")
		// And the processors do need the cluster: proof that they were built.
		out, err = validate("config.yaml", false)
		assert.Error(t, err)
		assert.Contains(t, out, "KUBERNETES_SERVICE_HOST")
	})

	t.Run("without CAP_SYS_PTRACE", func(t *testing.T) {
		var caps []string
		for _, c := range ds.capAdd {
			if c != "SYS_PTRACE" {
				caps = append(caps, "--cap-add", c)
			}
		}
		args := append([]string{"run", "--rm", "--pid=host", "--cap-drop", "ALL", "--security-opt", "seccomp=unconfined"}, caps...)
		out, err := exec.Command("docker", append(args, testImage)...).CombinedOutput()
		require.Error(t, err, "the collector started without CAP_SYS_PTRACE:\n%s", out)
		assert.Contains(t, string(out), "tlstap lacks capability CAP_SYS_PTRACE (")
		assert.Contains(t, string(out), "--cap-add SYS_PTRACE")
	})
}

const fileConfig = `receivers:
  tlstap:
    max_body_bytes: 4096
exporters:
  file:
    path: /out/otlp.json
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces: {receivers: [tlstap], exporters: [file]}
    logs: {receivers: [tlstap], exporters: [file]}
`

// checkHostAndContainer makes HTTPS requests from a host curl and from a
// curl container until both are captured, and checks the exchanges.
func checkHostAndContainer(t *testing.T, res *results, base, curlImage, agent string) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("docker", "logs", agent).CombinedOutput()
			t.Logf("agent container log:\n%s", tail(out, 60))
		}
	})
	tag := strings.NewReplacer("/", "-", " ", "-", ",", "").Replace(t.Name())
	// (a) curl on the host: probes attach asynchronously, so repeat.
	hostURL := ""
	var host *capturedSpan
	deadline := time.Now().Add(90 * time.Second)
	for i := 0; host == nil && time.Now().Before(deadline); i++ {
		hostURL = fmt.Sprintf("%s/hello/%s/host/%d", base, tag, i)
		curl(t, "-o", "/dev/null", hostURL)
		host = waitSpan(res, t, "curl", hostURL, 2*time.Second)
	}
	require.NotNil(t, host, "no exchange of the host's curl captured within 90s")
	checkSpan(t, host, hostURL, "")

	// (b) curl in its own container (host network, to reach the server on
	// 127.0.0.1). Each try is a new container and a new id.
	var ctr *capturedSpan
	var cid, ctrURL string
	deadline = time.Now().Add(90 * time.Second)
	for i := 0; ctr == nil && time.Now().Before(deadline); i++ {
		ctrURL = fmt.Sprintf("%s/hello/%s/container/%d", base, tag, i)
		cid = runCurlContainer(t, curlImage, ctrURL)
		ctr = waitSpan(res, t, "curl", ctrURL, 3*time.Second)
	}
	require.NotNil(t, ctr, "no exchange of the containerised curl captured within 90s")
	checkSpan(t, ctr, ctrURL, cid)
}

func waitSpan(res *results, t *testing.T, exe, url string, within time.Duration) *capturedSpan {
	deadline := time.Now().Add(within)
	for {
		res.load(t)
		if s := res.clientSpan(exe, url); s != nil {
			return s
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkSpan: the exact fields of curl's GET; container.id present and equal
// to cid for the containerised curl, absent for the host's.
func checkSpan(t *testing.T, s *capturedSpan, url, cid string) {
	t.Helper()
	attrs := s.span.Attributes()
	str := func(m pcommon.Map, k string) string {
		if v, ok := m.Get(k); ok {
			return v.AsString()
		}
		return "<absent>"
	}
	assert.Equal(t, "GET", s.span.Name())
	assert.Equal(t, "GET", str(attrs, "http.request.method"))
	assert.Equal(t, url, str(attrs, "url.full"))
	assert.Equal(t, "200", str(attrs, "http.response.status_code"))
	assert.Equal(t, "127.0.0.1", str(attrs, "server.address"))
	assert.Equal(t, "curl", str(s.resource, "process.executable.name"))
	got, ok := s.resource.Get("container.id")
	if cid == "" {
		if ok {
			t.Errorf("host curl carries container.id %q", got.AsString())
		}
	} else {
		assert.Equal(t, cid, got.AsString(), "container.id of the containerised curl")
	}
}

// runCollectorContainer starts the image detached with dockerArgs (before
// the image) and cmd (after it), waits for the collector to be ready and
// removes the container at cleanup. It returns the container's name.
func runCollectorContainer(t *testing.T, dockerArgs []string, cmd ...string) string {
	t.Helper()
	name := fmt.Sprintf("tlstap-e2e-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	args := append(append([]string{"run", "-d", "--name", name}, dockerArgs...), testImage)
	// Registered first: a container docker created but could not start
	// is removed too.
	t.Cleanup(func() { removeContainer(t, name) })
	out, err := exec.Command("docker", append(args, cmd...)...).CombinedOutput()
	require.NoError(t, err, "docker %s:\n%s", strings.Join(args, " "), out)
	deadline := time.Now().Add(90 * time.Second)
	for {
		logs, _ := exec.Command("docker", "logs", name).CombinedOutput()
		if bytes.Contains(logs, []byte("Everything is ready")) {
			return name
		}
		state, _ := exec.Command("docker", "inspect", "-f", "{{.State.Running}}", name).Output()
		if strings.TrimSpace(string(state)) == "false" || time.Now().After(deadline) {
			t.Fatalf("collector container not ready (running=%s):\n%s", bytes.TrimSpace(state), tail(logs, 60))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// removeContainer stops the collector (SIGTERM: it shuts down cleanly)
// and removes its container. Docker 20.10 refuses to remove a container
// whose process has exited but is not reaped yet ("is zombie and can not
// be killed"), seen on a loaded machine: removal is retried until then.
func removeContainer(t *testing.T, name string) {
	t.Helper()
	_ = exec.Command("docker", "stop", "-t", "10", name).Run()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := exec.Command("docker", "rm", "-f", name).CombinedOutput()
		if err == nil || bytes.Contains(out, []byte("No such container")) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("docker rm %s: %v\n%s", name, err, out)
			return
		}
		time.Sleep(time.Second)
	}
}

// runCurlContainer runs curl in a new container and returns its full id.
func runCurlContainer(t *testing.T, image, url string) string {
	t.Helper()
	cidFile := filepath.Join(t.TempDir(), "cid")
	out, err := exec.Command("docker", "run", "--rm", "--network=host", "--cidfile", cidFile,
		image, "/usr/bin/curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", url).CombinedOutput()
	require.NoError(t, err, "curl container: %s", out)
	require.Equal(t, "200", string(out))
	cid, err := os.ReadFile(cidFile)
	require.NoError(t, err)
	require.Len(t, string(cid), 64)
	return string(cid)
}

// makeImage runs `make image-only` with the collector just built.
func makeImage(t *testing.T, root, collector string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "-s", "image-only", "IMAGE="+testImage, "DEPLOY_BIN="+collector)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "make image-only:\n%s", out)
	// FROM scratch: the binary and the config, nothing else.
	out, err = exec.Command("docker", "image", "inspect", "-f", "{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{len .RootFS.Layers}}", testImage).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, `["/tlstap-collector"] ["--config","/etc/tlstap/config.yaml"] 2`, strings.TrimSpace(string(out)))
}

// importCurlImage assembles a root file system with the host's curl and
// the shared libraries it loads, and imports it as an image.
func importCurlImage(t *testing.T) string {
	t.Helper()
	const image = "tlstap-e2e-curl:1"
	curlPath, err := exec.LookPath("curl")
	require.NoError(t, err)
	rootfs := t.TempDir()
	out, err := exec.Command("ldd", curlPath).CombinedOutput()
	require.NoError(t, err, "ldd %s: %s", curlPath, out)
	files := []string{curlPath}
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				files = append(files, f)
			}
		}
	}
	for _, f := range files {
		real, err := filepath.EvalSymlinks(f)
		require.NoError(t, err)
		data, err := os.ReadFile(real)
		require.NoError(t, err)
		for _, dst := range []string{f, real} {
			dst = filepath.Join(rootfs, dst)
			require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
			require.NoError(t, os.WriteFile(dst, data, 0o755))
		}
	}
	// /usr/bin/curl must be where the command says.
	if curlPath != "/usr/bin/curl" {
		data, err := os.ReadFile(curlPath)
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Join(rootfs, "usr/bin"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(rootfs, "usr/bin/curl"), data, 0o755))
	}
	tar := exec.Command("tar", "-C", rootfs, "-c", ".")
	imp := exec.Command("docker", "import", "-", image)
	pipe, err := tar.StdoutPipe()
	require.NoError(t, err)
	imp.Stdin = pipe
	var impOut bytes.Buffer
	imp.Stdout, imp.Stderr = &impOut, &impOut
	require.NoError(t, imp.Start())
	require.NoError(t, tar.Run())
	require.NoError(t, imp.Wait(), "docker import: %s", impOut.String())
	return image
}

// daemonSet holds the settings of the DaemonSet's container that docker
// can reproduce.
type daemonSet struct {
	hostPID bool
	capDrop []string
	capAdd  []string
	seccomp string
	mounts  []string // host:container:ro
}

// legacyCaps replaces BPF and PERFMON by SYS_ADMIN.
func legacyCaps(caps []string) []string {
	out := []string{"SYS_ADMIN"}
	for _, c := range caps {
		if c != "BPF" && c != "PERFMON" {
			out = append(out, c)
		}
	}
	return out
}

func (d daemonSet) dockerArgs() []string {
	var a []string
	for _, c := range d.capDrop {
		a = append(a, "--cap-drop", c)
	}
	for _, c := range d.capAdd {
		a = append(a, "--cap-add", c)
	}
	if d.seccomp == "Unconfined" {
		a = append(a, "--security-opt", "seccomp=unconfined")
	}
	for _, m := range d.mounts {
		a = append(a, "-v", m)
	}
	return a
}

// daemonSetSettings reads the DaemonSet in deploy/kubernetes/tlstap.yaml
// (deploy/chartcheck keeps it equal to the Helm chart's render).
func daemonSetSettings(t *testing.T, root string) daemonSet {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "deploy", "kubernetes", "tlstap.yaml"))
	require.NoError(t, err)
	type mount struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	}
	var doc struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Template struct {
				Spec struct {
					HostPID    bool `yaml:"hostPID"`
					Containers []struct {
						SecurityContext struct {
							Capabilities struct {
								Add  []string `yaml:"add"`
								Drop []string `yaml:"drop"`
							} `yaml:"capabilities"`
							SeccompProfile struct {
								Type string `yaml:"type"`
							} `yaml:"seccompProfile"`
						} `yaml:"securityContext"`
						VolumeMounts []mount `yaml:"volumeMounts"`
					} `yaml:"containers"`
					Volumes []struct {
						Name     string `yaml:"name"`
						HostPath *struct {
							Path string `yaml:"path"`
						} `yaml:"hostPath"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		doc.Kind = ""
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("no DaemonSet in deploy/kubernetes/tlstap.yaml: %v", err)
		}
		if doc.Kind == "DaemonSet" {
			break
		}
	}
	spec := doc.Spec.Template.Spec
	require.Len(t, spec.Containers, 1)
	c := spec.Containers[0]
	d := daemonSet{hostPID: spec.HostPID, capDrop: c.SecurityContext.Capabilities.Drop,
		capAdd: c.SecurityContext.Capabilities.Add, seccomp: c.SecurityContext.SeccompProfile.Type}
	require.True(t, d.hostPID, "the DaemonSet does not use the host PID namespace")
	require.NotEmpty(t, d.capAdd)
	for _, v := range spec.Volumes {
		if v.HostPath == nil {
			continue
		}
		for _, m := range c.VolumeMounts {
			if m.Name == v.Name {
				s := v.HostPath.Path + ":" + m.MountPath
				if m.ReadOnly {
					s += ":ro"
				}
				d.mounts = append(d.mounts, s)
			}
		}
	}
	return d
}

// capNames are the kernel's capability numbers as Docker names them.
var capNames = []string{"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
	"SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
	"IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN",
	"SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
	"AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND",
	"AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"}

// privilegedArgs is --privileged, unless this host's capability bounding
// set lacks a capability the kernel has: runc then cannot give a
// privileged container all of them and refuses to start any ("unable to
// apply caps"; seen on sandboxed VMs without CAP_SYS_RESOURCE). There it
// is everything --privileged grants that the engine can use: every
// capability the host has, no seccomp filter, no AppArmor profile, no
// masked /proc and /sys paths.
func privilegedArgs(t *testing.T) []string {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	var bnd uint64
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			bnd, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			require.NoError(t, err, "CapBnd %q", v)
		}
	}
	lastRaw, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	require.NoError(t, err)
	last, err := strconv.Atoi(strings.TrimSpace(string(lastRaw)))
	require.NoError(t, err)
	var missing []string
	for c := 0; c <= last && c < len(capNames); c++ {
		if bnd&(1<<c) == 0 {
			missing = append(missing, capNames[c])
		}
	}
	if len(missing) == 0 {
		return []string{"--privileged"}
	}
	t.Logf("the host's bounding set lacks %v: no container can run --privileged here; "+
		"all other capabilities, unconfined seccomp, AppArmor and system paths instead", missing)
	args := []string{"--cap-add", "ALL", "--security-opt", "seccomp=unconfined",
		"--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined"}
	for _, c := range missing {
		args = append(args, "--cap-drop", c)
	}
	return args
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// manifestPipeline returns the collector configuration of the ConfigMap in
// deploy/kubernetes/tlstap.yaml.
func manifestPipeline(t *testing.T, root string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "deploy", "kubernetes", "tlstap.yaml"))
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		require.NoError(t, dec.Decode(&doc), "no ConfigMap in deploy/kubernetes/tlstap.yaml")
		if doc.Kind == "ConfigMap" {
			require.NotEmpty(t, doc.Data["config.yaml"])
			return doc.Data["config.yaml"]
		}
	}
}
