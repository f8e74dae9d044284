// gotls is the Go program the capture tests build with each toolchain.
// It must compile with Go 1.20: no newer language features or APIs.
//
//	gotls server ADDR CERT KEY      HTTPS server (HTTP/1.1): /r/N -> "reply N", /big/N -> 1 MiB
//	gotls h2server ADDR CERT KEY    the same with HTTP/2 enabled (ALPN h2)
//	gotls client URL N              N GETs of URL/N on one keep-alive connection
package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

func main() {
	switch os.Args[1] {
	case "server":
		server(os.Args[2], os.Args[3], os.Args[4], false)
	case "h2server":
		server(os.Args[2], os.Args[3], os.Args[4], true)
	case "client":
		n, _ := strconv.Atoi(os.Args[3])
		client(os.Args[2], n)
	}
}

func big() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte('a' + (i*7+i/26)%26)
	}
	return b
}

func server(addr, cert, key string, h2 bool) {
	payload := big()
	mux := http.NewServeMux()
	mux.HandleFunc("/r/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Go-Server", "yes")
		io.WriteString(w, "reply "+strings.TrimPrefix(r.URL.Path, "/r/"))
	})
	mux.HandleFunc("/big/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		w.Write(payload)
	})
	srv := &http.Server{Addr: addr, Handler: mux}
	if !h2 {
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	if err := srv.ListenAndServeTLS(cert, key); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func client(url string, n int) {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		TLSNextProto:      map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxIdleConns:      1,
		DisableKeepAlives: false,
	}
	c := &http.Client{Transport: tr}
	total := 0
	for i := 1; i <= n; i++ {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/%d", url, i), nil)
		req.Header.Set("X-Go-Client", "yes")
		resp, err := c.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		total += len(b)
	}
	fmt.Println(total)
}
