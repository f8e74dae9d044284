package httpparse

import (
	"fmt"
	"strings"

	"github.com/tlstap/tlstap/internal/exchange"
)

// Dir is the direction of captured bytes relative to the traced process.
type Dir uint8

const (
	Egress  Dir = iota // bytes the captured process wrote
	Ingress            // bytes the captured process read
)

func (d Dir) String() string {
	switch d {
	case Egress:
		return "egress"
	case Ingress:
		return "ingress"
	}
	return fmt.Sprintf("Dir(%d)", uint8(d))
}

func (d Dir) other() Dir { return d ^ 1 }

// State is the parser's view of the whole connection.
type State uint8

const (
	// Detecting: no direction has yet carried a complete start line.
	Detecting State = iota
	// HTTP: the connection carries HTTP/1.x; roles are known.
	HTTP
	// NotHTTP: a direction began with something that is not a start line;
	// the rest of the connection is ignored.
	NotHTTP
	// Upgraded: a 101 response or a successful CONNECT turned the
	// connection into something else; parsing stopped after emitting.
	Upgraded
	// Failed: the stream stopped being valid HTTP (see Conn.Err); pending
	// exchanges were emitted with ParseError and the rest is ignored.
	Failed
)

func (s State) String() string {
	switch s {
	case Detecting:
		return "detecting"
	case HTTP:
		return "http"
	case NotHTTP:
		return "not-http"
	case Upgraded:
		return "upgraded"
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
	// MaxHeaderBytes caps a start line plus its header section (and a
	// trailer section); exceeding it is a parse error. 0 means 64 KiB.
	MaxHeaderBytes int
	// MaxPending caps the unanswered pipelined requests kept; on overflow
	// the oldest is emitted with NoResponse|Incomplete. 0 means 64.
	MaxPending int
	// MaxDecodedBytes caps a gzip/deflate decoded body. 0 means
	// 4*MaxBodyBytes, at least 64 KiB.
	MaxDecodedBytes int
}

const (
	defaultMaxHeaderBytes = 64 << 10
	defaultMaxPending     = 64
	minMaxDecodedBytes    = 64 << 10
)

func (o Options) normalized() Options {
	if o.MaxBodyBytes < 0 {
		o.MaxBodyBytes = 0
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if o.MaxPending <= 0 {
		o.MaxPending = defaultMaxPending
	}
	if o.MaxDecodedBytes <= 0 {
		d := minMaxDecodedBytes
		if o.MaxBodyBytes > d/4 && o.MaxBodyBytes < (1<<62)/4 {
			d = 4 * o.MaxBodyBytes
		}
		o.MaxDecodedBytes = d
	}
	return o
}

// entry is one exchange waiting for its request and response to complete.
// Both messages live inside it so that an exchange costs one allocation.
type entry struct {
	ex       exchange.Exchange
	req      exchange.Message
	resp     exchange.Message
	reqDone  bool
	respDone bool
	// drop marks a placeholder for a request lost in a gap: it absorbs the
	// lost request's response, keeping later pairs aligned, and is never
	// emitted.
	drop bool
	// upgrade: CONNECT or an Upgrade request, after which the request
	// stream pauses until the response says whether the protocol changes.
	upgrade bool
}

// Conn parses the two directions of one connection. Create it with NewConn.
type Conn struct {
	opts      Options
	emit      func(*exchange.Exchange)
	state     State
	closed    bool
	stopping  bool // inside stop: no replay, no new input
	err       error
	reqDir    Dir
	stopFlags exchange.Flags // added to every exchange emitted while stopping
	streams   [2]stream

	// queue holds the exchanges not yet emitted, in request order. The
	// first nResp have their final response assigned (complete or in
	// progress); queue[nResp] is the next a response pairs with.
	queue []*entry
	nResp int

	// After a gap that swallowed a message start the pairing of what
	// follows is inferred (see lostStart). orphans counts final responses
	// seen with no request pending since the last request was queued: they
	// answered requests lost in a gap. gapPrevTS is the gap direction's
	// last time before the gap.
	orphans   int
	gapPrevTS int64

	// respGap: the response direction lost bytes since the last final
	// response started, so the next one's pairing is checked against the
	// requests' times (see nextResponse); respGapNew: the latest response
	// gap began that loss. pipelined: several requests were outstanding
	// before a loss, or a response started, with no loss before it, after
	// the next request had been sent; the time check is then off.
	respGap    bool
	respGapNew bool
	pipelined  bool
	// unpairable: a message start was lost on a pipelined connection.
	// How many messages the gap held is unknown and, with several
	// requests outstanding, time cannot tell which request a later
	// response answers: pairing stops for good rather than guess. Every
	// request ends NoResponse|Incomplete, every response is counted in
	// Stats.UnpairedResponses.
	unpairable bool
	// lostStartSeen: a message start was lost on this connection; what is
	// paired since is flagged PairingInferred (see nextResponse).
	lostStartSeen bool
	// respLossTS: when the latest loss in the response direction became
	// known (every loss before a record is known when it is fed).
	respLossTS int64
	// lostEarly: a direction lost bytes before the roles were known
	// (the connection's first records were lost); applied by setRoles.
	lostEarly [2]bool
	lostAt    [2]int64 // when each lostEarly loss became known

	callStart bool // inside FeedCall: the first feed starts a call

	upgrade        *Upgrade
	upgradePending bool // the feed that completed the 101 still owes its tail

	stats Stats
}

// Stats counts what the parser saw but could not report as an exchange.
type Stats struct {
	// UnpairedResponses are responses whose request was lost in a gap:
	// no request can be named for them, so they are not emitted (pairing
	// one with another request would report a wrong exchange).
	UnpairedResponses uint64
}

// Stats returns the counts so far.
func (c *Conn) Stats() Stats { return c.stats }

// Upgrade describes the protocol switch (101 Switching Protocols) that
// stopped the parser, so that a parser of the new protocol can take over.
type Upgrade struct {
	Protocol string            // the response's Upgrade header, lowercased: "h2c", "websocket"
	Request  *exchange.Message // the request that asked for the switch
	ReqDir   Dir               // the direction requests travelled
	// Tail holds, per direction, the bytes fed after the HTTP/1.1 messages
	// ended: the first bytes of the new protocol (a client may send them
	// before the 101 arrives, a server right behind it).
	Tail [2][]byte
}

// Upgrade returns the protocol switch that stopped the parser, or nil.
func (c *Conn) Upgrade() *Upgrade { return c.upgrade }

// noteUpgrade records a 101 response to e before the parser stops, with the
// request-direction bytes held since the request ended.
func (c *Conn) noteUpgrade(e *entry, resp *exchange.Message) {
	proto, _ := resp.Get("Upgrade")
	req := e.req
	req.Headers = append([]exchange.Header(nil), e.req.Headers...)
	u := &Upgrade{Protocol: strings.ToLower(strings.TrimSpace(proto)), Request: &req, ReqDir: c.reqDir}
	if rs := &c.streams[c.reqDir]; rs.phase == phHold && !rs.holdLost {
		u.Tail[c.reqDir] = append([]byte(nil), rs.hold...)
	}
	c.upgrade, c.upgradePending = u, true
}

// NewConn returns a parser that calls emit synchronously, from Feed, Gap and
// Close, with each finished exchange in request order.
func NewConn(opts Options, emit func(*exchange.Exchange)) *Conn {
	c := &Conn{opts: opts.normalized(), emit: emit}
	for d := range c.streams {
		c.streams[d].dir = Dir(d)
	}
	return c
}

// State reports what the parser has concluded about the connection.
func (c *Conn) State() State { return c.state }

// Err returns the parse error that moved the connection to Failed, if any.
func (c *Conn) Err() error { return c.err }

// stopped reports whether input is ignored from now on.
func (c *Conn) stopped() bool { return c.closed || c.stopping || c.state > HTTP }

// Feed parses bytes seen in direction dir at monotonic time ts (ns). data is
// not retained.
func (c *Conn) Feed(dir Dir, data []byte, ts int64) {
	if dir > Ingress || len(data) == 0 || c.stopped() {
		return // an empty event carries no byte, so no timestamp either
	}
	c.feed(dir, data, ts)
}

// FeedCall is Feed for data that begins where a read or write call began
// (a record from the kernel): after a gap, a message start is looked for
// there, not only after the next newline.
func (c *Conn) FeedCall(dir Dir, data []byte, ts int64) {
	c.callStart = true
	c.Feed(dir, data, ts)
	c.callStart = false
}

// Gap records that n bytes of direction dir were lost at this point.
func (c *Conn) Gap(dir Dir, n int64, ts int64) {
	if dir > Ingress || n <= 0 || c.stopped() {
		return
	}
	c.gap(&c.streams[dir], n, ts, false)
}

// Skip records that n bytes of direction dir passed uncaptured on purpose
// (beyond the capture's per-call cap). Inside a body whose captured prefix
// already reached MaxBodyBytes they are only counted; anywhere else they
// are a gap.
func (c *Conn) Skip(dir Dir, n int64, ts int64) {
	if dir > Ingress || n <= 0 || c.stopped() {
		return
	}
	c.gap(&c.streams[dir], n, ts, true)
}

// Close ends the connection: a body delimited by the close completes, every
// other pending exchange is emitted as it is (see the package doc). Later
// calls are ignored.
func (c *Conn) Close(ts int64) {
	if c.stopped() {
		c.closed = true
		return
	}
	c.stop(c.state, 0, whyClose)
	c.closed = true
}

// setRoles fixes which direction carries requests, once a direction has
// shown a complete start line.
func (c *Conn) setRoles(reqDir Dir) {
	c.reqDir = reqDir
	c.state = HTTP
	c.streams[reqDir].kind = kindRequest
	resp := &c.streams[reqDir.other()]
	resp.kind = kindResponse
	resp.sniff.req = false // a partial first line must now be a status line
	if c.lostEarly[reqDir.other()] {
		// Responses were lost before this one: which requests they
		// answered is decided by time (nextResponse).
		c.respGap, c.respGapNew = true, true
		c.respLossTS = c.lostAt[reqDir.other()]
	}
	if c.lostEarly[reqDir] {
		// At least one request was lost before the first seen: its
		// placeholder absorbs the response that answers it.
		c.push(&entry{drop: true, reqDone: true, req: exchange.Message{FirstByte: c.lostAt[reqDir]}})
	}
}

func (c *Conn) role() exchange.Role {
	if c.reqDir == Egress {
		return exchange.RoleClient
	}
	return exchange.RoleServer
}

// push queues a new request and enforces MaxPending.
func (c *Conn) push(e *entry) {
	if !e.drop {
		c.orphans = 0
		c.notePipelining(e)
	}
	c.queue = append(c.queue, e)
	for len(c.queue)-c.nResp > c.opts.MaxPending {
		old := c.queue[c.nResp]
		c.nResp++
		old.respDone = true
		old.ex.Flags |= exchange.NoResponse | exchange.Incomplete
	}
	c.tryEmit()
}

func (c *Conn) popFront() *entry {
	e := c.queue[0]
	copy(c.queue, c.queue[1:])
	c.queue[len(c.queue)-1] = nil
	c.queue = c.queue[:len(c.queue)-1]
	if c.nResp > 0 {
		c.nResp--
	}
	return e
}

// tryEmit emits the leading exchanges whose two halves are complete.
func (c *Conn) tryEmit() {
	for len(c.queue) > 0 {
		e := c.queue[0]
		if !e.reqDone || !e.respDone {
			return
		}
		c.popFront()
		c.deliver(e)
	}
}

func (c *Conn) deliver(e *entry) {
	if e.drop {
		return
	}
	if e.ex.Response == nil {
		e.ex.Flags |= exchange.NoResponse
	}
	e.ex.Flags |= c.stopFlags
	if c.emit != nil {
		c.emit(&e.ex)
	}
}

// flush emits every queued exchange as it is.
func (c *Conn) flush() {
	for len(c.queue) > 0 {
		e := c.popFront()
		if !e.reqDone || (e.ex.Response != nil && !e.respDone) {
			e.ex.Flags |= exchange.Incomplete
		}
		c.deliver(e)
	}
	c.nResp = 0
}

// stop finishes both directions' messages, emits everything pending with
// flags added, and moves to state.
func (c *Conn) stop(state State, flags exchange.Flags, why abortReason) {
	c.stopFlags = flags
	c.stopping = true
	for d := range c.streams {
		c.abort(&c.streams[d], why)
	}
	c.flush()
	c.state = state
	c.stopping = false
}

// fail ends parsing on malformed input.
func (c *Conn) fail(s *stream, err error) {
	if c.closed || c.stopping || c.state > HTTP {
		return
	}
	c.err = fmt.Errorf("httpparse: %v: %w", s.dir, err)
	c.stop(Failed, exchange.ParseError, whyStop)
}

// upgraded ends parsing after a protocol switch was emitted.
func (c *Conn) upgraded() {
	c.stop(Upgraded, 0, whyStop)
}

// releaseHold resumes the request stream paused behind e once e's response
// shows that the protocol did not change, replaying what it held.
func (c *Conn) releaseHold(e *entry) {
	rs := &c.streams[c.reqDir]
	if rs.phase != phHold || rs.holdEnt != e || c.stopped() {
		return
	}
	buf, lost, ts := rs.hold, rs.holdLost, rs.holdTS
	rs.hold, rs.holdLost, rs.holdEnt = nil, false, nil
	rs.phase = phHead
	// Bytes sent behind a refused CONNECT are as likely optimistic tunnel
	// data as a request: they are replayed in resynchronising mode, so
	// only a valid request line starts a message and nothing fails.
	rs.resync = true
	c.feed(c.reqDir, buf, ts)
	if lost && !c.stopped() {
		// Bytes after the held ones were lost. A candidate line cut by
		// the loss is dropped without a placeholder for the same reason.
		if rs.phase == phHead && rs.firstLine == 0 {
			rs.resetHead()
			rs.resync = true
		} else {
			c.gap(rs, 1, rs.lastTS, false)
		}
	}
	if rs.hold == nil {
		rs.hold = buf[:0]
	}
}
