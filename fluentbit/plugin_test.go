package main

import (
	"testing"

	"go.uber.org/zap"
)

// collect drains the queue into concatenated records and leaves it empty.
func TestCollect(t *testing.T) {
	p := newPlugin(pluginConfig{QueueSize: 16}, zap.NewNop())
	p.enc = newRecordEncoder("h", testOpts)
	if b := p.collect(); len(b) != 0 {
		t.Fatalf("empty queue gave %d bytes", len(b))
	}
	p.queue.push(clientExchange())
	p.queue.push(serverExchange())
	p.queue.push(clientExchange())
	_, maps := decodeRecords(t, p.collect())
	if len(maps) != 3 || maps[0]["span.kind"] != "client" || maps[1]["span.kind"] != "server" {
		t.Fatalf("%d records", len(maps))
	}
	if b := p.collect(); len(b) != 0 {
		t.Errorf("second collect gave %d bytes", len(b))
	}
	if p.records.Load() != 3 {
		t.Errorf("records counter %d", p.records.Load())
	}
}

// Without a running input the exported entry points are harmless.
func TestNoActivePlugin(t *testing.T) {
	if current() != nil {
		t.Fatal("a plugin is active in the unit tests")
	}
	if err := exitPlugin(); err != nil {
		t.Errorf("exit without init: %v", err)
	}
}

// A bad configuration never starts an engine.
func TestInitRejectsBadConfig(t *testing.T) {
	err := initPlugin(props(map[string]string{"max_body_bytes": "lots"}))
	if err == nil || current() != nil {
		t.Fatalf("init with a bad value: %v", err)
	}
	want := `invalid configuration: max_body_bytes: "lots" is not a size`
	if got := err.Error(); len(got) < len(want) || got[:len(want)] != want {
		t.Errorf("error %q, want prefix %q", got, want)
	}
}
