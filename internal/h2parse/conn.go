package h2parse

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/httpparse"
)

// Dir is the direction of captured bytes relative to the traced process; it
// is httpparse.Dir so that the engine drives both parsers alike.
type Dir = httpparse.Dir

const (
	Egress  = httpparse.Egress  // bytes the captured process wrote
	Ingress = httpparse.Ingress // bytes the captured process read
)

// State is the parser's view of the whole connection.
type State uint8

const (
	// Detecting: the client connection preface has not been seen yet.
	Detecting State = iota
	// HTTP2: the connection carries HTTP/2; roles are known.
	HTTP2
	// NotHTTP2: a direction began with something that is neither the
	// client preface nor a server SETTINGS frame; input is ignored.
	NotHTTP2
	// Failed: both directions stopped being parsed (lost frame sync or
	// malformed framing); everything pending was emitted.
	Failed
)

func (s State) String() string {
	switch s {
	case Detecting:
		return "detecting"
	case HTTP2:
		return "http2"
	case NotHTTP2:
		return "not-http2"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Options bound the work and memory spent on one connection.
type Options struct {
	// MaxBodyBytes caps the bytes captured per body (0: capture none, still
	// count sizes).
	MaxBodyBytes int
	// MaxHeaderListBytes caps the header list kept per header block, counted
	// as in RFC 9113 (name + value + 32 per field). 0 means 64 KiB. A single
	// field string longer than 4 times the cap cannot be decoded and makes
	// the direction's HPACK state unreliable.
	MaxHeaderListBytes int
	// MaxStreams caps the open streams kept; on overflow the oldest is
	// emitted flagged Incomplete. 0 means 1000.
	MaxStreams int
}

const (
	defaultMaxHeaderList = 64 << 10
	defaultMaxStreams    = 1000
	// maxTableSize caps the HPACK dynamic table a peer may ask for.
	maxTableSize = 1 << 20
	// maxPendingSettings caps the unacknowledged SETTINGS remembered.
	maxPendingSettings = 8
	// detectSlack is what a server direction may send before the client
	// preface is seen, beyond MaxHeaderListBytes.
	detectSlack = 64 << 10
)

func (o Options) normalized() Options {
	if o.MaxBodyBytes < 0 {
		o.MaxBodyBytes = 0
	}
	if o.MaxHeaderListBytes <= 0 {
		o.MaxHeaderListBytes = defaultMaxHeaderList
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = defaultMaxStreams
	}
	return o
}

// Stats counts what the parser could not report as a plain exchange.
type Stats struct {
	Exchanges   uint64 // exchanges emitted
	Dropped     uint64 // requests not emitted: their header block could not be decoded
	Undecodable uint64 // header blocks not decoded (HPACK state unreliable or decoding error)
	Orphans     uint64 // response header blocks for a stream whose request is unknown
	Evicted     uint64 // streams emitted early because of MaxStreams
	Resets      uint64 // streams ended by RST_STREAM
	LostFrames  uint64 // directions that lost frame sync or met malformed framing
	Resumed     uint64 // header decoding restarted with an empty dynamic table after an undecodable block
}

// Conn parses the two directions of one HTTP/2 connection. Create it with
// NewConn or NewUpgradedConn.
type Conn struct {
	opts   Options
	emit   func(*exchange.Exchange)
	state  State
	closed bool
	err    error
	client Dir // direction of the client, once state is HTTP2
	sides  [2]side

	streams map[uint32]*entry
	// order lists streams by creation, for eviction and Close; entries
	// already emitted are skipped and compacted away lazily.
	order    []*entry
	maxID    uint32 // highest client-initiated stream id seen
	maxPush  uint32 // highest promised stream id seen
	stats    Stats
	unreliab bool
}

// NewConn returns a parser that calls emit synchronously, from Feed, Gap,
// Skip and Close, with each finished exchange.
func NewConn(opts Options, emit func(*exchange.Exchange)) *Conn {
	c := &Conn{opts: opts.normalized(), emit: emit, streams: map[uint32]*entry{}}
	for d := range c.sides {
		c.sides[d].init(c, Dir(d))
	}
	return c
}

// NewUpgradedConn returns a parser for a connection that switched from
// HTTP/1.1 to h2c: the engine hands over once the 101 response was seen, and
// feeds each direction from the byte after the HTTP/1.1 message (the 101
// head on the server side, the upgrade request on the client side). Stream 1
// is upgradeReq, already complete; its response arrives as HTTP/2. An
// HTTP2-Settings header in upgradeReq is applied like a SETTINGS frame.
func NewUpgradedConn(opts Options, emit func(*exchange.Exchange), clientDir Dir, upgradeReq *exchange.Message) *Conn {
	c := NewConn(opts, emit)
	c.setRoles(clientDir & 1)
	c.sides[clientDir&1].phase = phPreface
	c.sides[clientDir&1^1].phase = phHeader
	if upgradeReq == nil {
		upgradeReq = &exchange.Message{}
	}
	if v, ok := upgradeReq.Get("HTTP2-Settings"); ok {
		c.upgradeSettings(v)
	}
	e := c.newEntry(1, upgradeReq.FirstByte)
	e.req = *upgradeReq
	e.ex.Request = &e.req
	e.reqHead, e.reqSeen, e.reqDone = true, true, true
	c.maxID = 1
	return c
}

// upgradeSettings applies the client's SETTINGS sent in the HTTP2-Settings
// header of an upgrade request (base64url, RFC 9113 section 3.2.1).
func (c *Conn) upgradeSettings(v string) {
	b, err := base64.RawURLEncoding.DecodeString(trimPadding(v))
	if err != nil {
		return
	}
	for ; len(b) >= 6; b = b[6:] {
		if binary.BigEndian.Uint16(b) == settingHeaderTableSize {
			c.sides[c.client^1].setAllowedTable(binary.BigEndian.Uint32(b[2:]))
		}
	}
}

func trimPadding(v string) string {
	for len(v) > 0 && (v[len(v)-1] == '=' || v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	return v
}

// State reports what the parser has concluded about the connection.
func (c *Conn) State() State { return c.state }

// Err returns why a direction stopped being parsed, if one did.
func (c *Conn) Err() error { return c.err }

// Unreliable reports whether a direction lost HPACK state or frame sync:
// exchanges after that point were dropped or flagged (see Stats).
func (c *Conn) Unreliable() bool { return c.unreliab }

// Stats returns the connection's counters.
func (c *Conn) Stats() Stats { return c.stats }

func (c *Conn) stopped() bool { return c.closed || c.state == NotHTTP2 || c.state == Failed }

// FeedCall is Feed: frames carry their own lengths, so where a read or
// write call began tells the HTTP/2 parser nothing.
func (c *Conn) FeedCall(dir Dir, data []byte, ts int64) { c.Feed(dir, data, ts) }

// Feed parses bytes seen in direction dir at monotonic time ts (ns). data is
// not retained.
func (c *Conn) Feed(dir Dir, data []byte, ts int64) {
	if dir > Ingress || len(data) == 0 || c.stopped() {
		return
	}
	s := &c.sides[dir]
	if s.phase == phDetect {
		c.detect(s, data, ts)
		return
	}
	s.feed(data, ts)
}

// Gap records that n bytes of direction dir were lost at this point.
func (c *Conn) Gap(dir Dir, n int64, ts int64) {
	if dir > Ingress || n <= 0 || c.stopped() {
		return
	}
	c.sides[dir].lose(n, ts, false)
}

// Skip records that n bytes of direction dir passed uncaptured on purpose.
// Inside a DATA payload whose body capture is already full they are only
// counted; anywhere else they are a gap.
func (c *Conn) Skip(dir Dir, n int64, ts int64) {
	if dir > Ingress || n <= 0 || c.stopped() {
		return
	}
	c.sides[dir].lose(n, ts, true)
}

// Close ends the connection: every pending exchange is emitted as it is,
// in stream creation order. Later calls are ignored.
func (c *Conn) Close(ts int64) {
	if c.closed {
		return
	}
	c.closed = true
	if c.state != HTTP2 {
		return
	}
	c.flushAll(0)
}

// setRoles fixes the client direction.
func (c *Conn) setRoles(client Dir) {
	c.client = client
	c.state = HTTP2
	c.sides[client].client = true
	c.sides[client^1].client = false
}

func (c *Conn) role() exchange.Role {
	if c.client == Egress {
		return exchange.RoleClient
	}
	return exchange.RoleServer
}

// setErr remembers the first reason a direction stopped.
func (c *Conn) setErr(s *side, format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("h2parse: %v: %s", s.dir, fmt.Sprintf(format, args...))
	}
}
