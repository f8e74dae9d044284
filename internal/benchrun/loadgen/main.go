// Command loadgen is an open-loop, fixed-rate HTTPS/1.1 load generator
// (the fixed-rate case of `make bench`; wrk only does closed-loop load and
// h2load's --rate paces connections, not requests).
//
//	loadgen -url https://127.0.0.1:PORT/1k -rate 5000 -duration 60s -conns 32
//
// Requests are scheduled at fixed intervals, whatever the responses do, and
// handed to a pool of keep-alive TLS connections. Two latencies are kept per
// request: service (request written → response read) and corrected (intended
// send time → response read; includes queueing when the server or the
// generator falls behind, i.e. no coordinated omission). Output: one JSON
// line with the counts and percentiles in microseconds.
package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"
)

type job struct{ intended time.Time }

type worker struct {
	service, corrected []time.Duration
	errors             int
}

func main() {
	target := flag.String("url", "", "https URL")
	rate := flag.Int("rate", 5000, "requests per second")
	duration := flag.Duration("duration", 10*time.Second, "run time")
	conns := flag.Int("conns", 32, "keep-alive connections")
	delay := flag.Duration("delay", 0, "wait before connecting (lets an agent hook this executable first)")
	flag.Parse()
	time.Sleep(*delay)
	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "https" {
		fmt.Fprintln(os.Stderr, "loadgen: -url must be an https URL")
		os.Exit(2)
	}
	reqBytes := []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: tlstap-loadgen\r\n\r\n")

	jobs := make(chan job, *rate*int(duration.Seconds()+1))
	workers := make([]*worker, *conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(u.Host, reqBytes, jobs)
		}()
	}

	// Pace in 1 ms steps: every request whose intended time has come is
	// queued with that intended time, so a late tick never shifts the schedule.
	interval := time.Second / time.Duration(*rate)
	start := time.Now()
	total := int(duration.Seconds() * float64(*rate))
	sent := 0
	tick := time.NewTicker(time.Millisecond)
	for sent < total {
		now := <-tick.C
		for sent < total {
			t := start.Add(time.Duration(sent) * interval)
			if t.After(now) {
				break
			}
			jobs <- job{t}
			sent++
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)

	var service, corrected []time.Duration
	errs := 0
	for _, w := range workers {
		service = append(service, w.service...)
		corrected = append(corrected, w.corrected...)
		errs += w.errors
	}
	slices.Sort(service)
	slices.Sort(corrected)
	pct := func(d []time.Duration, p float64) float64 {
		if len(d) == 0 {
			return 0
		}
		i := int(p * float64(len(d)-1))
		return float64(d[i].Nanoseconds()) / 1e3
	}
	out := map[string]any{
		"scheduled": total, "completed": len(service), "errors": errs,
		"elapsed_s": elapsed.Seconds(), "rate": float64(len(service)) / elapsed.Seconds(),
		"service_p50_us": pct(service, .50), "service_p99_us": pct(service, .99), "service_p999_us": pct(service, .999),
		"corrected_p50_us": pct(corrected, .50), "corrected_p99_us": pct(corrected, .99), "corrected_p999_us": pct(corrected, .999),
		"max_us": pct(corrected, 1),
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

func (w *worker) run(host string, reqBytes []byte, jobs <-chan job) {
	var conn *tls.Conn
	var br *bufio.Reader
	for j := range jobs {
		if conn == nil {
			c, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
			if err != nil {
				w.errors++
				continue
			}
			conn, br = c, bufio.NewReaderSize(c, 16<<10)
		}
		sent := time.Now()
		if err := w.once(conn, br, reqBytes); err != nil {
			w.errors++
			conn.Close()
			conn = nil
			continue
		}
		done := time.Now()
		w.service = append(w.service, done.Sub(sent))
		w.corrected = append(w.corrected, done.Sub(j.intended))
	}
	if conn != nil {
		conn.Close()
	}
}

func (w *worker) once(conn *tls.Conn, br *bufio.Reader, reqBytes []byte) error {
	if _, err := conn.Write(reqBytes); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return err
}
