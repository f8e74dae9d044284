package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The throughput cases: wrk and loadgen against nginx, saturated, with
// the kernel floor, at a fixed rate, and under loss.

func (e *env) wrk(path string, d time.Duration) (wrkResult, error) {
	var out bytes.Buffer
	cmd := exec.Command("wrk", "-t", strconv.Itoa(e.o.wrkThreads), "-c", strconv.Itoa(e.o.wrkConns),
		"-d", fmt.Sprintf("%ds", int(d.Seconds())), "--latency", fmt.Sprintf("https://127.0.0.1:%d%s", e.port, path))
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	c, err := startChild("wrk", cmd)
	if err != nil {
		return wrkResult{}, err
	}
	if err := c.wait(d + 30*time.Second); err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w\n%s", err, out.String())
	}
	s := out.String()
	var r wrkResult
	r.cpu = c.rusage()
	m := wrkReqRE.FindStringSubmatch(s)
	m2 := wrkRPSRE.FindStringSubmatch(s)
	if m == nil || m2 == nil {
		return r, fmt.Errorf("cannot parse wrk output:\n%s", s)
	}
	r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	r.RPS, _ = strconv.ParseFloat(m2[1], 64)
	for _, p := range wrkPctRE.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(p[2], 64)
		switch p[3] {
		case "ms":
			v *= 1e3
		case "s":
			v *= 1e6
		}
		if p[1] == "50" {
			r.P50us = v
		} else {
			r.P99us = v
		}
	}
	for _, m := range wrkErrsRE.FindAllStringSubmatch(s, -1) {
		r.Errors += strings.TrimSpace(m[1]) + "; "
	}
	if strings.Contains(r.Errors, "Non-2xx") {
		return r, fmt.Errorf("wrk got error responses (%s); see the nginx error log", r.Errors)
	}
	return r, nil
}

type loadgenResult struct {
	Scheduled      int64   `json:"scheduled"`
	Completed      int64   `json:"completed"`
	Errors         int64   `json:"errors"`
	Rate           float64 `json:"rate"`
	ServiceP50us   float64 `json:"service_p50_us"`
	ServiceP99us   float64 `json:"service_p99_us"`
	ServiceP999us  float64 `json:"service_p999_us"`
	CorrectedP50us float64 `json:"corrected_p50_us"`
	CorrectedP99us float64 `json:"corrected_p99_us"`
	MaxUs          float64 `json:"max_us"`
	cpu            time.Duration
}

func (e *env) loadgenRun(d time.Duration) (loadgenResult, error) {
	var out bytes.Buffer
	cmd := exec.Command(e.loadgen, "-url", fmt.Sprintf("https://127.0.0.1:%d/1k", e.port),
		"-rate", strconv.Itoa(e.o.rate), "-duration", d.String(), "-conns", "32", "-delay", "2s")
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	c, err := startChild("loadgen", cmd)
	if err != nil {
		return loadgenResult{}, err
	}
	if err := c.wait(d + 60*time.Second); err != nil {
		return loadgenResult{}, err
	}
	var r loadgenResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return r, fmt.Errorf("loadgen output %q: %w", out.String(), err)
	}
	r.cpu = c.rusage()
	if r.Errors > r.Scheduled/100 {
		return r, fmt.Errorf("loadgen: %d errors for %d requests", r.Errors, r.Scheduled)
	}
	return r, nil
}

// ---- cases ----

type pair[T any] struct {
	Off     T        `json:"off"`
	On      T        `json:"on"`
	OffMeas measured `json:"off_measured"`
	OnMeas  measured `json:"on_measured"`
}

func (e *env) caseSaturated(name, path string) error {
	d := e.o.satDur
	var p pair[wrkResult]
	a := e.snap(nil)
	r, err := e.wrk(path, d)
	if err != nil {
		return err
	}
	p.Off, p.OffMeas = r, e.delta(a, e.snap(nil), r.cpu)
	logf("%s off: %.0f req/s p50 %.0fµs p99 %.0fµs (others used %.2f cores)", name, r.RPS, r.P50us, r.P99us, p.OffMeas.OthersCores)

	col, err := e.startAgent(name)
	if err != nil {
		return err
	}
	defer col.stop()
	// Profile the collector over the middle of the run (100 Hz sampling:
	// well under 1 % of a core).
	prof := make(chan error, 1)
	go func() {
		time.Sleep(time.Second)
		prof <- col.cpuProfile(max(d-3*time.Second, time.Second), filepath.Join(e.o.out, "collector-"+name+".cpu.pprof"))
	}()
	a = e.snap(col)
	r, err = e.wrk(path, d)
	if err != nil {
		return err
	}
	p.On, p.OnMeas = r, e.delta(a, e.snap(col), r.cpu)
	if err := <-prof; err != nil {
		logf("%s: %v", name, err)
	}
	logf("%s on:  %.0f req/s p50 %.0fµs p99 %.0fµs; %v exchanges for %d requests; collector %.2fs CPU (others used %.2f cores)",
		name, r.RPS, r.P50us, r.P99us, p.OnMeas.Counters["exchanges_emitted"], r.Requests, p.OnMeas.CollectorCPUS, p.OnMeas.OthersCores)
	p.OnMeas.Counters["rss_hwm_kib"] = float64(statusKB(col.pid(), "VmHWM"))
	e.res.Saturated[name] = p
	return nil
}

// caseFloor splits the saturated 1 KiB overhead: the same wrk run with
// only the syscall tracepoints, then with every probe, each time with all
// processes filtered out in the kernel (the programs return at their first
// map lookup, nothing reaches user space).
func (e *env) caseFloor() error {
	d := e.o.satDur
	a := e.snap(nil)
	r, err := e.wrk("/1k", d)
	if err != nil {
		return err
	}
	e.res.Floor.Off, e.res.Floor.OffMeas = r, e.delta(a, e.snap(nil), r.cpu)
	logf("floor off: %.0f req/s", r.RPS)
	for _, kind := range []string{"floor-syscalls", "floor-probes"} {
		col, err := startCollector(e.o.collector, e.dir, kind, kind, e.o.metricsPort)
		if err != nil {
			return err
		}
		a := e.snap(col)
		r, err := e.wrk("/1k", d)
		m := e.delta(a, e.snap(col), r.cpu)
		col.stop()
		if err != nil {
			return err
		}
		if kind == "floor-syscalls" {
			e.res.Floor.Syscalls, e.res.Floor.SyscallsMeas = r, m
		} else {
			e.res.Floor.Probes, e.res.Floor.ProbesMeas = r, m
		}
		logf("%s: %.0f req/s; %v exchanges", kind, r.RPS, m.Counters["exchanges_emitted"])
	}
	// The fixed-rate latency with every probe and nothing captured.
	fd := max(e.o.fixedDur/3, 5*time.Second)
	off, err := e.loadgenRun(fd)
	if err != nil {
		return err
	}
	col, err := startCollector(e.o.collector, e.dir, "floor-fixed", "floor-probes", e.o.metricsPort)
	if err != nil {
		return err
	}
	on, err := e.loadgenRun(fd)
	col.stop()
	if err != nil {
		return err
	}
	e.res.Floor.FixedOff, e.res.Floor.FixedProbes = off, on
	logf("floor fixed: p99 %.0f → %.0f µs", off.ServiceP99us, on.ServiceP99us)
	return nil
}

func (e *env) caseFixed() error {
	d := e.o.fixedDur
	var p pair[loadgenResult]
	a := e.snap(nil)
	r, err := e.loadgenRun(d)
	if err != nil {
		return err
	}
	p.Off, p.OffMeas = r, e.delta(a, e.snap(nil), r.cpu)
	logf("fixed off: %.0f req/s service p99 %.0fµs corrected p99 %.0fµs", r.Rate, r.ServiceP99us, r.CorrectedP99us)
	col, err := e.startAgent("fixed")
	if err != nil {
		return err
	}
	defer col.stop()
	a = e.snap(col)
	r, err = e.loadgenRun(d)
	if err != nil {
		return err
	}
	p.On, p.OnMeas = r, e.delta(a, e.snap(col), r.cpu)
	logf("fixed on:  %.0f req/s service p99 %.0fµs corrected p99 %.0fµs; %v exchanges for %d requests",
		r.Rate, r.ServiceP99us, r.CorrectedP99us, p.OnMeas.Counters["exchanges_emitted"], r.Completed)
	e.res.Fixed = p
	return nil
}

func (e *env) caseLoss() error {
	col, err := e.startAgent("loss")
	if err != nil {
		return err
	}
	defer col.stop()
	a := e.snap(col)
	r, err := e.wrk("/1k", e.o.lossDur)
	if err != nil {
		return err
	}
	m := e.delta(a, e.snap(col), r.cpu)
	logf("loss: %.0f req/s for %s; %v exchanges for %d requests; lost events %v",
		r.RPS, e.o.lossDur, m.Counters["exchanges_emitted"], r.Requests, m.Counters["events_lost"])
	e.res.Loss = struct {
		Wrk  wrkResult `json:"wrk"`
		Meas measured  `json:"measured"`
	}{r, m}
	return nil
}

type loopRun struct {
	Iters      int64   `json:"iters"`
	Warmup     int64   `json:"warmup_iters"`
	Calls      int64   `json:"calls_per_iter"`
	WallNs     int64   `json:"wall_ns"`
	CPUNs      int64   `json:"cpu_ns"`
	ClientCPU  int64   `json:"client_cpu_ns"`
	ServerCPU  int64   `json:"server_cpu_ns"`
	WallPerCal float64 `json:"wall_ns_per_call"`
	CPUPerCall float64 `json:"cpu_ns_per_call"`
}
