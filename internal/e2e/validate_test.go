package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPipelineConfigsValidate runs `tlstap-collector validate` on every
// configuration in testdata/collector/ with none of their environment
// variables set: the defaults must make a valid configuration. Validation
// decodes every component's settings and runs its checks (OTTL statements
// included) without starting anything, so it needs no root.
func TestPipelineConfigsValidate(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the collector")
	}
	root := repoRoot(t)
	var configs []string
	err := filepath.WalkDir(filepath.Join(root, "testdata", "collector"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			configs = append(configs, p)
		}
		return err
	})
	require.NoError(t, err)
	for _, want := range []string{"default.yaml", "otlp.yaml", "files.yaml", "s3-bodies.yaml", "red-metrics.yaml"} {
		assert.Contains(t, configs, filepath.Join(root, "testdata", "collector", want))
	}

	collector := buildCollector(t, root)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TLSTAP_") {
			env = append(env, kv)
		}
	}
	for _, cfg := range configs {
		rel, _ := filepath.Rel(root, cfg)
		t.Run(rel, func(t *testing.T) {
			cmd := exec.Command(collector, "validate", "--config", cfg)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			assert.NoError(t, err, "%s:\n%s", rel, out)
		})
	}

	// And validate does reject a broken configuration.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte(`receivers:
  tlstap:
    max_body_bytes: lots
exporters:
  debug: {}
service:
  pipelines:
    logs: {receivers: [tlstap], exporters: [debug]}
`), 0o644))
	out, err := exec.Command(collector, "validate", "--config", bad).CombinedOutput()
	assert.Error(t, err, "validate accepted a broken configuration:\n%s", out)
	assert.Contains(t, string(out), "max_body_bytes")
}
