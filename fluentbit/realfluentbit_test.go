package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestRealFluentBit runs tlstap.so inside a real Fluent Bit with the stdout
// configurations of README.md, classic and YAML, as printed there (only the
// plugin path is replaced), and checks that a curl request over HTTPS comes
// out of Fluent Bit's stdout output as a record with the exchange's fields.
//
// It needs a Fluent Bit: $FLUENT_BIT, or fluent-bit on PATH. Without one it
// skips, under CI=true too: no registry the CI machines reach has a Fluent
// Bit package, so CI proves the plugin with the C host that drives the same
// callbacks (TestHost*), and this test runs where a Fluent Bit is installed.
func TestRealFluentBit(t *testing.T) {
	bin := os.Getenv("FLUENT_BIT")
	if bin == "" {
		bin, _ = exec.LookPath("fluent-bit")
	}
	if bin == "" {
		t.Skip("no Fluent Bit (set FLUENT_BIT or put fluent-bit on PATH); the C host tests cover the plugin")
	}
	requireRoot(t)
	so, _ := artifacts(t)
	classic, yaml := readmeStdoutConfigs(t)
	port := serve(t, true)

	for _, tc := range []struct {
		name, file, config string
		args               []string
	}{
		// The classic file loads the plugin with -e, as the README says.
		{"classic", "fluent-bit.conf", classic, []string{"-e", so}},
		// The YAML file names the plugin in its plugins: list.
		{"yaml", "fluent-bit.yaml", strings.ReplaceAll(yaml, "/opt/tlstap/tlstap.so", so), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := filepath.Join(t.TempDir(), tc.file)
			if err := os.WriteFile(conf, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			fb := startFluentBit(t, bin, append(tc.args, "-c", conf)...)
			// Probes attach asynchronously: repeat until a request shows up.
			var rec map[string]any
			var url string
			deadline := time.Now().Add(90 * time.Second)
			for i := 0; rec == nil; i++ {
				if time.Now().After(deadline) {
					t.Fatalf("no record of a curl request within 90s; Fluent Bit output:\n%s", fb.output())
				}
				url = fmt.Sprintf("https://127.0.0.1:%d/hello?fb=%s-%d", port, tc.name, i)
				curl(t, "-sk", "--http1.1", url)
				rec = fb.waitRecord(url, 2*time.Second)
			}
			for k, want := range map[string]any{
				"message":                    "GET " + url + " -> 200",
				"event.name":                 "tlstap.http.exchange",
				"http.request.method":        "GET",
				"http.response.status_code":  float64(200),
				"process.executable.name":    "curl",
				"service.name":               "unknown_service:curl",
				"url.scheme":                 "https",
				"http.response.body.content": "hello world\n",
			} {
				if rec[k] != want {
					t.Errorf("%s = %#v, want %#v", k, rec[k], want)
				}
			}
		})
	}
}

// readmeStdoutConfigs returns the classic and the YAML configuration of
// README.md's "### stdout" section.
func readmeStdoutConfigs(t *testing.T) (classic, yaml string) {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "### stdout\n")
	if !ok {
		t.Fatal(`README.md has no "### stdout" section`)
	}
	block := func(lang string) string {
		_, rest, ok := strings.Cut(sec, "```"+lang+"\n")
		if !ok {
			t.Fatalf("README.md stdout section has no %s block", lang)
		}
		body, _, _ := strings.Cut(rest, "```")
		return body
	}
	return block("ini"), block("yaml")
}

type fluentBit struct {
	mu   sync.Mutex
	out  strings.Builder
	recs []map[string]any
}

// startFluentBit runs Fluent Bit and collects its json_lines records; it is
// stopped with SIGTERM (by PID) when the test ends.
func startFluentBit(t *testing.T, bin string, args ...string) *fluentBit {
	t.Helper()
	fb := &fluentBit{}
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fb.read(stdout)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = cmd.Wait()
	})
	return fb
}

func (f *fluentBit) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		f.mu.Lock()
		f.out.WriteString(line + "\n")
		var m map[string]any
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &m) == nil {
			f.recs = append(f.recs, m)
		}
		f.mu.Unlock()
	}
}

func (f *fluentBit) output() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.String()
}

// waitRecord returns the client record of url, or nil after timeout.
func (f *fluentBit) waitRecord(url string, timeout time.Duration) map[string]any {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		for _, m := range f.recs {
			if m["url.full"] == url {
				f.mu.Unlock()
				return m
			}
		}
		f.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// TestReadmeStdoutConfigs runs everywhere: the README's configurations that
// TestRealFluentBit feeds to Fluent Bit are found, load the plugin, and
// their tlstap properties are valid.
func TestReadmeStdoutConfigs(t *testing.T) {
	classic, yaml := readmeStdoutConfigs(t)
	if !strings.Contains(yaml, "- /opt/tlstap/tlstap.so") {
		t.Error("the YAML configuration does not load the plugin from /opt/tlstap/tlstap.so")
	}
	_, input, ok := strings.Cut(classic, "[INPUT]\n")
	if !ok {
		t.Fatal("no [INPUT] section in the classic configuration")
	}
	input, _, _ = strings.Cut(input, "[")
	props := map[string]string{}
	for _, line := range strings.Split(input, "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			props[strings.ToLower(f[0])] = f[1]
		}
	}
	if props["name"] != "tlstap" {
		t.Fatalf("[INPUT] Name = %q, want tlstap", props["name"])
	}
	cfg, err := parseConfig(func(k string) string { return props[k] })
	if err != nil {
		t.Fatalf("README properties: %v", err)
	}
	if cfg.Engine.MaxBodyBytes != 16<<10 || strings.Join(cfg.Engine.TLSProbes, ",") != "openssl" || cfg.QueueSize != 8192 {
		t.Errorf("README properties parsed to %+v", cfg)
	}
}
