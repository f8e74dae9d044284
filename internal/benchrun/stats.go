package main

import (
	"slices"
	"time"
)

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// ---- results ----

type durSummary struct {
	N      int     `json:"n"`
	Median float64 `json:"median_ms"`
	Max    float64 `json:"max_ms"`
}

func summarizeDurations(ds []time.Duration) durSummary {
	if len(ds) == 0 {
		return durSummary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
	return durSummary{N: len(s), Median: ms(s[len(s)/2]), Max: ms(s[len(s)-1])}
}

type results struct {
	Started   string                     `json:"started"`
	Finished  string                     `json:"finished"`
	Machine   map[string]string          `json:"machine"`
	Options   map[string]string          `json:"options"`
	LoadStart string                     `json:"load_average_start"`
	LoadEnd   string                     `json:"load_average_end"`
	Saturated map[string]pair[wrkResult] `json:"saturated"`
	Floor     struct {
		Off          wrkResult     `json:"off"`
		OffMeas      measured      `json:"off_measured"`
		Syscalls     wrkResult     `json:"syscalls_only"`
		SyscallsMeas measured      `json:"syscalls_only_measured"`
		Probes       wrkResult     `json:"all_probes"`
		ProbesMeas   measured      `json:"all_probes_measured"`
		FixedOff     loadgenResult `json:"fixed_off"`
		FixedProbes  loadgenResult `json:"fixed_all_probes"`
	} `json:"floor"`
	Fixed      pair[loadgenResult] `json:"fixed_rate"`
	SSLLoop    loopCase            `json:"ssl_loop"`
	GnuTLSLoop loopCase            `json:"gnutls_loop"`
	GoLoop     loopCase            `json:"go_loop"`
	Loss       struct {
		Wrk  wrkResult `json:"wrk"`
		Meas measured  `json:"measured"`
	} `json:"loss"`
	Footprint footprint  `json:"footprint"`
	Startup   durSummary `json:"engine_startup"`
	Ready     durSummary `json:"collector_ready"`
	GoBenches []goBench  `json:"go_benches"`
}
