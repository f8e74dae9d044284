package h2parse

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/httpparse"
	"golang.org/x/net/http2"
)

func kib(n int) []byte { return bytes.Repeat([]byte("0123456789abcdef"), n*64) }

func getReq(path string) []string {
	return []string{":method", "GET", ":scheme", "https", ":authority", "api.example.com", ":path", path, "user-agent", "test/1.0"}
}

func TestBasicExchange(t *testing.T) {
	for _, cdir := range []Dir{Egress, Ingress} {
		t.Run(cdir.String(), func(t *testing.T) {
			body := kib(1)
			cv := newConv(cdir).start()
			cv.client(func(p *peer) { p.headers(1, true, getReq("/items?page=2")...) })
			cv.server(func(p *peer) {
				p.headers(1, false, ":status", "200", "content-type", "application/json")
				must(p.fr.WriteWindowUpdate(0, 100))
				must(p.fr.WritePing(false, [8]byte{1}))
				p.data(1, false, body[:1000])
			})
			respTS := cv.ts
			cv.server(func(p *peer) { p.data(1, true, body[1000:]) })
			cv.close()
			r := runAll(t, Options{MaxBodyBytes: 4096}, cv.evs)
			if len(r.got) != 1 || r.c.State() != HTTP2 || r.c.Unreliable() {
				t.Fatalf("got %d exchanges, state %v, unreliable %v", len(r.got), r.c.State(), r.c.Unreliable())
			}
			x := r.got[0]
			role := exchange.RoleClient
			if cdir == Ingress {
				role = exchange.RoleServer
			}
			if x.Role != role || x.Flags != 0 || x.Reset != nil {
				t.Fatalf("role %v flags %v", x.Role, x.Flags.Names())
			}
			rq := x.Request
			wantReqHdr := hdrs(getReq("/items?page=2")...)
			if rq.Method != "GET" || rq.Target != "/items?page=2" || rq.Proto != "HTTP/2" || !reflect.DeepEqual(rq.Headers, wantReqHdr) {
				t.Fatalf("request: %s", dump(x))
			}
			if rq.BodySize != 0 || rq.Body != nil || rq.FirstByte != 40 || rq.LastByte != 40 {
				t.Fatalf("request body/ts: %s", dump(x))
			}
			rs := x.Response
			if rs.StatusCode != 200 || rs.Proto != "HTTP/2" || !reflect.DeepEqual(rs.Headers, hdrs(":status", "200", "content-type", "application/json")) {
				t.Fatalf("response: %s", dump(x))
			}
			if !bytes.Equal(rs.Body, body) || rs.BodySize != 1024 || rs.BodyTruncated || rs.FirstByte != respTS || rs.LastByte != respTS+10 {
				t.Fatalf("response body/ts: %s", dump(x))
			}
			// HEADERS (9 + block) + two DATA frames (9 + 1000, 9 + 24).
			if want := int64(9+len(newPeer().block(":status", "200", "content-type", "application/json"))) + 9 + 1000 + 9 + 24; rs.WireSize != want {
				t.Fatalf("response wire size %d, want %d", rs.WireSize, want)
			}
		})
	}
}

func TestServerBytesFirst(t *testing.T) {
	cv := newConv(Egress)
	// The server's SETTINGS arrive before the client preface.
	cv.server(func(p *peer) { must(p.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 8192})) })
	cv.client(func(p *peer) {
		p.out.WriteString(clientPreface)
		must(p.fr.WriteSettings())
		must(p.fr.WriteSettingsAck())
		p.headers(1, true, getReq("/a")...)
	})
	cv.server(func(p *peer) { p.headers(1, true, ":status", "204") })
	r := runAll(t, Options{}, cv.evs)
	if len(r.got) != 1 || r.got[0].Response.StatusCode != 204 || r.got[0].Flags != 0 || r.got[0].Role != exchange.RoleClient {
		t.Fatalf("got %d: %v", len(r.got), r.got)
	}
}

func TestNotHTTP2(t *testing.T) {
	cases := map[string][]ev{
		"http1": {{kind: 'f', dir: Egress, data: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")}},
		"http1-response": {{kind: 'f', dir: Ingress, data: []byte("HTTP/1.1 200 OK\r\n\r\n")},
			{kind: 'f', dir: Egress, data: []byte(clientPreface)}},
		"bad-preface-tail": {{kind: 'f', dir: Egress, data: []byte("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")}},
		"gap-first":        {{kind: 'g', dir: Egress, n: 10}, {kind: 'f', dir: Ingress, data: []byte(clientPreface)}},
	}
	for name, evs := range cases {
		t.Run(name, func(t *testing.T) {
			r := runAll(t, Options{}, evs)
			if r.c.State() != NotHTTP2 || len(r.got) != 0 {
				t.Fatalf("state %v, %d exchanges", r.c.State(), len(r.got))
			}
		})
	}
	// A server start that stays without a client preface is held, bounded.
	c := NewConn(Options{MaxHeaderListBytes: 100}, nil)
	set := newPeer()
	must(set.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20}))
	c.Feed(Ingress, set.take(), 1)
	if c.State() != Detecting {
		t.Fatalf("state %v after a server SETTINGS", c.State())
	}
	c.Feed(Ingress, make([]byte, detectSlack+100), 2)
	if c.State() != NotHTTP2 {
		t.Fatalf("state %v after %d held bytes", c.State(), detectSlack+100)
	}
}

func TestLooksLikePreface(t *testing.T) {
	for in, want := range map[string]bool{
		"": false, "P": true, "PRI * HTTP/2.0": true, clientPreface: true, clientPreface + "\x00\x00": true,
		"PRI * HTTP/1.1": false, "GET / HTTP/1.1": false, "\x00\x00\x12\x04": false,
	} {
		if got := LooksLikePreface([]byte(in)); got != want {
			t.Errorf("LooksLikePreface(%q) = %v", in, got)
		}
	}
}

// TestInterleaved runs several streams whose frames interleave, with
// CONTINUATION, padding, priority, request bodies and trailers.
func TestInterleaved(t *testing.T) {
	post := func(path string) []string {
		return []string{":method", "POST", ":scheme", "http", ":authority", "svc:8080", ":path", path, "content-type", "text/plain", "x-long", strings.Repeat("v", 300)}
	}
	cv := newConv(Egress).start()
	cv.client(func(p *peer) {
		p.headersSplit(1, false, 40, 7, post("/one")...)
		p.headersSplit(3, false, 16, 0, post("/two")...)
		p.dataPadded(1, false, []byte("hello "), 10)
	})
	cv.client(func(p *peer) {
		p.headers(5, true, getReq("/three")...)
		p.data(3, false, []byte("second body"))
		p.dataPadded(1, true, []byte("world"), 255)
	})
	cv.server(func(p *peer) {
		p.headers(5, false, ":status", "200")
		p.headersSplit(1, false, 5, 3, ":status", "201", "location", "/one/1")
		p.dataPadded(5, false, []byte("three-a"), 1)
	})
	cv.client(func(p *peer) {
		p.data(3, false, []byte(" more"))
		// Request trailers end stream 3.
		p.headers(3, true, "x-checksum", "abc")
	})
	cv.server(func(p *peer) {
		p.data(1, true, nil) // an empty DATA ends stream 1
		p.headers(3, false, ":status", "100")
		p.data(5, true, []byte("three-b"))
	})
	cv.server(func(p *peer) {
		p.headers(3, false, ":status", "200", "grpc-ish", "no")
		p.data(3, false, []byte("ok"))
		p.headers(3, true, "x-trailer", "t1", "x-trailer", "t2")
	})
	cv.close()
	r := runAll(t, Options{MaxBodyBytes: 64}, cv.evs)
	if len(r.got) != 3 {
		t.Fatalf("%d exchanges", len(r.got))
	}
	// Emitted in completion order.
	order := []string{r.got[0].Request.Target, r.got[1].Request.Target, r.got[2].Request.Target}
	if !reflect.DeepEqual(order, []string{"/one", "/three", "/two"}) {
		t.Fatalf("order %v", order)
	}
	one := byID(t, r.got, "/one")
	if one.Flags != 0 || string(one.Request.Body) != "hello world" || one.Request.BodySize != 11 ||
		!reflect.DeepEqual(one.Request.Headers, hdrs(post("/one")...)) || one.Response.StatusCode != 201 ||
		!reflect.DeepEqual(one.Response.Headers, hdrs(":status", "201", "location", "/one/1")) || one.Response.BodySize != 0 {
		t.Fatalf("/one: %s", dump(one))
	}
	two := byID(t, r.got, "/two")
	if two.Flags != 0 || string(two.Request.Body) != "second body more" || !reflect.DeepEqual(two.Request.Trailers, hdrs("x-checksum", "abc")) ||
		two.Response.StatusCode != 200 || string(two.Response.Body) != "ok" ||
		!reflect.DeepEqual(two.Response.Trailers, hdrs("x-trailer", "t1", "x-trailer", "t2")) ||
		!reflect.DeepEqual(two.Response.Headers, hdrs(":status", "200", "grpc-ish", "no")) {
		t.Fatalf("/two: %s", dump(two))
	}
	three := byID(t, r.got, "/three")
	if three.Flags != 0 || string(three.Response.Body) != "three-athree-b" || three.Response.BodySize != 14 || three.Request.BodySize != 0 {
		t.Fatalf("/three: %s", dump(three))
	}
}

func TestDynamicTableAndSettings(t *testing.T) {
	cv := newConv(Egress).start()
	custom := func(i int) []string {
		return append(getReq(fmt.Sprintf("/r/%d", i)), "authorization", "Bearer abcdefghijklmnopqrstuvwxyz", "x-request-id", fmt.Sprint(i))
	}
	var sizes []int
	for i := 1; i <= 3; i++ {
		cv.client(func(p *peer) { p.headers(uint32(2*i-1), true, custom(i)...) })
		sizes = append(sizes, len(cv.evs[len(cv.evs)-1].data))
		cv.server(func(p *peer) {
			p.headers(uint32(2*i-1), true, ":status", "200", "server", "test-server/1.0", "x-n", fmt.Sprint(i))
		})
	}
	if sizes[1] >= sizes[0] {
		t.Fatalf("the encoder did not reuse its table: %v", sizes)
	}
	// The client allows a 64 KiB table; the server encoder grows to it,
	// which the decoder must accept, then the client shrinks it to 0.
	cv.client(func(p *peer) {
		must(p.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 65536}))
		p.headers(7, true, custom(4)...)
	})
	cv.server(func(p *peer) {
		must(p.fr.WriteSettingsAck())
		p.enc.SetMaxDynamicTableSizeLimit(65536)
		p.enc.SetMaxDynamicTableSize(65536)
		p.headers(7, false, ":status", "200", "x-big", strings.Repeat("b", 6000))
	})
	cv.server(func(p *peer) { p.headers(7, true, "x-big", strings.Repeat("b", 6000)) }) // indexed now
	cv.client(func(p *peer) { must(p.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})) })
	cv.server(func(p *peer) {
		must(p.fr.WriteSettingsAck())
		p.enc.SetMaxDynamicTableSizeLimit(0)
		p.enc.SetMaxDynamicTableSize(0)
	})
	cv.client(func(p *peer) { p.headers(9, true, custom(5)...) })
	cv.server(func(p *peer) { p.headers(9, true, ":status", "404", "server", "test-server/1.0") })
	r := runAll(t, Options{}, cv.evs)
	if len(r.got) != 5 || r.c.Unreliable() {
		t.Fatalf("%d exchanges, unreliable %v, err %v", len(r.got), r.c.Unreliable(), r.c.Err())
	}
	for i, x := range r.got {
		if !reflect.DeepEqual(x.Request.Headers, hdrs(custom(i+1)...)) || x.Flags != 0 {
			t.Fatalf("#%d: %s", i, dump(x))
		}
	}
	if x := r.got[3]; x.Response.StatusCode != 200 || !reflect.DeepEqual(x.Response.Trailers, hdrs("x-big", strings.Repeat("b", 6000))) {
		t.Fatalf("#3: %s", dump(x))
	}
	if x := r.got[4]; !reflect.DeepEqual(x.Response.Headers, hdrs(":status", "404", "server", "test-server/1.0")) {
		t.Fatalf("#4: %s", dump(x))
	}
}

func TestHugeHeaderBlock(t *testing.T) {
	const limit = 4096
	var kv []string
	kv = append(kv, getReq("/huge")...)
	for i := 0; i < 100; i++ {
		kv = append(kv, fmt.Sprintf("x-h%03d", i), strings.Repeat(string(rune('a'+i%26)), 100))
	}
	cv := newConv(Egress).start()
	cv.client(func(p *peer) { p.headersSplit(1, true, 1000, 0, kv...) })
	cv.server(func(p *peer) { p.headers(1, true, ":status", "200") })
	// The next request indexes entries inserted by the huge block.
	cv.client(func(p *peer) { p.headers(3, true, append(getReq("/next"), "x-h099", kv[len(kv)-1])...) })
	cv.server(func(p *peer) { p.headers(3, true, ":status", "200") })
	r := runAll(t, Options{MaxHeaderListBytes: limit}, cv.evs)
	if len(r.got) != 2 {
		t.Fatalf("%d exchanges", len(r.got))
	}
	huge := r.got[0]
	if huge.Flags != exchange.Incomplete || huge.Request.Target != "/huge" {
		t.Fatalf("huge: %s", dump(huge))
	}
	n := len(huge.Request.Headers)
	size := 0
	for _, h := range huge.Request.Headers {
		size += len(h.Name) + len(h.Value) + 32
	}
	if !reflect.DeepEqual(huge.Request.Headers, hdrs(kv[:2*n]...)) || size > limit || size+len(kv[2*n])+len(kv[2*n+1])+32 <= limit {
		t.Fatalf("kept %d fields (%d bytes)", n, size)
	}
	next := r.got[1]
	if next.Flags != 0 || !reflect.DeepEqual(next.Request.Headers, hdrs(append(getReq("/next"), "x-h099", kv[len(kv)-1])...)) {
		t.Fatalf("next: %s", dump(next))
	}
}

func TestResets(t *testing.T) {
	cv := newConv(Egress).start()
	cv.client(func(p *peer) {
		p.headers(1, true, getReq("/cancelled")...)
		p.headers(3, false, ":method", "PUT", ":scheme", "https", ":authority", "a", ":path", "/upload")
		p.data(3, false, []byte("part"))
	})
	cv.client(func(p *peer) { must(p.fr.WriteRSTStream(1, http2.ErrCodeCancel)) })
	cv.server(func(p *peer) {
		p.headers(3, false, ":status", "413")
		p.data(3, true, []byte("too big"))
		must(p.fr.WriteRSTStream(3, http2.ErrCodeNo))
		// Late frames for reset streams are ignored.
		p.data(1, true, []byte("late"))
	})
	cv.client(func(p *peer) {
		p.data(3, true, []byte("late too"))
		p.headers(5, true, getReq("/refused")...)
	})
	cv.server(func(p *peer) {
		p.headers(5, false, ":status", "200")
		p.data(5, false, []byte("partial"))
		must(p.fr.WriteRSTStream(5, http2.ErrCodeInternal))
	})
	r := runAll(t, Options{MaxBodyBytes: 100}, cv.evs)
	if len(r.got) != 3 || r.c.Stats().Resets != 3 {
		t.Fatalf("%d exchanges, %+v", len(r.got), r.c.Stats())
	}
	c := r.got[0]
	if c.Request.Target != "/cancelled" || c.Response != nil || c.Flags != exchange.NoResponse|exchange.Incomplete ||
		*c.Reset != (exchange.StreamReset{Code: 8}) {
		t.Fatalf("cancelled: %s", dump(c))
	}
	u := r.got[1]
	if u.Request.Target != "/upload" || u.Response.StatusCode != 413 || string(u.Request.Body) != "part" ||
		u.Flags != exchange.Incomplete || *u.Reset != (exchange.StreamReset{Code: 0, ByServer: true}) {
		t.Fatalf("upload: %s", dump(u))
	}
	f := r.got[2]
	if f.Response.StatusCode != 200 || string(f.Response.Body) != "partial" || f.Flags != exchange.Incomplete ||
		*f.Reset != (exchange.StreamReset{Code: 2, ByServer: true}) {
		t.Fatalf("refused: %s", dump(f))
	}
}

func TestCloseGoAwayEviction(t *testing.T) {
	cv := newConv(Egress).start()
	for i := uint32(1); i <= 9; i += 2 {
		cv.client(func(p *peer) { p.headers(i, i != 9, getReq(fmt.Sprintf("/s%d", i))...) })
	}
	cv.server(func(p *peer) {
		p.headers(3, false, ":status", "200")
		p.data(3, false, []byte("partial"))
		must(p.fr.WriteGoAway(5, http2.ErrCodeNo, []byte("bye")))
	})
	cv.close()
	// MaxStreams 4: /s1 is evicted when /s9 opens.
	r := runAll(t, Options{MaxStreams: 4, MaxBodyBytes: 10}, cv.evs)
	got := map[string]exchange.Flags{}
	var order []string
	for _, x := range r.got {
		got[x.Request.Target] = x.Flags
		order = append(order, x.Request.Target)
	}
	want := map[string]exchange.Flags{
		"/s1": exchange.Incomplete | exchange.NoResponse, // evicted
		"/s7": exchange.NoResponse,                       // above GOAWAY's last stream
		"/s9": exchange.Incomplete | exchange.NoResponse, // above GOAWAY's last stream, request open
		"/s3": exchange.Incomplete,                       // closed with a partial response
		"/s5": exchange.NoResponse,                       // closed with no response
	}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(order, []string{"/s1", "/s7", "/s9", "/s3", "/s5"}) {
		t.Fatalf("got %v in order %v", got, order)
	}
	if r.c.Stats().Evicted != 1 || r.c.Stats().Exchanges != 5 {
		t.Fatalf("%+v", r.c.Stats())
	}
}

func TestBodyCapAndSkip(t *testing.T) {
	body := kib(4)
	cv := newConv(Egress).start()
	cv.client(func(p *peer) { p.headers(1, true, getReq("/big")...) })
	cv.server(func(p *peer) { p.headers(1, false, ":status", "200") })
	// A 4 KiB DATA frame of which only the first 1000 bytes were captured.
	cv.server(func(p *peer) { p.data(1, false, body) })
	full := cv.evs[len(cv.evs)-1].data
	cv.evs[len(cv.evs)-1].data = full[:9+1000]
	cv.skip(Ingress, int64(len(full)-9-1000))
	cv.server(func(p *peer) { p.data(1, true, []byte("tail")) })
	r := runAll(t, Options{MaxBodyBytes: 512}, cv.evs)
	x := r.got[0]
	if x.Flags != exchange.ResponseTruncated || x.Response.BodySize != 4096+4 || !bytes.Equal(x.Response.Body, body[:512]) ||
		!x.Response.BodyTruncated || r.c.Unreliable() {
		t.Fatalf("%s", dump(x))
	}
	// The same Skip with a body capture not yet full is a gap: a hole.
	r = runAll(t, Options{MaxBodyBytes: 2048}, cv.evs)
	x = r.got[0]
	if x.Flags != exchange.Incomplete || x.Response.BodySize != 4096+4 || !bytes.Equal(x.Response.Body, body[:1000]) || x.Response.BodyTruncated {
		t.Fatalf("%s", dump(x))
	}
}

func TestGapInData(t *testing.T) {
	body := kib(2)
	cv := newConv(Egress).start()
	cv.client(func(p *peer) { p.headers(1, true, getReq("/a")...) })
	cv.server(func(p *peer) { p.headers(1, false, ":status", "200") })
	cv.server(func(p *peer) { p.dataPadded(1, true, body, 20) })
	frame := cv.evs[len(cv.evs)-1].data
	// Lose 1000 bytes in the middle of the DATA payload, then the rest
	// (end of data and padding) arrives.
	cv.evs[len(cv.evs)-1].data = frame[:9+1+500]
	cv.gap(Ingress, 1000)
	cv.raw(Ingress, frame[9+1+500+1000:])
	cv.client(func(p *peer) { p.headers(3, true, getReq("/b")...) })
	cv.server(func(p *peer) {
		p.headers(3, false, ":status", "200")
		p.data(3, true, []byte("fine"))
	})
	r := runAll(t, Options{MaxBodyBytes: 4096}, cv.evs)
	if len(r.got) != 2 || r.c.Unreliable() {
		t.Fatalf("%d exchanges, unreliable %v", len(r.got), r.c.Unreliable())
	}
	a := r.got[0]
	if a.Flags != exchange.Incomplete || a.Response.BodySize != 2048 || !bytes.Equal(a.Response.Body, body[:500]) {
		t.Fatalf("a: %s", dump(a))
	}
	if b := r.got[1]; b.Flags != 0 || string(b.Response.Body) != "fine" {
		t.Fatalf("b: %s", dump(b))
	}
}

func TestGapInHeaders(t *testing.T) {
	secret := "x-private-" + strings.Repeat("s", 40)
	cv := newConv(Egress).start()
	cv.client(func(p *peer) { p.headers(1, true, getReq("/a")...) })
	// The server's HEADERS frame loses bytes inside its block: a literal
	// that the table indexes is never seen.
	cv.server(func(p *peer) { p.headers(1, false, ":status", "200", "set-cookie", secret) })
	frame := cv.evs[len(cv.evs)-1].data
	cv.evs[len(cv.evs)-1].data = frame[:12]
	cv.gap(Ingress, int64(len(frame)-12))
	cv.server(func(p *peer) { p.data(1, true, []byte("body-a")) })
	cv.client(func(p *peer) { p.headers(3, true, getReq("/b")...) })
	cv.server(func(p *peer) {
		p.headers(3, false, ":status", "200", "set-cookie", secret) // indexed now
		p.data(3, true, []byte("body-b"))
	})
	cv.close()
	r := runAll(t, Options{MaxBodyBytes: 100}, cv.evs)
	if len(r.got) != 2 || !r.c.Unreliable() || r.c.Stats().Undecodable != 2 {
		t.Fatalf("%d exchanges, unreliable %v, %+v", len(r.got), r.c.Unreliable(), r.c.Stats())
	}
	for i, x := range r.got {
		rs := x.Response
		if x.Flags != exchange.Incomplete|exchange.ParseError || rs.StatusCode != 0 || rs.Headers != nil ||
			string(rs.Body) != []string{"body-a", "body-b"}[i] || x.Request.Target != []string{"/a", "/b"}[i] {
			t.Fatalf("#%d: %s", i, dump(x))
		}
	}

	// A gap in the client's HEADERS: that request and later ones are
	// dropped, never decoded with a wrong table.
	cv = newConv(Egress).start()
	cv.client(func(p *peer) { p.headers(1, true, append(getReq("/a"), "cookie", secret)...) })
	frame = cv.evs[len(cv.evs)-1].data
	cv.evs[len(cv.evs)-1].data = frame[:20]
	cv.gap(Egress, int64(len(frame)-20))
	cv.server(func(p *peer) { p.headers(1, true, ":status", "200") })
	cv.client(func(p *peer) { p.headers(3, true, append(getReq("/b"), "cookie", secret)...) })
	cv.server(func(p *peer) { p.headers(3, true, ":status", "200") })
	cv.close()
	r = runAll(t, Options{}, cv.evs)
	if len(r.got) != 0 || r.c.Stats().Dropped != 2 || !r.c.Unreliable() {
		t.Fatalf("%d exchanges, %+v", len(r.got), r.c.Stats())
	}
}

func TestGapAcrossFrames(t *testing.T) {
	cv := newConv(Egress).start()
	cv.client(func(p *peer) { p.headers(1, true, getReq("/a")...) })
	cv.server(func(p *peer) {
		p.headers(1, false, ":status", "200")
		p.data(1, false, []byte("start"))
	})
	// Lost: the end of a DATA frame and the start of the next.
	cv.gap(Ingress, 30)
	cv.client(func(p *peer) { p.headers(3, true, getReq("/b")...) })
	cv.server(func(p *peer) { p.data(1, true, []byte("never parsed")) })
	cv.close()
	r := runAll(t, Options{MaxBodyBytes: 100}, cv.evs)
	if len(r.got) != 2 || !r.c.Unreliable() || r.c.State() != HTTP2 || r.c.Err() == nil {
		t.Fatalf("%d exchanges, state %v", len(r.got), r.c.State())
	}
	a, b := r.got[0], r.got[1]
	if a.Flags != exchange.Incomplete || string(a.Response.Body) != "start" || b.Flags != exchange.Incomplete|exchange.NoResponse {
		t.Fatalf("a: %s\nb: %s", dump(a), dump(b))
	}
	// The other direction lost too: Failed.
	cv.evs = append(cv.evs[:len(cv.evs)-1], ev{kind: 'g', dir: Egress, n: 100000, ts: 1000})
	r = runAll(t, Options{}, cv.evs)
	if r.c.State() != Failed || len(r.got) != 2 {
		t.Fatalf("state %v, %d exchanges", r.c.State(), len(r.got))
	}
}

func TestInterimAndPush(t *testing.T) {
	cv := newConv(Egress).start()
	cv.client(func(p *peer) { p.headers(1, true, getReq("/page")...) })
	cv.server(func(p *peer) {
		p.headers(1, false, ":status", "103", "link", "</style.css>; rel=preload")
		pp := p.block(":method", "GET", ":scheme", "https", ":authority", "api.example.com", ":path", "/style.css")
		must(p.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: pp, EndHeaders: true, PadLength: 2}))
		p.headers(1, false, ":status", "200")
		p.headers(2, false, ":status", "200", "content-type", "text/css")
		p.data(2, true, []byte("body{}"))
		p.data(1, true, []byte("<html>"))
	})
	r := runAll(t, Options{MaxBodyBytes: 100}, cv.evs)
	if len(r.got) != 2 {
		t.Fatalf("%d exchanges", len(r.got))
	}
	push, page := r.got[0], r.got[1]
	if push.Request.Target != "/style.css" || push.Response.StatusCode != 200 || string(push.Response.Body) != "body{}" || push.Flags != 0 {
		t.Fatalf("push: %s", dump(push))
	}
	if page.Response.StatusCode != 200 || !reflect.DeepEqual(page.Response.Headers, hdrs(":status", "200")) || string(page.Response.Body) != "<html>" || page.Flags != 0 {
		t.Fatalf("page: %s", dump(page))
	}
}

func TestUpgradedConn(t *testing.T) {
	// HTTP2-Settings: HEADER_TABLE_SIZE = 65536 (base64url of 00 01 00 01 00 00).
	up := &exchange.Message{Method: "GET", Target: "/up", Proto: "HTTP/1.1", FirstByte: 5, LastByte: 5,
		Headers: hdrs("Host", "h", "Connection", "Upgrade, HTTP2-Settings", "Upgrade", "h2c", "HTTP2-Settings", "AAEAAQAA")}
	cv := newConv(Ingress) // the traced process is the server
	cv.server(func(p *peer) {
		must(p.fr.WriteSettings())
		p.enc.SetMaxDynamicTableSizeLimit(65536)
		p.enc.SetMaxDynamicTableSize(65536)
		p.headers(1, false, ":status", "200", "content-type", "text/plain")
		p.data(1, true, []byte("upgraded"))
	})
	cv.client(func(p *peer) {
		p.out.WriteString(clientPreface)
		must(p.fr.WriteSettings())
		p.headers(3, true, getReq("/after")...)
	})
	cv.server(func(p *peer) { p.headers(3, true, ":status", "204") })
	mk := func(o Options, emit func(*exchange.Exchange)) *Conn { return NewUpgradedConn(o, emit, Ingress, up) }
	r := runAllConn(t, mk, Options{MaxBodyBytes: 100}, cv.evs)
	if len(r.got) != 2 || r.c.Unreliable() {
		t.Fatalf("%d exchanges, err %v", len(r.got), r.c.Err())
	}
	a := r.got[0]
	if a.Role != exchange.RoleServer || a.Request.Target != "/up" || a.Request.Proto != "HTTP/1.1" || a.Response.Proto != "HTTP/2" ||
		a.Response.StatusCode != 200 || string(a.Response.Body) != "upgraded" || a.Flags != 0 || a.Request.FirstByte != 5 {
		t.Fatalf("%s", dump(a))
	}
	if b := r.got[1]; b.Request.Target != "/after" || b.Response.StatusCode != 204 {
		t.Fatalf("%s", dump(b))
	}
}

func TestMalformedFrames(t *testing.T) {
	for name, raw := range map[string][]byte{
		"data-stream-0":    {0, 0, 1, 0, 0, 0, 0, 0, 0, 'x'},
		"pad-too-long":     {0, 0, 2, 0, 8, 0, 0, 0, 1, 5, 'x'},
		"headers-too-thin": {0, 0, 3, 1, 0x28, 0, 0, 0, 1, 0, 0, 0},
	} {
		t.Run(name, func(t *testing.T) {
			cv := newConv(Egress).start()
			cv.client(func(p *peer) { p.headers(1, false, getReq("/a")...) })
			cv.raw(Egress, raw)
			cv.server(func(p *peer) { p.headers(1, true, ":status", "200") })
			r := runAll(t, Options{}, cv.evs)
			if len(r.got) != 1 || r.got[0].Flags != exchange.Incomplete || r.c.Err() == nil || r.got[0].Response.StatusCode != 200 {
				t.Fatalf("%d exchanges: %v", len(r.got), r.c.Err())
			}
		})
	}
	// A header block interrupted by another frame breaks the table.
	cv := newConv(Egress).start()
	cv.client(func(p *peer) {
		b := p.block(getReq("/a")...)
		must(p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:5], EndStream: true}))
		p.data(1, true, nil)
		p.headers(3, true, getReq("/b")...)
	})
	r := runAll(t, Options{}, cv.evs)
	if len(r.got) != 0 || !r.c.Unreliable() || r.c.Stats().Dropped != 2 {
		t.Fatalf("%d exchanges, %+v", len(r.got), r.c.Stats())
	}
}

func TestDirIsHTTPParseDir(t *testing.T) {
	var d httpparse.Dir = Ingress
	c := NewConn(Options{}, nil)
	c.Feed(d, []byte("P"), 1)
	if c.State() != Detecting {
		t.Fatal(c.State())
	}
}

// TestGapInFixedFields loses a padded DATA frame's pad length (the padding
// then counts as body: BodySize may exceed the truth by at most 255) and an
// RST_STREAM's error code (the stream still ends).
func TestGapInFixedFields(t *testing.T) {
	cv := newConv(Egress).start()
	cv.client(func(p *peer) {
		p.headers(1, true, getReq("/a")...)
		p.headers(3, true, getReq("/b")...)
	})
	cv.server(func(p *peer) { p.headers(1, false, ":status", "200") })
	cv.server(func(p *peer) { p.dataPadded(1, true, []byte("hello"), 3) })
	frame := cv.evs[len(cv.evs)-1].data
	cv.evs[len(cv.evs)-1].data = frame[:9]
	cv.gap(Ingress, 1)
	cv.raw(Ingress, frame[10:])
	cv.server(func(p *peer) { must(p.fr.WriteRSTStream(3, http2.ErrCodeRefusedStream)) })
	frame = cv.evs[len(cv.evs)-1].data
	cv.evs[len(cv.evs)-1].data = frame[:9]
	cv.gap(Ingress, 4)
	cv.server(func(p *peer) { p.headers(5, true, ":status", "200") }) // an orphan: no request 5
	r := runAll(t, Options{MaxBodyBytes: 100}, cv.evs)
	if len(r.got) != 2 || r.c.Unreliable() || r.c.Stats().Orphans != 1 {
		t.Fatalf("%d exchanges, %+v", len(r.got), r.c.Stats())
	}
	a, b := r.got[0], r.got[1]
	if a.Flags != exchange.Incomplete || a.Response.BodySize != 8 || a.Response.Body != nil {
		t.Fatalf("a: %s", dump(a))
	}
	if b.Request.Target != "/b" || b.Flags != exchange.Incomplete|exchange.NoResponse || b.Reset != nil {
		t.Fatalf("b: %s", dump(b))
	}
}

func TestLooksLikeServerStart(t *testing.T) {
	p := newPeer()
	must(p.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100}))
	set := p.take()
	must(p.fr.WriteSettingsAck())
	ack := p.take()
	p.headers(1, true, ":status", "200")
	hdr := p.take()
	for _, tc := range []struct {
		in   []byte
		want bool
	}{{set, true}, {set[:9], true}, {set[:8], false}, {ack, false}, {hdr, false}, {[]byte("HTTP/1.1 200 OK\r\n"), false}} {
		if got := LooksLikeServerStart(tc.in); got != tc.want {
			t.Errorf("LooksLikeServerStart(%q) = %v", tc.in, got)
		}
	}
}

// After a gap inside a header block the direction's HPACK table is no
// longer known. Decoding resumes with an empty table: a later block that
// refers to an entry from before the loss cannot be decoded (its request
// is dropped and counted, never decoded against a wrong entry), but blocks
// made of literals, static entries and entries inserted since the loss are
// exact. Before, every later block of the direction was dropped.
func TestHPACKResumesAfterLoss(t *testing.T) {
	req := func(authority, path, idName, id string) []string {
		return []string{":method", "GET", ":scheme", "https", ":authority", authority, ":path", path, idName, id}
	}
	cv := newConv(Egress).start()
	cv.client(func(p *peer) { p.headers(1, true, req("a.example", "/a", "x-id", "a")...) })
	frame := cv.evs[len(cv.evs)-1].data
	cv.evs[len(cv.evs)-1].data = frame[:20]
	cv.gap(Egress, int64(len(frame)-20))
	cv.server(func(p *peer) { p.headers(1, true, ":status", "200") })
	// /b repeats a.example, an entry inserted by the lost block: undecodable.
	cv.client(func(p *peer) { p.headers(3, true, req("a.example", "/b", "x-id", "b")...) })
	cv.server(func(p *peer) { p.headers(3, true, ":status", "200") })
	// /c is static names and new literals (x-id would name an entry of
	// before the loss); /d refers to entries /c inserted.
	cv.client(func(p *peer) { p.headers(5, true, req("c.example", "/c", "x-req", "c")...) })
	cv.server(func(p *peer) { p.headers(5, true, ":status", "204") })
	cv.client(func(p *peer) { p.headers(7, true, req("c.example", "/d", "x-req", "d")...) })
	cv.server(func(p *peer) { p.headers(7, true, ":status", "404") })
	cv.close()
	r := runAll(t, Options{}, cv.evs)
	var got []string
	for _, x := range r.got {
		got = append(got, fmt.Sprintf("%s %s%s x-req=%s -> %d flags %v", x.Request.Method, header(x.Request, ":authority"),
			x.Request.Target, header(x.Request, "x-req"), x.Response.StatusCode, x.Flags.Names()))
	}
	want := []string{
		"GET c.example/c x-req=c -> 204 flags []",
		"GET c.example/d x-req=d -> 404 flags []",
	}
	if !slices.Equal(got, want) {
		t.Errorf("exchanges:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if st := r.c.Stats(); st.Dropped != 2 || st.Undecodable != 2 || st.Resumed != 2 || !r.c.Unreliable() {
		t.Errorf("stats %+v, want 2 dropped (/a, /b), 2 undecodable, 2 resumed", st)
	}
}

func header(m *exchange.Message, name string) string {
	for _, h := range m.Headers {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}
