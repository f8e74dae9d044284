package engine

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/exchange"
)

// BenchmarkJavaServer: the added cost per request of Java capture for a
// JVM server under load. A JDK HttpsServer answers keep-alive GETs back to
// back from a client in this process (which tlstap never captures, so only
// the JVM's side is instrumented). The same JVM is measured without
// tlstap (off), attached and captured (on), and after tlstap stopped
// (detached: the instrumentation stays, the hook is inert). The on and
// detached cases report their ratio to off as x_off.
//
//	make bench-java   (or go test -run '^$' -bench JavaServer ./internal/engine, as root)
func BenchmarkJavaServer(b *testing.B) {
	requireJava(b)
	dir := javaAgentDir(b)
	app := buildJavaApp(b)
	port := freePort(b)
	// nodelay: without it the JDK server's small writes meet the client's
	// delayed ACKs (Nagle), ~40 ms a request, and nothing else shows.
	app.start(b, 0, []string{"-Dsun.net.httpserver.nodelay=true"}, "server", strconv.Itoa(port), app.keystore, "changeit")
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
	// Warm up: JIT-compile the server's request path before measuring.
	for i := 0; i < 3000; i++ {
		if err := get(); err != nil {
			b.Fatal(err)
		}
	}
	// Back to back on one keep-alive connection: the JDK server with SSL
	// degrades to ~20 ms a request with concurrent connections even
	// without tlstap (its single dispatcher thread), which would hide
	// the cost measured here.
	load := func(b *testing.B) float64 {
		t0 := time.Now()
		for i := 0; i < b.N; i++ {
			if err := get(); err != nil {
				b.Fatal(err)
			}
		}
		return float64(time.Since(t0).Nanoseconds()) / float64(b.N)
	}
	var off float64
	b.Run("off", func(b *testing.B) { off = load(b) })

	var eng *Engine
	b.Run("on", func(b *testing.B) {
		if eng == nil {
			var err error
			eng, err = New(javaConfig(dir), nil, func(*exchange.Exchange) {})
			if err != nil {
				b.Fatal(err)
			}
			if err := eng.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			deadline := time.Now().Add(60 * time.Second)
			for eng.Stats().JVMsAttached < 1 {
				if time.Now().After(deadline) {
					b.Fatal("JVM not attached")
				}
				time.Sleep(20 * time.Millisecond)
			}
			tr.CloseIdleConnections() // connections from here on are seen from their start
			// Retransforming JSSE drops its compiled code: warm up again.
			for i := 0; i < 2000; i++ {
				if err := get(); err != nil {
					b.Fatal(err)
				}
			}
		}
		ns := load(b)
		if off > 0 {
			b.ReportMetric(ns/off, "x_off")
		}
	})
	if eng != nil {
		st := eng.Stats()
		b.Logf("captured %d exchanges, %d events lost", st.ExchangesEmitted, st.EventsLost)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := eng.Shutdown(ctx); err != nil {
			b.Error(err)
		}
		cancel()
	}
	b.Run("detached", func(b *testing.B) {
		ns := load(b)
		if off > 0 {
			b.ReportMetric(ns/off, "x_off")
		}
	})
}
