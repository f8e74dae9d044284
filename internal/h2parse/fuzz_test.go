package h2parse

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tlstap/tlstap/internal/exchange"
	"golang.org/x/net/http2"
)

// Fuzz scripts are byte strings of operations. Each operation starts with a
// header byte h: dir = h&1; op = h>>1&3; arg = h>>3 + 1 (1..32).
// op 0-1: feed the next arg bytes; op 2: skip arg bytes; op 3: a gap of arg
// bytes. Close ends every script.
const maxFeedOp = 32

// script encodes test events in the fuzz script format.
func script(evs []ev) []byte {
	var b []byte
	for _, e := range evs {
		switch e.kind {
		case 'f':
			for d := e.data; len(d) > 0; {
				k := min(len(d), maxFeedOp)
				b = append(b, byte(k-1)<<3|byte(e.dir))
				b = append(b, d[:k]...)
				d = d[k:]
			}
		case 'g', 's':
			op := byte(3)
			if e.kind == 's' {
				op = 2
			}
			for n := e.n; n > 0; n -= maxFeedOp {
				b = append(b, byte(min(n, maxFeedOp)-1)<<3|op<<1|byte(e.dir))
			}
		}
	}
	return b
}

// parseScript turns a fuzz script back into events, each op with its own
// timestamp.
func parseScript(s []byte) []ev {
	var evs []ev
	ts := int64(0)
	for len(s) > 0 {
		h := s[0]
		s = s[1:]
		ts++
		dir, op, arg := Dir(h&1), h>>1&3, int(h>>3)+1
		switch op {
		case 2:
			evs = append(evs, ev{kind: 's', dir: dir, n: int64(arg), ts: ts})
		case 3:
			evs = append(evs, ev{kind: 'g', dir: dir, n: int64(arg), ts: ts})
		default:
			arg = min(arg, len(s))
			evs = append(evs, ev{kind: 'f', dir: dir, data: s[:arg], ts: ts})
			s = s[arg:]
		}
	}
	return append(evs, ev{kind: 'c', ts: ts + 1})
}

func fuzzOptions(o byte) Options {
	opts := Options{MaxBodyBytes: int(o&15) * 8, MaxStreams: int(o>>5) + 1}
	if o&16 != 0 {
		opts.MaxHeaderListBytes = 200
	}
	return opts
}

// fuzzRun runs events whole and byte by byte, checks that both agree and
// that every exchange keeps the invariants.
func fuzzRun(t *testing.T, opts Options, evs []ev) {
	a := run(t, opts, evs, whole)
	b := run(t, opts, evs, byteByByte)
	if d := diff(a.snaps, b.snaps); d != "" {
		t.Fatalf("bytewise feed differs: %s", d)
	}
	if a.c.Stats() != b.c.Stats() || a.c.State() != b.c.State() {
		t.Fatalf("bytewise: %v %+v, whole: %v %+v", b.c.State(), b.c.Stats(), a.c.State(), a.c.Stats())
	}
	seen := map[*exchange.Exchange]bool{}
	for _, x := range a.got {
		if seen[x] {
			t.Fatal("exchange emitted twice")
		}
		seen[x] = true
		checkExchange(t, opts, x)
	}
	st := a.c.Stats()
	if st.Exchanges != uint64(len(a.got)) || len(a.c.streams) != 0 {
		t.Fatalf("stats %+v for %d exchanges, %d streams left", st, len(a.got), len(a.c.streams))
	}
}

// FuzzFrames feeds arbitrary scripts. Options come from the first byte; bit
// 0 of the second byte prepends the client preface on Egress.
func FuzzFrames(f *testing.F) {
	for _, evs := range seedConversations() {
		f.Add(append([]byte{0x2f, 0}, script(evs)...))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 2 {
			return
		}
		opts := fuzzOptions(in[0])
		evs := parseScript(in[2:])
		if in[1]&1 != 0 {
			evs = append([]ev{{kind: 'f', dir: Egress, data: []byte(clientPreface)}}, evs...)
		}
		fuzzRun(t, opts, evs)
	})
}

// FuzzHeaders feeds arbitrary HPACK bytes inside well-formed frames. After
// the options byte come chunks: a control byte c (dir = c&1, END_STREAM =
// c&2, split into HEADERS + CONTINUATION = c&4, DATA before = c&8, stream =
// 2*(c>>4&7)+1), a length byte, and that many bytes of header block.
func FuzzHeaders(f *testing.F) {
	blk := newPeer()
	cblk := blk.block(getReq("/a")...)
	sblk := newPeer().block(":status", "200", "content-type", "application/grpc")
	f.Add(append(append([]byte{0x0f, 0x02, byte(len(cblk))}, cblk...), append([]byte{0x03, byte(len(sblk))}, sblk...)...))
	cblk2 := blk.block(append(getReq("/b"), "x-k", "v")...)
	f.Add(append(append([]byte{0x1f, 0x16, byte(len(cblk2))}, cblk2...), append([]byte{0x1b, byte(len(sblk))}, sblk...)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 1 {
			return
		}
		opts := fuzzOptions(in[0])
		fuzzRun(t, opts, headerScript(in[1:]))
	})
}

func headerScript(in []byte) []ev {
	cli, srv := newPeer(), newPeer()
	cli.out.WriteString(clientPreface)
	must(cli.fr.WriteSettings())
	must(srv.fr.WriteSettings())
	evs := []ev{{kind: 'f', dir: Egress, data: cli.take(), ts: 1}, {kind: 'f', dir: Ingress, data: srv.take(), ts: 2}}
	ts := int64(2)
	for len(in) >= 2 {
		c, n := in[0], int(in[1])
		in = in[2:]
		n = min(n, len(in))
		frag := in[:n]
		in = in[n:]
		p, dir := cli, Egress
		if c&1 != 0 {
			p, dir = srv, Ingress
		}
		sid := uint32(c>>4&7)*2 + 1
		if c&8 != 0 {
			must(p.fr.WriteData(sid, false, []byte("body")))
		}
		if c&4 != 0 && len(frag) > 1 {
			h := len(frag) / 2
			must(p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: frag[:h], EndStream: c&2 != 0}))
			must(p.fr.WriteContinuation(sid, true, frag[h:]))
		} else {
			must(p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: frag, EndStream: c&2 != 0, EndHeaders: true}))
		}
		ts++
		evs = append(evs, ev{kind: 'f', dir: dir, data: p.take(), ts: ts})
	}
	return append(evs, ev{kind: 'c', ts: ts + 1})
}

// seedConversations are realistic scripts for the fuzz corpus.
func seedConversations() [][]ev {
	var out [][]ev
	cv := newConv(Egress).start()
	cv.client(func(p *peer) { p.headers(1, true, getReq("/a")...) })
	cv.server(func(p *peer) {
		p.headers(1, false, ":status", "200", "content-type", "text/plain")
		p.dataPadded(1, true, []byte("hello"), 3)
	})
	out = append(out, cv.evs)

	cv = newConv(Egress).start()
	cv.client(func(p *peer) {
		p.headersSplit(1, false, 20, 2, grpcReq("/helloworld.Greeter/SayHello")...)
		p.data(1, true, grpcFrame("abc"))
		p.headers(3, true, getReq("/b")...)
	})
	cv.server(func(p *peer) {
		must(p.fr.WriteSettingsAck())
		p.headers(1, false, ":status", "200", "content-type", "application/grpc")
		p.data(1, false, grpcFrame("reply"))
		p.headers(1, true, "grpc-status", "0")
		must(p.fr.WriteRSTStream(3, http2.ErrCodeRefusedStream))
		must(p.fr.WriteGoAway(3, http2.ErrCodeNo, nil))
	})
	out = append(out, cv.evs)

	cv = newConv(Ingress)
	cv.server(func(p *peer) { must(p.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 100})) })
	cv.client(func(p *peer) {
		p.out.WriteString(clientPreface)
		must(p.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 8192}))
		must(p.fr.WriteSettingsAck())
		p.enc.SetMaxDynamicTableSizeLimit(100)
		p.enc.SetMaxDynamicTableSize(100)
		p.headers(1, false, append(getReq("/c"), "x-a", strings.Repeat("a", 60))...)
		p.data(1, false, []byte("part one"))
	})
	cv.gap(Ingress, 3)
	cv.server(func(p *peer) {
		must(p.fr.WriteSettingsAck())
		p.enc.SetMaxDynamicTableSizeLimit(8192)
		p.enc.SetMaxDynamicTableSize(8192)
		p.headers(1, false, ":status", "100")
		p.headers(1, false, ":status", "200", "x-b", strings.Repeat("b", 5000))
		pp := p.block(":method", "GET", ":scheme", "https", ":authority", "x", ":path", "/pushed")
		must(p.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: pp, EndHeaders: true}))
		p.data(1, false, []byte("x"))
	})
	cv.skip(Ingress, 5)
	out = append(out, cv.evs)
	return out
}

// TestWriteFuzzCorpus regenerates the committed seed corpus when
// H2PARSE_WRITE_CORPUS is set.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("H2PARSE_WRITE_CORPUS") == "" {
		t.Skip("set H2PARSE_WRITE_CORPUS=1 to regenerate testdata/fuzz")
	}
	write := func(target string, in []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		must(os.MkdirAll(dir, 0o755))
		name := fmt.Sprintf("seed-%x", sha256.Sum256(in))[:21]
		must(os.WriteFile(filepath.Join(dir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", in), 0o644))
	}
	for i, evs := range seedConversations() {
		write("FuzzFrames", append([]byte{byte(0x2f + i*0x31), 0}, script(evs)...))
	}
	// Every conversation of the unit tests, through the script format.
	for _, evs := range unitConversations() {
		write("FuzzFrames", append([]byte{0x47, 0}, script(evs)...))
	}
	blk := newPeer()
	var in []byte
	in = append(in, 0x05)
	for i, kv := range [][]string{getReq("/x"), append(getReq("/y"), "cookie", "a=b"), getReq("/z")} {
		b := blk.block(kv...)
		in = append(in, byte(i<<4)|0x06, byte(len(b)))
		in = append(in, b...)
	}
	write("FuzzHeaders", in)
}

// unitConversations rebuilds a few unit test conversations for the corpus.
func unitConversations() [][]ev {
	var out [][]ev
	cv := newConv(Egress).start()
	for i := uint32(1); i <= 5; i += 2 {
		cv.client(func(p *peer) { p.headers(i, i == 5, getReq(fmt.Sprintf("/s%d", i))...) })
	}
	cv.client(func(p *peer) { must(p.fr.WriteRSTStream(1, http2.ErrCodeCancel)) })
	cv.server(func(p *peer) {
		p.headers(3, false, ":status", "200")
		p.data(3, false, kib(1)[:100])
		p.headers(5, true, ":status", "404")
	})
	cv.gap(Ingress, 40)
	out = append(out, cv.evs)
	return out
}

func TestScriptRoundTrip(t *testing.T) {
	for _, evs := range seedConversations() {
		back := parseScript(script(evs))
		var a, b []byte
		for _, e := range evs {
			if e.kind == 'f' {
				a = append(a, e.data...)
			}
		}
		for _, e := range back {
			if e.kind == 'f' {
				b = append(b, e.data...)
			}
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatal("script round trip lost bytes")
		}
		// The seeds are real conversations: they produce exchanges.
		r := run(t, Options{MaxBodyBytes: 64}, back, whole)
		if len(r.got) == 0 {
			t.Fatalf("seed produced no exchange (state %v, err %v)", r.c.State(), r.c.Err())
		}
	}
}
