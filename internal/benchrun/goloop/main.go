// Command goloop measures the per-call cost of Go crypto/tls Write/Read in a
// tight loop (the Go counterpart of csrc/sslloop.c).
//
//	goloop -cert CERT -key KEY -n ITERS -warmup DURATION
//
// A server goroutine and a client goroutine exchange a small HTTP/1.1
// request and response over one TLS connection on 127.0.0.1 in lock step:
// client Write, server Read, server Write, client Read: 4 crypto/tls calls
// per iteration. The warm-up runs for a fixed time first, so that an agent
// that hooks Go executables after exec has attached its probes before the
// measurement starts. Output: one JSON line with the wall time and the
// process CPU time (user+system) of the measured iterations.
package main

import (
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

var (
	req  = []byte("GET /loop HTTP/1.1\r\nHost: bench\r\nUser-Agent: goloop\r\n\r\n")
	resp = []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
)

func cpuNanos() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func main() {
	certFile := flag.String("cert", "", "PEM certificate")
	keyFile := flag.String("key", "", "PEM key")
	n := flag.Int("n", 100000, "measured iterations")
	warmup := flag.Duration("warmup", 2*time.Second, "warm-up time before measuring")
	flag.Parse()
	if err := run(*certFile, *keyFile, *n, *warmup); err != nil {
		fmt.Fprintln(os.Stderr, "goloop:", err)
		os.Exit(1)
	}
}

func run(certFile, keyFile string, n int, warmup time.Duration) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		return err
	}
	defer ln.Close()
	serr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serr <- err
			return
		}
		defer c.Close()
		buf := make([]byte, len(req))
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				if err == io.EOF {
					err = nil
				}
				serr <- err
				return
			}
			if _, err := c.Write(resp); err != nil {
				serr <- err
				return
			}
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return err
	}
	buf := make([]byte, len(resp))
	round := func() error {
		if _, err := c.Write(req); err != nil {
			return err
		}
		_, err := io.ReadFull(c, buf)
		return err
	}
	warm := 0
	for end := time.Now().Add(warmup); time.Now().Before(end); warm++ {
		if err := round(); err != nil {
			return err
		}
	}
	t0, c0 := time.Now(), cpuNanos()
	for i := 0; i < n; i++ {
		if err := round(); err != nil {
			return err
		}
	}
	wall, cpu := time.Since(t0), cpuNanos()-c0
	c.Close()
	if err := <-serr; err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]int64{
		"iters": int64(n), "warmup_iters": int64(warm), "calls_per_iter": 4, "wall_ns": wall.Nanoseconds(), "cpu_ns": cpu,
	})
}
