package tlstapreceiver

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/exchange"
)

// benchExchange is what BenchmarkPipeline (internal/engine) produces: an
// HTTP/1.1 GET with a 1 KiB response body, here with a process and a peer.
// Even exchanges come from one server process, odd ones from one client
// process.
func benchExchange(i int) *exchange.Exchange {
	body := make([]byte, 1024)
	for j := range body {
		body[j] = 'a' + byte(j%26)
	}
	role, pid, exe := exchange.RoleServer, 2000, "nginx"
	if i%2 == 1 {
		role, pid, exe = exchange.RoleClient, 3000, "wrk"
	}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	start := t0.Add(time.Duration(i) * time.Millisecond)
	return &exchange.Exchange{
		Role: role,
		Request: &exchange.Message{
			Method: "GET", Target: "/api/v1/items?id=42", Proto: "HTTP/1.1",
			Headers: []exchange.Header{
				{Name: "Host", Value: "api.example.com"}, {Name: "User-Agent", Value: "bench/1.0"}, {Name: "Accept", Value: "*/*"},
			},
			WireSize: 95,
		},
		Response: &exchange.Message{
			StatusCode: 200, Reason: "OK", Proto: "HTTP/1.1",
			Headers:  []exchange.Header{{Name: "Content-Type", Value: "application/json"}, {Name: "Content-Length", Value: "1024"}},
			Body:     body,
			BodySize: 1024, WireSize: 1024 + 83,
		},
		Start: start,
		End:   start.Add(80 * time.Microsecond),
		Process: exchange.Process{
			PID: pid, PPID: 1, ExePath: "/usr/sbin/" + exe, ExeName: exe,
			CommandArgs: []string{exe, "-c", "/etc/" + exe + ".conf"}, Owner: "root",
			CreationTime: t0.Add(-time.Hour),
		},
		Conn: exchange.Conn{
			ID: uint64(i), Remote: netip.MustParseAddrPort("127.0.0.1:443"), Local: netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", 40000+i%1000)),
			TLS: true, Source: "openssl",
		},
	}
}

// BenchmarkConvert measures exchange → pdata (one span and one log record
// per exchange, both signals on, default redaction and random ids) in
// batches of maxBatch exchanges from two processes, as the receiver's
// conversion loop does under load. Per-exchange figures: ns/exchange,
// B/exchange, allocs/exchange. With BenchmarkPipeline (internal/engine) it
// makes the agent's user-space cost from ring buffer to pdata.
func BenchmarkConvert(b *testing.B) {
	batch := make([]*exchange.Exchange, maxBatch)
	for i := range batch {
		batch[i] = benchExchange(i)
	}
	benchConvert(b, batch)
}

// BenchmarkConvertProcessPerExchange is the other extreme: every exchange
// of the batch comes from a different process (a script running curl in a
// loop), so each one also builds its resources.
func BenchmarkConvertProcessPerExchange(b *testing.B) {
	batch := make([]*exchange.Exchange, maxBatch)
	for i := range batch {
		batch[i] = benchExchange(i)
		batch[i].Process.PID += i
	}
	benchConvert(b, batch)
}

func benchConvert(b *testing.B, batch []*exchange.Exchange) {
	c := converter{hostName: "bench-host", scopeVersion: "0.1.0-dev", traces: true, logs: true}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for b.Loop() {
		td, ld := convert(batch, c)
		if td.SpanCount() != len(batch) || ld.LogRecordCount() != len(batch) {
			b.Fatal("wrong counts")
		}
	}
	runtime.ReadMemStats(&m1)
	n := float64(b.N) * float64(len(batch))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/exchange")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/n, "B/exchange")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/n, "allocs/exchange")
}
