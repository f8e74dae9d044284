package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// freePort returns a TCP port free on 127.0.0.1 right now; prefer is tried first.
func freePort(prefer int) int {
	if prefer > 0 {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", prefer)); err == nil {
			l.Close()
			return prefer
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitPort(port int, d time.Duration) error {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on 127.0.0.1:%d after %s", port, d)
}

// nginxConf: TLS, keep-alive, static 1 KiB and 64 KiB files, no access log.
const nginxConf = `# written by internal/benchrun
worker_processes %d;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    default_type text/plain; # bodies are captured (text/* is in the default body policy)
    client_body_temp_path %[2]s/tmp;
    server {
        listen 127.0.0.1:%[3]d ssl;
        ssl_certificate %[4]s;
        ssl_certificate_key %[5]s;
        ssl_protocols TLSv1.2 TLSv1.3;
        root %[2]s/www;
    }
}
`

// startNginx writes the config and content into dir and runs nginx in the
// foreground as a child (own pid file, own error log).
func startNginx(dir string, workers, port int, cert, key string) (*child, error) {
	www := filepath.Join(dir, "www")
	for _, d := range []string{www, filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	for name, size := range map[string]int{"1k": 1024, "64k": 64 << 10} {
		b := make([]byte, size)
		for i := range b {
			b[i] = 'a' + byte(i%26)
		}
		if err := os.WriteFile(filepath.Join(www, name), b, 0o644); err != nil {
			return nil, err
		}
	}
	// nginx workers run as "nobody": they must reach the files.
	for _, d := range []string{dir, www} {
		_ = os.Chmod(d, 0o755)
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, workers, dir, port, cert, key), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("nginx", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf)
	cmd.Stderr = os.Stderr
	c, err := startChild("nginx", cmd)
	if err != nil {
		return nil, err
	}
	if err := waitPort(port, 10*time.Second); err != nil {
		c.stop()
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return nil, fmt.Errorf("nginx: %w\n%s", err, b)
	}
	return c, nil
}

// collectorCommon is what both benchmark collectors share: the extra
// receivers (%[2]s), batch → debug, telemetry on port %[1]d and the
// extensions the service runs (%[4]s).
const collectorCommon = `%[2]s
processors:
  batch:
exporters:
  debug:
    verbosity: basic
service:
  extensions: [%[4]s]
  telemetry:
    metrics:
      level: normal
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %[1]d
  pipelines:
`

// Collector configurations. The receiver feeds batch → debug (verbosity
// basic: one log line per batch, no per-record formatting), traces and logs.
// Its pprof endpoint (port %[5]d) profiles the agent under load.
const collectorWithReceiver = `extensions:
  pprof:
    endpoint: 127.0.0.1:%[5]d
receivers:
  tlstap:
    max_body_bytes: 65536
    tls_probes: [%[6]s]
    # The machine is shared: capture only the benchmark's own processes
    # (process rules are applied in the kernel).
    filters:
      include:
        executables: [%[7]s]
` + collectorCommon + `    traces:
      receivers: [tlstap%[3]s]
      processors: [batch]
      exporters: [debug]
    logs:
      receivers: [tlstap]
      processors: [batch]
      exporters: [debug]
`

// The same binary without the tlstap receiver (footprint baseline).
const collectorWithout = `receivers:
` + collectorCommon + `    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug]
`

const otlpReceiver = `  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
`

type collector struct {
	*child
	log         string
	metricsPort int
	pprofPort   int // 0: no pprof endpoint
	started     time.Time
	ready       time.Duration // process start → ready log line
	startup     time.Duration // the engine's own "startup" field
}

// The collector's logger writes durations as seconds ("startup": 0.35).
var startupRE = regexp.MustCompile(`tlstap capture started.*"startup":\s*"?([0-9.]+)(\w*)"?`)

// startCollector runs the collector with one of three configurations:
// "tlstap" (receiver only), "tlstap+otlp" and "otlp" (no tlstap receiver),
// and waits until it is ready.
func startCollector(bin, dir, name, kind string, metricsPort int) (*collector, error) {
	var conf string
	otlp := fmt.Sprintf(otlpReceiver, freePort(0))
	pprofPort := freePort(0)
	const (
		allProbes = "openssl, go, gnutls"
		benchExes = "nginx, wrk, loadgen, sslloop, gnutlsloop, goloop"
		noExe     = "tlstap-bench-matches-nothing"
	)
	withReceiver := func(extra, extraName, probes, exes string) string {
		return fmt.Sprintf(collectorWithReceiver, metricsPort, extra, extraName, "pprof", pprofPort, probes, exes)
	}
	switch kind {
	case "tlstap":
		conf = withReceiver("", "", allProbes, benchExes)
	case "tlstap+otlp":
		conf = withReceiver(otlp, ", otlp", allProbes, benchExes)
	case "floor-syscalls":
		// The syscall tracepoints only, every process filtered out in the
		// kernel: what tracing syscalls costs before any work is done.
		conf = withReceiver("", "", "", noExe)
	case "floor-probes":
		// Every probe attached, every process filtered out in the kernel:
		// the traps and program entries alone.
		conf = withReceiver("", "", allProbes, noExe)
	case "otlp":
		conf = fmt.Sprintf(collectorWithout, metricsPort, otlp, "", "")
		pprofPort = 0
	}
	cfile := filepath.Join(dir, name+".yaml")
	logFile := filepath.Join(dir, name+".log")
	if err := os.WriteFile(cfile, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	lf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(bin, "--config", cfile)
	cmd.Stdout, cmd.Stderr = lf, lf
	t0 := time.Now()
	c, err := startChild("collector", cmd)
	if err != nil {
		return nil, err
	}
	col := &collector{child: c, log: logFile, metricsPort: metricsPort, pprofPort: pprofPort, started: t0}
	want := "tlstap capture started"
	if kind == "otlp" {
		want = "Everything is ready"
	}
	for deadline := t0.Add(90 * time.Second); ; {
		b, _ := os.ReadFile(logFile)
		if strings.Contains(string(b), want) {
			col.ready = time.Since(t0)
			if m := startupRE.FindSubmatch(b); m != nil {
				if len(m[2]) > 0 {
					col.startup, _ = time.ParseDuration(string(m[1]) + string(m[2]))
				} else if v, err := strconv.ParseFloat(string(m[1]), 64); err == nil {
					col.startup = time.Duration(v * float64(time.Second))
				}
			}
			break
		}
		if c.exited() || time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("collector (%s) not ready:\n%s", kind, tail(string(b), 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := waitPort(metricsPort, 10*time.Second); err != nil {
		c.stop()
		return nil, err
	}
	return col, nil
}

// cpuProfile writes a CPU profile of the collector over d to file.
func (c *collector) cpuProfile(d time.Duration, file string) error {
	if c.pprofPort == 0 {
		return errors.New("collector has no pprof endpoint")
	}
	cl := http.Client{Timeout: d + 30*time.Second}
	resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", c.pprofPort, int(d.Seconds())))
	if err != nil {
		return fmt.Errorf("collector profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("collector profile: %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("collector profile: %w", err)
	}
	return os.WriteFile(file, b, 0o644)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// metrics scrapes the collector's Prometheus endpoint and sums every
// otelcol_tlstap_* series by name (without a _total suffix).
func (c *collector) metrics() (map[string]float64, error) {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", c.metricsPort))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "otelcol_tlstap_") {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		name = strings.TrimSuffix(strings.TrimPrefix(name, "otelcol_tlstap_"), "_total")
		out[name] += v
	}
	return out, sc.Err()
}

// settle scrapes until exchanges_emitted stops moving (the pipeline drained).
func (c *collector) settle() map[string]float64 {
	var last map[string]float64
	stable := 0
	for i := 0; i < 100 && stable < 4; i++ {
		m, err := c.metrics()
		if err == nil && last != nil && m["exchanges_emitted"] == last["exchanges_emitted"] {
			stable++
		} else {
			stable = 0
		}
		if err == nil {
			last = m
		}
		time.Sleep(250 * time.Millisecond)
	}
	return last
}
