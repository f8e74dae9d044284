package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tlstap/tlstap/internal/testenv"
)

// TestDebPackageInstalls builds the .deb with `make package`'s recipe,
// installs it with dpkg into a throw-away root (its own dpkg database),
// checks every file against its source, runs the installed collector's
// `validate` on the installed configuration, and has systemd-analyze
// verify the installed unit inside that root (with the host's systemd
// units beside it: the unit's targets must exist).
func TestDebPackageInstalls(t *testing.T) {
	root := repoRoot(t)
	// make deps installs them (systemd for systemd-analyze).
	for _, bin := range []string{"dpkg", "dpkg-deb", "dpkg-query", "systemd-analyze"} {
		testenv.RequireCommand(t, bin)
	}
	testenv.RequireFile(t, "/usr/lib/systemd/system/multi-user.target")
	collector := buildCollector(t, root)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "dpkg", "--print-architecture").Output()
	require.NoError(t, err)
	arch := strings.TrimSpace(string(out))
	deb := filepath.Join(t.TempDir(), "tlstap-collector.deb")
	cmd := exec.CommandContext(ctx, "make", "-s", "package-only", "DEPLOY_BIN="+collector)
	cmd.Dir = root
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "make package-only:\n%s", out)
	built := filepath.Join(root, "build", "tlstap-collector_0.1.0~dev_"+arch+".deb")
	require.NoError(t, os.Rename(built, deb))

	// Control fields.
	out, err = exec.Command("dpkg-deb", "-f", deb, "Package", "Version", "Architecture").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "Package: tlstap-collector\nVersion: 0.1.0~dev\nArchitecture: "+arch+"\n", string(out))

	// A throw-away root with an empty dpkg database.
	inst := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log"} {
		require.NoError(t, os.MkdirAll(filepath.Join(inst, d), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(inst, "var/lib/dpkg/status"), nil, 0o644))
	out, err = exec.Command("dpkg", "--root="+inst, "--log=/dev/null", "-i", deb).CombinedOutput()
	require.NoError(t, err, "dpkg -i:\n%s", out)
	out, err = exec.Command("dpkg-query", "--root="+inst, "-W", "-f", "${Status} ${Version} ${Conffiles}", "tlstap-collector").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Regexp(t, `^install ok installed 0\.1\.0~dev\s+/etc/tlstap/config\.yaml [0-9a-f]{32}`, string(out))

	// Every file, byte for byte, with its mode.
	for _, f := range []struct {
		path, src string
		mode      os.FileMode
	}{
		{"usr/bin/tlstap-collector", collector, 0o755},
		{"etc/tlstap/config.yaml", filepath.Join(root, "deploy/config.yaml"), 0o644},
		{"lib/systemd/system/tlstap-collector.service", filepath.Join(root, "deploy/package/tlstap-collector.service"), 0o644},
	} {
		got, err := os.ReadFile(filepath.Join(inst, f.path))
		require.NoError(t, err)
		want, err := os.ReadFile(f.src)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(got, want), "%s differs from %s", f.path, f.src)
		st, err := os.Stat(filepath.Join(inst, f.path))
		require.NoError(t, err)
		assert.Equal(t, f.mode, st.Mode().Perm(), f.path)
	}

	// The installed binary accepts the installed configuration.
	out, err = exec.Command(filepath.Join(inst, "usr/bin/tlstap-collector"), "validate",
		"--config", filepath.Join(inst, "etc/tlstap/config.yaml")).CombinedOutput()
	assert.NoError(t, err, "validate:\n%s", out)

	// systemd-analyze verify in the root: the unit's targets come from the
	// host's systemd, copied beside it. Any output is a finding (it warns
	// about a bad setting and still exits 0).
	require.NoError(t, os.MkdirAll(filepath.Join(inst, "usr/lib/systemd"), 0o755))
	out, err = exec.Command("cp", "-a", "/usr/lib/systemd/system", filepath.Join(inst, "usr/lib/systemd/")).CombinedOutput()
	require.NoError(t, err, "copy the host's systemd units: %s", out)
	out, err = exec.Command("systemd-analyze", "verify", "--root="+inst, "tlstap-collector.service").CombinedOutput()
	assert.NoError(t, err, "systemd-analyze verify:\n%s", out)
	assert.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify")

	// And it does find a broken unit.
	broken := filepath.Join(inst, "lib/systemd/system/tlstap-broken.service")
	unit, _ := os.ReadFile(filepath.Join(inst, "lib/systemd/system/tlstap-collector.service"))
	require.NoError(t, os.WriteFile(broken, bytes.Replace(unit, []byte("/usr/bin/tlstap-collector"), []byte("/usr/bin/tlstap-missing"), 1), 0o644))
	out, _ = exec.Command("systemd-analyze", "verify", "--root="+inst, "tlstap-broken.service").CombinedOutput()
	assert.Contains(t, string(out), "/usr/bin/tlstap-missing is not executable")

	// Removal leaves the conffile (dpkg -r), purge removes it.
	out, err = exec.Command("dpkg", "--root="+inst, "--log=/dev/null", "-P", "tlstap-collector").CombinedOutput()
	require.NoError(t, err, "dpkg -P:\n%s", out)
	for _, f := range []string{"usr/bin/tlstap-collector", "etc/tlstap/config.yaml", "lib/systemd/system/tlstap-collector.service"} {
		_, err := os.Stat(filepath.Join(inst, f))
		assert.True(t, os.IsNotExist(err), "%s left after purge", f)
	}
}
