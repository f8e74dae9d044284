package engine

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tlstap/tlstap/internal/exchange"
)

// javaTlstapEnv makes the test binary a tlstap of its own (see
// TestJavaTlstapHelper): the agent dir to use.
const javaTlstapEnv = "TLSTAP_TEST_JAVA_TLSTAP"

// TestJavaTlstapHelper is not a test: TestJavaLeaseAfterKill re-runs this
// binary as a tlstap process it can SIGKILL. It prints "attached" once it
// attached to a JVM, and waits.
func TestJavaTlstapHelper(t *testing.T) {
	dir := os.Getenv(javaTlstapEnv)
	if dir == "" {
		t.Skip("helper process for TestJavaLeaseAfterKill")
	}
	cfg := javaConfig(dir)
	cfg.ExecGate.Enabled = false // this process only waits to be killed
	eng, err := New(cfg, zap.NewNop(), func(*exchange.Exchange) {})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if err := eng.Start(context.Background()); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	for eng.Stats().JVMsAttached < 1 {
		if eng.Stats().JVMAttachFailed > 0 {
			fmt.Println("error: attach failed")
			os.Exit(1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println("attached")
	select {}
}

// TestJavaLeaseAfterKill: tlstap (a child process) attached to an
// HttpsServer JVM is SIGKILLed, so it never sends the stop command. The
// hook finds the lease lock released at its next check (at most a second
// after, at the next request) and turns inert: the JVM keeps serving, its
// agent writes no more records, the lease file is gone, and no thread of
// ours runs in it.
func TestJavaLeaseAfterKill(t *testing.T) {
	requireJava(t)
	dir := javaAgentDir(t)
	app := buildJavaApp(t)
	port := freePort(t)
	server := app.start(t, 65534, nil, "server", strconv.Itoa(port), app.keystore, "changeit")
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	get := func(path string) {
		t.Helper()
		if _, out := run(t, "curl", "-sk", "--max-time", "60", base+path); string(out) != "hello "+path {
			t.Fatalf("server replied %q to %s", out, path)
		}
	}

	tlstap := exec.Command(os.Args[0], "-test.run", "^TestJavaTlstapHelper$")
	tlstap.Env = append(os.Environ(), javaTlstapEnv+"="+dir)
	tlstap.Stderr = os.Stderr
	stdout, err := tlstap.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tlstap.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			tlstap.Process.Kill()
			tlstap.Wait()
		}
	})
	lines := make(chan string, 1)
	go func() { l, _ := bufio.NewReader(stdout).ReadString('\n'); lines <- l }()
	select {
	case l := <-lines:
		if l != "attached\n" {
			t.Fatalf("tlstap child said %q", l)
		}
	case <-time.After(scaled(120 * time.Second)):
		t.Fatal("tlstap child did not attach within 120s")
	}

	// Attached: requests make records, and the lease file is there.
	live := agentStatus(t, dir, server.pid())
	lease := live["lease"]
	if live["active"] != "1" || !strings.HasPrefix(lease, "/tmp/.tlstap-lease-") {
		t.Fatalf("agent status while tlstap lives: %v", live)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(server.pid()) + "/root" + lease); err != nil {
		t.Fatalf("lease file: %v", err)
	}
	get("/while-alive")
	if st := agentStatus(t, dir, server.pid()); recordsOf(t, st) <= recordsOf(t, live) || st["active"] != "1" {
		t.Fatalf("no records while tlstap lives: before %v after %v", live, st)
	}

	if err := tlstap.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	tlstap.Wait()
	killedAt := time.Now()

	// The hook checks the lease at most once a second, on the thread of a
	// request: keep requests coming until it has noticed.
	var inert map[string]string
	for deadline := time.Now().Add(scaled(30 * time.Second)); ; {
		get("/after-kill")
		inert = agentStatus(t, dir, server.pid())
		if inert["active"] == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent still active %v after tlstap was killed: %v", time.Since(killedAt), inert)
		}
	}
	t.Logf("inert %v after the kill", time.Since(killedAt))
	if inert["lease_expired"] != "1" || inert["lease"] != "" || inert["errors"] != "0" {
		t.Errorf("agent status after the lease expired: %v", inert)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(server.pid()) + "/root" + lease); !os.IsNotExist(err) {
		t.Errorf("lease file left after it expired: %v", err)
	}
	for i := 0; i < 3; i++ {
		get("/inert")
	}
	if after := agentStatus(t, dir, server.pid()); after["records"] != inert["records"] || after["active"] != "0" {
		t.Errorf("agent wrote records after its lease expired: at expiry %v, later %v", inert, after)
	}
	if out, err := exec.Command("jcmd", strconv.Itoa(server.pid()), "Thread.print").CombinedOutput(); err != nil {
		t.Errorf("jcmd Thread.print: %v\n%s", err, out)
	} else if strings.Contains(strings.ToLower(string(out)), "tlstap") {
		t.Errorf("a tlstap thread runs in the JVM:\n%s", out)
	}
	if s := server.stderr.String(); s != "" {
		t.Errorf("the server JVM printed %q", s)
	}
}

func recordsOf(t *testing.T, status map[string]string) int {
	t.Helper()
	n, err := strconv.Atoi(status["records"])
	if err != nil {
		t.Fatalf("agent status records %q: %v", status["records"], err)
	}
	return n
}
