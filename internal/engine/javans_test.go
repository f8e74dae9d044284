package engine

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/jvmattach"
	"github.com/tlstap/tlstap/internal/testenv"
)

// TestJavaOtherNamespaces: an HttpsServer JVM in mount and pid namespaces
// of its own, with a private /tmp (as in a container, sharing the host's
// network), is attached through /proc/<pid>/root (the agent jar copied
// into its /tmp, the attach socket and trigger named by its own pid) and
// its exchanges with curl on the host are captured with the JVM's host pid.
func TestJavaOtherNamespaces(t *testing.T) {
	requireJava(t)
	testenv.RequireCommand(t, "unshare")
	dir := javaAgentDir(t)
	app := buildJavaApp(t)
	port := freePort(t)
	java, err := exec.LookPath("java")
	if err != nil {
		t.Fatal(err)
	}
	// The application directory is bound to /mnt before a new tmpfs hides
	// the host's /tmp (where it lives); sh stays pid 1 of the namespace.
	script := fmt.Sprintf(`mount --bind %s /mnt && mount -t tmpfs tlstap-jvm-tmp /tmp && cd /mnt && %s -Xshare:auto -XX:TieredStopAtLevel=1 -cp /mnt TlsApp server %d /mnt/%s changeit`,
		app.dir, java, port, filepath.Base(app.keystore))
	cmd := exec.Command("unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private", "sh", "-c", script)
	j := startJVM(t, cmd)
	j.host = jvmUnder(t, cmd.Process.Pid)
	if self, _ := os.Readlink("/proc/self/ns/mnt"); self == mustReadlink(t, fmt.Sprintf("/proc/%d/ns/mnt", j.host)) {
		t.Fatal("the JVM shares the test's mount namespace")
	}
	tg, err := jvmattach.Inspect("/proc", j.host)
	if err != nil {
		t.Fatal(err)
	}
	if tg.NSPID == j.host {
		t.Fatalf("the JVM's pid %d is the same in its namespace", j.host)
	}

	c := startCapture(t, javaConfig(dir))
	c.waitAttached(t, 1)
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	curlPID, out := run(t, "curl", "-sk", "--max-time", "60", "--http1.1", "-H", "X-Test: java-ns", base+"/in-namespace?n=1")
	if string(out) != "hello /in-namespace" {
		t.Fatalf("server replied %q", out)
	}
	sv := c.findExchange(t, j.host, "/in-namespace?n=1")
	if sv.Role != exchange.RoleServer || sv.Request.Method != "GET" || header(sv.Request, "X-Test") != "java-ns" {
		t.Errorf("server exchange %v %+v", sv.Role, sv.Request)
	}
	if sv.Response == nil || sv.Response.StatusCode != 200 || string(sv.Response.Body) != "hello /in-namespace" {
		t.Fatalf("server response %+v", sv.Response)
	}
	if sv.Process.PID != j.host || sv.Process.ExeName != "java" || sv.Conn.Source != ProbeJava || !sv.Conn.TLS {
		t.Errorf("process %+v conn %+v", sv.Process, sv.Conn)
	}
	cl := c.findExchange(t, curlPID, "/in-namespace?n=1")
	if sv.Conn.Local.String() != fmt.Sprintf("127.0.0.1:%d", port) || sv.Conn.Remote != cl.Conn.Local {
		t.Errorf("addresses: server %v <- %v, curl %v", sv.Conn.Local, sv.Conn.Remote, cl.Conn.Local)
	}
	// The agent was copied into the JVM's own /tmp, not read from ours.
	copies, _ := filepath.Glob(fmt.Sprintf("/proc/%d/root/tmp/tlstap-java-*/%s", j.host, agentJar))
	if len(copies) != 1 {
		t.Errorf("agent jar copies in the JVM's /tmp: %v", copies)
	}
}

// jvmUnder finds the java process under pid (unshare, then sh).
func jvmUnder(t *testing.T, pid int) int {
	t.Helper()
	deadline := time.Now().Add(scaled(30 * time.Second))
	for {
		todo := []int{pid}
		for len(todo) > 0 {
			p := todo[0]
			todo = todo[1:]
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); strings.TrimSpace(string(comm)) == "java" {
				return p
			}
			kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p, p))
			for _, k := range strings.Fields(string(kids)) {
				if n, err := strconv.Atoi(k); err == nil {
					todo = append(todo, n)
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no java process under %d", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustReadlink(t *testing.T, path string) string {
	t.Helper()
	s, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
