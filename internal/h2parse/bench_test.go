package h2parse

import (
	"encoding/binary"
	"testing"

	"github.com/tlstap/tlstap/internal/exchange"
)

// BenchmarkConn feeds GET requests answered with 1 KiB bodies on one
// connection, with HPACK in its steady state (repeated fields indexed); one
// op is one exchange.
func BenchmarkConn(b *testing.B) {
	cli, srv := newPeer(), newPeer()
	cli.out.WriteString(clientPreface)
	must(cli.fr.WriteSettings())
	must(srv.fr.WriteSettings())
	must(srv.fr.WriteSettingsAck())
	req := []string{":method", "GET", ":scheme", "https", ":authority", "api.example.com", ":path", "/api/items?page=2",
		"user-agent", "bench/1.0", "accept", "application/json"}
	resp := []string{":status", "200", "content-type", "application/json", "date", "Mon, 01 Jan 2024 00:00:00 GMT"}
	body := kib(1)
	// The first exchange fills the dynamic tables.
	cli.headers(1, true, req...)
	srv.headers(1, false, resp...)
	srv.data(1, true, body)
	n := 0
	c := NewConn(Options{MaxBodyBytes: 4096}, func(*exchange.Exchange) { n++ })
	c.Feed(Egress, cli.take(), 0)
	c.Feed(Ingress, srv.take(), 0)
	// Later exchanges repeat the same, now indexed, blocks.
	cli.headers(3, true, req...)
	reqFrames := cli.take()
	srv.headers(3, false, resp...)
	hdrLen := srv.out.Len()
	srv.data(3, true, body)
	respFrames := srv.take()
	setID := func(frame []byte, id uint32) { binary.BigEndian.PutUint32(frame[5:9], id) }

	b.SetBytes(int64(len(reqFrames) + len(respFrames)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := uint32(2*i + 3)
		setID(reqFrames, id)
		setID(respFrames, id)
		setID(respFrames[hdrLen:], id)
		ts := int64(i)
		c.Feed(Egress, reqFrames, ts)
		// The response arrives in two reads, as from a socket.
		c.Feed(Ingress, respFrames[:200], ts)
		c.Feed(Ingress, respFrames[200:], ts)
	}
	b.StopTimer()
	if n != b.N+1 || c.State() != HTTP2 || c.Unreliable() {
		b.Fatalf("emitted %d of %d, state %v", n, b.N+1, c.State())
	}
}
