package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tlstap/tlstap/internal/attachpoint"

	"github.com/tlstap/tlstap/internal/testenv"
)

// TestSSLFreeProbeFires: the SSL_free probe, moved onto the `je` after the
// function's NULL check when libssl has one (Debian 12's libssl3), still
// runs once per freed SSL object: each curl run frees at least one.
func TestSSLFreeProbeFires(t *testing.T) {
	requireRoot(t)
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		testenv.Missing(t, "BPF run stats: %v", err)
	}
	defer stats.Close()
	for _, lib := range systemLibSSL() {
		pts, err := attachpoint.FindOpenSSL(lib)
		if err == nil {
			t.Logf("%s: SSL_free probe at entry+%d", lib, pts.Free-pts.Symbols["SSL_free"])
		}
	}
	c := startCapture(t, DefaultConfig())
	files, _ := makeCert(t)
	bin := goBinary(t, "local", true)
	port := freePort(t)
	background(t, t.TempDir(), bin, "server", fmt.Sprintf("127.0.0.1:%d", port), files.cert, files.key)
	waitPort(t, port)
	prog := c.eng.kern.progs["ssl_free_enter"]
	if prog == nil {
		t.Fatal("ssl_free_enter not loaded")
	}
	runs := func() uint64 {
		s, err := prog.Stats()
		if err != nil {
			t.Fatal(err)
		}
		return s.RunCount
	}
	before := runs()
	const n = 5
	for i := 0; i < n; i++ {
		if _, out := run(t, "curl", "-sk", fmt.Sprintf("https://127.0.0.1:%d/r/1", port)); string(out) != "reply 1" {
			t.Fatalf("curl got %q", out)
		}
	}
	deadline := time.Now().Add(scaled(2 * time.Second))
	for runs()-before < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := runs() - before; got < n {
		t.Errorf("ssl_free_enter ran %d times for %d curl runs", got, n)
	}
}
