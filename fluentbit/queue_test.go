package main

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tlstap/tlstap/internal/exchange"
)

func numbered(i int) *exchange.Exchange {
	return &exchange.Exchange{Conn: exchange.Conn{ID: uint64(i)}}
}

// Drop-newest: a full queue keeps what it holds, in order, and counts every
// exchange it refused.
func TestQueueDropsNewestAndCounts(t *testing.T) {
	q := newQueue(4, nil)
	for i := 0; i < 10; i++ {
		ok := q.push(numbered(i))
		if ok != (i < 4) {
			t.Errorf("push %d = %v", i, ok)
		}
	}
	if q.Dropped() != 6 || q.pushed.Load() != 4 || q.Len() != 4 {
		t.Fatalf("dropped %d pushed %d len %d", q.Dropped(), q.pushed.Load(), q.Len())
	}
	var got []uint64
	if n := q.drain(func(ex *exchange.Exchange) { got = append(got, ex.Conn.ID) }); n != 4 {
		t.Errorf("drained %d", n)
	}
	if len(got) != 4 || got[0] != 0 || got[3] != 3 {
		t.Errorf("drained %v, want [0 1 2 3]", got)
	}
	if q.drain(func(*exchange.Exchange) { t.Error("empty queue handed an exchange") }) != 0 {
		t.Error("empty drain returned > 0")
	}
	// Room again: new exchanges are accepted.
	if !q.push(numbered(11)) || q.Dropped() != 6 {
		t.Errorf("push after drain refused, dropped %d", q.Dropped())
	}
}

// Every drop is counted; the warning is logged at most once per interval and
// says how many were dropped since the previous one.
func TestQueueDropLogIsRateLimited(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	q := newQueue(1, zap.New(core))
	now := time.Unix(1000, 0)
	q.now = func() time.Time { return now }
	q.push(numbered(0))
	for i := 0; i < 1000; i++ {
		q.push(numbered(i))
	}
	if logs.Len() != 1 {
		t.Fatalf("%d warnings after 1000 drops in one instant, want 1", logs.Len())
	}
	now = now.Add(dropLogEvery - time.Millisecond)
	q.push(numbered(1))
	if logs.Len() != 1 {
		t.Fatalf("warned again before the interval")
	}
	now = now.Add(time.Millisecond)
	q.push(numbered(2))
	entries := logs.All()
	if len(entries) != 2 {
		t.Fatalf("%d warnings, want 2", len(entries))
	}
	f := entries[1].ContextMap()
	if f["dropped_total"] != uint64(1002) || f["dropped_since_last_warning"] != uint64(1001) || f["queue_size"] != int64(1) {
		t.Errorf("second warning fields %v", f)
	}
	if first := entries[0].ContextMap(); first["dropped_total"] != uint64(1) {
		t.Errorf("first warning fields %v", first)
	}
	if q.Dropped() != 1002 {
		t.Errorf("dropped %d, want 1002", q.Dropped())
	}
}

// One drain hands on at most one queue's capacity, even while the producer
// keeps pushing, so a collect callback always returns.
func TestQueueDrainIsBounded(t *testing.T) {
	q := newQueue(8, nil)
	n := q.drain(func(*exchange.Exchange) { q.push(numbered(0)) })
	if n != 0 {
		t.Fatalf("drained %d from an empty queue", n)
	}
	q.push(numbered(0))
	n = q.drain(func(*exchange.Exchange) { q.push(numbered(1)) }) // refills itself forever
	if n != 8 {
		t.Errorf("drained %d, want the capacity 8", n)
	}
}

// Concurrent producer and consumer: nothing is lost without being counted.
func TestQueueConcurrentAccounting(t *testing.T) {
	q := newQueue(64, nil)
	const total = 20000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < total; i++ {
			q.push(numbered(i))
		}
	}()
	drained := 0
	last := -1
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		q.drain(func(ex *exchange.Exchange) {
			if int(ex.Conn.ID) <= last {
				t.Errorf("out of order: %d after %d", ex.Conn.ID, last)
			}
			last = int(ex.Conn.ID)
			drained++
		})
	}
	q.drain(func(*exchange.Exchange) { drained++ })
	if uint64(drained)+q.Dropped() != total || uint64(drained) != q.pushed.Load() {
		t.Errorf("drained %d + dropped %d != %d (pushed %d)", drained, q.Dropped(), total, q.pushed.Load())
	}
}
