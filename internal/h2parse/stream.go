package h2parse

import "github.com/tlstap/tlstap/internal/exchange"

// entry is one stream's exchange while it is open. Both messages live inside
// it so that an exchange costs one allocation.
type entry struct {
	id       uint32
	ex       exchange.Exchange
	req      exchange.Message
	resp     exchange.Message
	reset    exchange.StreamReset
	reqHead  bool // request header block applied
	respHead bool // final response header block applied
	reqSeen  bool // a frame of the request was seen (FirstByte set)
	respSeen bool
	reqDone  bool // request ended (END_STREAM, reset, or given up)
	respDone bool
	reqHole  bool // bytes of the request body were lost: capture stopped
	respHole bool
	emitted  bool // emitted or dropped: the parser no longer touches it
}

func (e *entry) msg(client bool) *exchange.Message {
	if client {
		return &e.req
	}
	return &e.resp
}

func (e *entry) head(client bool) bool {
	if client {
		return e.reqHead
	}
	return e.respHead
}

func (e *entry) hole(client bool) {
	if client {
		e.reqHole = true
	} else {
		e.respHole = true
	}
}

// full reports whether the body capture of a side has reached max.
func (e *entry) full(client bool, max int) bool {
	return len(e.msg(client).Body) >= max
}

// newEntry opens a stream, evicting the oldest open one beyond MaxStreams.
func (c *Conn) newEntry(id uint32, ts int64) *entry {
	for len(c.streams) >= c.opts.MaxStreams {
		old := c.oldest()
		if old == nil {
			break
		}
		c.stats.Evicted++
		old.ex.Flags |= exchange.Incomplete
		c.finish(old)
	}
	e := &entry{id: id}
	e.ex.Role = c.role()
	e.req.Proto, e.resp.Proto = "HTTP/2", "HTTP/2"
	e.req.FirstByte = ts
	if c.sides[c.client^1].phase == phDead {
		// No response can be parsed any more.
		e.respDone = true
		e.ex.Flags |= exchange.Incomplete
	}
	c.streams[id] = e
	if len(c.order) > 2*len(c.streams)+32 {
		c.order = c.liveEntries()
	}
	c.order = append(c.order, e)
	return e
}

// oldest returns the oldest stream not emitted yet.
func (c *Conn) oldest() *entry {
	for len(c.order) > 0 {
		e := c.order[0]
		if !e.emitted {
			return e
		}
		c.order[0] = nil
		c.order = c.order[1:]
	}
	return nil
}

// liveEntries returns a fresh slice of the streams not emitted yet, oldest
// first.
func (c *Conn) liveEntries() []*entry {
	live := make([]*entry, 0, len(c.streams))
	for _, e := range c.order {
		if !e.emitted {
			live = append(live, e)
		}
	}
	return live
}

// headersTarget returns the stream a HEADERS frame of s belongs to, opening
// it for a new client stream; nil when the block is to be decoded only to
// keep the dynamic table right.
func (c *Conn) headersTarget(s *side) *entry {
	if e := c.streams[s.sid]; e != nil {
		return e
	}
	if s.sid <= c.maxID || s.sid%2 == 0 {
		return nil // a stream already finished, or a pushed one we do not know
	}
	if !s.client {
		c.stats.Orphans++
		return nil
	}
	c.maxID = s.sid
	return c.newEntry(s.sid, s.frameTS)
}

// touch accounts for a frame of a message: its bytes and, for the first, its
// timestamp.
func (c *Conn) touch(e *entry, client bool, ts int64, wire int64) {
	m := e.msg(client)
	m.WireSize += wire
	if client && !e.reqSeen {
		e.reqSeen = true
		m.FirstByte = ts
	} else if !client && !e.respSeen {
		e.respSeen = true
		m.FirstByte = ts
	}
}

// applyBlock hands a finished header block to its stream.
func (c *Conn) applyBlock(s *side, b *block) {
	e := b.target
	if e == nil || e.emitted {
		return
	}
	if b.promised != 0 {
		c.push(b)
		return
	}
	if s.client {
		switch {
		case !e.reqHead:
			if b.broken || !requestLine(&e.req, b.fields) {
				c.drop(e)
				return
			}
			e.req.Headers = b.fields
			e.reqHead = true
			if b.over {
				e.ex.Flags |= exchange.Incomplete
			}
		case !e.reqDone:
			c.trailers(e, &e.req, b)
		}
	} else {
		switch {
		case e.respDone:
		case !e.respHead:
			e.ex.Response = &e.resp
			if b.broken {
				e.ex.Flags |= exchange.Incomplete | exchange.ParseError
				e.respHead = true
				break
			}
			status := statusOf(b.fields)
			if status >= 100 && status < 200 && !b.endStream {
				e.ex.Response = nil // interim response: the final one follows
				return
			}
			e.resp.StatusCode = status
			e.resp.Headers = b.fields
			e.respHead = true
			if b.over {
				e.ex.Flags |= exchange.Incomplete
			}
		default:
			c.trailers(e, &e.resp, b)
		}
	}
	if b.endStream {
		c.endSide(e, s.client)
	}
}

func (c *Conn) trailers(e *entry, m *exchange.Message, b *block) {
	switch {
	case b.broken:
		e.ex.Flags |= exchange.Incomplete | exchange.ParseError
	case b.over:
		e.ex.Flags |= exchange.Incomplete
		m.Trailers = b.fields
	default:
		m.Trailers = b.fields
	}
}

// push opens the stream promised by a PUSH_PROMISE: its request is the
// promised header block, complete already.
func (c *Conn) push(b *block) {
	if b.broken {
		c.stats.Dropped++
		return
	}
	e := c.newEntry(b.promised, b.ts)
	if !requestLine(&e.req, b.fields) {
		c.drop(e)
		return
	}
	e.ex.Request = &e.req
	e.req.Headers = b.fields
	e.reqHead, e.reqSeen, e.reqDone = true, true, true
	e.req.LastByte = c.sides[c.client^1].ts
	if b.over {
		e.ex.Flags |= exchange.Incomplete
	}
	c.tryFinish(e)
}

// requestLine maps the request pseudo-header fields; false when there is no
// :method.
func requestLine(m *exchange.Message, fields []exchange.Header) bool {
	var authority string
	for _, h := range fields {
		if len(h.Name) == 0 || h.Name[0] != ':' {
			continue
		}
		switch h.Name {
		case ":method":
			if m.Method == "" {
				m.Method = h.Value
			}
		case ":path":
			if m.Target == "" {
				m.Target = h.Value
			}
		case ":authority":
			if authority == "" {
				authority = h.Value
			}
		}
	}
	if m.Target == "" && m.Method == "CONNECT" {
		m.Target = authority
	}
	return m.Method != ""
}

// statusOf returns the :status of a response header block, 0 if missing or
// malformed.
func statusOf(fields []exchange.Header) int {
	for _, h := range fields {
		if h.Name != ":status" {
			continue
		}
		v := h.Value
		if len(v) != 3 {
			return 0
		}
		n := 0
		for i := 0; i < 3; i++ {
			if v[i] < '0' || v[i] > '9' {
				return 0
			}
			n = n*10 + int(v[i]-'0')
		}
		return n
	}
	return 0
}

// body appends DATA content to a message.
func (c *Conn) body(e *entry, client bool, p []byte) {
	m := e.msg(client)
	m.BodySize += int64(len(p))
	if client && e.reqHole || !client && e.respHole {
		return
	}
	room := c.opts.MaxBodyBytes - len(m.Body)
	if room > 0 {
		k := min(room, len(p))
		if m.Body == nil {
			m.Body = make([]byte, 0, min(c.opts.MaxBodyBytes, max(k, 1024)))
		}
		m.Body = append(m.Body, p[:k]...)
	}
	if len(p) > room {
		c.truncated(e, client)
	}
}

// truncated records body bytes left out because of MaxBodyBytes.
func (c *Conn) truncated(e *entry, client bool) {
	e.msg(client).BodyTruncated = true
	if client {
		e.ex.Flags |= exchange.RequestTruncated
	} else {
		e.ex.Flags |= exchange.ResponseTruncated
	}
}

// endSide records that one side of a stream ended, emitting the exchange
// once both did.
func (c *Conn) endSide(e *entry, client bool) {
	if e.emitted {
		return
	}
	if client {
		if !e.reqDone {
			e.reqDone = true
			e.req.LastByte = max(e.req.LastByte, c.sides[c.client].ts)
		}
	} else if !e.respDone {
		e.respDone = true
		if e.respSeen {
			e.resp.LastByte = max(e.resp.LastByte, c.sides[c.client^1].ts)
		}
	}
	c.tryFinish(e)
}

func (c *Conn) tryFinish(e *entry) {
	if e.reqDone && e.respDone && !e.emitted {
		c.finish(e)
	}
}

// reset ends a stream on RST_STREAM sent by s.
func (c *Conn) reset(s *side, sid, code uint32) {
	e := c.streams[sid]
	if e == nil || e.emitted {
		return
	}
	c.stats.Resets++
	e.reset = exchange.StreamReset{Code: code, ByServer: !s.client}
	e.ex.Reset = &e.reset
	if !e.reqDone || !e.respDone {
		e.ex.Flags |= exchange.Incomplete
	}
	e.reqDone, e.respDone = true, true
	c.finish(e)
}

// goAway ends the client streams above the server's last processed one:
// they will never be answered.
func (c *Conn) goAway(last uint32) {
	for _, e := range c.liveEntries() {
		if e.id > last && e.id%2 == 1 {
			if !e.reqDone || e.ex.Response != nil {
				e.ex.Flags |= exchange.Incomplete
			}
			e.reqDone, e.respDone = true, true
			c.finish(e)
		}
	}
}

// drop forgets a stream whose request cannot be reported.
func (c *Conn) drop(e *entry) {
	c.stats.Dropped++
	e.emitted = true
	delete(c.streams, e.id)
}

// finish emits a stream's exchange.
func (c *Conn) finish(e *entry) {
	e.emitted = true
	delete(c.streams, e.id)
	if !e.reqHead {
		c.stats.Dropped++ // its header block never ended
		return
	}
	e.ex.Request = &e.req
	if e.ex.Response == nil {
		e.ex.Flags |= exchange.NoResponse
	}
	c.stats.Exchanges++
	if c.emit != nil {
		c.emit(&e.ex)
	}
}

// flushAll emits every open stream as it is, oldest first.
func (c *Conn) flushAll(flags exchange.Flags) {
	for _, e := range c.liveEntries() {
		e.ex.Flags |= flags
		if !e.reqDone || (e.ex.Response != nil && !e.respDone) {
			e.ex.Flags |= exchange.Incomplete
		}
		c.finish(e)
	}
	c.order = nil
}
