package httpparse

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/tlstap/tlstap/internal/exchange"
)

// ev is one input event of a test script.
type ev struct {
	kind byte // 'f' feed, 'g' gap, 'c' close
	dir  Dir
	data string
	n    int64
	ts   int64
}

func out(ts int64, data string) ev    { return ev{kind: 'f', dir: Egress, data: data, ts: ts} }
func in(ts int64, data string) ev     { return ev{kind: 'f', dir: Ingress, data: data, ts: ts} }
func gap(d Dir, ts int64, n int64) ev { return ev{kind: 'g', dir: d, n: n, ts: ts} }
func inCall(ts int64, data string) ev { return ev{kind: 'r', dir: Ingress, data: data, ts: ts} }
func closed(ts int64) ev              { return ev{kind: 'c', ts: ts} }

// splitter cuts the data of feed event i into the pieces fed separately.
type splitter func(i int, data string) []string

func whole(_ int, data string) []string { return []string{data} }

func byteByByte(_ int, data string) []string {
	out := make([]string, len(data))
	for i := range data {
		out[i] = data[i : i+1]
	}
	return out
}

// splitAt cuts event ev at offset k, leaving the others whole.
func splitAt(ev, k int) splitter {
	return func(i int, data string) []string {
		if i != ev || k <= 0 || k >= len(data) {
			return []string{data}
		}
		return []string{data[:k], data[k:]}
	}
}

// randomPieces cuts every event into pieces of 1..8 bytes.
func randomPieces(seed int64) splitter {
	r := rand.New(rand.NewSource(seed))
	return func(_ int, data string) []string {
		var out []string
		for data != "" {
			k := 1 + r.Intn(8)
			if k > len(data) {
				k = len(data)
			}
			out = append(out, data[:k])
			data = data[k:]
		}
		return out
	}
}

// run feeds a script and returns what was emitted and the final state.
func run(opts Options, evs []ev, split splitter) ([]*exchange.Exchange, *Conn) {
	var got []*exchange.Exchange
	c := NewConn(opts, func(x *exchange.Exchange) { got = append(got, x) })
	for i, e := range evs {
		switch e.kind {
		case 'f':
			for _, piece := range split(i, e.data) {
				// The caller reuses its buffer: prove nothing is retained.
				buf := []byte(piece)
				c.Feed(e.dir, buf, e.ts)
				for j := range buf {
					buf[j] = '#'
				}
			}
		case 'r':
			// A record that starts a read or write call: never split.
			buf := []byte(e.data)
			c.FeedCall(e.dir, buf, e.ts)
			for j := range buf {
				buf[j] = '#'
			}
		case 'g':
			c.Gap(e.dir, e.n, e.ts)
		case 'c':
			c.Close(e.ts)
		}
	}
	return got, c
}

// allSplits runs fn for the whole input, every single split point of every
// event, byte-by-byte feeding and a few random piece sizes.
func allSplits(evs []ev, fn func(name string, sp splitter)) {
	fn("whole", whole)
	fn("bytes", byteByByte)
	for seed := int64(1); seed <= 4; seed++ {
		fn(fmt.Sprintf("random%d", seed), randomPieces(seed))
	}
	for i, e := range evs {
		if e.kind != 'f' {
			continue
		}
		for k := 1; k < len(e.data); k++ {
			fn(fmt.Sprintf("split%d@%d", i, k), splitAt(i, k))
		}
	}
}

// dump renders every field the parser sets, for exact comparison.
func dump(xs []*exchange.Exchange) string {
	var b strings.Builder
	for i, x := range xs {
		fmt.Fprintf(&b, "#%d role=%v flags=%v\n", i, x.Role, x.Flags.Names())
		dumpMsg(&b, "  req ", x.Request)
		dumpMsg(&b, "  resp", x.Response)
	}
	return b.String()
}

func dumpMsg(b *strings.Builder, label string, m *exchange.Message) {
	if m == nil {
		fmt.Fprintf(b, "%s <nil>\n", label)
		return
	}
	fmt.Fprintf(b, "%s method=%q target=%q status=%d reason=%q proto=%q first=%d last=%d wire=%d\n",
		label, m.Method, m.Target, m.StatusCode, m.Reason, m.Proto, m.FirstByte, m.LastByte, m.WireSize)
	fmt.Fprintf(b, "%s headers=%q trailers=%q\n", label, m.Headers, m.Trailers)
	dec := "<nil>"
	if m.DecodedBody != nil {
		dec = fmt.Sprintf("%q", m.DecodedBody)
	}
	body := "<nil>"
	if m.Body != nil {
		body = fmt.Sprintf("%q", m.Body)
	}
	fmt.Fprintf(b, "%s body=%s size=%d truncated=%v decoded=%s\n", label, body, m.BodySize, m.BodyTruncated, dec)
}

// hs builds a header list from name, value pairs.
func hs(kv ...string) []exchange.Header {
	var out []exchange.Header
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, exchange.Header{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func wire(parts ...string) int64 {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	return int64(n)
}

// connCase is one table test: a script, the exchanges it must produce and
// the state it must end in.
type connCase struct {
	name  string
	opts  Options
	evs   []ev
	want  []exchange.Exchange
	state State
	// noSplits skips the every-split-point runs for big inputs.
	noSplits bool
}

func runCases(t *testing.T, cases []connCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := make([]*exchange.Exchange, len(tc.want))
			for i := range tc.want {
				want[i] = &tc.want[i]
			}
			wantDump := dump(want)
			check := func(name string, sp splitter) {
				got, c := run(tc.opts, tc.evs, sp)
				if g := dump(got); g != wantDump {
					t.Fatalf("%s: exchanges differ (err=%v)\n got:\n%s\nwant:\n%s", name, c.Err(), g, wantDump)
				}
				if c.State() != tc.state {
					t.Fatalf("%s: state %v, want %v (err=%v)", name, c.State(), tc.state, c.Err())
				}
			}
			if tc.noSplits {
				check("whole", whole)
				check("bytes", byteByByte)
				check("random", randomPieces(7))
				return
			}
			allSplits(tc.evs, check)
		})
	}
}
