package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/testenv"
)

// TestFirstRunChroot: a static Go HTTPS client copied into a root file
// system of its own and run once there — through chroot, and through a
// new mount namespace (unshare -m) that bind-mounts that root elsewhere
// and chroots into the bind mount — is captured from its first request.
// The gate's marks are per file system, so a chroot or a bind mount of a
// marked file system is gated from its first exec.
func TestFirstRunChroot(t *testing.T) {
	requireRoot(t)
	for _, cmd := range []string{"chroot", "unshare", "mount", "sh"} {
		testenv.RequireCommand(t, cmd)
	}
	srv := startGoServer(t, true, echoHandler())
	bin := goBinary(t, "local", true)
	c := startCapture(t, gateConfig())
	url := fmt.Sprintf("https://127.0.0.1:%d/r", srv.port)
	for _, tc := range []struct {
		name string
		argv func(root string) []string
	}{
		{"chroot", func(root string) []string { return []string{"chroot", root, "/bin/client", "client", url, "1"} }},
		{"unshare-bind-chroot", func(root string) []string {
			mnt := t.TempDir()
			// sh execs chroot, which execs the client: the pid stays the
			// one run returns.
			return []string{"unshare", "-m", "--propagation", "private", "sh", "-c",
				fmt.Sprintf("mount --bind %s %s && exec chroot %s /bin/client client %s 1", root, mnt, mnt, url)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.Mkdir(filepath.Join(root, "bin"), 0o755); err != nil {
				t.Fatal(err)
			}
			copyInto(t, bin, filepath.Join(root, "bin", "client"))
			argv := tc.argv(root)
			pid, out := run(t, argv[0], argv[1:]...)
			if strings.TrimSpace(string(out)) != strconv.Itoa(len("reply 1")) {
				t.Fatalf("client printed %q", out)
			}
			ex := c.wait(t, pid, 1)[0]
			if ex.Process.PID != pid || ex.Process.ExeName != "client" {
				t.Errorf("process pid=%d name=%q, want pid=%d name=client", ex.Process.PID, ex.Process.ExeName, pid)
			}
			if ex.Role != exchange.RoleClient || ex.Request == nil || ex.Request.Method != "GET" || ex.Request.Target != "/r/1" ||
				header(ex.Request, "X-Go-Client") != "yes" {
				t.Fatalf("exchange %v %+v, want client GET /r/1", ex.Role, ex.Request)
			}
			if ex.Response == nil || ex.Response.StatusCode != 200 || string(ex.Response.Body) != "reply 1" {
				t.Errorf("response %+v", ex.Response)
			}
			if !ex.Conn.TLS || ex.Conn.Source != "go" || ex.Conn.Remote.Port() != uint16(srv.port) {
				t.Errorf("conn %+v", ex.Conn)
			}
		})
	}
}

// copyInto copies src to the new file dst (a new inode).
func copyInto(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// fexecvePy runs the file named by argv[1] from a descriptor: with
// "memfd", from a memfd holding a copy of it; with "deleted", from the file
// itself, unlinked before the exec. argv[2:] are the program's arguments.
const fexecvePy = `
import os, sys
mode, path, args = sys.argv[1], sys.argv[2], sys.argv[3:]
if mode == "memfd":
    fd = os.memfd_create("tlstap-test", 0)
    with open(path, "rb") as f:
        os.write(fd, f.read())
else:
    fd = os.open(path, os.O_RDONLY)
    os.unlink(path)
os.execve(fd, args, dict(os.environ))
`

// TestFirstRunFromDescriptor: a Go HTTPS client whose file was deleted
// before its exec (run through its descriptor) is still gated, hooked and
// captured from its one request: the event carries the file itself. A
// memfd executable cannot be gated (no mark on memfds): the exec runs and
// is counted in execs_ungated.
func TestFirstRunFromDescriptor(t *testing.T) {
	requireRoot(t)
	py := testenv.RequireCommand(t, "python3")
	srv := startGoServer(t, true, echoHandler())
	bin := goBinary(t, "local", true)
	c := startCapture(t, gateConfig())
	script := writeFile(t, t.TempDir(), "fexecve.py", fexecvePy)
	url := fmt.Sprintf("https://127.0.0.1:%d/r", srv.port)

	t.Run("deleted", func(t *testing.T) {
		exe := freshCopy(t, bin, "deleted-client")
		pid, out := run(t, py, script, "deleted", exe, "client", "client", url, "1")
		if strings.TrimSpace(string(out)) != strconv.Itoa(len("reply 1")) {
			t.Fatalf("client printed %q", out)
		}
		ex := c.wait(t, pid, 1)[0]
		if ex.Process.PID != pid || ex.Role != exchange.RoleClient || ex.Request == nil || ex.Request.Target != "/r/1" ||
			ex.Response == nil || string(ex.Response.Body) != "reply 1" || ex.Conn.Remote.Port() != uint16(srv.port) {
			t.Errorf("pid %d: %v %+v %+v", pid, ex.Role, ex.Request, ex.Conn)
		}
	})
	t.Run("memfd", func(t *testing.T) {
		before := c.eng.Stats().ExecsUngated
		sleep, err := filepath.EvalSymlinks(testenv.RequireCommand(t, "sleep"))
		if err != nil {
			t.Fatal(err)
		}
		// Alive long enough for the exec record to be looked at.
		run(t, py, script, "memfd", sleep, "sleep", "1")
		deadline := time.Now().Add(scaled(10 * time.Second))
		for c.eng.Stats().ExecsUngated == before {
			if time.Now().After(deadline) {
				t.Fatalf("a memfd exec was not counted in execs_ungated (%d)", before)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
