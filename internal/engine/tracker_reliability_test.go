package engine

import (
	"fmt"
	"testing"
	"time"

	tlsbpf "github.com/tlstap/tlstap/bpf"
	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/httpparse"
)

func headRecord(conn uint64, ts int64, payload string) *record {
	return &record{typ: tlsbpf.EvData, source: tlsbpf.SrcSocket, dir: tlsbpf.DirEgress, tgid: 77, fd: int32(conn),
		ts: ts, connID: conn, len: uint32(len(payload)), capLen: uint32(len(payload)), payload: []byte(payload)}
}

// TestReliabilityTrackerEvictsLeastRecent: at the cap the stream evicted is
// the one least recently seen, not merely the oldest created.
func TestReliabilityTrackerEvictsLeastRecent(t *testing.T) {
	var st counters
	tr := newTracker(httpparse.Options{MaxBodyBytes: 1024}, 3, &st, func(*stream, *exchange.Exchange) {})
	tr.data(headRecord(1, 1, "GET /1 HTTP/1.1\r\n"))
	tr.data(headRecord(2, 2, "GET /2 HTTP/1.1\r\n"))
	tr.data(headRecord(3, 3, "GET /3 HTTP/1.1\r\n"))
	r := headRecord(1, 4, "Host: a\r\n")
	r.pos = 17
	tr.data(r) // 1 is now the most recent: 2 goes first
	tr.data(headRecord(4, 5, "GET /4 HTTP/1.1\r\n"))
	if _, ok := tr.streams[2]; ok || len(tr.streams) != 3 || st.connsEvicted.Load() != 1 {
		t.Fatalf("after eviction: streams %v, evicted %d; want 2 gone", keys(tr.streams), st.connsEvicted.Load())
	}
	tr.data(headRecord(5, 6, "GET /5 HTTP/1.1\r\n"))
	if _, ok := tr.streams[3]; ok {
		t.Fatalf("stream 3 (least recent) kept: %v", keys(tr.streams))
	}
	tr.closeAll(7)
	if tr.newest != nil || tr.oldest != nil || len(tr.streams) != 0 {
		t.Fatalf("LRU list not empty after closeAll")
	}
}

// TestReliabilityTrackerEvictionCost: 3 x maxStreams new connections
// through a full tracker. Eviction used to scan every stream (O(n) per new
// connection: 20 s under -race for the 10 000 idle connections test).
func TestReliabilityTrackerEvictionCost(t *testing.T) {
	var st counters
	tr := newTracker(httpparse.Options{MaxBodyBytes: 1024}, maxStreams, &st, func(*stream, *exchange.Exchange) {})
	t0 := time.Now()
	const n = 3 * maxStreams
	for i := range n {
		tr.data(headRecord(uint64(i+1), int64(i+1), fmt.Sprintf("GET /%d HTTP/1.1\r\n", i)))
	}
	took := time.Since(t0)
	if len(tr.streams) != maxStreams || st.connsEvicted.Load() != n-maxStreams {
		t.Fatalf("tracked %d evicted %d", len(tr.streams), st.connsEvicted.Load())
	}
	// The survivors are the most recent ones.
	for i := n - maxStreams + 1; i <= n; i++ {
		if _, ok := tr.streams[uint64(i)]; !ok {
			t.Fatalf("stream %d (recent) was evicted", i)
		}
	}
	t.Logf("%d connections through a tracker capped at %d: %v (%v each)", n, maxStreams, took, took/n)
	if took > 5*time.Second {
		t.Errorf("eviction too slow: %v for %d connections", took, n)
	}
	tr.closeAll(0)
}

func keys(m map[uint64]*stream) []uint64 {
	var out []uint64
	for k := range m {
		out = append(out, k)
	}
	return out
}
