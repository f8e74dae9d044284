package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"reflect"
	"testing"

	tlsbpf "github.com/tlstap/tlstap/bpf"
	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/httpparse"
)

// rawRecord encodes a data record exactly as the kernel lays it out.
func rawRecord(dir uint8, conn, pos uint64, payload []byte) []byte {
	b := make([]byte, dataHdrSize+len(payload))
	b[0], b[1], b[2] = tlsbpf.EvData, tlsbpf.SrcOpenSSL, dir
	le := binary.LittleEndian
	le.PutUint32(b[4:], 100)
	le.PutUint32(b[8:], 100)
	le.PutUint32(b[12:], 5)
	le.PutUint64(b[16:], 1)
	le.PutUint64(b[24:], conn)
	le.PutUint64(b[32:], pos)
	le.PutUint32(b[40:], uint32(len(payload)))
	le.PutUint32(b[44:], uint32(len(payload)))
	le.PutUint16(b[56:], 2)
	le.PutUint16(b[58:], 40000)
	le.PutUint16(b[60:], 443)
	copy(b[64:], []byte{127, 0, 0, 1})
	copy(b[80:], []byte{127, 0, 0, 1})
	copy(b[dataHdrSize:], payload)
	return b
}

// BenchmarkPipeline measures the user-space cost of one HTTP/1 exchange
// with a 1 KiB response body, from raw ring buffer records to a finished
// exchange: decode, reassembly, parsing. One op is one exchange.
func BenchmarkPipeline(b *testing.B) {
	req := []byte("GET /api/v1/items?id=42 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n")
	body := make([]byte, 1024)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	resp := append([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))), body...)
	var n int
	st := &counters{}
	tr := newTracker(httpparse.Options{MaxBodyBytes: 64 << 10}, maxStreams, st, func(s *stream, ex *exchange.Exchange) { n++ })
	var pos [2]uint64
	var r record
	reqRec, respRec := rawRecord(0, 1, 0, req), rawRecord(1, 1, 0, resp)
	le := binary.LittleEndian
	b.ReportAllocs()
	b.SetBytes(int64(len(req) + len(resp)))
	for b.Loop() {
		le.PutUint64(reqRec[32:], pos[0])
		le.PutUint64(respRec[32:], pos[1])
		pos[0] += uint64(len(req))
		pos[1] += uint64(len(resp))
		for _, raw := range [][]byte{reqRec, respRec} {
			if err := decodeRecord(raw, &r); err != nil {
				b.Fatal(err)
			}
			tr.data(&r)
		}
	}
	if n != b.N {
		b.Fatalf("%d exchanges for %d ops", n, b.N)
	}
}

// TestRecordLayout: a data record is built from the bpf2go type generated
// from the kernel object's BTF (the C struct as clang laid it out) with
// distinct values in every field, and decodeRecord, which reads fixed
// offsets, must find each of them where the kernel puts it.
func TestRecordLayout(t *testing.T) {
	ev := tlsbpf.DataEvent{
		Type: tlsbpf.EvData, Source: tlsbpf.SrcGoTLS, Dir: 1, Flags: tlsbpf.DfCallStart,
		Tgid: 0x01020304, Tid: 0x05060708, Fd: 0x090a0b0c, Ts: 0x1112131415161718, ConnId: 0x2122232425262728,
		Pos: 0x3132333435363738, Len: 0x100, CapLen: 8, Ssl: 0x4142434445464748,
		Lost: [2]uint64{0x5152535455565758, 0x6162636465666768},
	}
	ev.Addr.Family = 10 // AF_INET6
	ev.Addr.Lport, ev.Addr.Rport = 0x7172, 0x7374
	laddr := netip.MustParseAddr("2001:db8::1")
	raddr := netip.MustParseAddr("2001:db8::2")
	ev.Addr.Laddr, ev.Addr.Raddr = laddr.As16(), raddr.As16()
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, ev); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != dataHdrSize {
		t.Fatalf("encoded header %d bytes, Sizeof says %d", buf.Len(), dataHdrSize)
	}
	buf.WriteString("HTTP/1.1")
	var r record
	if err := decodeRecord(buf.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	want := record{
		typ: tlsbpf.EvData, source: tlsbpf.SrcGoTLS, dir: 1, flags: tlsbpf.DfCallStart,
		tgid: 0x01020304, tid: 0x05060708, fd: 0x090a0b0c, connID: 0x2122232425262728,
		pos: 0x3132333435363738, len: 0x100, capLen: 8, ssl: 0x4142434445464748,
		local: netip.AddrPortFrom(laddr, 0x7172), remote: netip.AddrPortFrom(raddr, 0x7374), peerPort: 0x7374,
		lost: [2]uint64{0x5152535455565758, 0x6162636465666768},
	}
	got := r
	got.payload, got.ts = nil, 0
	if string(r.payload) != "HTTP/1.1" {
		t.Errorf("payload %q", r.payload)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", got, want)
	}
	if err := decodeRecord(buf.Bytes()[:dataHdrSize-1], &r); err == nil {
		t.Error("short record accepted")
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(rawRecord(0, 1, 0, []byte("GET / HTTP/1.1\r\n\r\n")))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r record
		if decodeRecord(b, &r) == nil && len(r.payload) > len(b) {
			t.Fatal("payload beyond the record")
		}
	})
}
