package policy

import (
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// threadCPU returns the CPU time the calling OS thread has used.
func threadCPU(tb testing.TB) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// inspectionOff switches off everything this package looks for in bodies:
// the baseline for the cost of inspection.
func inspectionOff(c *Config) {
	c.Redaction.BodyPatterns = []BodyPattern{}
	c.Redaction.Fields = []string{}
	c.Redaction.SecretValues = []string{}
	c.PII.Kinds = []string{}
}

// benchmarkPolicy runs Apply on be and reports, beside the wall-clock
// ns/op, cpu-ns/op: the CPU time of the benchmark's thread per operation,
// which other load on the machine does not inflate.
func benchmarkPolicy(b *testing.B, be *benchEx, mod func(*Config)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p := mustNew(b, mod)
	reset := be.snapshot()
	b.SetBytes(int64(len(be.reqBody) + len(be.resBody)))
	b.ReportAllocs()
	start := threadCPU(b)
	n := 0
	for b.Loop() {
		reset()
		if !p.Apply(be.ex).Keep() {
			b.Fatal("dropped")
		}
		n++
	}
	b.ReportMetric(float64(threadCPU(b)-start)/float64(n), "cpu-ns/op")
}

// piiExchange is benchExchange with secrets and personal data in the
// request body: a password field, an e-mail address, a phone number and a
// JWT.
func piiExchange() *benchEx {
	be := benchExchange(false)
	body := strings.Replace(string(be.reqBody), `"customer":"cus_1234"`,
		`"customer":{"email":"bob@example.com","phone":"+1 415 555 2671","password":"hunter2","session":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl"}`, 1)
	be.reqBody = []byte(body)
	be.ex.Request.Body = be.reqBody
	be.ex.Request.BodySize = int64(len(body))
	return be
}

// The policy step on a JSON exchange of 2 KiB of bodies (about 1 KiB of
// request and 1 KiB of response), defaults, against the same step with
// every body inspection off (BenchmarkPolicyInspectionOff): BENCHMARKS.md
// records both, from one run.
func BenchmarkPolicyInspectionOff(b *testing.B) {
	benchmarkPolicy(b, benchExchange(false), inspectionOff)
}
func BenchmarkPolicyDefaults(b *testing.B) { benchmarkPolicy(b, benchExchange(false), nil) }

// BenchmarkPolicySecretsAndPII: the request body carries a secret field, a
// JWT, an e-mail address and a phone number (all found, the secrets
// redacted).
func BenchmarkPolicySecretsAndPII(b *testing.B) { benchmarkPolicy(b, piiExchange(), nil) }

// BenchmarkPolicyRedactPII: the same with pii.redact on.
func BenchmarkPolicyRedactPII(b *testing.B) {
	benchmarkPolicy(b, piiExchange(), func(c *Config) { c.PII.Redact = true })
}

// BenchmarkPolicyBodyCopy is a floor for the same run: copying the two
// bodies of the exchange of BenchmarkPolicyDefaults once, the least any
// step that reads every byte costs.
func BenchmarkPolicyBodyCopy(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	be := benchExchange(false)
	dst := make([]byte, len(be.reqBody)+len(be.resBody))
	b.SetBytes(int64(len(dst)))
	b.ReportAllocs()
	start := threadCPU(b)
	n := 0
	for b.Loop() {
		copy(dst[copy(dst, be.reqBody):], be.resBody)
		n++
	}
	b.ReportMetric(float64(threadCPU(b)-start)/float64(n), "cpu-ns/op")
}
