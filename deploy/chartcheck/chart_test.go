package chartcheck

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite deploy/kubernetes/tlstap.yaml from the chart")

const (
	chartDir     = "../helm/tlstap"
	manifestPath = "../kubernetes/tlstap.yaml"
	release      = "tlstap"
	namespace    = "tlstap"
)

// objects is what the chart renders, decoded.
type objects struct {
	daemonSet          *appsv1.DaemonSet
	configMap          *corev1.ConfigMap
	serviceAccount     *corev1.ServiceAccount
	clusterRole        *rbacv1.ClusterRole
	clusterRoleBinding *rbacv1.ClusterRoleBinding
	namespace          *corev1.Namespace
	docs               []string // the YAML documents, in order
}

// render renders the chart with its default values plus overrides.
func render(t *testing.T, overrides map[string]any) string {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	if err := ch.Validate(); err != nil {
		t.Fatalf("validate chart: %v", err)
	}
	vals, err := chartutil.ToRenderValues(ch, overrides, chartutil.ReleaseOptions{
		Name: release, Namespace: namespace, Revision: 1, IsInstall: true,
	}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	out, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatalf("render chart: %v", err)
	}
	var names []string
	for name, text := range out {
		if strings.HasSuffix(name, ".yaml") && strings.TrimSpace(text) != "" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", strings.TrimPrefix(name, "tlstap/"), strings.TrimSpace(out[name]))
	}
	return b.String()
}

// decode decodes every document strictly: an unknown or misplaced field
// is an error, as a kind this package does not expect.
func decode(t *testing.T, text string) objects {
	t.Helper()
	var o objects
	for _, doc := range releaseutil.SplitManifests(text) {
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("document %q: %v", doc, err)
		}
		if meta.APIVersion == "" && meta.Kind == "" && onlyComments(doc) {
			continue
		}
		var target any
		switch meta.APIVersion + " " + meta.Kind {
		case "apps/v1 DaemonSet":
			o.daemonSet = &appsv1.DaemonSet{}
			target = o.daemonSet
		case "v1 ConfigMap":
			o.configMap = &corev1.ConfigMap{}
			target = o.configMap
		case "v1 ServiceAccount":
			o.serviceAccount = &corev1.ServiceAccount{}
			target = o.serviceAccount
		case "v1 Namespace":
			o.namespace = &corev1.Namespace{}
			target = o.namespace
		case "rbac.authorization.k8s.io/v1 ClusterRole":
			o.clusterRole = &rbacv1.ClusterRole{}
			target = o.clusterRole
		case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
			o.clusterRoleBinding = &rbacv1.ClusterRoleBinding{}
			target = o.clusterRoleBinding
		default:
			t.Fatalf("unexpected object %s %s:\n%s", meta.APIVersion, meta.Kind, doc)
		}
		if err := strictDecode([]byte(doc), target); err != nil {
			t.Fatalf("%s: %v\n%s", meta.Kind, err, doc)
		}
		o.docs = append(o.docs, doc)
	}
	return o
}

func TestChartRendersValidObjects(t *testing.T) {
	o := decode(t, render(t, nil))
	if o.daemonSet == nil || o.configMap == nil || o.serviceAccount == nil || o.clusterRole == nil || o.clusterRoleBinding == nil {
		t.Fatalf("missing objects: %+v", o)
	}
	checkDaemonSet(t, o)
}

// checkDaemonSet: what the engine needs on a node, and what ties the
// objects together.
func checkDaemonSet(t *testing.T, o objects) {
	t.Helper()
	ds := o.daemonSet
	spec := ds.Spec.Template.Spec
	if !spec.HostPID {
		t.Error("hostPID is off: the agent would see only its own pod's processes")
	}
	if spec.HostNetwork {
		t.Error("hostNetwork is on: the capture needs none")
	}
	if spec.ServiceAccountName != o.serviceAccount.Name {
		t.Errorf("serviceAccountName %q, service account %q", spec.ServiceAccountName, o.serviceAccount.Name)
	}
	if len(spec.Tolerations) != 1 || spec.Tolerations[0].Operator != corev1.TolerationOpExists || spec.Tolerations[0].Key != "" {
		t.Errorf("tolerations %+v, want one that tolerates every taint", spec.Tolerations)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	if got := strings.Join(c.Args, " "); got != "--config /etc/tlstap/config.yaml" {
		t.Errorf("args %q", got)
	}
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("no securityContext.capabilities")
	}
	var add []string
	for _, c := range sc.Capabilities.Add {
		add = append(add, string(c))
	}
	if got := strings.Join(add, ","); got != "BPF,PERFMON,SYS_PTRACE" {
		t.Errorf("capabilities.add %s, want the engine's minimal set BPF,PERFMON,SYS_PTRACE", got)
	}
	if len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("capabilities.drop %v, want [ALL]", sc.Capabilities.Drop)
	}
	if sc.Privileged == nil || *sc.Privileged || sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		t.Errorf("privileged %v runAsUser %v: want an unprivileged container running as uid 0", sc.Privileged, sc.RunAsUser)
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeUnconfined {
		t.Errorf("seccompProfile %+v: the runtime default refuses bpf() without CAP_SYS_ADMIN", sc.SeccompProfile)
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("resources %+v: want requests and a memory limit", c.Resources)
	}

	// Probes on the health_check extension's port, which the pipeline opens
	// on the pod IP.
	var port int32
	for _, p := range c.Ports {
		if p.Name == "health" {
			port = p.ContainerPort
		}
	}
	for name, pr := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Port.String() != "health" || pr.HTTPGet.Path != "/" {
			t.Errorf("%s probe %+v, want GET / on port health", name, pr)
		}
	}
	cfg := pipeline(t, o.configMap)
	if want := fmt.Sprintf("${env:POD_IP}:%d", port); dig(cfg, "extensions", "health_check", "endpoint") != want {
		t.Errorf("health_check endpoint %v, want %s (the probes' port)", dig(cfg, "extensions", "health_check", "endpoint"), want)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if env["POD_IP"] != "status.podIP" || env["K8S_NODE_NAME"] != "spec.nodeName" {
		t.Errorf("env %v: the pipeline reads POD_IP and K8S_NODE_NAME", env)
	}

	// Pods are found by the ids the receiver sets, not by connection IP.
	assoc := fmt.Sprint(dig(cfg, "processors", "k8sattributes", "pod_association"))
	if !strings.Contains(assoc, "name:k8s.pod.uid") || !strings.Contains(assoc, "name:container.id") || strings.Contains(assoc, "connection") {
		t.Errorf("k8sattributes pod_association %s, want k8s.pod.uid then container.id", assoc)
	}
	for _, p := range []string{"traces", "logs"} {
		procs := fmt.Sprint(dig(cfg, "service", "pipelines", p, "processors"))
		if !strings.Contains(procs, "k8sattributes") || !strings.Contains(procs, "resourcedetection") {
			t.Errorf("%s pipeline processors %s", p, procs)
		}
	}
	if fmt.Sprint(dig(cfg, "service", "extensions")) != "[health_check]" {
		t.Errorf("service extensions %v", dig(cfg, "service", "extensions"))
	}

	// The config volume is the ConfigMap, mounted where args point.
	var cmVolume string
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == o.configMap.Name {
			cmVolume = v.Name
		}
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || m.Name == cmVolume && m.MountPath == "/etc/tlstap"
	}
	if cmVolume == "" || !mounted {
		t.Errorf("the ConfigMap %s is not mounted at /etc/tlstap", o.configMap.Name)
	}

	// RBAC: what k8sattributes and the k8snode detector read, read-only.
	if o.clusterRoleBinding.RoleRef.Name != o.clusterRole.Name || len(o.clusterRoleBinding.Subjects) != 1 ||
		o.clusterRoleBinding.Subjects[0].Name != o.serviceAccount.Name || o.clusterRoleBinding.Subjects[0].Namespace != o.serviceAccount.Namespace {
		t.Errorf("binding %+v does not bind %s to %s", o.clusterRoleBinding, o.clusterRole.Name, o.serviceAccount.Name)
	}
	granted := map[string]bool{}
	for _, r := range o.clusterRole.Rules {
		if strings.Join(r.Verbs, ",") != "get,list,watch" {
			t.Errorf("rule %+v: want read-only verbs", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				granted[g+"/"+res] = true
			}
		}
	}
	for _, want := range []string{"/pods", "/namespaces", "/nodes", "apps/replicasets"} {
		if !granted[want] {
			t.Errorf("ClusterRole does not grant %s", want)
		}
	}
}

// pipeline decodes the collector configuration in the ConfigMap.
func pipeline(t *testing.T, cm *corev1.ConfigMap) map[string]any {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatalf("ConfigMap config.yaml: %v", err)
	}
	return cfg
}

func dig(m any, path ...string) any {
	for _, p := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[p]
	}
	return m
}

// TestChartValuesOverride: values users set reach the objects.
func TestChartValuesOverride(t *testing.T) {
	o := decode(t, render(t, map[string]any{
		"image":             map[string]any{"repository": "registry.example/tlstap", "tag": "1.2.3"},
		"priorityClassName": "system-node-critical",
		"tolerations":       []any{},
		"config":            map[string]any{"exporters": map[string]any{"otlp": map[string]any{"endpoint": "gw:4317"}}},
	}))
	spec := o.daemonSet.Spec.Template.Spec
	if spec.Containers[0].Image != "registry.example/tlstap:1.2.3" || spec.PriorityClassName != "system-node-critical" || len(spec.Tolerations) != 0 {
		t.Errorf("image %s priorityClassName %q tolerations %v", spec.Containers[0].Image, spec.PriorityClassName, spec.Tolerations)
	}
	if dig(pipeline(t, o.configMap), "exporters", "otlp", "endpoint") != "gw:4317" {
		t.Errorf("config override lost: %s", o.configMap.Data["config.yaml"])
	}
	def := decode(t, render(t, nil))
	if o.daemonSet.Spec.Template.Annotations["checksum/config"] == def.daemonSet.Spec.Template.Annotations["checksum/config"] {
		t.Error("a changed pipeline does not change the pod template (no rollout)")
	}
}

const manifestHeader = `# tlstap as a DaemonSet, without Helm: kubectl apply -f deploy/kubernetes/tlstap.yaml
# Generated from deploy/helm/tlstap with its default values (release and
# namespace "tlstap") by ` + "`cd deploy/chartcheck && go test -update`" + `; do not edit.
---
apiVersion: v1
kind: Namespace
metadata:
  name: tlstap
`

// TestManifestIsChartRender: deploy/kubernetes/tlstap.yaml is the chart's
// render with default values plus the namespace, and decodes strictly.
func TestManifestIsChartRender(t *testing.T) {
	want := manifestHeader + render(t, nil)
	if *update {
		if err := os.WriteFile(manifestPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	o := decode(t, string(got))
	if o.namespace == nil || o.namespace.Name != namespace {
		t.Errorf("manifest namespace %+v, want %s", o.namespace, namespace)
	}
	checkDaemonSet(t, o)
	if !bytes.Equal(got, []byte(want)) {
		r := decode(t, want)
		if !reflect.DeepEqual(o.docs, r.docs) {
			t.Errorf("%s differs from the chart's render: run `cd deploy/chartcheck && go test -update`", filepath.Base(manifestPath))
		} else {
			t.Errorf("%s differs from the chart's render in comments or spacing: run `go test -update`", filepath.Base(manifestPath))
		}
	}
}

// strictDecode decodes a YAML object the way the API server's strict
// field validation does: field names case-sensitive, unknown and duplicate
// fields refused (encoding/json alone matches names case-insensitively).
func strictDecode(doc []byte, v any) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return fmt.Errorf("yaml: %w", err)
	}
	strict, err := kjson.UnmarshalStrict(j, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if len(strict) > 0 {
		return fmt.Errorf("strict decode: %v", strict)
	}
	return nil
}

func onlyComments(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// TestStrictDecodeRejects: the decoding above does fail on what the API
// server would reject or silently drop.
func TestStrictDecodeRejects(t *testing.T) {
	good := "apiVersion: apps/v1\nkind: DaemonSet\nspec:\n  template:\n    spec:\n      hostPID: true\n"
	var ds appsv1.DaemonSet
	if err := strictDecode([]byte(good), &ds); err != nil || !ds.Spec.Template.Spec.HostPID {
		t.Fatalf("good DaemonSet: %v", err)
	}
	for _, bad := range []string{
		strings.Replace(good, "hostPID", "hostPid", 1),                         // misspelt field
		strings.Replace(good, "hostPID: true", "hostPID: yes-please", 1),       // wrong type
		strings.Replace(good, "    spec:\n", "    spec:\n      spec: {}\n", 1), // misplaced
	} {
		if err := strictDecode([]byte(bad), &appsv1.DaemonSet{}); err == nil {
			t.Errorf("strict decode accepted:\n%s", bad)
		}
	}
}
