package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
)

func (e *env) loop(args ...string) (loopRun, error) {
	var out bytes.Buffer
	// Client and server share one CPU. Across two vCPUs of this nested VM
	// every lock-step round trip pays cross-CPU wake-ups (IPIs, halt
	// exits) charged to the two processes: 10-60 µs per call depending on
	// where the scheduler puts them, which buries a probe's few µs.
	cpu := strconv.Itoa(runtime.NumCPU() - 1)
	cmd := exec.Command("taskset", append([]string{"-c", cpu}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	c, err := startChild(filepath.Base(args[0]), cmd)
	if err != nil {
		return loopRun{}, err
	}
	if err := c.wait(5 * time.Minute); err != nil {
		return loopRun{}, err
	}
	var r loopRun
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return r, fmt.Errorf("%s output %q: %w", args[0], out.String(), err)
	}
	if r.CPUNs == 0 {
		r.CPUNs = r.ClientCPU + r.ServerCPU
	}
	calls := float64(r.Iters * r.Calls)
	r.WallPerCal, r.CPUPerCall = float64(r.WallNs)/calls, float64(r.CPUNs)/calls
	return r, nil
}

type loopCase struct {
	Off     []loopRun `json:"off"`
	On      []loopRun `json:"on"`
	Floor   []loopRun `json:"probes_only"` // every probe, nothing captured
	OnMeas  measured  `json:"on_measured"`
	OffMeas measured  `json:"off_measured"`
	// Exchanges the loop produced (2 per iteration: client and server side).
	Expected float64 `json:"expected_exchanges"`
}

func best(rs []loopRun, f func(loopRun) float64) float64 {
	v := f(rs[0])
	for _, r := range rs[1:] {
		v = min(v, f(r))
	}
	return v
}

func (e *env) loopCase(name string, args []string, warmIters int64) (loopCase, error) {
	var lc loopCase
	a := e.snap(nil)
	for i := 0; i < e.o.loopRuns; i++ {
		r, err := e.loop(args...)
		if err != nil {
			return lc, err
		}
		lc.Off = append(lc.Off, r)
	}
	lc.OffMeas = e.delta(a, e.snap(nil), 0)
	col, err := e.startAgent(name)
	if err != nil {
		return lc, err
	}
	a = e.snap(col)
	for i := 0; i < e.o.loopRuns; i++ {
		r, err := e.loop(args...)
		if err != nil {
			col.stop()
			return lc, err
		}
		lc.On = append(lc.On, r)
		w := r.Warmup
		if w == 0 {
			w = warmIters
		}
		lc.Expected += float64(2 * (r.Iters + w))
	}
	lc.OnMeas = e.delta(a, e.snap(col), 0)
	col.stop()
	// The same with every probe attached and every process filtered out
	// in the kernel: the traps' own cost, before our programs do any work.
	fcol, err := startCollector(e.o.collector, e.dir, name+"-floor", "floor-probes", e.o.metricsPort)
	if err != nil {
		return lc, err
	}
	defer fcol.stop()
	for i := 0; i < e.o.loopRuns; i++ {
		r, err := e.loop(args...)
		if err != nil {
			return lc, err
		}
		lc.Floor = append(lc.Floor, r)
	}
	cpu := func(r loopRun) float64 { return r.CPUPerCall }
	logf("%s: CPU per call off %.0f ns, on %.0f ns, probes only %.0f ns; %v exchanges of %v expected",
		name, best(lc.Off, cpu), best(lc.On, cpu), best(lc.Floor, cpu), lc.OnMeas.Counters["exchanges_emitted"], lc.Expected)
	return lc, nil
}

func (e *env) caseSSLLoop() error {
	const warm = 2000
	lc, err := e.loopCase("sslloop", []string{e.sslloop, e.cert, e.key, strconv.Itoa(e.o.loopIters), strconv.Itoa(warm)}, warm)
	e.res.SSLLoop = lc
	return err
}

func (e *env) caseGnuTLSLoop() error {
	const warm = 2000
	lc, err := e.loopCase("gnutlsloop", []string{e.gnutlsloop, e.cert, e.key, strconv.Itoa(e.o.loopIters), strconv.Itoa(warm)}, warm)
	e.res.GnuTLSLoop = lc
	return err
}

func (e *env) caseGoLoop() error {
	lc, err := e.loopCase("goloop", []string{e.goloop, "-cert", e.cert, "-key", e.key, "-n", strconv.Itoa(e.o.loopIters), "-warmup", "2s"}, 0)
	e.res.GoLoop = lc
	return err
}

type footprint struct {
	WithRSSKiB      int64   `json:"with_receiver_rss_kib"`
	WithAnonKiB     int64   `json:"with_receiver_rss_anon_kib"`
	WithoutRSSKiB   int64   `json:"without_receiver_rss_kib"`
	WithoutAnonKiB  int64   `json:"without_receiver_rss_anon_kib"`
	IdleCPUPct      float64 `json:"idle_cpu_pct_of_core"`
	IdleBareCPUPct  float64 `json:"idle_cpu_pct_of_core_without_receiver"`
	IdleS           float64 `json:"idle_s"`
	BackgroundExch  float64 `json:"background_exchanges"`
	BackgroundEvent float64 `json:"background_events"`
	Load            string  `json:"load_average"`
}
