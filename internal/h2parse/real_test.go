package h2parse

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tlstap/tlstap/internal/exchange"
	"golang.org/x/net/http2"
)

// recConn records what the client side of a connection writes (Egress) and
// reads (Ingress), in order.
type recConn struct {
	net.Conn
	mu  sync.Mutex
	evs []ev
}

func (c *recConn) record(d Dir, p []byte) {
	c.mu.Lock()
	c.evs = append(c.evs, ev{kind: 'f', dir: d, data: append([]byte(nil), p...), ts: int64(len(c.evs) + 1)})
	c.mu.Unlock()
}

func (c *recConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.record(Ingress, p[:n])
	}
	return n, err
}

func (c *recConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.record(Egress, p[:n])
	}
	return n, err
}

// TestRealGoHTTP2 captures the bytes of Go's own HTTP/2 client and server
// (h2c over an in-memory pipe) running 24 concurrent requests on one
// connection, and checks every stream's exchange.
func TestRealGoHTTP2(t *testing.T) {
	cliConn, srvConn := net.Pipe()
	rec := &recConn{Conn: cliConn}
	srv := &http2.Server{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeConn(srvConn, &http2.ServeConnOpts{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Trailer", "X-Sum")
			w.Header().Set("X-Path", r.URL.Path)
			w.WriteHeader(200 + len(body)%3)
			fmt.Fprintf(w, "%s:%s", r.URL.Path, strings.Repeat("r", 3000+len(body)))
			w.Header().Set("X-Sum", fmt.Sprint(len(body)))
		})})
	}()
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(context.Context, string, string, *tls.Config) (net.Conn, error) {
		return rec, nil
	}}
	const n = 24
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var body io.Reader
			method := "GET"
			if i%2 == 1 {
				method, body = "POST", strings.NewReader(strings.Repeat("p", i*100))
			}
			req, _ := http.NewRequest(method, fmt.Sprintf("http://svc.local/item/%d?x=%d", i, i), body)
			req.Header.Set("X-Req", fmt.Sprint(i))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}(i)
	}
	wg.Wait()
	tr.CloseIdleConnections()
	cliConn.Close()
	<-done

	rec.mu.Lock()
	evs := append(rec.evs, ev{kind: 'c', ts: int64(len(rec.evs) + 1)})
	rec.mu.Unlock()
	r := runAll(t, Options{MaxBodyBytes: 1 << 20}, evs)
	if len(r.got) != n || r.c.Unreliable() || r.c.State() != HTTP2 {
		t.Fatalf("%d exchanges, unreliable %v, state %v, %+v", len(r.got), r.c.Unreliable(), r.c.State(), r.c.Stats())
	}
	seen := map[string]bool{}
	for _, x := range r.got {
		var i int
		fmt.Sscanf(x.Request.Target, "/item/%d", &i)
		path := fmt.Sprintf("/item/%d", i)
		reqBody := 0
		if i%2 == 1 {
			reqBody = i * 100
		}
		rq, rs := x.Request, x.Response
		if rq.Target != fmt.Sprintf("%s?x=%d", path, i) || rq.BodySize != int64(reqBody) || x.Flags != 0 || x.Role != exchange.RoleClient {
			t.Fatalf("request %d: %s", i, dump(x))
		}
		if v, _ := rq.Get(":authority"); v != "svc.local" {
			t.Fatalf(":authority %q", v)
		}
		if v, _ := rq.Get("x-req"); v != fmt.Sprint(i) {
			t.Fatalf("x-req %q", v)
		}
		wantBody := path + ":" + strings.Repeat("r", 3000+reqBody)
		if rs.StatusCode != 200+reqBody%3 || string(rs.Body) != wantBody || rs.BodySize != int64(len(wantBody)) {
			t.Fatalf("response %d: %s", i, dump(x))
		}
		if v, _ := rs.Get("x-path"); v != path {
			t.Fatalf("x-path %q", v)
		}
		if len(rs.Trailers) != 1 || rs.Trailers[0] != (exchange.Header{Name: "x-sum", Value: fmt.Sprint(reqBody)}) {
			t.Fatalf("trailers %v", rs.Trailers)
		}
		seen[path] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct streams", len(seen))
	}
}
