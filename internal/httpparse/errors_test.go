package httpparse

import (
	"strings"
	"testing"

	"github.com/tlstap/tlstap/internal/exchange"
)

func TestDetection(t *testing.T) {
	runCases(t, []connCase{{
		name:  "TLS record is not HTTP",
		opts:  opts64,
		evs:   []ev{out(1, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc"), in(2, ok5), out(3, getA)},
		state: NotHTTP,
	}, {
		name:  "text protocol is not HTTP",
		opts:  opts64,
		evs:   []ev{in(1, "+OK redis ready\r\n"), out(2, getA), in(3, ok5)},
		state: NotHTTP,
	}, {
		name:  "token without version",
		opts:  opts64,
		evs:   []ev{out(1, "HELLO world\r\n"), in(2, ok5)},
		state: NotHTTP,
	}, {
		name:  "HTTP/2 preface is not HTTP/1",
		opts:  opts64,
		evs:   []ev{out(1, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")},
		state: NotHTTP,
	}, {
		name:  "nothing yet",
		opts:  opts64,
		evs:   []ev{out(1, "GET /partial-line HTT")},
		state: Detecting,
	}, {
		name:  "first line decides even when split",
		opts:  opts64,
		evs:   []ev{out(1, "G"), out(2, "ET /b HTTP/1.1\r\nHost: example.com\r\n\r\n"), in(3, ok3)},
		want:  []exchange.Exchange{{Role: exchange.RoleClient, Request: mGetB(1, 2), Response: mOK3(3, 3)}},
		state: HTTP,
	}})
}

func TestParseErrors(t *testing.T) {
	mErr := func(target string, h []exchange.Header, text string) *exchange.Message {
		return &exchange.Message{Method: "GET", Target: target, Proto: "HTTP/1.1", Headers: h,
			WireSize: wire(text), FirstByte: 2, LastByte: 2}
	}
	many := "GET /m HTTP/1.1\r\n" + strings.Repeat("A: b\r\n", 257) + "\r\n"
	runCases(t, []connCase{{
		name: "non-numeric Content-Length in request",
		opts: opts64,
		evs:  []ev{out(1, getB), in(1, ok3), out(2, "GET /x HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"), in(3, ok3)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Request: mGetB(1, 1), Response: mOK3(1, 1)},
			{Role: exchange.RoleClient, Flags: exchange.ParseError | exchange.Incomplete | exchange.NoResponse,
				Request: mErr("/x", hs("Content-Length", "1x"), "GET /x HTTP/1.1\r\nContent-Length: 1x\r\n\r\n")},
		},
		state: Failed,
	}, {
		name: "conflicting Content-Length in response",
		opts: opts64,
		evs:  []ev{out(2, getB), in(3, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc")},
		want: []exchange.Exchange{{Role: exchange.RoleClient, Flags: exchange.ParseError | exchange.Incomplete, Request: mGetB(2, 2),
			Response: &exchange.Message{StatusCode: 200, Reason: "OK", Proto: "HTTP/1.1",
				Headers:  hs("Content-Length", "3", "Content-Length", "4"),
				WireSize: wire("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"), FirstByte: 3, LastByte: 3}}},
		state: Failed,
	}, {
		name:  "garbage after a request line in the response direction",
		opts:  opts64,
		evs:   []ev{out(2, getB), in(3, "\x00\x01binary")},
		want:  []exchange.Exchange{{Role: exchange.RoleClient, Flags: exchange.ParseError | exchange.NoResponse, Request: mGetB(2, 2)}},
		state: Failed,
	}, {
		name: "malformed header line",
		opts: opts64,
		evs:  []ev{out(2, "GET /h HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n")},
		want: []exchange.Exchange{{Role: exchange.RoleClient, Flags: exchange.ParseError | exchange.Incomplete | exchange.NoResponse,
			Request: mErr("/h", nil, "GET /h HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n")}},
		state: Failed,
	}, {
		name: "space before colon",
		opts: opts64,
		evs:  []ev{out(2, "GET /h HTTP/1.1\r\nHost : a\r\n\r\n")},
		want: []exchange.Exchange{{Role: exchange.RoleClient, Flags: exchange.ParseError | exchange.Incomplete | exchange.NoResponse,
			Request: mErr("/h", nil, "GET /h HTTP/1.1\r\nHost : a\r\n\r\n")}},
		state: Failed,
	}, {
		name: "too many fields",
		opts: opts64,
		evs:  []ev{out(2, many)},
		want: []exchange.Exchange{{Role: exchange.RoleClient, Flags: exchange.ParseError | exchange.Incomplete | exchange.NoResponse,
			Request: &exchange.Message{Method: "GET", Target: "/m", Proto: "HTTP/1.1",
				Headers:  hs(strings.Split(strings.TrimSuffix(strings.Repeat("A,b,", 256), ","), ",")...),
				WireSize: wire("GET /m HTTP/1.1\r\n" + strings.Repeat("A: b\r\n", 257)), FirstByte: 2, LastByte: 2}}},
		state:    Failed,
		noSplits: true,
	}, {
		name: "head too large",
		opts: Options{MaxHeaderBytes: 40},
		evs:  []ev{out(2, "GET /big HTTP/1.1\r\nX: 0123456789012345678901234567890\r\n\r\n")},
		want: []exchange.Exchange{{Role: exchange.RoleClient, Flags: exchange.ParseError | exchange.Incomplete | exchange.NoResponse,
			Request: mErr("/big", nil, "GET /big HTTP/1.1\r\nX: 012345678901234567")}},
		state: Failed,
	}, {
		name:  "request line too large while detecting",
		opts:  Options{MaxHeaderBytes: 16},
		evs:   []ev{out(2, "GET /0123456789012345 HTTP/1.1\r\n\r\n")},
		state: NotHTTP,
	}, {
		name: "request Transfer-Encoding without chunked",
		opts: opts64,
		evs:  []ev{out(2, "GET /t HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n")},
		want: []exchange.Exchange{{Role: exchange.RoleClient, Flags: exchange.ParseError | exchange.Incomplete | exchange.NoResponse,
			Request: mErr("/t", hs("Transfer-Encoding", "gzip"), "GET /t HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n")}},
		state: Failed,
	}, {
		name: "bad chunk size",
		opts: opts64,
		evs:  []ev{out(2, getB), in(3, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n")},
		want: []exchange.Exchange{{Role: exchange.RoleClient, Flags: exchange.ParseError | exchange.Incomplete, Request: mGetB(2, 2),
			Response: &exchange.Message{StatusCode: 200, Reason: "OK", Proto: "HTTP/1.1", Headers: hs("Transfer-Encoding", "chunked"),
				Body: []byte("ok"), BodySize: 2, WireSize: wire("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nz"),
				FirstByte: 3, LastByte: 3}}},
		state: Failed,
	}, {
		name:  "second request line invalid: no exchange for it",
		opts:  opts64,
		evs:   []ev{out(2, getB), in(3, ok3), out(4, "GET /x\r\n\r\n")},
		want:  []exchange.Exchange{{Role: exchange.RoleClient, Request: mGetB(2, 2), Response: mOK3(3, 3)}},
		state: Failed,
	}})
}

func TestGaps(t *testing.T) {
	const post = "POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\n"
	const chunkedResp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	const closeResp = "HTTP/1.0 200 OK\r\n\r\n"
	runCases(t, []connCase{{
		name: "gap inside a Content-Length body stays in sync",
		opts: opts64,
		evs:  []ev{out(1, post+"012"), gap(Egress, 2, 2), out(3, "56789"+getB), in(4, ok3+ok5)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Flags: exchange.Incomplete,
				Request: &exchange.Message{Method: "POST", Target: "/p", Proto: "HTTP/1.1", Headers: hs("Content-Length", "10"),
					Body: []byte("012"), BodySize: 10, WireSize: wire(post) + 10, FirstByte: 1, LastByte: 3},
				Response: mOK3(4, 4)},
			{Role: exchange.RoleClient, Request: mGetB(3, 3), Response: mOK5(4, 4)},
		},
		state: HTTP,
	}, {
		name: "gap ending a body exactly",
		opts: opts64,
		evs:  []ev{out(1, getB), in(2, ok5[:len(ok5)-2]), gap(Ingress, 3, 2), out(4, getB), in(5, ok3)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Flags: exchange.Incomplete, Request: mGetB(1, 1),
				Response: &exchange.Message{StatusCode: 200, Reason: "OK", Proto: "HTTP/1.1", Headers: hs("Content-Length", "5"),
					Body: []byte("hel"), BodySize: 5, WireSize: wire(ok5), FirstByte: 2, LastByte: 3}},
			{Role: exchange.RoleClient, Request: mGetB(4, 4), Response: mOK3(5, 5)},
		},
		state: HTTP,
	}, {
		name: "gap inside chunk data",
		opts: opts64,
		evs:  []ev{out(1, getB), in(2, chunkedResp+"a\r\n01"), gap(Ingress, 3, 5), out(5, getB), in(4, "789\r\n0\r\n\r\n"+ok3)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Flags: exchange.Incomplete, Request: mGetB(1, 1),
				Response: &exchange.Message{StatusCode: 200, Reason: "OK", Proto: "HTTP/1.1", Headers: hs("Transfer-Encoding", "chunked"),
					Body: []byte("01"), BodySize: 10, WireSize: wire(chunkedResp, "a\r\n0123456789\r\n0\r\n\r\n"), FirstByte: 2, LastByte: 4}},
			{Role: exchange.RoleClient, Request: mGetB(5, 5), Response: mOK3(4, 4)},
		},
		state: HTTP,
	}, {
		name: "gap in a chunk-size line resyncs",
		opts: opts64,
		evs:  []ev{out(1, getB), in(2, chunkedResp+"a"), gap(Ingress, 3, 4), out(5, getB), in(4, "garbage\r\nmore 0\r\n\r\n"+ok3)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Flags: exchange.Incomplete, Request: mGetB(1, 1),
				Response: &exchange.Message{StatusCode: 200, Reason: "OK", Proto: "HTTP/1.1", Headers: hs("Transfer-Encoding", "chunked"),
					WireSize: wire(chunkedResp, "a"), FirstByte: 2, LastByte: 3}},
			{Role: exchange.RoleClient, Request: mGetB(5, 5), Response: mOK3(4, 4)},
		},
		state: HTTP,
	}, {
		name: "gap in request headers: request kept, direction resyncs",
		opts: opts64,
		evs: []ev{out(1, "GET /g HTTP/1.1\r\nHost: a\r\nX-Lo"), gap(Egress, 2, 30), out(3, "st: 1\r\n\r\nGET /fake HTTP/1.1 trailing\r\n"+getB),
			in(4, ok5+ok3)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Flags: exchange.Incomplete,
				Request: &exchange.Message{Method: "GET", Target: "/g", Proto: "HTTP/1.1", Headers: hs("Host", "a"),
					WireSize: wire("GET /g HTTP/1.1\r\nHost: a\r\nX-Lo"), FirstByte: 1, LastByte: 2},
				Response: mOK5(4, 4)},
			{Role: exchange.RoleClient, Request: mGetB(3, 3), Response: mOK3(4, 4)},
		},
		state: HTTP,
	}, {
		// Pipelined (/b goes out while /a waits) with requests lost in
		// between: 40 bytes may hold one request or two, so which
		// response answers /b is unknown. Pairing stops (it used to take
		// the gap for one request); the responses are counted unpaired.
		name: "request lost on a pipelined connection: pairing stops",
		opts: opts64,
		evs:  []ev{out(1, getA), gap(Egress, 2, 40), out(3, getB), in(4, ok5+ok3+ok5)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Flags: exchange.Incomplete | exchange.NoResponse, Request: mGetA(1, 1)},
			{Role: exchange.RoleClient, Flags: exchange.Incomplete | exchange.NoResponse, Request: mGetB(3, 3)},
		},
		state: HTTP,
	}, {
		// Pipelined: 40 lost bytes may hold /a's response or /a's and
		// /b's (then ok3 answers a third request); pairing stops.
		name: "response lost on a pipelined connection: pairing stops",
		opts: opts64,
		evs:  []ev{out(1, getA+getB), gap(Ingress, 2, 40), in(3, ok3)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Flags: exchange.Incomplete | exchange.NoResponse, Request: mGetA(1, 1)},
			{Role: exchange.RoleClient, Flags: exchange.Incomplete | exchange.NoResponse, Request: mGetB(1, 1)},
		},
		state: HTTP,
	}, {
		name: "response head cut before its status line",
		opts: opts64,
		evs:  []ev{out(1, getA+getB), in(2, "HTTP/1.1 20"), gap(Ingress, 3, 40), in(4, "lo\r\n"+ok3)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Flags: exchange.Incomplete | exchange.NoResponse, Request: mGetA(1, 1)},
			{Role: exchange.RoleClient, Flags: exchange.Incomplete | exchange.NoResponse, Request: mGetB(1, 1)},
		},
		state: HTTP,
	}, {
		name: "gap in a close-delimited body is counted",
		opts: opts64,
		evs:  []ev{out(1, getB), in(2, closeResp+"ab"), gap(Ingress, 3, 3), in(4, "fg"), closed(5)},
		want: []exchange.Exchange{{Role: exchange.RoleClient, Flags: exchange.Incomplete, Request: mGetB(1, 1),
			Response: &exchange.Message{StatusCode: 200, Reason: "OK", Proto: "HTTP/1.0",
				Body: []byte("ab"), BodySize: 7, WireSize: wire(closeResp) + 7, FirstByte: 2, LastByte: 4}}},
		state: HTTP,
	}, {
		name: "gap past a body end resyncs on the next status line",
		opts: opts64,
		evs:  []ev{out(1, getA+getB+getA), in(2, ok5[:len(ok5)-1]), gap(Ingress, 3, 20), in(4, "ength: 4\r\n\r\nabc\n"+ok5)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Flags: exchange.Incomplete, Request: mGetA(1, 1),
				Response: &exchange.Message{StatusCode: 200, Reason: "OK", Proto: "HTTP/1.1", Headers: hs("Content-Length", "5"),
					Body: []byte("hell"), BodySize: 5, WireSize: wire(ok5), FirstByte: 2, LastByte: 3}},
			{Role: exchange.RoleClient, Flags: exchange.Incomplete | exchange.NoResponse, Request: mGetB(1, 1)},
			{Role: exchange.RoleClient, Flags: exchange.Incomplete | exchange.NoResponse, Request: mGetA(1, 1)},
		},
		state: HTTP,
	}, {
		// The connection's first 100 bytes were lost: requests, sent
		// before /b with no response between, so ok3 may answer one of
		// them (how many is unknown). Nothing is paired.
		name:  "gap before anything: first line found after garbage",
		opts:  opts64,
		evs:   []ev{gap(Egress, 1, 100), out(2, "tail of something\r\n"+getB), in(3, ok3)},
		want:  []exchange.Exchange{{Role: exchange.RoleClient, Flags: exchange.Incomplete | exchange.NoResponse, Request: mGetB(2, 2)}},
		state: HTTP,
	}})
}

func TestMaxPending(t *testing.T) {
	runCases(t, []connCase{{
		name: "oldest unanswered given up",
		opts: Options{MaxBodyBytes: 64, MaxPending: 2},
		evs:  []ev{out(1, getA), out(2, getB), out(3, getB), in(4, ok3+ok3)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Flags: exchange.Incomplete | exchange.NoResponse, Request: mGetA(1, 1)},
			{Role: exchange.RoleClient, Request: mGetB(2, 2), Response: mOK3(4, 4)},
			{Role: exchange.RoleClient, Request: mGetB(3, 3), Response: mOK3(4, 4)},
		},
		state: HTTP,
	}})
}

// TestBoundedMemory checks that a long pipelined burst without responses
// keeps the queue at MaxPending and that the head buffer never grows past
// MaxHeaderBytes.
func TestBoundedMemory(t *testing.T) {
	n := 0
	c := NewConn(Options{MaxPending: 4, MaxHeaderBytes: 1024}, func(*exchange.Exchange) { n++ })
	for i := 0; i < 1000; i++ {
		c.Feed(Egress, []byte(getA), int64(i))
		if len(c.queue) > 4 {
			t.Fatalf("queue grew to %d", len(c.queue))
		}
	}
	if n != 996 {
		t.Fatalf("emitted %d, want 996", n)
	}
	for d := range c.streams {
		if cap(c.streams[d].head) > 1024 {
			t.Fatalf("head buffer cap %d", cap(c.streams[d].head))
		}
	}
}

func TestHoldAndGap(t *testing.T) {
	const connect = "CONNECT example.com:443 HTTP/1.1\r\n\r\n"
	const deny = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
	mConnect := &exchange.Message{Method: "CONNECT", Target: "example.com:443", Proto: "HTTP/1.1",
		WireSize: wire(connect), FirstByte: 1, LastByte: 1}
	mDeny := &exchange.Message{StatusCode: 403, Reason: "Forbidden", Proto: "HTTP/1.1",
		Headers: hs("Content-Length", "0"), WireSize: wire(deny), FirstByte: 5, LastByte: 5}
	runCases(t, []connCase{{
		// Bytes held behind CONNECT then lost: what was held before the gap
		// is replayed; bytes held after the gap are dropped rather than
		// spliced, so the request at ts 4 is lost and its response is
		// an orphan.
		name: "gap while held",
		opts: opts64,
		evs:  []ev{out(1, connect), out(2, getB), gap(Egress, 3, 10), out(4, "junk\r\n"+getA), in(5, deny+ok3+ok5)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Request: mConnect, Response: mDeny},
			{Role: exchange.RoleClient, Request: mGetB(2, 2), Response: mOK3(5, 5)},
		},
		state: HTTP,
	}, {
		name: "held bytes overflow the cap",
		opts: Options{MaxBodyBytes: 64, MaxHeaderBytes: 64},
		evs:  []ev{out(1, connect), out(2, strings.Repeat("x", 100)), in(5, deny), out(6, getB), in(7, ok3)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Request: mConnect, Response: mDeny},
			{Role: exchange.RoleClient, Request: mGetB(6, 6), Response: mOK3(7, 7)},
		},
		state: HTTP,
	}})
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{MaxBodyBytes: 1 << 20}.normalized()
	if o.MaxHeaderBytes != 64<<10 || o.MaxPending != 64 || o.MaxDecodedBytes != 4<<20 {
		t.Errorf("defaults: %+v", o)
	}
	if o := (Options{}).normalized(); o.MaxDecodedBytes != 64<<10 || o.MaxBodyBytes != 0 {
		t.Errorf("zero options: %+v", o)
	}
	if o := (Options{MaxBodyBytes: -1}).normalized(); o.MaxBodyBytes != 0 {
		t.Errorf("negative body cap: %+v", o)
	}
}
