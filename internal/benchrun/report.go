package main

import (
	"fmt"
	"strings"
)

func ratio(on, off float64) string {
	if off == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f", on/off)
}

func us(v float64) string { return fmt.Sprintf("%.0f µs", v) }

// markdown renders the results table (stdout and results.md).
func (r *results) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := r.Machine
	w("## tlstap benchmark — %s\n\n", r.Started)
	w("Machine: %s CPUs (`nproc`), %s, kernel %s, %s RAM; %s; %s; %s.\n", m["nproc"], m["cpu"], m["kernel"], m["memory"], m["go"], m["nginx"], m["openssl"])
	w("Load average at start %s, at end %s. Options: %v.\n\n", r.LoadStart, r.LoadEnd, r.Options)
	w("Agent = the ocb collector, tlstap receiver (openssl + go + gnutls probes, max_body_bytes 65536) → batch → debug exporter (verbosity basic), traces and logs.\n")
	w("\"others\" = CPU used during the run by processes that are not part of the benchmark (other users of the machine), in cores.\n\n")

	w("| case | metric | agent off | agent on | on/off | target |\n|---|---|---|---|---|---|\n")
	for _, name := range []string{"sat1k", "sat64k"} {
		p, ok := r.Saturated[name]
		if !ok {
			continue
		}
		label := map[string]string{"sat1k": "wrk saturated, 1 KiB", "sat64k": "wrk saturated, 64 KiB"}[name]
		w("| %s | requests/s | %.0f | %.0f | %s | ≥ 0.7 |\n", label, p.Off.RPS, p.On.RPS, ratio(p.On.RPS, p.Off.RPS))
		w("| | p50 latency | %s | %s | %s | |\n", us(p.Off.P50us), us(p.On.P50us), ratio(p.On.P50us, p.Off.P50us))
		w("| | p99 latency | %s | %s | %s | |\n", us(p.Off.P99us), us(p.On.P99us), ratio(p.On.P99us, p.Off.P99us))
		em := p.OnMeas.Counters["exchanges_emitted"]
		w("| | exchanges emitted / (2 × requests) | – | %.0f / %d | %s | ≥ 0.99 |\n", em, 2*p.On.Requests, ratio(em, float64(2*p.On.Requests)))
		if em > 0 {
			w("| | agent CPU per exchange | – | %.1f µs | – | ≤ 20 µs |\n", 1e6*p.OnMeas.CollectorCPUS/em)
		}
		if p.Off.Errors != "" || p.On.Errors != "" {
			w("| | wrk errors | %s | %s | | |\n", p.Off.Errors, p.On.Errors)
		}
		w("| | load avg at start; others (cores) | %s; %.2f | %s; %.2f | | |\n", p.OffMeas.Load, p.OffMeas.OthersCores, p.OnMeas.Load, p.OnMeas.OthersCores)
		w("| | lost events / stream gaps / incomplete | – | %.0f / %.0f / %.0f | | 0 |\n",
			p.OnMeas.Counters["events_lost"], p.OnMeas.Counters["stream_gaps"], p.OnMeas.Counters["exchanges_incomplete"])
	}
	if fl := r.Floor; fl.Off.Requests > 0 {
		w("| wrk saturated 1 KiB, every process filtered in the kernel (nothing captured) | requests/s, syscall tracepoints only | %.0f | %.0f | %s | |\n", fl.Off.RPS, fl.Syscalls.RPS, ratio(fl.Syscalls.RPS, fl.Off.RPS))
		w("| | requests/s, every probe (syscalls + OpenSSL + Go) | %.0f | %.0f | %s | |\n", fl.Off.RPS, fl.Probes.RPS, ratio(fl.Probes.RPS, fl.Off.RPS))
		cpuPerReq := func(x wrkResult) float64 {
			if x.RPS == 0 {
				return 0
			}
			return 2e6 / x.RPS // both cores saturated: CPU µs per request
		}
		w("| | CPU µs per request (2 cores / rate): off; syscalls; every probe | %.1f | %.1f; %.1f | | |\n", cpuPerReq(fl.Off), cpuPerReq(fl.Syscalls), cpuPerReq(fl.Probes))
		w("| | exchanges emitted (must be 0) | – | %.0f; %.0f | | |\n", fl.SyscallsMeas.Counters["exchanges_emitted"], fl.ProbesMeas.Counters["exchanges_emitted"])
		w("| | load avg at start; others (cores) | %s; %.2f | %s; %.2f | | |\n", fl.OffMeas.Load, fl.OffMeas.OthersCores, fl.ProbesMeas.Load, fl.ProbesMeas.OthersCores)
		if fl.FixedOff.Completed > 0 {
			w("| | fixed %s req/s (loadgen): p99 service latency, every probe | %s | %s | %s | |\n", r.Options["fixed_rate"], us(fl.FixedOff.ServiceP99us), us(fl.FixedProbes.ServiceP99us), ratio(fl.FixedProbes.ServiceP99us, fl.FixedOff.ServiceP99us))
			w("| | fixed: p50 service latency, every probe | %s | %s | %s | |\n", us(fl.FixedOff.ServiceP50us), us(fl.FixedProbes.ServiceP50us), ratio(fl.FixedProbes.ServiceP50us, fl.FixedOff.ServiceP50us))
		}
	}
	f := r.Fixed
	if f.Off.Completed > 0 {
		w("| fixed rate %s req/s, 1 KiB (loadgen, Go client) | achieved requests/s | %.0f | %.0f | %s | |\n", r.Options["fixed_rate"], f.Off.Rate, f.On.Rate, ratio(f.On.Rate, f.Off.Rate))
		w("| | p99 latency (service) | %s | %s | %s | ≤ 1.10 |\n", us(f.Off.ServiceP99us), us(f.On.ServiceP99us), ratio(f.On.ServiceP99us, f.Off.ServiceP99us))
		w("| | p99 latency (from intended send time) | %s | %s | %s | |\n", us(f.Off.CorrectedP99us), us(f.On.CorrectedP99us), ratio(f.On.CorrectedP99us, f.Off.CorrectedP99us))
		w("| | p50 latency (service) | %s | %s | %s | |\n", us(f.Off.ServiceP50us), us(f.On.ServiceP50us), ratio(f.On.ServiceP50us, f.Off.ServiceP50us))
		em := f.OnMeas.Counters["exchanges_emitted"]
		w("| | exchanges emitted / (2 × requests) | – | %.0f / %d | %s | 1 |\n", em, 2*f.On.Completed, ratio(em, float64(2*f.On.Completed)))
		w("| | lost events / stream gaps / incomplete | – | %.0f / %.0f / %.0f | | 0 |\n",
			f.OnMeas.Counters["events_lost"], f.OnMeas.Counters["stream_gaps"], f.OnMeas.Counters["exchanges_incomplete"])
		if em > 0 {
			w("| | agent CPU per exchange | – | %.1f µs | – | ≤ 20 µs |\n", 1e6*f.OnMeas.CollectorCPUS/em)
		}
		w("| | load avg at start; others (cores) | %s; %.2f | %s; %.2f | | |\n", f.OffMeas.Load, f.OffMeas.OthersCores, f.OnMeas.Load, f.OnMeas.OthersCores)
	}
	for _, lc := range []struct {
		label string
		c     loopCase
	}{{"tight loop C/libssl SSL_write+SSL_read", r.SSLLoop}, {"tight loop C/GnuTLS gnutls_record_send+recv", r.GnuTLSLoop},
		{"tight loop Go crypto/tls Write+Read", r.GoLoop}} {
		if len(lc.c.Off) == 0 || len(lc.c.On) == 0 {
			continue
		}
		cpu := func(x loopRun) float64 { return x.CPUPerCall }
		wall := func(x loopRun) float64 { return x.WallPerCal }
		off, on := best(lc.c.Off, cpu), best(lc.c.On, cpu)
		w("| %s | CPU ns per call (best of %d) | %.0f | %.0f | %s | added ≤ 2000 ns: **+%.0f ns** |\n", lc.label, len(lc.c.Off), off, on, ratio(on, off), on-off)
		woff, won := best(lc.c.Off, wall), best(lc.c.On, wall)
		w("| | wall ns per call (round trip / 4) | %.0f | %.0f | %s | +%.0f ns |\n", woff, won, ratio(won, woff), won-woff)
		if len(lc.c.Floor) > 0 {
			fl := best(lc.c.Floor, cpu)
			w("| | CPU ns per call, every probe but nothing captured (the traps alone) | %.0f | %.0f | %s | +%.0f ns |\n", off, fl, ratio(fl, off), fl-off)
		}
		em := lc.c.OnMeas.Counters["exchanges_emitted"]
		w("| | exchanges emitted / expected | – | %.0f / %.0f | %s | |\n", em, lc.c.Expected, ratio(em, lc.c.Expected))
		w("| | load avg at start; others (cores) | %s; %.2f | %s; %.2f | | |\n", lc.c.OffMeas.Load, lc.c.OffMeas.OthersCores, lc.c.OnMeas.Load, lc.c.OnMeas.OthersCores)
	}
	if l := r.Loss; l.Wrk.Requests > 0 {
		c := l.Meas.Counters
		exp := float64(2 * l.Wrk.Requests)
		w("| sustained saturated %s, 1 KiB, agent on | requests/s; exchanges/s | – | %.0f; %.0f | – | |\n", r.Options["loss_s"], l.Wrk.RPS, c["exchanges_emitted"]/l.Meas.WallS)
		w("| | exchanges emitted / expected | – | %.0f / %.0f | %s | 1 |\n", c["exchanges_emitted"], exp, ratio(c["exchanges_emitted"], exp))
		w("| | events lost / bytes lost / stream gaps / incomplete / parse errors | – | %.0f / %.0f / %.0f / %.0f / %.0f | | 0 |\n",
			c["events_lost"], c["bytes_lost"], c["stream_gaps"], c["exchanges_incomplete"], c["parse_errors"])
		if c["exchanges_emitted"] > 0 {
			w("| | agent CPU per exchange | – | %.1f µs | – | ≤ 20 µs |\n", 1e6*l.Meas.CollectorCPUS/c["exchanges_emitted"])
		}
		w("| | load avg at start; others (cores) | – | %s; %.2f | | |\n", l.Meas.Load, l.Meas.OthersCores)
	}
	var pipe, conv float64
	for _, g := range r.GoBenches {
		w("| go test -bench %s | ns per exchange, wall (median of %d) | – | %.0f | – | |\n", g.Name, len(g.NsPerOp), g.Median)
		w("| | CPU ns per exchange, process user+sys incl. GC (median) | – | %.0f | – | |\n", g.MedianCPU)
		w("| | B / allocs per exchange | – | %.0f / %.1f | – | |\n", g.BytesPerOp, g.AllocsPerOp)
		switch {
		case g.Name == "BenchmarkPipeline":
			pipe = g.MedianCPU
		case strings.HasPrefix(g.Name, "BenchmarkConvert"):
			conv = g.MedianCPU
		}
	}
	if pipe > 0 && conv > 0 {
		w("| ring buffer → pdata (pipeline + conversion) | CPU µs per exchange; exchanges/s on one core | – | %.2f µs; %.0f/s | – | ≤ 20 µs |\n", (pipe+conv)/1e3, 1e9/(pipe+conv))
	}
	fp := r.Footprint
	if fp.WithRSSKiB > 0 {
		w("| footprint (idle) | RSS (collector without / with receiver) | %.1f MB | %.1f MB | %s | added ≤ 15 MB: **+%.1f MB** |\n",
			float64(fp.WithoutRSSKiB)/1024, float64(fp.WithRSSKiB)/1024, ratio(float64(fp.WithRSSKiB), float64(fp.WithoutRSSKiB)), float64(fp.WithRSSKiB-fp.WithoutRSSKiB)/1024)
		w("| | anonymous RSS | %.1f MB | %.1f MB | %s | |\n", float64(fp.WithoutAnonKiB)/1024, float64(fp.WithAnonKiB)/1024, ratio(float64(fp.WithAnonKiB), float64(fp.WithoutAnonKiB)))
		w("| | idle CPU over %.0f s (%% of one core) | %.2f %% | %.2f %% | – | ≤ 0.5 %% |\n", fp.IdleS, fp.IdleBareCPUPct, fp.IdleCPUPct)
		w("| | background exchanges captured while idle | – | %.0f (%.0f events) | | |\n", fp.BackgroundExch, fp.BackgroundEvent)
	}
	if r.Startup.N > 0 {
		w("| start-up | engine `startup` (probes attached), median / max of %d starts | – | %.0f / %.0f ms | – | ≤ 1000 ms |\n", r.Startup.N, r.Startup.Median, r.Startup.Max)
		w("| | collector exec → \"tlstap capture started\", median / max | – | %.0f / %.0f ms | – | |\n", r.Ready.Median, r.Ready.Max)
	}
	return b.String()
}
