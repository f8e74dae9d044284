package h2parse

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"

	"github.com/tlstap/tlstap/internal/exchange"
	"golang.org/x/net/http2"
)

// grpcFrame length-prefixes one gRPC message.
func grpcFrame(msg string) []byte {
	b := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

func grpcReq(method string) []string {
	return []string{":method", "POST", ":scheme", "http", ":path", method, ":authority", "greeter:50051",
		"content-type", "application/grpc", "te", "trailers", "grpc-timeout", "1S"}
}

func TestGRPC(t *testing.T) {
	cv := newConv(Egress).start()
	// Unary.
	cv.client(func(p *peer) {
		p.headers(1, false, grpcReq("/helloworld.Greeter/SayHello")...)
		p.data(1, true, grpcFrame("\x0a\x05world"))
	})
	// Server streaming, interleaved with the unary response.
	cv.client(func(p *peer) {
		p.headers(3, false, grpcReq("/route.Guide/ListFeatures")...)
		p.data(3, true, grpcFrame("rect"))
	})
	cv.server(func(p *peer) {
		p.headers(3, false, ":status", "200", "content-type", "application/grpc")
		p.headers(1, false, ":status", "200", "content-type", "application/grpc+proto")
		p.data(3, false, grpcFrame("feature-1"))
		p.data(1, false, grpcFrame("\x0a\x0bHello world"))
		p.data(3, false, append(grpcFrame("feature-2"), grpcFrame("feature-3-long-enough")...))
		p.headers(1, true, "grpc-status", "0", "grpc-message", "")
	})
	cv.server(func(p *peer) { p.headers(3, true, "grpc-status", "0") })
	// Trailers-only error.
	cv.client(func(p *peer) {
		p.headers(5, false, grpcReq("/helloworld.Greeter/SayHello")...)
		p.data(5, true, grpcFrame("\x0a\x07nobody!"))
	})
	cv.server(func(p *peer) {
		p.headers(5, true, ":status", "200", "content-type", "application/grpc", "grpc-status", "5", "grpc-message", "user not found")
	})
	r := runAll(t, Options{MaxBodyBytes: 40}, cv.evs)
	if len(r.got) != 3 {
		t.Fatalf("%d exchanges", len(r.got))
	}
	unary, stream, failed := r.got[0], r.got[1], r.got[2]

	svc, m, st, ok := GRPCInfo(unary)
	if !ok || svc != "helloworld.Greeter" || m != "SayHello" || st != 0 || unary.Flags != 0 {
		t.Fatalf("unary: %q %q %d %v %s", svc, m, st, ok, dump(unary))
	}
	if !reflect.DeepEqual(unary.Response.Trailers, hdrs("grpc-status", "0", "grpc-message", "")) ||
		string(unary.Response.Body) != string(grpcFrame("\x0a\x0bHello world")) {
		t.Fatalf("unary: %s", dump(unary))
	}
	if sizes, complete := GRPCMessages(unary.Request.Body); !complete || !reflect.DeepEqual(sizes, []int{7}) {
		t.Fatalf("unary request messages %v %v", sizes, complete)
	}

	svc, m, st, ok = GRPCInfo(stream)
	if !ok || svc != "route.Guide" || m != "ListFeatures" || st != 0 {
		t.Fatalf("stream: %q %q %d %v", svc, m, st, ok)
	}
	// Three messages of 14 + 14 + 26 bytes; the body cap of 40 cuts the third.
	if stream.Response.BodySize != 54 || len(stream.Response.Body) != 40 || stream.Flags != exchange.ResponseTruncated {
		t.Fatalf("stream: %s", dump(stream))
	}
	if sizes, complete := GRPCMessages(stream.Response.Body); complete || !reflect.DeepEqual(sizes, []int{9, 9, 21}) {
		t.Fatalf("stream messages %v %v", sizes, complete)
	}

	svc, m, st, ok = GRPCInfo(failed)
	if !ok || svc != "helloworld.Greeter" || m != "SayHello" || st != 5 || failed.Response.Trailers != nil || failed.Response.BodySize != 0 {
		t.Fatalf("trailers-only: %q %q %d %v %s", svc, m, st, ok, dump(failed))
	}
	if v, _ := failed.Response.Get("grpc-message"); v != "user not found" {
		t.Fatalf("grpc-message %q", v)
	}
}

func TestGRPCInfoEdges(t *testing.T) {
	mk := func(ct, path string, resp *exchange.Message) *exchange.Exchange {
		return &exchange.Exchange{Request: &exchange.Message{Target: path, Headers: hdrs("content-type", ct)}, Response: resp}
	}
	for _, tc := range []struct {
		ex     *exchange.Exchange
		svc, m string
		st     int
		ok     bool
	}{
		{mk("application/grpc", "/a.B/C", nil), "a.B", "C", -1, true},
		{mk("application/grpc+json", "/pkg.v1.Svc/Do", &exchange.Message{Trailers: hdrs("grpc-status", "14")}), "pkg.v1.Svc", "Do", 14, true},
		{mk("application/grpc; charset=utf-8", "/a.B/C", &exchange.Message{Trailers: hdrs("grpc-status", "x")}), "a.B", "C", -1, true},
		{mk("Application/GRPC", "/a.B/C", &exchange.Message{Headers: hdrs("grpc-status", "3")}), "a.B", "C", 3, true},
		{mk("application/grpc-web", "/a.B/C", nil), "", "", -1, false},
		{mk("application/json", "/a.B/C", nil), "", "", -1, false},
		{mk("application/grpc", "/nomethod", nil), "", "", -1, false},
		{mk("application/grpc", "/a.B/", nil), "", "", -1, false},
		{&exchange.Exchange{}, "", "", -1, false},
	} {
		svc, m, st, ok := GRPCInfo(tc.ex)
		if svc != tc.svc || m != tc.m || st != tc.st || ok != tc.ok {
			t.Errorf("%+v: got %q %q %d %v", tc.ex.Request, svc, m, st, ok)
		}
	}
}

func TestGRPCMessages(t *testing.T) {
	two := append(grpcFrame("abc"), grpcFrame("")...)
	for _, tc := range []struct {
		in       []byte
		sizes    []int
		complete bool
	}{
		{nil, nil, true},
		{two, []int{3, 0}, true},
		{two[:7], []int{3}, false},
		{two[:10], []int{3}, false},
		{[]byte{0, 0xff, 0xff, 0xff, 0xff, 1}, []int{1<<32 - 1}, false},
	} {
		sizes, complete := GRPCMessages(tc.in)
		if !reflect.DeepEqual(sizes, tc.sizes) || complete != tc.complete {
			t.Errorf("%q: %v %v", tc.in, sizes, complete)
		}
	}
}

// TestTableSizeNeedsSettings proves the SETTINGS handling is what lets the
// decoder accept a grown table: without the SETTINGS frame the same header
// block is refused and the direction becomes unreliable, never misread.
func TestTableSizeNeedsSettings(t *testing.T) {
	for _, withSettings := range []bool{true, false} {
		cv := newConv(Egress).start()
		cv.client(func(p *peer) {
			if withSettings {
				must(p.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 8192}))
			}
			p.headers(1, true, getReq("/a")...)
		})
		cv.server(func(p *peer) {
			p.enc.SetMaxDynamicTableSizeLimit(8192)
			p.enc.SetMaxDynamicTableSize(8192)
			p.headers(1, true, ":status", "200", "x-v", strings.Repeat("v", 5000))
		})
		r := runAll(t, Options{}, cv.evs)
		x := r.got[0]
		if withSettings && (x.Flags != 0 || x.Response.StatusCode != 200 || r.c.Unreliable()) {
			t.Fatalf("with SETTINGS: %s", dump(x))
		}
		if !withSettings && (x.Flags != exchange.Incomplete|exchange.ParseError || x.Response.Headers != nil || !r.c.Unreliable()) {
			t.Fatalf("without SETTINGS: %s", dump(x))
		}
	}
}
