package httpparse

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tlstap/tlstap/internal/exchange"
)

// lossScript is a sequential keep-alive client's n requests (GET /r/i)
// and responses ("reply i"), one record each, with the records lost[i][d]
// dropped. Each loss is reported with the next record of either direction,
// as the engine does (records carry both directions' loss positions).
func lossScript(n int, lost func(i int, d Dir) bool) []ev {
	var evs []ev
	var pend [2]int64 // bytes lost and not yet reported, per direction
	ts := int64(0)
	emit := func(d Dir, lost bool, data string) {
		ts++
		if lost {
			pend[d] += int64(len(data))
			return
		}
		for _, g := range []Dir{d ^ 1, d} {
			if pend[g] > 0 {
				evs = append(evs, gap(g, ts, pend[g]))
				pend[g] = 0
			}
		}
		evs = append(evs, ev{kind: 'f', dir: d, data: data, ts: ts})
	}
	for i := 1; i <= n; i++ {
		body := fmt.Sprintf("reply %d", i)
		emit(Egress, lost(i, Egress), fmt.Sprintf("GET /r/%d HTTP/1.1\r\nHost: h\r\n\r\n", i))
		emit(Ingress, lost(i, Ingress), fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
	}
	return append(evs, closed(ts+1))
}

// misPaired returns the delivered exchanges (request and response, not
// NoResponse) and, for those whose response belongs to another request,
// a description each.
func misPaired(exs []*exchange.Exchange) (delivered int, bad []string) {
	for _, ex := range exs {
		if ex.Request == nil || ex.Response == nil || ex.Flags.Has(exchange.NoResponse) {
			continue
		}
		delivered++
		if want := "reply " + strings.TrimPrefix(ex.Request.Target, "/r/"); string(ex.Response.Body) != want {
			bad = append(bad, fmt.Sprintf("%s paired with %q (flags %v)", ex.Request.Target, ex.Response.Body, ex.Flags.Names()))
		}
	}
	return delivered, bad
}

// A sequential keep-alive client; the ring buffer drops whole records. The
// pairing of what remains must never attach a response to another
// request's exchange. Found by TestFaultSlowConsumer in internal/engine
// ("/r/318 -> reply 319"): a gap that swallowed two whole responses was
// taken for one.
func TestReliabilityMultiMessageGapNeverSplices(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lostReq  map[int]bool
		lostResp map[int]bool
	}{
		{"two responses lost", nil, map[int]bool{2: true, 3: true}},
		{"three responses lost", nil, map[int]bool{2: true, 3: true, 4: true}},
		{"two requests lost", map[int]bool{2: true, 3: true}, nil},
		{"request and response lost", map[int]bool{3: true}, map[int]bool{2: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs := lossScript(6, func(i int, d Dir) bool {
				if d == Egress {
					return tc.lostReq[i]
				}
				return tc.lostResp[i]
			})
			exs, _ := run(Options{MaxBodyBytes: 1024}, evs, whole)
			_, bad := misPaired(exs)
			for _, b := range bad {
				t.Error(b)
			}
		})
	}
}

// Every pattern of lost records for a sequential keep-alive client (6
// requests and 6 responses, each one record: 4 096 patterns). No delivered
// exchange may carry another request's response: before responses were
// checked against the requests' times after a loss, 264 delivered
// exchanges over these patterns were spliced.
func TestReliabilityEveryLossPatternPairsRight(t *testing.T) {
	const pairs = 6
	nbad, delivered := 0, 0
	for mask := 0; mask < 1<<(2*pairs); mask++ {
		evs := lossScript(pairs, func(i int, d Dir) bool { return mask&(1<<(2*i-2+int(d))) != 0 })
		exs, _ := run(Options{MaxBodyBytes: 1024}, evs, whole)
		n, bad := misPaired(exs)
		delivered += n
		for _, b := range bad {
			if nbad < 5 {
				t.Errorf("loss pattern %012b: %s", mask, b)
			}
			nbad++
		}
	}
	if nbad > 0 {
		t.Errorf("%d of %d delivered exchanges paired wrong", nbad, delivered)
	}
	if delivered < 1000 {
		t.Errorf("only %d exchanges delivered with a response over all patterns", delivered)
	}
}

// A gap that swallows a response's start, with bodies that contain no
// newline (binary data, minified JSON, a file of one character): the next
// status line follows the previous body's last byte on the same "line", so
// resynchronising at line starts never finds it, and every later request
// was given up (NoResponse|Incomplete) once 64 were pending. Found by the
// 64 KiB nginx benchmark (28 902 exchanges flagged for 359 gaps). A record
// starts where a write call started, and after a gap a message start is
// looked for there.
func TestReliabilityResyncAtRecordStart(t *testing.T) {
	body := strings.Repeat("y", 100)
	resp := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	var evs []ev
	ts := int64(0)
	const n = 80
	for i := 1; i <= n; i++ {
		ts++
		evs = append(evs, out(ts, fmt.Sprintf("GET /r/%d HTTP/1.1\r\nHost: h\r\n\r\n", i)))
		ts++
		switch i {
		case 2:
			// The response's head and 60 body bytes are lost; its last 40
			// body bytes arrive in the next record.
			evs = append(evs, gap(Ingress, ts, int64(len(resp)-40)), inCall(ts, body[:40]))
		default:
			evs = append(evs, inCall(ts, resp))
		}
	}
	evs = append(evs, closed(ts+1))
	for _, tc := range []struct {
		name string
		call bool // records fed as call starts (FeedCall), as the engine does
		want int
	}{{"FeedCall", true, n - 1}, {"Feed", false, 1}} {
		script := evs
		if !tc.call {
			script = append([]ev(nil), evs...)
			for i := range script {
				if script[i].kind == 'r' {
					script[i].kind = 'f'
				}
			}
		}
		exs, _ := run(Options{MaxBodyBytes: 1024}, script, whole)
		answered := 0
		for _, ex := range exs {
			if ex.Response != nil && !ex.Flags.Has(exchange.NoResponse) {
				answered++
			}
		}
		// Feed without call starts cannot resynchronise on such bodies:
		// that is what split-independence (FuzzConn) requires of it.
		if answered != tc.want {
			t.Errorf("%s: %d of %d exchanges got their response after a gap that cut one (want %d)", tc.name, answered, n, tc.want)
		}
	}
}

// Every response the loss left whole is accounted for, over every loss
// pattern of TestReliabilityEveryLossPatternPairsRight: emitted with its
// own request, or counted in Stats.UnpairedResponses because its request
// was lost (never attached to another request, never dropped silently).
func TestReliabilityUnpairedResponsesCounted(t *testing.T) {
	const pairs = 6
	var unpaired, delivered uint64
	for mask := 0; mask < 1<<(2*pairs); mask++ {
		lost := func(i int, d Dir) bool { return mask&(1<<(2*i-2+int(d))) != 0 }
		seen, orphaned := 0, uint64(0)
		for i := 1; i <= pairs; i++ {
			if !lost(i, Ingress) {
				seen++
				if lost(i, Egress) {
					orphaned++
				}
			}
		}
		exs, c := run(Options{MaxBodyBytes: 1024}, lossScript(pairs, lost), whole)
		n, bad := misPaired(exs)
		if len(bad) > 0 {
			t.Fatalf("loss pattern %012b: %s", mask, bad[0])
		}
		got := c.Stats().UnpairedResponses
		if got != orphaned || uint64(n)+got != uint64(seen) {
			t.Fatalf("loss pattern %012b: %d responses whole, %d whose request was lost; %d emitted paired, %d counted unpaired",
				mask, seen, orphaned, n, got)
		}
		unpaired += got
		delivered += uint64(n)
	}
	t.Logf("%d responses emitted with their request, %d counted unpaired", delivered, unpaired)
}

// pipelineScript is lossScript for a pipelining client keeping depth
// requests outstanding: requests 1..depth go out first, then each response
// is followed by the next request.
func pipelineScript(n, depth int, lost func(i int, d Dir) bool) []ev {
	var evs []ev
	var pend [2]int64
	ts := int64(0)
	emit := func(d Dir, lost bool, data string) {
		ts++
		if lost {
			pend[d] += int64(len(data))
			return
		}
		for _, g := range []Dir{d ^ 1, d} {
			if pend[g] > 0 {
				evs = append(evs, gap(g, ts, pend[g]))
				pend[g] = 0
			}
		}
		evs = append(evs, ev{kind: 'f', dir: d, data: data, ts: ts})
	}
	req := func(i int) { emit(Egress, lost(i, Egress), fmt.Sprintf("GET /r/%d HTTP/1.1\r\nHost: h\r\n\r\n", i)) }
	for i := 1; i <= depth; i++ {
		req(i)
	}
	for i := 1; i <= n; i++ {
		body := fmt.Sprintf("reply %d", i)
		emit(Ingress, lost(i, Ingress), fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
		if i+depth <= n {
			req(i + depth)
		}
	}
	return append(evs, closed(ts+1))
}

// A pipelining client (2 or 3 requests outstanding), every loss pattern of
// its 6 pairs that leaves requests 1 and 2 whole (so pipelining shows: the
// second request goes out while the first waits, with no loss between).
// After a lost message start nothing says how many messages the gap held,
// and time cannot say which request a response answers: the parser used
// to guess one (596 of 1 896 delivered exchanges paired with another
// request's response at depth 2, 544 of 1 782 at depth 3). It now stops
// pairing on that connection: no exchange is paired wrong, and every
// response left whole is emitted with its own request or counted unpaired.
func TestReliabilityPipelinedLossNeverMispairs(t *testing.T) {
	const pairs = 6
	for _, depth := range []int{2, 3} {
		var delivered int
		var unpaired uint64
		for mask := 0; mask < 1<<(2*pairs); mask++ {
			if mask&0b101 != 0 { // request 1 or 2 lost
				continue
			}
			lost := func(i int, d Dir) bool { return mask&(1<<(2*i-2+int(d))) != 0 }
			seen := 0
			for i := 1; i <= pairs; i++ {
				if !lost(i, Ingress) {
					seen++
				}
			}
			exs, c := run(Options{MaxBodyBytes: 1024}, pipelineScript(pairs, depth, lost), whole)
			n, bad := misPaired(exs)
			if len(bad) > 0 {
				t.Fatalf("depth %d, loss pattern %012b: %s", depth, mask, strings.Join(bad, "; "))
			}
			u := c.Stats().UnpairedResponses
			if uint64(n)+u != uint64(seen) {
				t.Fatalf("depth %d, loss pattern %012b: %d responses whole, %d emitted paired, %d counted unpaired", depth, mask, seen, n, u)
			}
			for _, ex := range exs {
				if ex.Response == nil && !ex.Flags.Has(exchange.NoResponse) {
					t.Fatalf("depth %d, loss pattern %012b: %s without response and not flagged", depth, mask, ex.Request.Target)
				}
			}
			delivered += n
			unpaired += u
		}
		t.Logf("depth %d: %d exchanges emitted with their response, %d responses counted unpaired", depth, delivered, unpaired)
	}
}

// Every loss pattern of a pipelining client, the first requests included:
// a pairing that cannot be proved carries PairingInferred, so every wrong
// pair is flagged (the residue TestReliabilityPipelinedLossNeverMispairs
// leaves: a client that loses its first requests before its pipelining
// shows is taken for a sequential one).
func TestReliabilityPipelinedLossWrongPairsFlagged(t *testing.T) {
	const pairs = 6
	for _, depth := range []int{2, 3} {
		var delivered, wrong, flagged int
		for mask := 0; mask < 1<<(2*pairs); mask++ {
			lost := func(i int, d Dir) bool { return mask&(1<<(2*i-2+int(d))) != 0 }
			exs, _ := run(Options{MaxBodyBytes: 1024}, pipelineScript(pairs, depth, lost), whole)
			for _, ex := range exs {
				if ex.Request == nil || ex.Response == nil || ex.Flags.Has(exchange.NoResponse) {
					continue
				}
				delivered++
				inferred := ex.Flags.Has(exchange.PairingInferred)
				if inferred {
					flagged++
				}
				if want := "reply " + strings.TrimPrefix(ex.Request.Target, "/r/"); string(ex.Response.Body) != want {
					wrong++
					if !inferred {
						t.Fatalf("depth %d, loss pattern %012b: %s paired with %q without pairing_inferred (flags %v)",
							depth, mask, ex.Request.Target, ex.Response.Body, ex.Flags.Names())
					}
				}
			}
		}
		t.Logf("depth %d: %d exchanges with a response, %d paired wrongly (all flagged), %d flagged pairing_inferred", depth, delivered, wrong, flagged)
	}
}
