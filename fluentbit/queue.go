package main

import (
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tlstap/tlstap/internal/exchange"
)

// queue is the bounded hand-off between the capture engine (producer, on the
// engine's pipeline goroutine) and Fluent Bit's collect callback (consumer,
// on the input's thread). Neither side ever blocks on the other.
//
// Overflow policy: drop-newest. When the queue is full, the exchange being
// pushed is discarded and counted; what is already queued is kept and
// delivered in order. Every drop is counted, and a warning is logged at most
// once per logEvery with the total and the number dropped since the last
// warning.
type queue struct {
	ch     chan *exchange.Exchange
	logger *zap.Logger

	logEvery time.Duration
	now      func() time.Time

	pushed, dropped atomic.Uint64
	lastLog         atomic.Int64  // unix ns of the last drop warning; 0 = never
	droppedAtLog    atomic.Uint64 // dropped counter value at the last warning
}

const dropLogEvery = 10 * time.Second

func newQueue(size int, logger *zap.Logger) *queue {
	if logger == nil {
		logger = zap.NewNop()
	}
	return &queue{ch: make(chan *exchange.Exchange, size), logger: logger, logEvery: dropLogEvery, now: time.Now}
}

// push enqueues ex, or drops it (counted, rate-limited warning) when full.
func (q *queue) push(ex *exchange.Exchange) bool {
	select {
	case q.ch <- ex:
		q.pushed.Add(1)
		return true
	default:
	}
	total := q.dropped.Add(1)
	now := q.now().UnixNano()
	last := q.lastLog.Load()
	if (last == 0 || now-last >= int64(q.logEvery)) && q.lastLog.CompareAndSwap(last, now) {
		since := total - q.droppedAtLog.Swap(total)
		q.logger.Warn("queue full, dropping newest exchanges (Fluent Bit is not collecting fast enough or is paused; raise queue_size)",
			zap.Int("queue_size", cap(q.ch)),
			zap.Uint64("dropped_since_last_warning", since),
			zap.Uint64("dropped_total", total))
	}
	return false
}

// drain hands queued exchanges to fn without blocking, at most one queue's
// capacity per call so that a busy producer cannot keep the caller (Fluent
// Bit's thread) inside one collect forever. It returns how many it handed on.
func (q *queue) drain(fn func(*exchange.Exchange)) int {
	n := 0
	for limit := cap(q.ch); n < limit; n++ {
		select {
		case ex := <-q.ch:
			fn(ex)
		default:
			return n
		}
	}
	return n
}

// Len is the number of exchanges waiting.
func (q *queue) Len() int { return len(q.ch) }

// Dropped is the number of exchanges dropped because the queue was full.
func (q *queue) Dropped() uint64 { return q.dropped.Load() }
