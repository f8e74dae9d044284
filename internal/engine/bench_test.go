package engine

import (
	"encoding/binary"
	"fmt"
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

func TestRecordLayout(t *testing.T) {
	if dataHdrSize != 112 || ctlSize != 32 {
		t.Fatalf("record header sizes changed: data %d ctl %d; update decodeRecord", dataHdrSize, ctlSize)
	}
	var r record
	raw := rawRecord(1, 9, 77, []byte("HTTP/1.1"))
	binary.LittleEndian.PutUint64(raw[104:], 3) // lost[1]
	if err := decodeRecord(raw, &r); err != nil {
		t.Fatal(err)
	}
	if r.connID != 9 || r.pos != 77 || r.dir != 1 || r.lost != [2]uint64{0, 3} || string(r.payload) != "HTTP/1.1" ||
		r.local.String() != "127.0.0.1:40000" || r.remote.String() != "127.0.0.1:443" || r.fd != 5 {
		t.Errorf("decoded %+v", r)
	}
	if err := decodeRecord(raw[:50], &r); err == nil {
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
