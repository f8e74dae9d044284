package engine

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/procscan"
)

// javaBenchRequests is the number of requests one round measures.
const javaBenchRequests = 5000

// BenchmarkJavaServer: the added cost per request of Java capture for a
// JVM server under load. A JDK HttpsServer answers keep-alive GETs back to
// back from a client in this process (which tlstap never captures, so only
// the JVM's side is instrumented).
//
// One iteration (b.N counts them: run with -benchtime Nx) is a pair of
// rounds of javaBenchRequests requests each: one with tlstap running and
// attached (on), one with no engine at all (off), in alternating order so
// that a drift of the machine's load weighs on both alike. Reported:
// x_off, the median over the pairs of on/off; on-ns/req and off-ns/req,
// the medians of the rounds; pristine-ns/req, one round before tlstap ever
// attached (off rounds run JSSE instrumented with its hook inert, so
// pristine/off is the cost of having been attached once).
//
//	make bench-java   (or go test -run '^$' -bench JavaServer -benchtime 9x ./internal/engine, as root)
func BenchmarkJavaServer(b *testing.B) {
	requireJava(b)
	dir := javaAgentDir(b)
	app := buildJavaApp(b)
	port := freePort(b)
	// nodelay: without it the JDK server's small writes meet the client's
	// delayed ACKs (Nagle), ~40 ms a request, and nothing else shows.
	server := app.start(b, 0, []string{"-Dsun.net.httpserver.nodelay=true"}, "server", strconv.Itoa(port), app.keystore, "changeit")
	url := fmt.Sprintf("https://127.0.0.1:%d/bench", port)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	get := func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		return err
	}
	// Back to back on one keep-alive connection: the JDK server with SSL
	// degrades to ~20 ms a request with concurrent connections even
	// without tlstap (its single dispatcher thread), which would hide
	// the cost measured here.
	round := func(n int) float64 {
		t0 := time.Now()
		for i := 0; i < n; i++ {
			if err := get(); err != nil {
				b.Fatal(err)
			}
		}
		return float64(time.Since(t0).Nanoseconds()) / float64(n)
	}
	var emitted atomic.Uint64 // exchanges of the server JVM
	// start runs an engine until the JVM is attached; a new connection
	// then starts under its eyes.
	start := func() *Engine {
		cfg := javaConfig(dir)
		cfg.ExecGate.Enabled = false // this process starts no program while measuring
		eng, err := New(cfg, nil, func(ex *exchange.Exchange) {
			if ex.Process.PID == server.pid() && ex.Response != nil && ex.Response.StatusCode == 200 {
				emitted.Add(1)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := eng.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(scaled(60 * time.Second))
		for eng.Stats().JVMsAttached < 1 {
			if time.Now().After(deadline) {
				b.Fatal("JVM not attached")
			}
			time.Sleep(20 * time.Millisecond)
		}
		tr.CloseIdleConnections()
		return eng
	}
	stop := func(eng *Engine) {
		ctx, cancel := context.WithTimeout(context.Background(), scaled(10*time.Second))
		defer cancel()
		if err := eng.Shutdown(ctx); err != nil {
			b.Fatal(err)
		}
		tr.CloseIdleConnections()
	}

	b.StopTimer()
	round(3000) // JIT-compile the server's request path
	pristine := round(javaBenchRequests)
	// The first attach retransforms JSSE, which drops its compiled code:
	// warm up again, attached.
	eng := start()
	round(3000)
	stop(eng)

	var on, off, ratio []float64
	b.StartTimer()
	for i := 0; i < b.N; i++ {
		var x, y float64
		if i%2 == 0 {
			y = round(javaBenchRequests)
		}
		eng := start()
		round(100) // the new connection's handshake, out of the measure
		x = round(javaBenchRequests)
		stop(eng)
		round(100)
		if i%2 == 1 {
			y = round(javaBenchRequests)
		}
		on, off, ratio = append(on, x), append(off, y), append(ratio, x/y)
	}
	b.StopTimer()
	// Every request of the on rounds is captured (the warm-up ones too).
	if want := uint64(b.N) * javaBenchRequests; emitted.Load() < want {
		b.Errorf("captured %d exchanges of the JVM, want at least %d", emitted.Load(), want)
	}
	b.ReportMetric(median(ratio), "x_off")
	b.ReportMetric(median(on), "on-ns/req")
	b.ReportMetric(median(off), "off-ns/req")
	b.ReportMetric(pristine, "pristine-ns/req")
	b.Logf("on/off per pair: %.3f", ratio)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkJavaCheckNoJVM: what the java probe adds to the discovery of a
// process that is not a JVM (the libjvm.so test on its maps), against
// the TLS scan every discovered process gets anyway (procscan's ScanTLS,
// which reads the same maps). The process is this test binary, linked
// with no TLS library: the cheapest scan, so x_scan is an upper bound.
func BenchmarkJavaCheckNoJVM(b *testing.B) {
	pid := uint32(os.Getpid())
	scan := procscan.New("/proc")
	if isJVM("/proc", pid) {
		b.Fatal("the test binary taken for a JVM")
	}
	var scanNs float64
	b.Run("scan", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, _, err := scan.ScanTLS(int(pid)); err != nil {
				b.Fatal(err)
			}
		}
		scanNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("java", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if isJVM("/proc", pid) {
				b.Fatal("the test binary taken for a JVM")
			}
		}
		if scanNs > 0 {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/scanNs, "x_scan")
		}
	})
}
