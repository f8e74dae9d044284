package httpparse

import (
	"bytes"
	"io"
	"net/http/httputil"
	"testing"

	"github.com/tlstap/tlstap/internal/exchange"
)

// Fuzz scripts are byte strings of operations. Each operation starts with a
// header byte h: dir = h&1; op = h>>1&3; arg = h>>3 + 1 (1..32).
// op 0-2: feed the next arg bytes; op 3: a gap of arg bytes. Close ends
// every script.
const maxFeedOp = 32

// script encodes test events in the fuzz script format.
func script(evs ...ev) []byte {
	var b []byte
	for _, e := range evs {
		switch e.kind {
		case 'f':
			for d := e.data; d != ""; {
				k := min(len(d), maxFeedOp)
				b = append(b, byte(k-1)<<3|byte(e.dir))
				b = append(b, d[:k]...)
				d = d[k:]
			}
		case 'g':
			b = append(b, byte(min(e.n, maxFeedOp)-1)<<3|3<<1|byte(e.dir))
		}
	}
	return b
}

func fuzzOptions(o byte) Options {
	opts := Options{MaxBodyBytes: int(o&15) * 4, MaxPending: int(o>>5) + 1}
	if o&16 != 0 {
		opts.MaxHeaderBytes = 96
	}
	return opts
}

// runScript executes a fuzz script; bytewise feeds every byte on its own
// with the timestamp of its operation.
func runScript(opts Options, s []byte, bytewise bool) ([]*exchange.Exchange, *Conn) {
	var got []*exchange.Exchange
	c := NewConn(opts, func(x *exchange.Exchange) { got = append(got, x) })
	ts := int64(0)
	for len(s) > 0 {
		h := s[0]
		s = s[1:]
		ts++
		dir, op, arg := Dir(h&1), h>>1&3, int(h>>3)+1
		if op == 3 {
			c.Gap(dir, int64(arg), ts)
			continue
		}
		arg = min(arg, len(s))
		data := s[:arg]
		s = s[arg:]
		if bytewise {
			for i := range data {
				c.Feed(dir, data[i:i+1], ts)
			}
		} else {
			c.Feed(dir, data, ts)
		}
	}
	c.Close(ts + 1)
	return got, c
}

func checkInvariants(t *testing.T, opts Options, xs []*exchange.Exchange, c *Conn) {
	t.Helper()
	opts = opts.normalized()
	for i, x := range xs {
		if x.Request == nil || x.Request.Method == "" {
			t.Fatalf("#%d: exchange without a request method", i)
		}
		if (x.Response == nil) != x.Flags.Has(exchange.NoResponse) {
			t.Fatalf("#%d: Response nil=%v but flags %v", i, x.Response == nil, x.Flags.Names())
		}
		for _, m := range []*exchange.Message{x.Request, x.Response} {
			if m == nil {
				continue
			}
			if len(m.Body) > opts.MaxBodyBytes || m.BodySize < int64(len(m.Body)) {
				t.Fatalf("#%d: body %d bytes, size %d, cap %d", i, len(m.Body), m.BodySize, opts.MaxBodyBytes)
			}
			if m.BodyTruncated != (m.BodySize > int64(opts.MaxBodyBytes)) {
				t.Fatalf("#%d: BodyTruncated %v with size %d", i, m.BodyTruncated, m.BodySize)
			}
			if len(m.DecodedBody) > opts.MaxDecodedBytes {
				t.Fatalf("#%d: decoded %d bytes", i, len(m.DecodedBody))
			}
			if m.WireSize < m.BodySize || m.LastByte < m.FirstByte {
				t.Fatalf("#%d: wire %d body %d first %d last %d", i, m.WireSize, m.BodySize, m.FirstByte, m.LastByte)
			}
		}
	}
	if len(c.queue) != 0 {
		t.Fatalf("%d exchanges still queued after Close", len(c.queue))
	}
}

func FuzzConn(f *testing.F) {
	put := "PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Encoding: gzip\r\nContent-Length: 30\r\n\r\n"
	seeds := [][]ev{
		{out(1, getA), in(2, ok5), out(3, getB), in(4, ok3)},
		{out(1, getA+getB), in(2, ok5+ok3)},
		{in(1, getA), out(2, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n")},
		{out(1, put), in(2, "HTTP/1.1 100 Continue\r\n\r\n"), out(3, gzipped("0123456789")), in(4, ok3)},
		{out(1, "HEAD / HTTP/1.1\r\n\r\n"), in(2, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"), out(3, getB), in(4, "HTTP/1.0 200 OK\r\n\r\nclose-delimited")},
		{out(1, "CONNECT h:443 HTTP/1.1\r\n\r\n"), out(2, getB), in(3, "HTTP/1.1 407 No\r\nContent-Length: 0\r\n\r\n"+ok3)},
		{out(1, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"), in(2, "HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x00")},
		{out(1, getA), in(2, ok5[:30]), gap(Ingress, 3, 4), in(4, "o"), out(5, getB), gap(Egress, 6, 9), in(7, ok3)},
		{out(1, "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")},
		{out(1, "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"), in(2, "HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: 12\r\n\r\n"+zlibbed("abc")[:12])},
		{out(1, "\x16\x03\x01\x00\x10")},
	}
	for i, s := range seeds {
		f.Add(script(s...), byte(i*37))
	}
	f.Fuzz(func(t *testing.T, s []byte, o byte) {
		opts := fuzzOptions(o)
		xs, c := runScript(opts, s, false)
		checkInvariants(t, opts, xs, c)
		// Where the input is cut must not matter.
		ys, c2 := runScript(opts, s, true)
		if a, b := dump(xs), dump(ys); a != b || c.State() != c2.State() {
			t.Fatalf("split dependence: state %v vs %v\nwhole:\n%s\nbytewise:\n%s", c.State(), c2.State(), a, b)
		}
	})
}

func FuzzChunked(f *testing.F) {
	for _, s := range []string{
		"3\r\nabc\r\n0\r\n\r\n",
		"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: v\r\n\r\n",
		"1\nz\n0\n\n",
		"A \r\n0123456789\r\n0\r\n\r\n",
		"ffffffffffffffff\r\n",
		"0\r\n a\r\n\r\n",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, piece uint8) {
		whole, tr1, n1, done1, err1 := decodeAll(string(in), 0)
		split, tr2, n2, done2, err2 := decodeAll(string(in), int(piece%9))
		if whole != split || n1 != n2 || done1 != done2 || (err1 == nil) != (err2 == nil) || fmtHeaders(tr1) != fmtHeaders(tr2) {
			t.Fatalf("split dependence: %q/%q %d/%d %v/%v %v/%v", whole, split, n1, n2, done1, done2, err1, err2)
		}
		if err1 == errNoProgress {
			t.Fatal("decoder made no progress")
		}
		if n1 > len(in) || len(whole) > len(in) {
			t.Fatalf("consumed %d, data %d of %d bytes", n1, len(whole), len(in))
		}
		// Differential check against the standard library where both
		// accept the whole body: the data must agree.
		if done1 && err1 == nil {
			ref, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(in[:n1])))
			if err == nil && string(ref) != whole {
				t.Fatalf("data %q, net/http/httputil %q", whole, ref)
			}
		}
	})
}
