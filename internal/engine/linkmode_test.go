package engine

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tlstap/tlstap/internal/exchange"
)

const perProbeWarning = "uprobe_multi links unavailable; attaching one link per probe (slower attach and detach)"

// TestPerProbeLinks runs the attach path of kernels without uprobe_multi
// links (Linux < 6.6, e.g. Debian 12's 6.1): forced here by the engine's
// knob, and what every capture test takes inside the 6.1 VM of make
// test-kernel. With one perf-event link per probe the agent logs why,
// counts one link per probe (Stats.UprobeLinks, as the kernel lists them),
// captures curl (OpenSSL) calling a Go crypto/tls server on both sides, and
// Shutdown leaves no link, program or map behind. Start and Shutdown times
// are logged for the kernel matrix report.
func TestPerProbeLinks(t *testing.T) {
	requireRoot(t)
	core, logs := observer.New(zapcore.InfoLevel)
	logger := zap.New(zapcore.NewTee(zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel)).Core(), core))
	c := &capture{}
	e, err := New(ungatedConfig(), logger, c.add)
	if err != nil {
		t.Fatal(err)
	}
	e.perProbeLinks = true
	c.eng = e
	t0 := time.Now()
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	startTime := time.Since(t0)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			ctx, cancel := context.WithTimeout(context.Background(), scaled(10*time.Second))
			defer cancel()
			e.Shutdown(ctx)
		}
	})
	if n := logs.FilterMessage(perProbeWarning).Len(); n != 1 {
		t.Errorf("%d warnings %q, want 1", n, perProbeWarning)
	}

	files, _ := makeCert(t)
	bin := goBinary(t, "local", false)
	port := freePort(t)
	server := background(t, t.TempDir(), bin, "server", fmt.Sprintf("127.0.0.1:%d", port), files.cert, files.key)
	waitPort(t, port)
	c.waitHooked(t, bin)

	pid, out := run(t, "curl", "-sk", "-H", "X-Curl: 1", fmt.Sprintf("https://127.0.0.1:%d/r/7", port))
	if string(out) != "reply 7" {
		t.Fatalf("curl got %q", out)
	}
	cl := c.wait(t, pid, 1)[0]
	if cl.Role != exchange.RoleClient || cl.Conn.Source != "openssl" || cl.Request.Target != "/r/7" ||
		cl.Response == nil || cl.Response.StatusCode != 200 || string(cl.Response.Body) != "reply 7" ||
		cl.Conn.Remote.Port() != uint16(port) || cl.Process.ExeName != "curl" {
		t.Errorf("curl side: role %v source %q request %+v response %+v remote %v exe %q",
			cl.Role, cl.Conn.Source, cl.Request, cl.Response, cl.Conn.Remote, cl.Process.ExeName)
	}
	sv := c.wait(t, server.Process.Pid, 1)[0]
	checkGoExchange(t, sv, exchange.RoleServer, "/r/7", "reply 7")
	if header(sv.Request, "X-Curl") != "1" || sv.Conn.Local.Port() != uint16(port) || sv.Conn.Remote.Port() != cl.Conn.Local.Port() {
		t.Errorf("server side: headers %v local %v remote %v (curl local %v)", sv.Request.Headers, sv.Conn.Local, sv.Conn.Remote, cl.Conn.Local)
	}

	// One link per probe, counted by the engine and listed by the kernel.
	objs := engineObjectsOf(t, e)
	e.kern.mu.Lock()
	uprobes, goProbes, goLinks := e.kern.nUprobes, e.kern.uprobes[mustStatID(t, bin)].probes, len(e.kern.uprobes[mustStatID(t, bin)].links)
	e.kern.mu.Unlock()
	st := e.Stats()
	if goProbes < 2 || goLinks != goProbes {
		t.Errorf("Go binary: %d probes on %d links, want one link each", goProbes, goLinks)
	}
	if st.UprobeLinks != uint64(uprobes) || uprobes == 0 {
		t.Errorf("Stats.UprobeLinks %d, want %d (one per uprobe)", st.UprobeLinks, uprobes)
	}
	tracepoints := len(e.kern.links)
	if got := objs.links(); got[link.PerfEventType] != uprobes || got[link.UprobeMultiType] != 0 || got[link.RawTracepointType] != tracepoints {
		t.Errorf("kernel lists links to our programs by type %v, want %d perf-event (uprobes), %d raw tracepoint", got, uprobes, tracepoints)
	}

	// Per-probe links detach one kernel synchronisation at a time: ~0.1 s
	// per probe on a loaded host, which hooks every TLS program running
	// (87 probes took 9.7 s here under -race). The time is reported, the
	// bound only catches a hang.
	t1 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), scaled(60*time.Second))
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	stopped = true
	stopTime := time.Since(t1)
	if n := objs.links(); len(n) != 0 {
		t.Errorf("links to our programs left after Shutdown, by type: %v", n)
	}
	objs.waitReleased(t)
	t.Logf("per-probe links: Start %v, %d uprobes on %d links (+%d tracepoints), Shutdown %v",
		startTime.Round(time.Millisecond), uprobes, st.UprobeLinks, tracepoints, stopTime.Round(time.Millisecond))
}

// TestUprobeLinkMode: the engine attaches the way the running kernel
// allows, and says so: uprobe_multi (one link per program and file, fewer
// links than probes) where the kernel has it, one link per probe with a
// warning where it has not. In the 6.1 VM of make test-kernel this is the
// check that the fallback was taken for real, not forced.
func TestUprobeLinkMode(t *testing.T) {
	c, logs := startCaptureObserved(t, DefaultConfig())
	haveMulti := features.HaveBPFLinkUprobeMulti() == nil
	st := c.eng.Stats()
	c.eng.kern.mu.Lock()
	uprobes, multi := c.eng.kern.nUprobes, c.eng.kern.multi
	c.eng.kern.mu.Unlock()
	warned := logs.FilterMessage(perProbeWarning).Len()
	byType := engineObjectsOf(t, c.eng).links()
	t.Logf("uprobe_multi available: %v; %d uprobes on %d links; kernel links by type %v", haveMulti, uprobes, st.UprobeLinks, byType)
	logVerifierWork(t, c.eng.kern)
	if uprobes == 0 {
		t.Fatal("no uprobes attached at Start (the host's libssl is hooked up front)")
	}
	// The link types say how it attached: with one probe per program
	// (libssl alone) the counts are equal either way.
	multiLinks, perfLinks := uint64(byType[link.UprobeMultiType]), uint64(byType[link.PerfEventType])
	switch {
	case multi != haveMulti:
		t.Errorf("engine uses uprobe_multi=%v, kernel offers it: %v", multi, haveMulti)
	case haveMulti && (warned != 0 || perfLinks != 0 || multiLinks != st.UprobeLinks || st.UprobeLinks > uint64(uprobes)):
		t.Errorf("uprobe_multi: %d warnings, %d links for %d uprobes", warned, st.UprobeLinks, uprobes)
	case !haveMulti && (warned != 1 || multiLinks != 0 || perfLinks != uint64(uprobes) || st.UprobeLinks != uint64(uprobes)):
		t.Errorf("per-probe links: %d warnings, %d links for %d uprobes", warned, st.UprobeLinks, uprobes)
	}
}

// logVerifierWork logs how many instructions the kernel's verifier
// processed to accept the programs (Linux ≥ 5.16 reports it): the headroom
// left under its 1M-instruction limit, kernel by kernel.
func logVerifierWork(t *testing.T, k *kernel) {
	t.Helper()
	var total, most uint32
	var mostName string
	for name, p := range k.progs {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		n, ok := info.VerifiedInstructions()
		if !ok {
			t.Logf("%s: the kernel does not report verified instructions", name)
			return
		}
		total += n
		if n > most {
			most, mostName = n, name
		}
	}
	t.Logf("verifier: %d programs, %d instructions processed in all, most %d (%s)", len(k.progs), total, most, mostName)
}

func mustStatID(t *testing.T, path string) fileID {
	t.Helper()
	id, err := statID(path)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
