package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestS3BodiesPipeline runs testdata/collector/s3-bodies.yaml against a real
// S3-compatible server (versitygw over a temporary directory) and a second
// collector standing in for the OTLP backend: the log records with their
// bodies must land in the bucket, the spans and the log records without
// bodies at the OTLP backend.
func TestS3BodiesPipeline(t *testing.T) {
	needRoot(t)
	root := repoRoot(t)
	collector := buildCollector(t, root)
	dir := t.TempDir()

	const accessKey, secretKey, bucket, prefix = "tlstape2e", "tlstap-e2e-secret-key", "tlstap-exchanges", "e2e"
	s3 := startVersityGW(t, root, dir, accessKey, secretKey)
	require.NoError(t, s3.createBucket(bucket))

	// The OTLP backend: a plain collector writing what it receives to a file.
	otlpPort := freePort(t)
	otlpOut := filepath.Join(dir, "otlp.jsonl")
	startCollector(t, root, collector, "testdata/collector/otlp-to-file.yaml",
		fmt.Sprintf("TLSTAP_OTLP_LISTEN=127.0.0.1:%d", otlpPort), "TLSTAP_OUT="+otlpOut)

	certFile, keyFile := writeSelfSignedCert(t, dir)
	port := startHTTPSServer(t, dir, certFile, keyFile)
	base := fmt.Sprintf("https://127.0.0.1:%d", port)

	startCollector(t, root, collector, "testdata/collector/s3-bodies.yaml",
		"TLSTAP_S3_ENDPOINT="+s3.endpoint,
		"TLSTAP_S3_BUCKET="+bucket,
		"TLSTAP_S3_PREFIX="+prefix,
		"TLSTAP_S3_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID="+accessKey,
		"AWS_SECRET_ACCESS_KEY="+secretKey,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		fmt.Sprintf("TLSTAP_OTLP_ENDPOINT=127.0.0.1:%d", otlpPort),
		"TLSTAP_OTLP_INSECURE=true",
	)

	stored := &results{read: func() ([]byte, error) { return s3.readObjects(bucket, prefix+"/") }}
	backend := fileResults(otlpOut)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bucket objects:\n%s", stored.raw.String())
			t.Logf("OTLP backend output:\n%s", backend.raw.String())
		}
	})

	warmUp(t, base, stored, func(url string) bool { return stored.clientLog("curl", url) != nil })

	cases := standardExchanges(base)
	for _, c := range cases {
		c.run(t)
	}
	waitFor(t, 60*time.Second, "not every exchange reached both the bucket and the OTLP backend", func() (missing []string) {
		stored.load(t)
		backend.load(t)
		for _, c := range cases {
			if stored.clientLog("curl", c.url) == nil {
				missing = append(missing, c.name+": log record in the bucket")
			}
			s := backend.clientSpan("curl", c.url)
			switch {
			case s == nil:
				missing = append(missing, c.name+": span at the OTLP backend")
			case backend.logFor(s.span.SpanID()) == nil:
				missing = append(missing, c.name+": log record at the OTLP backend")
			}
		}
		return missing
	})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The bucket: the whole log record, bodies included.
			l := stored.clientLog("curl", c.url)
			require.NotNil(t, l)
			assert.Equal(t, "curl", l.resource.AsRaw()["process.executable.name"])
			assert.Equal(t, "tlstap.http.exchange", l.rec.EventName())
			assert.Equal(t, fmt.Sprintf("%s %s -> %d", c.method, c.url, c.status), l.rec.Body().Str())
			a := l.rec.Attributes().AsRaw()
			assert.Equal(t, c.method, a["http.request.method"])
			assert.Equal(t, c.url, a["url.full"])
			assert.Equal(t, c.status, a["http.response.status_code"])
			assert.Equal(t, c.respBody, a["http.response.body.content"])
			if c.reqBody != "" {
				assert.Equal(t, c.reqBody, a["http.request.body.content"])
			} else {
				assert.NotContains(t, a, "http.request.body.content")
			}
			assert.Equal(t, []any{"tlstap-e2e/1"}, a["http.request.header.user-agent"])

			// The OTLP backend: the span, and the same log record without
			// the bodies.
			s := backend.clientSpan("curl", c.url)
			require.NotNil(t, s)
			assert.Equal(t, "curl", s.resource.AsRaw()["process.executable.name"])
			assert.Equal(t, c.method, s.span.Name())
			sa := s.span.Attributes().AsRaw()
			assert.Equal(t, c.url, sa["url.full"])
			assert.Equal(t, c.status, sa["http.response.status_code"])
			assert.Equal(t, l.rec.SpanID(), s.span.SpanID(), "bucket record and span share the span id")

			bl := backend.logFor(s.span.SpanID())
			require.NotNil(t, bl)
			ba := bl.Attributes().AsRaw()
			assert.NotContains(t, ba, "http.request.body.content", "bodies must not reach the OTLP backend")
			assert.NotContains(t, ba, "http.response.body.content", "bodies must not reach the OTLP backend")
			for k, v := range a {
				if k == "http.request.body.content" || k == "http.response.body.content" {
					continue
				}
				assert.Equal(t, v, ba[k], "OTLP log attribute %s", k)
			}
			assert.Equal(t, l.rec.Body().Str(), bl.Body().Str())
		})
	}

	t.Run("no bodies at the OTLP backend", func(t *testing.T) {
		for _, l := range backend.logs {
			assert.NotContains(t, l.rec.Attributes().AsRaw(), "http.response.body.content")
			assert.NotContains(t, l.rec.Attributes().AsRaw(), "http.request.body.content")
		}
		assert.NotContains(t, backend.raw.String(), `"http.response.body.content"`)
	})
	t.Run("only logs in the bucket", func(t *testing.T) {
		assert.Empty(t, stored.spans)
		keys, err := s3.listObjects(bucket, prefix+"/")
		require.NoError(t, err)
		require.NotEmpty(t, keys)
		t.Logf("%d objects, %d log records in the bucket; %d spans, %d log records at the OTLP backend",
			len(keys), len(stored.logs), len(backend.spans), len(backend.logs))
		for _, k := range keys {
			assert.Regexp(t, `^e2e/year=\d{4}/month=\d\d/day=\d\d/hour=\d\d/minute=\d\d/logs_[0-9a-f-]{36}\.json\.gz$`, k)
		}
	})
}

// s3Server is a running versitygw and a minimal S3 client for it (AWS
// Signature Version 4, path-style URLs).
type s3Server struct {
	endpoint          string
	region            string
	accessKey, secret string
	client            *http.Client

	mu      sync.Mutex
	objects map[string][]byte // key -> decompressed content, fetched once
}

// versitygwPath installs versitygw at the pinned version (mk/collector.mk)
// when missing, once per test binary run, and returns its path.
var versitygwInstall struct {
	once sync.Once
	bin  string
	err  error
}

func versitygwPath(t *testing.T, root string) string {
	t.Helper()
	if p := os.Getenv("TLSTAP_VERSITYGW"); p != "" {
		return p
	}
	v := &versitygwInstall
	v.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "make", "-s", "-f", "mk/collector.mk", "versitygw")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			v.err = fmt.Errorf("installing versitygw: %v\n%s%s", err, out, stderr.Bytes())
			return
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		v.bin = strings.TrimSpace(lines[len(lines)-1])
		if _, err := os.Stat(v.bin); err != nil {
			v.err = fmt.Errorf("versitygw not found after install: %v\n%s", err, out)
		}
	})
	require.NoError(t, v.err)
	return v.bin
}

// startVersityGW runs versitygw on 127.0.0.1:<free port> with a directory
// under dir as storage, waits until it answers and stops it by PID when the
// test ends.
func startVersityGW(t *testing.T, root, dir, accessKey, secretKey string) *s3Server {
	t.Helper()
	bin := versitygwPath(t, root)
	data := filepath.Join(dir, "s3")
	require.NoError(t, os.MkdirAll(data, 0o755))
	port := freePort(t)
	cmd := exec.Command(bin, "--port", fmt.Sprintf("127.0.0.1:%d", port), "--quiet", "posix", data)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+accessKey, "ROOT_SECRET_KEY="+secretKey)
	var out bytes.Buffer
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	cmd.Stdout, cmd.Stderr = w, w
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("versitygw output:\n%s", out.String())
			mu.Unlock()
		}
	})

	s := &s3Server{
		endpoint:  fmt.Sprintf("http://127.0.0.1:%d", port),
		region:    "us-east-1",
		accessKey: accessKey,
		secret:    secretKey,
		client:    &http.Client{Timeout: 10 * time.Second},
		objects:   map[string][]byte{},
	}
	// Ready when a signed ListBuckets succeeds.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := s.do(http.MethodGet, "/", nil, nil)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-exited:
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("versitygw exited:\n%s", out.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "versitygw not answering within 30s (%v)", err)
		time.Sleep(200 * time.Millisecond)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// createBucket sends a signed CreateBucket (PUT /bucket).
func (s *s3Server) createBucket(bucket string) error {
	resp, err := s.do(http.MethodPut, "/"+bucket, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("CreateBucket %s: %s: %s", bucket, resp.Status, body)
	}
	return nil
}

// listObjects returns every key under prefix (ListObjectsV2, all pages).
func (s *s3Server) listObjects(bucket, prefix string) ([]string, error) {
	var keys []string
	token := ""
	for {
		q := url.Values{"list-type": {"2"}, "prefix": {prefix}}
		if token != "" {
			q.Set("continuation-token", token)
		}
		resp, err := s.do(http.MethodGet, "/"+bucket, q, nil)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("ListObjectsV2: %s: %s", resp.Status, body)
		}
		var res struct {
			Contents []struct {
				Key string `xml:"Key"`
			} `xml:"Contents"`
			IsTruncated           bool   `xml:"IsTruncated"`
			NextContinuationToken string `xml:"NextContinuationToken"`
		}
		if err := xml.Unmarshal(body, &res); err != nil {
			return nil, fmt.Errorf("ListObjectsV2 response: %w", err)
		}
		for _, c := range res.Contents {
			keys = append(keys, c.Key)
		}
		if !res.IsTruncated || res.NextContinuationToken == "" {
			return keys, nil
		}
		token = res.NextContinuationToken
	}
}

// getObject returns an object's content, gunzipped when it is gzip.
func (s *s3Server) getObject(bucket, key string) ([]byte, error) {
	resp, err := s.do(http.MethodGet, "/"+bucket+"/"+key, nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GetObject %s: %s: %s", key, resp.Status, body)
	}
	if len(body) >= 2 && body[0] == 0x1f && body[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	}
	return body, nil
}

// readObjects returns the content of every object under prefix, one
// document per line. Each object is fetched once: the test's own S3 reads
// are plaintext HTTP that the receiver captures too, so re-reading every
// object on every poll would feed the bucket its own contents.
func (s *s3Server) readObjects(bucket, prefix string) ([]byte, error) {
	keys, err := s.listObjects(bucket, prefix)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if _, ok := s.objects[k]; ok {
			continue
		}
		data, err := s.getObject(bucket, k)
		if err != nil {
			return nil, err
		}
		s.objects[k] = data
	}
	sort.Strings(keys)
	var all bytes.Buffer
	for _, k := range keys {
		sc := bufio.NewScanner(bytes.NewReader(s.objects[k]))
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			all.Write(sc.Bytes())
			all.WriteByte('\n')
		}
	}
	return all.Bytes(), nil
}

// do sends a request signed with AWS Signature Version 4 (header form,
// payload hash included). path is the unescaped path-style path.
func (s *s3Server) do(method, path string, query url.Values, body []byte) (*http.Response, error) {
	u, err := url.Parse(s.endpoint)
	if err != nil {
		return nil, err
	}
	u.Path = path
	u.RawPath = s3EscapePath(path)
	u.RawQuery = s3CanonicalQuery(query)
	req, err := http.NewRequest(method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	amzDate := now.Format("20060102T150405Z")
	day := now.Format("20060102")
	payloadHash := sha256Hex(body)
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)

	const signedHeaders = "host;x-amz-content-sha256;x-amz-date"
	canonical := strings.Join([]string{
		method,
		u.RawPath,
		u.RawQuery,
		"host:" + u.Host + "\n" +
			"x-amz-content-sha256:" + payloadHash + "\n" +
			"x-amz-date:" + amzDate + "\n",
		signedHeaders,
		payloadHash,
	}, "\n")
	scope := day + "/" + s.region + "/s3/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + sha256Hex([]byte(canonical))
	key := hmacSHA256([]byte("AWS4"+s.secret), day)
	key = hmacSHA256(key, s.region)
	key = hmacSHA256(key, "s3")
	key = hmacSHA256(key, "aws4_request")
	req.Header.Set("Authorization", fmt.Sprintf("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
		s.accessKey, scope, signedHeaders, hex.EncodeToString(hmacSHA256(key, toSign))))
	return s.client.Do(req)
}

// s3Escape is SigV4's URI encoding: everything but A-Z a-z 0-9 - _ . ~ is
// %XX (upper case); keepSlash leaves '/' alone (paths).
func s3Escape(v string, keepSlash bool) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', keepSlash && c == '/':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func s3EscapePath(p string) string { return s3Escape(p, true) }

func s3CanonicalQuery(q url.Values) string {
	var parts []string
	for k, vs := range q {
		for _, v := range vs {
			parts = append(parts, s3Escape(k, false)+"="+s3Escape(v, false))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "&")
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
