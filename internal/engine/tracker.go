package engine

import (
	"net/netip"
	"strings"

	tlsbpf "github.com/tlstap/tlstap/bpf"
	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/h2parse"
	"github.com/tlstap/tlstap/internal/httpparse"
)

// stream is one reassembled connection: both directions of a socket fd's
// lifetime, or of one SSL object.
type stream struct {
	id       uint64
	tgid     uint32
	fd       int32
	source   uint8
	local    netip.AddrPort
	remote   netip.AddrPort
	next     [2]uint64 // expected position per direction
	started  [2]bool
	lastSeen int64  // kernel ns
	indexed  bool   // SSL stream entered in sslByFD
	parser   parser // chosen from the first payload: HTTP/2 or HTTP/1
	// h2Dropped and h1Unpaired are the parser's Dropped (HTTP/2) and
	// UnpairedResponses (HTTP/1) counts already added to the engine's
	// counters.
	h2Dropped, h1Unpaired uint64
	// preGap: per direction, bytes lost before the parser was chosen
	// (the connection's first records); told to it once chosen.
	preGap [2]int64
	// newer/older link the streams by last activity (the tracker's LRU
	// list), so evicting the least recently seen one at the cap is O(1).
	newer, older *stream
}

// parser is what httpparse.Conn and h2parse.Conn have in common.
type parser interface {
	Feed(dir httpparse.Dir, data []byte, ts int64)
	// FeedCall is Feed for data that begins where a read or write call
	// began (tlsbpf.DfCallStart).
	FeedCall(dir httpparse.Dir, data []byte, ts int64)
	Gap(dir httpparse.Dir, n int64, ts int64)
	Skip(dir httpparse.Dir, n int64, ts int64)
	Close(ts int64)
}

type fdKey struct {
	tgid uint32
	fd   int32
}

// tracker owns every stream. It is used only from the pipeline goroutine.
type tracker struct {
	opts    httpparse.Options
	h2opts  h2parse.Options
	maxConn int
	emit    func(*stream, *exchange.Exchange)
	stats   *counters

	streams map[uint64]*stream
	// sslByFD finds the SSL streams riding on a socket, so the socket's close
	// ends them even when the application never called SSL_shutdown/SSL_free.
	sslByFD map[fdKey]map[uint64]struct{}
	byTGID  map[uint32]map[uint64]struct{}
	// newest and oldest end the LRU list of streams by last record.
	newest, oldest *stream
}

func newTracker(opts httpparse.Options, maxConn int, stats *counters, emit func(*stream, *exchange.Exchange)) *tracker {
	return &tracker{
		opts:    opts,
		h2opts:  h2parse.Options{MaxBodyBytes: opts.MaxBodyBytes},
		maxConn: maxConn,
		emit:    emit,
		stats:   stats,
		streams: map[uint64]*stream{},
		sslByFD: map[fdKey]map[uint64]struct{}{},
		byTGID:  map[uint32]map[uint64]struct{}{},
	}
}

func (t *tracker) get(r *record) *stream {
	s := t.streams[r.connID]
	if s != nil {
		return s
	}
	if len(t.streams) >= t.maxConn {
		t.evictOldest()
	}
	s = &stream{id: r.connID, tgid: r.tgid, fd: r.fd, source: r.source}
	t.streams[r.connID] = s
	addIndex(t.byTGID, r.tgid, s.id)
	t.pushNewest(s)
	return s
}

// touch marks s as the most recently seen stream.
func (t *tracker) touch(s *stream) {
	if t.newest == s {
		return
	}
	t.unlink(s)
	t.pushNewest(s)
}

func (t *tracker) pushNewest(s *stream) {
	s.older, s.newer = t.newest, nil
	if t.newest != nil {
		t.newest.newer = s
	}
	t.newest = s
	if t.oldest == nil {
		t.oldest = s
	}
}

func (t *tracker) unlink(s *stream) {
	if s.newer != nil {
		s.newer.older = s.older
	} else if t.newest == s {
		t.newest = s.older
	}
	if s.older != nil {
		s.older.newer = s.newer
	} else if t.oldest == s {
		t.oldest = s.newer
	}
	s.newer, s.older = nil, nil
}

// data feeds one EV_DATA record, detecting holes and overlaps by position.
func (t *tracker) data(r *record) {
	s := t.get(r)
	defer t.countParserLoss(s)
	s.lastSeen = r.ts
	t.touch(s)
	if r.remote.IsValid() {
		s.local, s.remote = r.local, r.remote
	}
	if r.source != tlsbpf.SrcSocket && r.fd >= 0 && !s.indexed {
		// The fd of an SSL stream is learnt from its first nested syscall.
		s.fd, s.indexed = r.fd, true
		addIndex(t.sslByFD, fdKey{r.tgid, r.fd}, s.id)
	}
	dir := int(r.dir & 1)
	pdir := httpparse.Egress
	if dir == tlsbpf.DirIngress {
		pdir = httpparse.Ingress
	}
	payload := r.payload
	pos := r.pos
	length := uint64(r.len)
	for d := range r.lost {
		if !s.started[d] && r.lost[d] > 0 {
			// The direction's first bytes were lost, not skipped by a
			// stream found mid-way: it is counted from the start.
			s.started[d] = true
			s.next[d] = 0
		}
	}
	if o := dir ^ 1; s.started[o] && r.lost[o] > s.next[o] {
		// The kernel could not send bytes of the other direction before
		// making this record: the parser hears of the loss now, before
		// this record, not when the other direction's next record comes
		// (a response would otherwise be paired as if its request's loss
		// had not happened).
		t.stats.streamGaps.Add(1)
		t.gap(s, o, int64(r.lost[o]-s.next[o]), r.ts)
		s.next[o] = r.lost[o]
	}
	if !s.started[dir] {
		// A stream found mid-way (the agent started later, or the kernel
		// skipped non-HTTP records) starts where it is first seen.
		s.started[dir] = true
		s.next[dir] = pos
	}
	switch {
	case pos > s.next[dir]:
		t.stats.streamGaps.Add(1)
		t.gap(s, dir, int64(pos-s.next[dir]), r.ts)
	case pos < s.next[dir]:
		// Overlap (concurrent writers on one socket): drop what was seen.
		over := s.next[dir] - pos
		if over >= length {
			return
		}
		if over < uint64(len(payload)) {
			payload = payload[over:]
		} else {
			payload = nil
		}
		length -= over
	}
	s.next[dir] = pos + uint64(r.len)
	if s.parser == nil {
		if len(payload) == 0 {
			return // nothing to judge the protocol by: wait for bytes
		}
		t.choose(s, payload)
		for d, n := range s.preGap {
			if n > 0 {
				s.parser.Gap(parserDir(d), n, r.ts)
			}
		}
	}
	if len(payload) > 0 {
		if r.flags&tlsbpf.DfCallStart != 0 && len(payload) == int(r.len) {
			s.parser.FeedCall(pdir, payload, r.ts)
		} else {
			s.parser.Feed(pdir, payload, r.ts)
		}
		t.maybeUpgrade(s, r.ts)
	}
	if missing := length - uint64(len(payload)); missing > 0 {
		// Beyond the per-call capture cap: the size is known, the bytes
		// were not copied on purpose.
		s.parser.Skip(pdir, int64(missing), r.ts)
	}
}

// gap tells the parser that n bytes of direction dir were lost, or keeps
// the count until a parser is chosen: a request lost before the first one
// seen must still hold its place, or its response is paired with the next.
func (t *tracker) gap(s *stream, dir int, n int64, ts int64) {
	if s.parser == nil {
		s.preGap[dir] += n
		return
	}
	s.parser.Gap(parserDir(dir), n, ts)
}

func parserDir(dir int) httpparse.Dir {
	if dir == tlsbpf.DirIngress {
		return httpparse.Ingress
	}
	return httpparse.Egress
}

// choose picks the parser from a stream's first bytes: the HTTP/2 client
// preface (or a server's SETTINGS frame seen first) means HTTP/2 — TLS with
// ALPN h2 or cleartext h2c with prior knowledge; anything else is HTTP/1.
func (t *tracker) choose(s *stream, first []byte) {
	emit := func(ex *exchange.Exchange) { t.emit(s, ex) }
	if h2parse.LooksLikePreface(first) || h2parse.LooksLikeServerStart(first) {
		s.parser = h2parse.NewConn(t.h2opts, emit)
		return
	}
	s.parser = httpparse.NewConn(t.opts, func(ex *exchange.Exchange) {
		if isH2CUpgrade(ex) {
			return // the HTTP/2 parser emits this request with its real response
		}
		emit(ex)
	})
}

// maybeUpgrade hands an HTTP/1.1 connection that switched to h2c (Upgrade:
// h2c, 101) to an HTTP/2 parser, with the bytes that followed the 101.
func (t *tracker) maybeUpgrade(s *stream, ts int64) {
	hp, ok := s.parser.(*httpparse.Conn)
	if !ok || hp.State() != httpparse.Upgraded {
		return
	}
	u := hp.Upgrade()
	if u == nil || u.Protocol != "h2c" {
		return
	}
	t.countParserLoss(s) // before the HTTP/1 parser's counts go with it
	h2 := h2parse.NewUpgradedConn(t.h2opts, func(ex *exchange.Exchange) { t.emit(s, ex) }, u.ReqDir, u.Request)
	s.parser = h2
	for d, tail := range u.Tail {
		if len(tail) > 0 {
			h2.Feed(httpparse.Dir(d), tail, ts)
		}
	}
}

func isH2CUpgrade(ex *exchange.Exchange) bool {
	if ex.Response == nil || ex.Response.StatusCode != 101 {
		return false
	}
	v, _ := ex.Response.Get("Upgrade")
	return strings.EqualFold(strings.TrimSpace(v), "h2c")
}

// closeConn ends a stream and, for a socket, the SSL streams riding on it.
func (t *tracker) closeConn(r *record) {
	if s := t.streams[r.connID]; s != nil {
		t.finish(s, r.ts)
	}
	if r.source != tlsbpf.SrcSocket {
		return
	}
	k := fdKey{r.tgid, r.fd}
	for id := range t.sslByFD[k] {
		if s := t.streams[id]; s != nil && s.fd == r.fd {
			t.finish(s, r.ts)
		}
	}
	delete(t.sslByFD, k)
}

// processExit ends every stream of a thread group.
func (t *tracker) processExit(tgid uint32, ts int64) {
	for id := range t.byTGID[tgid] {
		if s := t.streams[id]; s != nil {
			t.finish(s, ts)
		}
	}
	delete(t.byTGID, tgid)
}

// sweep ends streams idle since before cutoff (kernel ns).
func (t *tracker) sweep(cutoff int64) {
	for _, s := range t.streams {
		if s.lastSeen < cutoff {
			t.stats.connsEvicted.Add(1)
			t.finish(s, s.lastSeen)
		}
	}
}

// evictOldest ends the least recently seen stream. It used to scan every
// stream: at the cap that made each new connection cost O(maxStreams).
func (t *tracker) evictOldest() {
	if oldest := t.oldest; oldest != nil {
		t.stats.connsEvicted.Add(1)
		t.finish(oldest, oldest.lastSeen)
	}
}

func (t *tracker) finish(s *stream, ts int64) {
	delete(t.streams, s.id)
	t.unlink(s)
	removeIndex(t.byTGID, s.tgid, s.id)
	if s.indexed {
		removeIndex(t.sslByFD, fdKey{s.tgid, s.fd}, s.id)
	}
	if s.parser != nil {
		s.parser.Close(ts)
		t.countParserLoss(s)
	}
}

// closeAll ends every stream (shutdown).
func (t *tracker) closeAll(ts int64) {
	for _, s := range t.streams {
		t.finish(s, ts)
	}
}

func addIndex[K comparable](m map[K]map[uint64]struct{}, k K, id uint64) {
	set := m[k]
	if set == nil {
		set = map[uint64]struct{}{}
		m[k] = set
	}
	set[id] = struct{}{}
}

func removeIndex[K comparable](m map[K]map[uint64]struct{}, k K, id uint64) {
	if set := m[k]; set != nil {
		delete(set, id)
		if len(set) == 0 {
			delete(m, k)
		}
	}
}

// countParserLoss adds what the stream's parser saw but could not emit
// since last asked to the engine's counters, so it is not lost silently:
// HTTP/2 requests dropped (header block undecodable after a loss: no method
// or path to report) and HTTP/1 responses whose request was lost.
func (t *tracker) countParserLoss(s *stream) {
	switch p := s.parser.(type) {
	case *h2parse.Conn:
		if d := p.Stats().Dropped; d > s.h2Dropped {
			t.stats.h2Dropped.Add(d - s.h2Dropped)
			s.h2Dropped = d
		}
	case *httpparse.Conn:
		if u := p.Stats().UnpairedResponses; u > s.h1Unpaired {
			t.stats.h1Unpaired.Add(u - s.h1Unpaired)
			s.h1Unpaired = u
		}
	}
}
