package httpparse

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"strings"
	"testing"

	"github.com/tlstap/tlstap/internal/exchange"
)

const (
	getA = "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\n\r\n"
	getB = "GET /b HTTP/1.1\r\nHost: example.com\r\n\r\n"
	ok5  = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	ok3  = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
)

func mGetA(first, last int64) *exchange.Message {
	return &exchange.Message{Method: "GET", Target: "/a?b=1", Proto: "HTTP/1.1",
		Headers: hs("Host", "example.com", "User-Agent", "t/1"), WireSize: wire(getA), FirstByte: first, LastByte: last}
}

func mGetB(first, last int64) *exchange.Message {
	return &exchange.Message{Method: "GET", Target: "/b", Proto: "HTTP/1.1",
		Headers: hs("Host", "example.com"), WireSize: wire(getB), FirstByte: first, LastByte: last}
}

func mOK5(first, last int64) *exchange.Message {
	return &exchange.Message{StatusCode: 200, Reason: "OK", Proto: "HTTP/1.1", Headers: hs("Content-Length", "5"),
		Body: []byte("hello"), BodySize: 5, WireSize: wire(ok5), FirstByte: first, LastByte: last}
}

func mOK3(first, last int64) *exchange.Message {
	return &exchange.Message{StatusCode: 200, Reason: "OK", Proto: "HTTP/1.1", Headers: hs("Content-Length", "3"),
		Body: []byte("abc"), BodySize: 3, WireSize: wire(ok3), FirstByte: first, LastByte: last}
}

var opts64 = Options{MaxBodyBytes: 64}

func TestBasicExchanges(t *testing.T) {
	const post = "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"
	mPost := &exchange.Message{Method: "POST", Target: "/up", Proto: "HTTP/1.1",
		Headers: hs("Host", "h", "Content-Length", "11"), Body: []byte("hello world"), BodySize: 11,
		WireSize: wire(post), FirstByte: 10, LastByte: 11}
	runCases(t, []connCase{{
		name:  "client get",
		opts:  opts64,
		evs:   []ev{out(10, getA), in(20, ok5[:20]), in(30, ok5[20:])},
		want:  []exchange.Exchange{{Role: exchange.RoleClient, Request: mGetA(10, 10), Response: mOK5(20, 30)}},
		state: HTTP,
	}, {
		name:  "server role: requests read",
		opts:  opts64,
		evs:   []ev{in(10, getA), out(20, ok5)},
		want:  []exchange.Exchange{{Role: exchange.RoleServer, Request: mGetA(10, 10), Response: mOK5(20, 20)}},
		state: HTTP,
	}, {
		name:  "post body split over events",
		opts:  opts64,
		evs:   []ev{out(10, post[:len(post)-5]), out(11, post[len(post)-5:]), in(20, ok3)},
		want:  []exchange.Exchange{{Role: exchange.RoleClient, Request: mPost, Response: mOK3(20, 20)}},
		state: HTTP,
	}, {
		name: "keep-alive",
		opts: opts64,
		evs:  []ev{out(1, getA), in(2, ok5), out(3, getB), in(4, ok3), out(5, "\r\n"+getA), in(6, ok5)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Request: mGetA(1, 1), Response: mOK5(2, 2)},
			{Role: exchange.RoleClient, Request: mGetB(3, 3), Response: mOK3(4, 4)},
			{Role: exchange.RoleClient, Request: mGetA(5, 5), Response: mOK5(6, 6)},
		},
		state: HTTP,
	}, {
		name: "pipelined",
		opts: opts64,
		evs:  []ev{out(1, getA+getB+getA), in(2, ok5+ok3), in(3, ok5)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Request: mGetA(1, 1), Response: mOK5(2, 2)},
			{Role: exchange.RoleClient, Request: mGetB(1, 1), Response: mOK3(2, 2)},
			{Role: exchange.RoleClient, Request: mGetA(1, 1), Response: mOK5(3, 3)},
		},
		state: HTTP,
	}, {
		name:  "status line seen first: orphan response dropped, roles from it",
		opts:  opts64,
		evs:   []ev{in(1, ok3), out(2, getA), in(3, ok5)},
		want:  []exchange.Exchange{{Role: exchange.RoleClient, Request: mGetA(2, 2), Response: mOK5(3, 3)}},
		state: HTTP,
	}})
}

func TestHeaders(t *testing.T) {
	const req = "PUT /x HTTP/1.0\nhost: a\nX-Dup: 1\nX-Fold: first\n  second\n\tthird\nx-dup:  2 \nEmpty:\n\n"
	const resp = "HTTP/1.0 404 Not  Found\r\nContent-Length: 0\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n"
	const noReason = "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"
	runCases(t, []connCase{{
		name: "case order duplicates fold LF-only",
		opts: opts64,
		evs:  []ev{out(1, req), in(2, resp)},
		want: []exchange.Exchange{{Role: exchange.RoleClient,
			Request: &exchange.Message{Method: "PUT", Target: "/x", Proto: "HTTP/1.0",
				Headers:  hs("host", "a", "X-Dup", "1", "X-Fold", "first second third", "x-dup", "2", "Empty", ""),
				WireSize: wire(req), FirstByte: 1, LastByte: 1},
			Response: &exchange.Message{StatusCode: 404, Reason: "Not  Found", Proto: "HTTP/1.0",
				Headers:  hs("Content-Length", "0", "Set-Cookie", "a=1", "Set-Cookie", "b=2"),
				WireSize: wire(resp), FirstByte: 2, LastByte: 2},
		}},
		state: HTTP,
	}, {
		name: "status line without reason",
		opts: opts64,
		evs:  []ev{out(1, getB), in(2, noReason)},
		want: []exchange.Exchange{{Role: exchange.RoleClient, Request: mGetB(1, 1),
			Response: &exchange.Message{StatusCode: 200, Proto: "HTTP/1.1", Headers: hs("Content-Length", "0"),
				WireSize: wire(noReason), FirstByte: 2, LastByte: 2}}},
		state: HTTP,
	}})
}

func TestChunked(t *testing.T) {
	const req = "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5;name=val;x=\"q\"\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\nX-Fold: a\r\n b\r\n\r\n"
	const resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" // TE gzip,chunked: body stays coded
	const respBody = "3 \r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n"
	const lfOnly = "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\nok\n0\n\n"
	runCases(t, []connCase{{
		name: "extensions trailers",
		opts: opts64,
		evs:  []ev{out(1, req), in(2, resp), in(3, respBody)},
		want: []exchange.Exchange{{Role: exchange.RoleClient,
			Request: &exchange.Message{Method: "POST", Target: "/c", Proto: "HTTP/1.1",
				Headers: hs("Transfer-Encoding", "chunked"), Trailers: hs("X-Sum", "42", "X-Fold", "a b"),
				Body: []byte("hello world"), BodySize: 11, WireSize: wire(req), FirstByte: 1, LastByte: 1},
			Response: &exchange.Message{StatusCode: 200, Reason: "OK", Proto: "HTTP/1.1",
				Headers: hs("Transfer-Encoding", "gzip, chunked"),
				Body:    []byte("abc0123456789"), BodySize: 13, WireSize: wire(resp, respBody), FirstByte: 2, LastByte: 3},
		}},
		state: HTTP,
	}, {
		name: "LF-only chunked",
		opts: opts64,
		evs:  []ev{out(1, getB), in(2, lfOnly)},
		want: []exchange.Exchange{{Role: exchange.RoleClient, Request: mGetB(1, 1),
			Response: &exchange.Message{StatusCode: 200, Reason: "OK", Proto: "HTTP/1.1",
				Headers: hs("Transfer-Encoding", "chunked"), Body: []byte("ok"), BodySize: 2,
				WireSize: wire(lfOnly), FirstByte: 2, LastByte: 2}}},
		state: HTTP,
	}, {
		name: "truncated chunked body",
		opts: Options{MaxBodyBytes: 4},
		evs:  []ev{out(1, getB), in(2, resp+respBody)},
		want: []exchange.Exchange{{Role: exchange.RoleClient, Request: mGetB(1, 1),
			Flags: exchange.ResponseTruncated,
			Response: &exchange.Message{StatusCode: 200, Reason: "OK", Proto: "HTTP/1.1",
				Headers: hs("Transfer-Encoding", "gzip, chunked"), Body: []byte("abc0"), BodySize: 13,
				BodyTruncated: true, WireSize: wire(resp, respBody), FirstByte: 2, LastByte: 2}}},
		state: HTTP,
	}})
}

func TestNoBodyResponses(t *testing.T) {
	const head = "HEAD /h HTTP/1.1\r\n\r\n"
	const headResp = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
	const r204 = "HTTP/1.1 204 No Content\r\n\r\n"
	const r304 = "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"
	msg := func(code int, reason, text string, h []exchange.Header, ts int64) *exchange.Message {
		return &exchange.Message{StatusCode: code, Reason: reason, Proto: "HTTP/1.1", Headers: h,
			WireSize: wire(text), FirstByte: ts, LastByte: ts}
	}
	runCases(t, []connCase{{
		name: "HEAD 204 304 then a body",
		opts: opts64,
		evs:  []ev{out(1, head), in(2, headResp), out(3, getB), in(4, r204), out(5, getB), in(6, r304), out(7, getA), in(8, ok5)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Request: &exchange.Message{Method: "HEAD", Target: "/h", Proto: "HTTP/1.1",
				WireSize: wire(head), FirstByte: 1, LastByte: 1},
				Response: msg(200, "OK", headResp, hs("Content-Length", "1000"), 2)},
			{Role: exchange.RoleClient, Request: mGetB(3, 3), Response: msg(204, "No Content", r204, nil, 4)},
			{Role: exchange.RoleClient, Request: mGetB(5, 5), Response: msg(304, "Not Modified", r304, hs("Content-Length", "7"), 6)},
			{Role: exchange.RoleClient, Request: mGetA(7, 7), Response: mOK5(8, 8)},
		},
		state: HTTP,
	}})
}

func TestInterimAndEarlyResponses(t *testing.T) {
	const put = "PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
	const cont = "HTTP/1.1 100 Continue\r\n\r\n"
	const hints = "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
	const created = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
	const tooLarge = "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"
	mPut := func(last int64) *exchange.Message {
		return &exchange.Message{Method: "PUT", Target: "/f", Proto: "HTTP/1.1",
			Headers: hs("Expect", "100-continue", "Content-Length", "4"), Body: []byte("data"), BodySize: 4,
			WireSize: wire(put, "data"), FirstByte: 1, LastByte: last}
	}
	resp := func(code int, reason, text string, ts int64) *exchange.Message {
		return &exchange.Message{StatusCode: code, Reason: reason, Proto: "HTTP/1.1",
			Headers: hs("Content-Length", "0"), WireSize: wire(text), FirstByte: ts, LastByte: ts}
	}
	runCases(t, []connCase{{
		name: "100-continue and 103 are not exchanges",
		opts: opts64,
		evs:  []ev{out(1, put), in(2, cont), out(3, "data"), in(4, hints+created), out(5, getB), in(6, ok3)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Request: mPut(3), Response: resp(201, "Created", created, 4)},
			{Role: exchange.RoleClient, Request: mGetB(5, 5), Response: mOK3(6, 6)},
		},
		state: HTTP,
	}, {
		name: "early 413 before the request body completes",
		opts: opts64,
		evs:  []ev{out(1, put), in(2, tooLarge), out(3, "da"), out(4, "ta"), out(5, getB), in(6, ok3)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Request: mPut(4), Response: resp(413, "Payload Too Large", tooLarge, 2)},
			{Role: exchange.RoleClient, Request: mGetB(5, 5), Response: mOK3(6, 6)},
		},
		state: HTTP,
	}})
}

func TestCloseDelimitedAndClose(t *testing.T) {
	const resp = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"
	const post = "POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\n"
	const partial = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
	runCases(t, []connCase{{
		name: "body until close",
		opts: opts64,
		evs:  []ev{out(1, getB), in(2, resp), in(3, "part1 "), in(4, "part2"), closed(9)},
		want: []exchange.Exchange{{Role: exchange.RoleClient, Request: mGetB(1, 1),
			Response: &exchange.Message{StatusCode: 200, Reason: "OK", Proto: "HTTP/1.0", Headers: hs("Content-Type", "text/plain"),
				Body: []byte("part1 part2"), BodySize: 11, WireSize: wire(resp, "part1 part2"), FirstByte: 2, LastByte: 4}}},
		state: HTTP,
	}, {
		name:  "close-delimited body is not complete before close",
		opts:  opts64,
		evs:   []ev{out(1, getB), in(2, resp), in(3, "x")},
		want:  nil,
		state: HTTP,
	}, {
		name: "close with pending requests",
		opts: opts64,
		evs:  []ev{out(1, getA+getB), in(2, ok5), out(3, post+"12345"), closed(9)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Request: mGetA(1, 1), Response: mOK5(2, 2)},
			{Role: exchange.RoleClient, Request: mGetB(1, 1), Flags: exchange.NoResponse},
			{Role: exchange.RoleClient, Flags: exchange.Incomplete | exchange.NoResponse,
				Request: &exchange.Message{Method: "POST", Target: "/p", Proto: "HTTP/1.1", Headers: hs("Content-Length", "10"),
					Body: []byte("12345"), BodySize: 5, WireSize: wire(post, "12345"), FirstByte: 3, LastByte: 3}},
		},
		state: HTTP,
	}, {
		name: "close with a partial response keeps it, Incomplete",
		opts: opts64,
		evs:  []ev{out(1, getB), in(2, partial+"0123"), closed(9)},
		want: []exchange.Exchange{{Role: exchange.RoleClient, Request: mGetB(1, 1), Flags: exchange.Incomplete,
			Response: &exchange.Message{StatusCode: 200, Reason: "OK", Proto: "HTTP/1.1", Headers: hs("Content-Length", "10"),
				Body: []byte("0123"), BodySize: 4, WireSize: wire(partial, "0123"), FirstByte: 2, LastByte: 2}}},
		state: HTTP,
	}, {
		name: "close inside a request head keeps the request line",
		opts: opts64,
		evs:  []ev{out(1, "GET /z HTTP/1.1\r\nHost: a\r\nAcc"), closed(9)},
		want: []exchange.Exchange{{Role: exchange.RoleClient, Flags: exchange.Incomplete | exchange.NoResponse,
			Request: &exchange.Message{Method: "GET", Target: "/z", Proto: "HTTP/1.1", Headers: hs("Host", "a"),
				WireSize: wire("GET /z HTTP/1.1\r\nHost: a\r\nAcc"), FirstByte: 1, LastByte: 1}}},
		state: HTTP,
	}, {
		name:  "feeds after close are ignored",
		opts:  opts64,
		evs:   []ev{out(1, getB), in(2, ok3), closed(3), out(4, getA), in(5, ok5)},
		want:  []exchange.Exchange{{Role: exchange.RoleClient, Request: mGetB(1, 1), Response: mOK3(2, 2)}},
		state: HTTP,
	}})
}

func TestUpgrades(t *testing.T) {
	const connect = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
	const est = "HTTP/1.1 200 Connection Established\r\n\r\n"
	const deny = "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
	const ws = "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
	const sw = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
	const tlsHello = "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"
	mConnect := &exchange.Message{Method: "CONNECT", Target: "example.com:443", Proto: "HTTP/1.1",
		Headers: hs("Host", "example.com:443"), WireSize: wire(connect), FirstByte: 1, LastByte: 1}
	runCases(t, []connCase{{
		name: "CONNECT 200 tunnels",
		opts: opts64,
		evs:  []ev{out(1, connect), out(2, tlsHello), in(3, est+"\x16\x03\x03"), out(4, getA), closed(5)},
		want: []exchange.Exchange{{Role: exchange.RoleClient, Request: mConnect,
			Response: &exchange.Message{StatusCode: 200, Reason: "Connection Established", Proto: "HTTP/1.1",
				WireSize: wire(est), FirstByte: 3, LastByte: 3}}},
		state: Upgraded,
	}, {
		name: "CONNECT 407 resumes with the held request",
		opts: opts64,
		evs:  []ev{out(1, connect), out(2, getB), in(3, deny+ok3)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient, Request: mConnect,
				Response: &exchange.Message{StatusCode: 407, Reason: "Proxy Authentication Required", Proto: "HTTP/1.1",
					Headers: hs("Content-Length", "0"), WireSize: wire(deny), FirstByte: 3, LastByte: 3}},
			// The held request keeps the time it was held at.
			{Role: exchange.RoleClient, Request: mGetB(2, 2), Response: mOK3(3, 3)},
		},
		state: HTTP,
	}, {
		name: "101 switching protocols",
		opts: opts64,
		evs:  []ev{out(1, ws), in(2, sw+"\x81\x05hello"), out(3, "\x81\x85abcd")},
		want: []exchange.Exchange{{Role: exchange.RoleClient,
			Request: &exchange.Message{Method: "GET", Target: "/ws", Proto: "HTTP/1.1",
				Headers: hs("Upgrade", "websocket", "Connection", "Upgrade"), WireSize: wire(ws), FirstByte: 1, LastByte: 1},
			Response: &exchange.Message{StatusCode: 101, Reason: "Switching Protocols", Proto: "HTTP/1.1",
				Headers: hs("Upgrade", "websocket"), WireSize: wire(sw), FirstByte: 2, LastByte: 2}}},
		state: Upgraded,
	}, {
		name: "Upgrade refused",
		opts: opts64,
		evs:  []ev{out(1, ws), in(2, ok3), out(3, getB), in(4, ok3)},
		want: []exchange.Exchange{
			{Role: exchange.RoleClient,
				Request: &exchange.Message{Method: "GET", Target: "/ws", Proto: "HTTP/1.1",
					Headers: hs("Upgrade", "websocket", "Connection", "Upgrade"), WireSize: wire(ws), FirstByte: 1, LastByte: 1},
				Response: mOK3(2, 2)},
			{Role: exchange.RoleClient, Request: mGetB(3, 3), Response: mOK3(4, 4)},
		},
		state: HTTP,
	}})
}

func TestBodyLimits(t *testing.T) {
	const big = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"
	mBig := func(body string, trunc bool) *exchange.Message {
		m := &exchange.Message{StatusCode: 200, Reason: "OK", Proto: "HTTP/1.1", Headers: hs("Content-Length", "10"),
			BodySize: 10, BodyTruncated: trunc, WireSize: wire(big), FirstByte: 2, LastByte: 2}
		if body != "" {
			m.Body = []byte(body)
		}
		return m
	}
	runCases(t, []connCase{{
		name:  "cap 4",
		opts:  Options{MaxBodyBytes: 4},
		evs:   []ev{out(1, getB), in(2, big)},
		want:  []exchange.Exchange{{Role: exchange.RoleClient, Request: mGetB(1, 1), Response: mBig("0123", true), Flags: exchange.ResponseTruncated}},
		state: HTTP,
	}, {
		name:  "cap 0 counts sizes only",
		opts:  Options{},
		evs:   []ev{out(1, getB), in(2, big)},
		want:  []exchange.Exchange{{Role: exchange.RoleClient, Request: mGetB(1, 1), Response: mBig("", true), Flags: exchange.ResponseTruncated}},
		state: HTTP,
	}, {
		name:  "exactly at cap",
		opts:  Options{MaxBodyBytes: 10},
		evs:   []ev{out(1, getB), in(2, big)},
		want:  []exchange.Exchange{{Role: exchange.RoleClient, Request: mGetB(1, 1), Response: mBig("0123456789", false)}},
		state: HTTP,
	}, {
		name: "request truncated",
		opts: Options{MaxBodyBytes: 2},
		evs:  []ev{out(1, "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"), in(2, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz")},
		want: []exchange.Exchange{{Role: exchange.RoleClient, Flags: exchange.RequestTruncated,
			Request: &exchange.Message{Method: "POST", Target: "/", Proto: "HTTP/1.1", Headers: hs("Content-Length", "3"),
				Body: []byte("ab"), BodySize: 3, BodyTruncated: true, WireSize: wire("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"), FirstByte: 1, LastByte: 1},
			Response: &exchange.Message{StatusCode: 200, Reason: "OK", Proto: "HTTP/1.1", Headers: hs("Content-Length", "1"),
				Body: []byte("z"), BodySize: 1, WireSize: wire("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"), FirstByte: 2, LastByte: 2}}},
		state: HTTP,
	}})
}

func gzipped(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

func zlibbed(s string) string {
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

func deflated(s string) string {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

func TestContentEncoding(t *testing.T) {
	plain := strings.Repeat("the quick brown fox jumps over the lazy dog. ", 20)
	type enc struct {
		name, coding, body string
		opts               Options
		decoded            string
		flags              exchange.Flags
		chunked            bool
	}
	gz := gzipped(plain)
	corrupt := []byte(gz)
	corrupt[len(corrupt)/2] ^= 0xff
	corrupt[len(corrupt)/2+1] ^= 0xff
	encs := []enc{
		{name: "gzip", coding: "gzip", body: gz, opts: Options{MaxBodyBytes: 4096}, decoded: plain},
		{name: "x-gzip chunked", coding: "x-gzip", body: gz, opts: Options{MaxBodyBytes: 4096}, decoded: plain, chunked: true},
		{name: "deflate zlib", coding: "deflate", body: zlibbed(plain), opts: Options{MaxBodyBytes: 4096}, decoded: plain},
		{name: "deflate raw", coding: "Deflate", body: deflated(plain), opts: Options{MaxBodyBytes: 4096}, decoded: plain},
		{name: "identity ignored", coding: "identity, gzip", body: gz, opts: Options{MaxBodyBytes: 4096}, decoded: plain},
		{name: "decoded cap", coding: "gzip", body: gz, opts: Options{MaxBodyBytes: 4096, MaxDecodedBytes: 100}, decoded: plain[:100]},
		{name: "truncated decodes a prefix", coding: "gzip", body: gz, opts: Options{MaxBodyBytes: 40},
			flags: exchange.ResponseTruncated, decoded: "<prefix>"},
		{name: "corrupt", coding: "gzip", body: string(corrupt), opts: Options{MaxBodyBytes: 4096}, flags: exchange.DecodeError},
		{name: "not gzip at all", coding: "gzip", body: "plain text", opts: Options{MaxBodyBytes: 4096}, flags: exchange.DecodeError},
		{name: "cut complete stream", coding: "gzip", body: gz[:len(gz)-6], opts: Options{MaxBodyBytes: 4096}, flags: exchange.DecodeError},
		{name: "unsupported", coding: "br", body: "xyz", opts: Options{MaxBodyBytes: 4096}},
		{name: "stacked", coding: "deflate, gzip", body: gz, opts: Options{MaxBodyBytes: 4096}},
	}
	// The exact prefix a truncated stream yields depends on the compressor;
	// compute it from the decoder the parser uses, then check it is a
	// non-empty prefix of the plain text.
	for _, e := range encs {
		t.Run(e.name, func(t *testing.T) {
			head := "HTTP/1.1 200 OK\r\nContent-Encoding: " + e.coding + "\r\n"
			wireBody := e.body
			if e.chunked {
				head += "Transfer-Encoding: chunked\r\n\r\n"
				wireBody = chunk(e.body[:10]) + chunk(e.body[10:]) + "0\r\n\r\n"
			} else {
				head += "Content-Length: " + itoa(len(e.body)) + "\r\n\r\n"
			}
			got, c := run(e.opts, []ev{out(1, getB), in(2, head+wireBody)}, randomPieces(3))
			if len(got) != 1 || c.State() != HTTP {
				t.Fatalf("got %d exchanges, state %v, err %v", len(got), c.State(), c.Err())
			}
			x := got[0]
			if x.Flags != e.flags {
				t.Errorf("flags %v, want %v", x.Flags.Names(), e.flags.Names())
			}
			m := x.Response
			body := e.body
			if len(body) > e.opts.MaxBodyBytes {
				body = body[:e.opts.MaxBodyBytes]
			}
			if string(m.Body) != body || m.BodySize != int64(len(e.body)) {
				t.Errorf("body %d bytes size %d, want %d size %d", len(m.Body), m.BodySize, len(body), len(e.body))
			}
			switch e.decoded {
			case "":
				if m.DecodedBody != nil {
					t.Errorf("DecodedBody = %q, want nil", m.DecodedBody)
				}
			case "<prefix>":
				if len(m.DecodedBody) == 0 || !strings.HasPrefix(plain, string(m.DecodedBody)) {
					t.Errorf("DecodedBody = %q, want a non-empty prefix", m.DecodedBody)
				}
			default:
				if string(m.DecodedBody) != e.decoded {
					t.Errorf("DecodedBody = %q, want %q", m.DecodedBody, e.decoded)
				}
			}
		})
	}
}

func chunk(s string) string { return strconvHex(len(s)) + "\r\n" + s + "\r\n" }

func strconvHex(n int) string {
	const digits = "0123456789abcdef"
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{digits[n%16]}, b...)
		n /= 16
	}
	return string(b)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// Skip (bytes beyond the kernel's per-call cap) inside a body already
// captured up to the limit loses nothing: the exchange is truncated, not
// incomplete. Before the limit is reached it is a real hole.
func TestSkipBeyondCapture(t *testing.T) {
	var got []*exchange.Exchange
	c := NewConn(Options{MaxBodyBytes: 4}, func(ex *exchange.Exchange) { got = append(got, ex) })
	c.Feed(Egress, []byte("GET / HTTP/1.1\r\n\r\n"), 1)
	c.Feed(Ingress, []byte("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123"), 2)
	c.Skip(Ingress, 6, 3)
	c.Feed(Egress, []byte("GET /2 HTTP/1.1\r\n\r\n"), 4)
	c.Feed(Ingress, []byte("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01"), 5)
	c.Skip(Ingress, 8, 6)
	if len(got) != 2 {
		t.Fatalf("got %d exchanges", len(got))
	}
	if f := got[0].Flags; f != exchange.ResponseTruncated || got[0].Response.BodySize != 10 || string(got[0].Response.Body) != "0123" {
		t.Errorf("skip past the limit: flags %v size %d body %q", f.Names(), got[0].Response.BodySize, got[0].Response.Body)
	}
	if f := got[1].Flags; !f.Has(exchange.Incomplete) || got[1].Response.BodySize != 10 {
		t.Errorf("skip before the limit: flags %v size %d", f.Names(), got[1].Response.BodySize)
	}
}

// A 101 to an h2c upgrade stops the parser and hands over the request, the
// request direction and the bytes that followed the HTTP/1.1 messages.
func TestUpgradeHandOver(t *testing.T) {
	req := "GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
	resp := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
	serverH2 := "\x00\x00\x00\x04\x00\x00\x00\x00\x00" // an empty SETTINGS frame
	clientH2 := "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	for _, split := range []int{1, 7, 1000} {
		var got []*exchange.Exchange
		c := NewConn(Options{MaxBodyBytes: 64}, func(ex *exchange.Exchange) { got = append(got, ex) })
		feedSplit(c, Egress, req, split)
		feedSplit(c, Egress, clientH2[:10], split) // sent before the 101 arrived
		// Once the parser says Upgraded, the caller feeds the new parser:
		// the tail plus the later pieces must be exactly the new bytes.
		after := feedSplit(c, Ingress, resp+serverH2, split)
		if c.State() != Upgraded {
			t.Fatalf("split %d: state %v", split, c.State())
		}
		u := c.Upgrade()
		if u == nil || u.Protocol != "h2c" || u.ReqDir != Egress || u.Request.Target != "/up" {
			t.Fatalf("split %d: upgrade %+v", split, u)
		}
		if string(u.Tail[Ingress])+after != serverH2 || string(u.Tail[Egress]) != clientH2[:10] {
			t.Errorf("split %d: tails %q / %q", split, u.Tail[Egress], u.Tail[Ingress])
		}
		if len(got) != 1 || got[0].Response.StatusCode != 101 {
			t.Errorf("split %d: %d exchanges", split, len(got))
		}
	}
}

// feedSplit feeds s in pieces of n bytes and returns the pieces left once
// the parser stopped on an upgrade.
func feedSplit(c *Conn, d Dir, s string, n int) string {
	for i := 0; i < len(s); i += n {
		if c.State() == Upgraded {
			return s[i:]
		}
		c.Feed(d, []byte(s[i:min(i+n, len(s))]), int64(i+1))
	}
	return ""
}
