package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestStopLogReportsLoss forces ring-buffer loss (a 4 KiB ring, 16 MiB
// downloads traced on both ends) and checks that the stop log reports it:
// the loss counters live in a kernel map, and the final Stats() runs after
// Shutdown has released the kernel side (it printed 0 before the engine
// kept a snapshot).
func TestStopLogReportsLoss(t *testing.T) {
	requireRoot(t)
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })}
	go srv.Serve(ln)
	defer srv.Close()
	url := fmt.Sprintf("http://%s/big", ln.Addr())

	err = initPlugin(props(map[string]string{
		"ring_buffer_size":    "4096",
		"include_executables": "curl," + filepath.Base(os.Args[0]),
	}))
	if err != nil {
		t.Fatal(err)
	}
	p := current()
	core, logs := observer.New(zap.InfoLevel)
	p.logger = zap.New(core)
	defer exitPlugin()

	var lost uint64
	for deadline := time.Now().Add(60 * time.Second); lost == 0 && time.Now().Before(deadline); {
		curl(t, "-s", "-o", "/dev/null", url)
		lost = p.eng.Stats().EventsLost
	}
	if lost == 0 {
		t.Fatal("no ring-buffer loss with a 4 KiB ring after 16 MiB downloads")
	}
	if err := exitPlugin(); err != nil {
		t.Fatal(err)
	}
	stopped := logs.FilterMessage("tlstap input stopped").All()
	if len(stopped) != 1 {
		t.Fatalf("%d stop logs", len(stopped))
	}
	f := stopped[0].ContextMap()
	if got, _ := f["ring_buffer_events_lost"].(uint64); got < lost {
		t.Errorf("stop log ring_buffer_events_lost = %v, but %d were lost while running", f["ring_buffer_events_lost"], lost)
	}
	if got, _ := f["bytes_lost"].(uint64); got == 0 {
		t.Errorf("stop log bytes_lost = %v after loss", f["bytes_lost"])
	}
	for _, k := range []string{"bytes_shed", "control_events_lost", "stream_gaps", "files_skipped", "jvm_attach_failures", "filtered", "sampled_out", "redacted"} {
		if _, ok := f[k]; !ok {
			t.Errorf("stop log lacks %s: %v", k, f)
		}
	}
	t.Logf("stop log: %v", f)
}
