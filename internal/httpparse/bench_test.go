package httpparse

import (
	"strings"
	"testing"

	"github.com/tlstap/tlstap/internal/exchange"
)

// BenchmarkConn feeds a keep-alive stream of GET requests answered with
// 1 KiB Content-Length bodies; one op is one exchange.
func BenchmarkConn(b *testing.B) {
	req := []byte("GET /api/items?page=2 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: bench/1.0\r\nAccept: application/json\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1024\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n" +
		strings.Repeat("x", 1024))
	n := 0
	c := NewConn(Options{MaxBodyBytes: 4096}, func(*exchange.Exchange) { n++ })
	b.SetBytes(int64(len(req) + len(resp)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ts := int64(i)
		c.Feed(Egress, req, ts)
		// The response arrives in two reads, as from a socket.
		c.Feed(Ingress, resp[:200], ts)
		c.Feed(Ingress, resp[200:], ts)
	}
	b.StopTimer()
	if n != b.N || c.State() != HTTP {
		b.Fatalf("emitted %d of %d, state %v", n, b.N, c.State())
	}
}
