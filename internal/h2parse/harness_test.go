package h2parse

import (
	"bytes"
	"fmt"
	"math/rand"
	"reflect"
	"testing"

	"github.com/tlstap/tlstap/internal/exchange"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// peer writes one side's frames with the real x/net Framer and HPACK encoder.
type peer struct {
	out bytes.Buffer
	fr  *http2.Framer
	hb  bytes.Buffer
	enc *hpack.Encoder
}

func newPeer() *peer {
	p := &peer{}
	p.fr = http2.NewFramer(&p.out, nil)
	p.enc = hpack.NewEncoder(&p.hb)
	return p
}

// block HPACK-encodes name/value pairs into a header block.
func (p *peer) block(kv ...string) []byte {
	p.hb.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := p.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]}); err != nil {
			panic(err)
		}
	}
	return append([]byte(nil), p.hb.Bytes()...)
}

func (p *peer) take() []byte {
	b := append([]byte(nil), p.out.Bytes()...)
	p.out.Reset()
	return b
}

// headers writes a complete header block in one HEADERS frame.
func (p *peer) headers(sid uint32, end bool, kv ...string) {
	must(p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: p.block(kv...), EndStream: end, EndHeaders: true}))
}

// headersSplit writes a header block as HEADERS plus CONTINUATION frames of
// at most chunk bytes, with padding and priority on the HEADERS frame.
func (p *peer) headersSplit(sid uint32, end bool, chunk int, pad uint8, kv ...string) {
	b := p.block(kv...)
	first := b[:min(chunk, len(b))]
	b = b[len(first):]
	must(p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: first, EndStream: end,
		EndHeaders: len(b) == 0, PadLength: pad, Priority: http2.PriorityParam{StreamDep: 0, Weight: 15, Exclusive: true}}))
	for len(b) > 0 {
		k := min(chunk, len(b))
		must(p.fr.WriteContinuation(sid, k == len(b), b[:k]))
		b = b[k:]
	}
}

func (p *peer) data(sid uint32, end bool, d []byte) { must(p.fr.WriteData(sid, end, d)) }

func (p *peer) dataPadded(sid uint32, end bool, d []byte, pad int) {
	must(p.fr.WriteDataPadded(sid, end, d, make([]byte, pad)))
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// ev is one input event of a test script.
type ev struct {
	kind byte // 'f' feed, 'g' gap, 's' skip, 'c' close
	dir  Dir
	data []byte
	n    int64
	ts   int64
}

// conv builds a conversation: the client writes on cdir.
type conv struct {
	cli, srv *peer
	cdir     Dir
	evs      []ev
	ts       int64
}

func newConv(cdir Dir) *conv {
	return &conv{cli: newPeer(), srv: newPeer(), cdir: cdir}
}

// start writes the preface and both SETTINGS with their ACKs.
func (cv *conv) start() *conv {
	cv.client(func(p *peer) {
		p.out.WriteString(clientPreface)
		must(p.fr.WriteSettings())
	})
	cv.server(func(p *peer) {
		must(p.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 250}))
		must(p.fr.WriteSettingsAck())
	})
	cv.client(func(p *peer) { must(p.fr.WriteSettingsAck()) })
	return cv
}

// client runs f on the client peer and records what it wrote as one event.
func (cv *conv) client(f func(p *peer)) *conv {
	f(cv.cli)
	cv.ts += 10
	cv.evs = append(cv.evs, ev{kind: 'f', dir: cv.cdir, data: cv.cli.take(), ts: cv.ts})
	return cv
}

func (cv *conv) server(f func(p *peer)) *conv {
	f(cv.srv)
	cv.ts += 10
	cv.evs = append(cv.evs, ev{kind: 'f', dir: cv.cdir ^ 1, data: cv.srv.take(), ts: cv.ts})
	return cv
}

func (cv *conv) gap(d Dir, n int64) *conv {
	cv.ts += 10
	cv.evs = append(cv.evs, ev{kind: 'g', dir: d, n: n, ts: cv.ts})
	return cv
}

func (cv *conv) skip(d Dir, n int64) *conv {
	cv.ts += 10
	cv.evs = append(cv.evs, ev{kind: 's', dir: d, n: n, ts: cv.ts})
	return cv
}

// raw appends bytes as they are.
func (cv *conv) raw(d Dir, b []byte) *conv {
	cv.ts += 10
	cv.evs = append(cv.evs, ev{kind: 'f', dir: d, data: b, ts: cv.ts})
	return cv
}

func (cv *conv) close() *conv {
	cv.ts += 10
	cv.evs = append(cv.evs, ev{kind: 'c', ts: cv.ts})
	return cv
}

// splitter cuts the data of feed event i into the pieces fed separately.
type splitter func(i int, data []byte) [][]byte

func whole(_ int, d []byte) [][]byte { return [][]byte{d} }

func byteByByte(_ int, d []byte) [][]byte {
	out := make([][]byte, len(d))
	for i := range d {
		out[i] = d[i : i+1]
	}
	return out
}

// randomPieces cuts every event into pieces of 1..max bytes.
func randomPieces(seed int64, maxPiece int) splitter {
	r := rand.New(rand.NewSource(seed))
	return func(_ int, d []byte) [][]byte {
		var out [][]byte
		for len(d) > 0 {
			k := min(1+r.Intn(maxPiece), len(d))
			out = append(out, d[:k])
			d = d[k:]
		}
		return out
	}
}

type result struct {
	got   []*exchange.Exchange
	snaps []exchange.Exchange
	c     *Conn
}

// run feeds a script, proving on the way that fed bytes are not retained and
// emitted exchanges are not modified afterwards.
func run(t testing.TB, opts Options, evs []ev, split splitter) result {
	return runConn(t, NewConn, opts, evs, split)
}

func runConn(t testing.TB, mk func(Options, func(*exchange.Exchange)) *Conn, opts Options, evs []ev, split splitter) result {
	var r result
	r.c = mk(opts, func(x *exchange.Exchange) {
		r.got = append(r.got, x)
		r.snaps = append(r.snaps, deepCopy(x))
	})
	for i, e := range evs {
		switch e.kind {
		case 'f':
			for _, piece := range split(i, e.data) {
				buf := append([]byte(nil), piece...)
				r.c.Feed(e.dir, buf, e.ts)
				for j := range buf {
					buf[j] = '#'
				}
			}
		case 'g':
			r.c.Gap(e.dir, e.n, e.ts)
		case 's':
			r.c.Skip(e.dir, e.n, e.ts)
		case 'c':
			r.c.Close(e.ts)
		}
	}
	for i, x := range r.got {
		if !reflect.DeepEqual(deepCopy(x), r.snaps[i]) {
			t.Fatalf("exchange #%d changed after it was emitted", i)
		}
	}
	return r
}

func deepCopy(x *exchange.Exchange) exchange.Exchange {
	c := *x
	cm := func(m *exchange.Message) *exchange.Message {
		if m == nil {
			return nil
		}
		n := *m
		n.Headers = append([]exchange.Header(nil), m.Headers...)
		n.Trailers = append([]exchange.Header(nil), m.Trailers...)
		n.Body = append([]byte(nil), m.Body...)
		return &n
	}
	c.Request, c.Response = cm(x.Request), cm(x.Response)
	if x.Reset != nil {
		r := *x.Reset
		c.Reset = &r
	}
	return c
}

// runAll runs a script whole, byte by byte and in random pieces, checks that
// all give the same exchanges, and returns the whole run.
func runAll(t *testing.T, opts Options, evs []ev) result {
	t.Helper()
	return runAllConn(t, NewConn, opts, evs)
}

func runAllConn(t *testing.T, mk func(Options, func(*exchange.Exchange)) *Conn, opts Options, evs []ev) result {
	t.Helper()
	base := runConn(t, mk, opts, evs, whole)
	splits := map[string]splitter{"bytewise": byteByByte}
	for seed := int64(1); seed <= 4; seed++ {
		splits[fmt.Sprintf("random%d", seed)] = randomPieces(seed, 3+int(seed)*7)
	}
	for name, sp := range splits {
		r := runConn(t, mk, opts, evs, sp)
		if d := diff(base.snaps, r.snaps); d != "" {
			t.Fatalf("%s split differs from whole feed: %s", name, d)
		}
		if r.c.State() != base.c.State() || r.c.Stats() != base.c.Stats() || r.c.Unreliable() != base.c.Unreliable() {
			t.Fatalf("%s split: state %v %+v, whole: %v %+v", name, r.c.State(), r.c.Stats(), base.c.State(), base.c.Stats())
		}
	}
	for i := range base.got {
		checkExchange(t, opts, base.got[i])
	}
	return base
}

func diff(a, b []exchange.Exchange) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d vs %d exchanges", len(a), len(b))
	}
	for i := range a {
		if !reflect.DeepEqual(a[i], b[i]) {
			return fmt.Sprintf("exchange #%d:\n%s\nvs\n%s", i, dump(&a[i]), dump(&b[i]))
		}
	}
	return ""
}

func dump(x *exchange.Exchange) string {
	s := fmt.Sprintf("role=%v flags=%v reset=%v", x.Role, x.Flags.Names(), x.Reset)
	for _, m := range []*exchange.Message{x.Request, x.Response} {
		if m == nil {
			s += "\n  <nil>"
			continue
		}
		s += fmt.Sprintf("\n  %q %q %d %s hdr=%v trl=%v body=%dB size=%d wire=%d trunc=%v ts=%d..%d",
			m.Method, m.Target, m.StatusCode, m.Proto, m.Headers, m.Trailers, len(m.Body), m.BodySize, m.WireSize, m.BodyTruncated, m.FirstByte, m.LastByte)
	}
	return s
}

// checkExchange asserts the invariants every emitted exchange keeps.
func checkExchange(t testing.TB, opts Options, x *exchange.Exchange) {
	t.Helper()
	opts = opts.normalized()
	if x.Request == nil || x.Request.Method == "" {
		t.Fatalf("exchange without a request method: %s", dump(x))
	}
	if (x.Response == nil) != x.Flags.Has(exchange.NoResponse) {
		t.Fatalf("NoResponse flag disagrees with the response: %s", dump(x))
	}
	for i, m := range []*exchange.Message{x.Request, x.Response} {
		if m == nil {
			continue
		}
		if len(m.Body) > opts.MaxBodyBytes || int64(len(m.Body)) > m.BodySize {
			t.Fatalf("body %d bytes of %d, cap %d", len(m.Body), m.BodySize, opts.MaxBodyBytes)
		}
		if m.BodyTruncated && int64(len(m.Body)) >= m.BodySize {
			t.Fatalf("BodyTruncated without missing bytes: %s", dump(x))
		}
		flag := exchange.RequestTruncated
		if i == 1 {
			flag = exchange.ResponseTruncated
		}
		if m.BodyTruncated != x.Flags.Has(flag) {
			t.Fatalf("BodyTruncated disagrees with the flags: %s", dump(x))
		}
		for _, list := range [][]exchange.Header{m.Headers, m.Trailers} {
			size := 0
			for _, h := range list {
				size += len(h.Name) + len(h.Value) + 32
			}
			if size > opts.MaxHeaderListBytes {
				t.Fatalf("header list of %d bytes beyond the cap", size)
			}
		}
	}
}

// hdrs builds a header list from name/value pairs.
func hdrs(kv ...string) []exchange.Header {
	var out []exchange.Header
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, exchange.Header{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func byID(t *testing.T, xs []*exchange.Exchange, path string) *exchange.Exchange {
	t.Helper()
	for _, x := range xs {
		if x.Request.Target == path {
			return x
		}
	}
	t.Fatalf("no exchange for %s", path)
	return nil
}
