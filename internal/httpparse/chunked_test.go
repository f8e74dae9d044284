package httpparse

import (
	"strings"
	"testing"

	"github.com/tlstap/tlstap/internal/exchange"
)

// decodeAll runs a decoder over input cut into pieces of the given size
// (0: whole) and returns the data, trailers and consumed count.
func decodeAll(input string, piece int) (data string, tr []exchange.Header, consumed int, done bool, err error) {
	var d chunkedDecoder
	d.reset(1024)
	var b strings.Builder
	p := []byte(input)
	for len(p) > 0 && !d.done() {
		k := len(p)
		if piece > 0 && piece < k {
			k = piece
		}
		q := p[:k]
		for len(q) > 0 && !d.done() {
			n, chunk, e := d.decode(q)
			b.Write(chunk)
			consumed += n
			if e != nil {
				return b.String(), nil, consumed, false, e
			}
			if n == 0 {
				return b.String(), nil, consumed, false, errNoProgress
			}
			q = q[n:]
		}
		p = p[k:]
	}
	tr, err = d.trailers()
	return b.String(), tr, consumed, d.done(), err
}

var errNoProgress = errorString("no progress")

type errorString string

func (e errorString) Error() string { return string(e) }

func TestChunkedDecoder(t *testing.T) {
	tests := []struct {
		name, in, data string
		trailers       []exchange.Header
		done, fails    bool
		consumed       int // bytes consumed when done (0: all)
	}{
		{name: "simple", in: "3\r\nabc\r\n0\r\n\r\n", data: "abc", done: true},
		{name: "hex upper lower", in: "A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n", data: "0123456789abcdefghijk", done: true},
		{name: "leading zeros", in: "0003\r\nabc\r\n000\r\n\r\n", data: "abc", done: true},
		{name: "extensions", in: "3;a=b;c=\"d;e\"\r\nabc\r\n0;last\r\n\r\n", data: "abc", done: true},
		{name: "bws before ext", in: "3 \t;x\r\nabc\r\n0\r\n\r\n", data: "abc", done: true},
		{name: "trailers", in: "1\r\nz\r\n0\r\nA: 1\r\nb:2\r\n\r\n", data: "z", trailers: hs("A", "1", "b", "2"), done: true},
		{name: "LF only", in: "1\nz\n0\nT: v\n\n", data: "z", trailers: hs("T", "v"), done: true},
		{name: "stops at the end", in: "1\r\nz\r\n0\r\n\r\nGET / HTTP/1.1\r\n", data: "z", done: true, consumed: 11},
		{name: "unfinished", in: "5\r\nab", data: "ab"},
		{name: "unfinished trailer", in: "0\r\nA: 1\r\n", trailers: hs("A", "1")},
		{name: "no digits", in: "\r\nabc", fails: true},
		{name: "bad digit", in: "3x\r\nabc", fails: true},
		{name: "missing CRLF after data", in: "3\r\nabcd\r\n", data: "abc", fails: true},
		{name: "CR without LF", in: "3\rabc", fails: true},
		{name: "overflow", in: "ffffffffffffffffff\r\n", fails: true},
		{name: "bad trailer", in: "0\r\nno colon\r\n\r\n", fails: true},
	}
	for _, tc := range tests {
		for _, piece := range []int{0, 1, 2, 3, 7} {
			data, tr, consumed, done, err := decodeAll(tc.in, piece)
			if (err != nil) != tc.fails {
				t.Fatalf("%s/%d: err = %v, fails = %v", tc.name, piece, err, tc.fails)
			}
			if data != tc.data {
				t.Errorf("%s/%d: data %q, want %q", tc.name, piece, data, tc.data)
			}
			if tc.fails {
				continue
			}
			if done != tc.done {
				t.Errorf("%s/%d: done %v, want %v", tc.name, piece, done, tc.done)
			}
			if fmtHeaders(tr) != fmtHeaders(tc.trailers) {
				t.Errorf("%s/%d: trailers %v, want %v", tc.name, piece, tr, tc.trailers)
			}
			want := tc.consumed
			if want == 0 {
				want = len(tc.in)
			}
			if consumed != want {
				t.Errorf("%s/%d: consumed %d, want %d", tc.name, piece, consumed, want)
			}
		}
	}
}

func fmtHeaders(h []exchange.Header) string {
	var b strings.Builder
	for _, f := range h {
		b.WriteString(f.Name + "=" + f.Value + ";")
	}
	return b.String()
}

func TestChunkedLimits(t *testing.T) {
	var d chunkedDecoder
	d.reset(16)
	if _, _, err := d.decode([]byte("1;" + strings.Repeat("x", 20) + "\r\n")); err == nil {
		t.Error("long extension accepted")
	}
	d.reset(16)
	if _, _, err := d.decode([]byte("0\r\nName: " + strings.Repeat("v", 20) + "\r\n\r\n")); err == nil {
		t.Error("large trailer accepted")
	}
	d.reset(1 << 20)
	if _, _, err := d.decode([]byte("0\r\n" + strings.Repeat("A: b\r\n", maxFields+1) + "\r\n")); err == nil {
		t.Error("too many trailer fields accepted")
	}
}

func TestChunkedSkip(t *testing.T) {
	var d chunkedDecoder
	d.reset(64)
	d.decode([]byte("5\r\nab"))
	if d.skip(4) {
		t.Fatal("skip past the chunk end accepted")
	}
	if !d.skip(3) {
		t.Fatal("skip inside chunk data refused")
	}
	n, _, err := d.decode([]byte("\r\n0\r\n\r\n"))
	if err != nil || n != 7 || !d.done() {
		t.Fatalf("after skip: n=%d err=%v done=%v", n, err, d.done())
	}
	d.reset(64)
	d.decode([]byte("5"))
	if d.skip(1) {
		t.Fatal("skip inside a size line accepted")
	}
}
