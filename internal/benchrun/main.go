// Command benchrun is the benchmark driver behind `make bench` (issue 7).
//
//	go run ./internal/benchrun -collector build/tlstap-collector/tlstap-collector [-quick] [-out build/bench]
//
// It runs, on this machine, every case twice — without the agent (baseline)
// and with the collector running the tlstap receiver (→ batch → debug
// exporter, verbosity basic) — and prints a table of ratios against the
// baseline of the same run: HTTPS throughput and latency (nginx + wrk, 1 KiB
// and 64 KiB), fixed-rate p99 (own load generator, 5 000 req/s), per-call
// probe cost (C/libssl and Go crypto/tls tight loops), agent CPU per
// exchange, loss in a sustained saturated run, footprint (idle RSS and CPU,
// startup), and the user-space pipeline benchmarks (go test -bench).
//
// Every process it starts gets its own process group and is stopped by PID
// (also on failure and on SIGINT/SIGTERM; children die with the driver).
// Results: stdout, <out>/results.md, <out>/results.json, CPU profiles of the
// pipeline benchmarks in <out>.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tlstap/tlstap/internal/selfsigned"
)

type options struct {
	collector     string
	out           string
	quick         bool
	keep          bool
	satDur        time.Duration
	fixedDur      time.Duration
	lossDur       time.Duration
	idleDur       time.Duration
	loopIters     int
	loopRuns      int
	rate          int
	nginxWorkers  int
	wrkThreads    int
	wrkConns      int
	metricsPort   int
	benchCount    int
	benchTime     string
	skipGoBenches bool
	cases         string
}

func main() {
	var o options
	flag.StringVar(&o.collector, "collector", "build/tlstap-collector/tlstap-collector", "collector binary (make collector)")
	flag.StringVar(&o.out, "out", "build/bench", "directory for results and profiles")
	flag.BoolVar(&o.quick, "quick", false, "short durations (smoke run)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, logs)")
	flag.IntVar(&o.rate, "rate", 5000, "fixed-rate case: requests per second")
	flag.IntVar(&o.nginxWorkers, "nginx-workers", 1, "nginx worker processes")
	flag.IntVar(&o.wrkThreads, "wrk-threads", 1, "wrk threads")
	flag.IntVar(&o.wrkConns, "wrk-conns", 32, "wrk connections")
	flag.IntVar(&o.metricsPort, "metrics-port", 8888, "collector Prometheus port (another free port when taken)")
	flag.BoolVar(&o.skipGoBenches, "skip-go-benches", false, "skip the go test -bench part")
	flag.StringVar(&o.cases, "cases", "all", "comma-separated subset: sslloop,gnutlsloop,goloop,sat1k,sat64k,fixed,loss,footprint,gobench")
	flag.Parse()
	o.satDur, o.fixedDur, o.lossDur, o.idleDur = 10*time.Second, 60*time.Second, 60*time.Second, 30*time.Second
	o.loopIters, o.loopRuns, o.benchCount, o.benchTime = 50000, 3, 5, "1s"
	if o.quick {
		o.satDur, o.fixedDur, o.lossDur, o.idleDur = 3*time.Second, 5*time.Second, 5*time.Second, 5*time.Second
		o.loopIters, o.loopRuns, o.benchCount, o.benchTime = 10000, 1, 1, "300ms"
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "\nbenchrun: %v: stopping every started process\n", s)
		stopAll()
		os.Exit(130)
	}()

	err := run(&o)
	stopAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// env is what every case needs.
type env struct {
	o                 *options
	dir               string
	cert, key         string
	port              int
	sslloop, goloop   string
	gnutlsloop        string
	loadgen           string
	nginx             *child
	res               *results
	collectorStartups []time.Duration
	collectorReady    []time.Duration
}

func run(o *options) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root (the agent loads eBPF programs)")
	}
	for _, bin := range []string{"nginx", "wrk", "gcc", "go"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found (make bench installs it)", bin)
		}
	}
	if _, err := os.Stat(o.collector); err != nil {
		return fmt.Errorf("collector binary: %w (make collector)", err)
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	o.out, _ = filepath.Abs(o.out)
	dir, err := os.MkdirTemp("", "tlstap-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("temporary directory kept: %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	// nginx workers run as "nobody": they must reach the content below dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	e := &env{o: o, dir: dir, res: newResults(o)}
	o.metricsPort = freePort(o.metricsPort)

	// Helpers.
	if e.cert, e.key, err = selfsigned.Write(dir); err != nil {
		return err
	}
	e.sslloop, e.goloop, e.loadgen = filepath.Join(dir, "sslloop"), filepath.Join(dir, "goloop"), filepath.Join(dir, "loadgen")
	e.gnutlsloop = filepath.Join(dir, "gnutlsloop")
	builds := [][]string{
		{"gcc", "-O2", "-o", e.sslloop, "internal/benchrun/csrc/sslloop.c", "-lssl", "-lcrypto"},
		{"gcc", "-O2", "-o", e.gnutlsloop, "internal/benchrun/csrc/gnutlsloop.c", "-lgnutls"},
		{"go", "build", "-o", e.goloop, "./internal/benchrun/goloop"},
		{"go", "build", "-o", e.loadgen, "./internal/benchrun/loadgen"},
	}
	for _, b := range builds {
		cmd := exec.Command(b[0], b[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(b, " "), err)
		}
	}

	e.port = freePort(0)
	if e.nginx, err = startNginx(filepath.Join(dir, "nginx"), o.nginxWorkers, e.port, e.cert, e.key); err != nil {
		return err
	}
	defer e.nginx.stop()
	logf("nginx pid %d on 127.0.0.1:%d (%d worker(s)); collector metrics on 127.0.0.1:%d", e.nginx.pid(), e.port, o.nginxWorkers, o.metricsPort)

	// Warm nginx and the page cache once; not measured.
	if _, err := e.wrk("/1k", time.Second); err != nil {
		return err
	}

	steps := []struct {
		id, name string
		fn       func() error
	}{
		{"sslloop", "probe cost: C/libssl loop", e.caseSSLLoop},
		{"gnutlsloop", "probe cost: C/GnuTLS loop", e.caseGnuTLSLoop},
		{"goloop", "probe cost: Go crypto/tls loop", e.caseGoLoop},
		{"sat1k", "saturated 1 KiB", func() error { return e.caseSaturated("sat1k", "/1k") }},
		{"sat64k", "saturated 64 KiB", func() error { return e.caseSaturated("sat64k", "/64k") }},
		{"floor", "saturated 1 KiB, probes attached but nothing captured", e.caseFloor},
		{"fixed", "fixed rate", e.caseFixed},
		{"loss", "sustained saturated (loss)", e.caseLoss},
		{"footprint", "footprint", e.caseFootprint},
	}
	want := func(id string) bool {
		return o.cases == "all" || slices.Contains(strings.Split(o.cases, ","), id)
	}
	for _, s := range steps {
		if !want(s.id) {
			continue
		}
		logf("== %s (load average %s)", s.name, loadAvg())
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	e.res.Startup = summarizeDurations(e.collectorStartups)
	e.res.Ready = summarizeDurations(e.collectorReady)
	if !o.skipGoBenches && want("gobench") {
		logf("== go test -bench (load average %s)", loadAvg())
		if err := e.goBenches(); err != nil {
			return err
		}
	}
	e.res.LoadEnd = loadAvg()
	e.res.Finished = time.Now().UTC().Format(time.RFC3339)

	table := e.res.markdown()
	fmt.Println(table)
	if err := os.WriteFile(filepath.Join(o.out, "results.md"), []byte(table), 0o644); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(e.res, "", "  ")
	return os.WriteFile(filepath.Join(o.out, "results.json"), js, 0o644)
}

// ---- measurement frame: machine CPU, our processes, collector counters ----

type frame struct {
	t           time.Time
	busy, total time.Duration
	ngx, coll   time.Duration
	self        time.Duration
	met         map[string]float64
	load        string
}

func (e *env) snap(col *collector) frame {
	f := frame{t: time.Now(), load: loadAvg()}
	f.busy, f.total = sysCPU()
	f.ngx = treeCPU(e.nginx.pid())
	f.self, _ = procCPU(os.Getpid())
	if col != nil {
		f.coll, _ = procCPU(col.pid())
		f.met = col.settle()
		// settle took time: take the CPU figures again, after it.
		f.busy, f.total = sysCPU()
		f.coll, _ = procCPU(col.pid())
	}
	return f
}

// measured is what one run (agent off or on) records besides its own output.
type measured struct {
	Load          string             `json:"load_average"`
	WallS         float64            `json:"wall_s"`
	NginxCPUS     float64            `json:"nginx_cpu_s"`
	LoadCPUS      float64            `json:"load_generator_cpu_s"`
	CollectorCPUS float64            `json:"collector_cpu_s,omitempty"`
	OthersCores   float64            `json:"others_cores"` // CPU used by processes not ours, in cores
	Counters      map[string]float64 `json:"counters,omitempty"`
}

func (e *env) delta(a, b frame, loadCPU time.Duration) measured {
	wall := b.t.Sub(a.t)
	busy := b.busy - a.busy
	ours := (b.ngx - a.ngx) + (b.coll - a.coll) + (b.self - a.self) + loadCPU
	m := measured{
		Load: a.load, WallS: wall.Seconds(),
		NginxCPUS: (b.ngx - a.ngx).Seconds(), LoadCPUS: loadCPU.Seconds(),
		CollectorCPUS: (b.coll - a.coll).Seconds(),
		OthersCores:   max(0, (busy-ours).Seconds()/wall.Seconds()),
	}
	if a.met != nil && b.met != nil {
		m.Counters = map[string]float64{}
		for k, v := range b.met {
			if k == "connections_tracked" || k == "probes_attached" {
				m.Counters[k] = v
				continue
			}
			m.Counters[k] = v - a.met[k]
		}
	}
	return m
}

func (e *env) startAgent(name string) (*collector, error) {
	col, err := startCollector(e.o.collector, e.dir, name, "tlstap", e.o.metricsPort)
	if err != nil {
		return nil, err
	}
	e.collectorStartups = append(e.collectorStartups, col.startup)
	e.collectorReady = append(e.collectorReady, col.ready)
	logf("collector pid %d ready in %s (engine startup %s)", col.pid(), col.ready.Round(time.Millisecond), col.startup)
	return col, nil
}

// ---- load generators ----

type wrkResult struct {
	Requests int64   `json:"requests"`
	RPS      float64 `json:"requests_per_s"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	Errors   string  `json:"errors,omitempty"`
	cpu      time.Duration
}

var (
	wrkReqRE  = regexp.MustCompile(`(\d+) requests in`)
	wrkRPSRE  = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkPctRE  = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	wrkErrsRE = regexp.MustCompile(`(?m)^\s+(Socket errors:.*|Non-2xx or 3xx responses:.*)$`)
)

func (e *env) caseFootprint() error {
	var f footprint
	f.Load = loadAvg()
	measureIdle := func(col *collector, d time.Duration) (rss, anon int64, pct float64, met [2]map[string]float64) {
		time.Sleep(5 * time.Second) // let start-up garbage be collected
		met[0], _ = col.metrics()
		c0, _ := procCPU(col.pid())
		t0 := time.Now()
		time.Sleep(d)
		c1, _ := procCPU(col.pid())
		pct = 100 * (c1 - c0).Seconds() / time.Since(t0).Seconds()
		met[1], _ = col.metrics()
		return statusKB(col.pid(), "VmRSS"), statusKB(col.pid(), "RssAnon"), pct, met
	}
	col, err := startCollector(e.o.collector, e.dir, "footprint-with", "tlstap+otlp", e.o.metricsPort)
	if err != nil {
		return err
	}
	e.collectorStartups = append(e.collectorStartups, col.startup)
	e.collectorReady = append(e.collectorReady, col.ready)
	var met [2]map[string]float64
	f.WithRSSKiB, f.WithAnonKiB, f.IdleCPUPct, met = measureIdle(col, e.o.idleDur)
	f.IdleS = e.o.idleDur.Seconds()
	if met[0] != nil && met[1] != nil {
		f.BackgroundExch = met[1]["exchanges_emitted"] - met[0]["exchanges_emitted"]
		f.BackgroundEvent = met[1]["events_read"] - met[0]["events_read"]
	}
	col.stop()
	bare, err := startCollector(e.o.collector, e.dir, "footprint-without", "otlp", e.o.metricsPort)
	if err != nil {
		return err
	}
	f.WithoutRSSKiB, f.WithoutAnonKiB, f.IdleBareCPUPct, _ = measureIdle(bare, min(e.o.idleDur, 10*time.Second))
	bare.stop()
	logf("footprint: RSS %d KiB with the receiver, %d KiB without; idle CPU %.2f%% of a core (%v background exchanges)",
		f.WithRSSKiB, f.WithoutRSSKiB, f.IdleCPUPct, f.BackgroundExch)
	e.res.Footprint = f
	return nil
}

// ---- go test -bench ----

type goBench struct {
	Name        string    `json:"name"`
	NsPerOp     []float64 `json:"ns_per_exchange"`     // wall time per exchange, as the benchmark reports it
	CPUNs       []float64 `json:"cpu_ns_per_exchange"` // process user+system time per exchange (robust to a busy machine)
	Median      float64   `json:"median_ns_per_exchange"`
	MedianCPU   float64   `json:"median_cpu_ns_per_exchange"`
	BytesPerOp  float64   `json:"bytes_per_exchange"`
	AllocsPerOp float64   `json:"allocs_per_exchange"`
	Profile     string    `json:"cpu_profile"`
}

var benchLineRE = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

// goBenches builds the test binaries and runs each benchmark with a fixed
// iteration count, count times, as children: besides the wall ns/op the
// benchmark prints, the child's rusage gives the CPU time per exchange
// (GC included), which a loaded machine does not inflate. The first run
// writes a CPU profile.
func (e *env) goBenches() error {
	scale := 1
	if e.o.quick {
		scale = 5
	}
	specs := []struct {
		pkg, bench, file string
		iters, perOp     int // iterations per run; exchanges per op
	}{
		{"./internal/engine/", "^BenchmarkPipeline$", "pipeline", 200000 / scale, 1},
		{"./receiver/tlstapreceiver/", "^BenchmarkConvert$", "convert", 100 / scale, 256},
	}
	for _, s := range specs {
		bin := filepath.Join(e.dir, s.file+".test")
		build := exec.Command("go", "test", "-c", "-o", bin, s.pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go test -c %s: %w", s.pkg, err)
		}
		prof := filepath.Join(e.o.out, s.file+".cpu.pprof")
		gb := &goBench{Profile: filepath.Base(prof)}
		for i := 0; i < e.o.benchCount; i++ {
			args := []string{"-test.run", "^$", "-test.bench", s.bench, "-test.benchmem",
				"-test.benchtime", fmt.Sprintf("%dx", s.iters)}
			if i == 0 {
				args = append(args, "-test.cpuprofile", prof)
			}
			cmd := exec.Command(bin, args...)
			cmd.Dir = s.pkg
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, os.Stderr
			c, err := startChild(s.file+".test", cmd)
			if err != nil {
				return err
			}
			if err := c.wait(10 * time.Minute); err != nil {
				return fmt.Errorf("%s: %w\n%s", bin, err, out.String())
			}
			for _, line := range strings.Split(out.String(), "\n") {
				m := benchLineRE.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				fmt.Fprintln(os.Stderr, line)
				gb.Name = m[1]
				n, _ := strconv.Atoi(m[2])
				f := strings.Fields(m[3])
				vals := map[string]float64{}
				for i := 0; i+1 < len(f); i += 2 {
					v, _ := strconv.ParseFloat(f[i], 64)
					vals[f[i+1]] = v
				}
				// The conversion benchmark reports per-exchange figures itself.
				ns, ok := vals["ns/exchange"]
				if !ok {
					ns = vals["ns/op"]
				}
				gb.NsPerOp = append(gb.NsPerOp, ns)
				gb.BytesPerOp, gb.AllocsPerOp = vals["B/op"]/float64(s.perOp), vals["allocs/op"]/float64(s.perOp)
				if v, ok := vals["B/exchange"]; ok {
					gb.BytesPerOp = v
				}
				if v, ok := vals["allocs/exchange"]; ok {
					gb.AllocsPerOp = v
				}
				// b.Loop benchmarks run their body once: n ops in all.
				gb.CPUNs = append(gb.CPUNs, float64(c.rusage().Nanoseconds())/float64(n*s.perOp))
			}
		}
		if gb.Name == "" {
			return fmt.Errorf("%s: no benchmark result", bin)
		}
		gb.Median, gb.MedianCPU = median(gb.NsPerOp), median(gb.CPUNs)
		e.res.GoBenches = append(e.res.GoBenches, *gb)
	}
	return nil
}

func newResults(o *options) *results {
	r := &results{Started: time.Now().UTC().Format(time.RFC3339), Saturated: map[string]pair[wrkResult]{}, LoadStart: loadAvg()}
	uname := func(flag string) string {
		b, _ := exec.Command("uname", flag).Output()
		return strings.TrimSpace(string(b))
	}
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.*)$`).FindSubmatch(b); m != nil {
			cpu = string(m[1])
		}
	}
	mem := fmt.Sprintf("%d MiB", statusMemTotal()/1024)
	nginxV, _ := exec.Command("nginx", "-v").CombinedOutput()
	sslV, _ := exec.Command("openssl", "version").Output()
	r.Machine = map[string]string{
		"nproc": strconv.Itoa(runtime.NumCPU()), "kernel": uname("-r"), "cpu": cpu, "memory": mem,
		"go": runtime.Version(), "nginx": strings.TrimSpace(string(nginxV)), "openssl": strings.TrimSpace(string(sslV)),
	}
	r.Options = map[string]string{
		"quick": strconv.FormatBool(o.quick), "nginx_workers": strconv.Itoa(o.nginxWorkers),
		"wrk": fmt.Sprintf("-t%d -c%d", o.wrkThreads, o.wrkConns), "fixed_rate": strconv.Itoa(o.rate),
		"saturated_s": o.satDur.String(), "fixed_s": o.fixedDur.String(), "loss_s": o.lossDur.String(),
		"idle_s": o.idleDur.String(), "loop_iters": strconv.Itoa(o.loopIters), "loop_runs": strconv.Itoa(o.loopRuns),
	}
	return r
}

func statusMemTotal() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			f := strings.Fields(line)
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}
