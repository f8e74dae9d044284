package httpparse

import (
	"bytes"
	"fmt"

	"github.com/tlstap/tlstap/internal/exchange"
)

// phase is what a direction expects next.
type phase uint8

const (
	phHead     phase = iota // between messages or inside a start line / header section
	phSkipLine              // resynchronising: discard through the next LF
	phLength                // body of known length; remaining bytes left
	phChunked               // chunked body
	phClose                 // response body delimited by connection close
	phHold                  // request stream paused behind CONNECT/Upgrade
)

// abortReason says why a message is being finished early.
type abortReason uint8

const (
	whyGap   abortReason = iota // bytes were lost; the direction resynchronises
	whyClose                    // the connection ended
	whyStop                     // parse error or protocol switch
)

// stream is the parsing state of one direction.
type stream struct {
	dir    Dir
	kind   kind
	phase  phase
	resync bool  // after a gap: a bad start line is skipped, not an error
	lastTS int64 // ts of the latest bytes seen

	// Head being accumulated. head is reused between messages.
	head      []byte
	headTS    int64 // ts of the head's first byte
	lineStart int   // start of the current line in head
	firstLine int   // length of the start line with its LF; 0 until complete
	fields    int
	sniff     sniffer
	status    int // status code from a complete status line

	// Message whose head is complete and whose body is being read.
	msg        *exchange.Message
	ent        *entry // nil for a response without a known request
	remaining  int64
	chunk      chunkedDecoder
	holes      bool // a gap hit the body: capture stops, Body stays a prefix
	incomplete bool

	// Bytes held while paused behind a possible protocol switch.
	hold     []byte
	holdTS   int64
	holdLost bool
	holdEnt  *entry
}

func (s *stream) resetHead() {
	s.head = s.head[:0]
	s.lineStart, s.firstLine, s.fields, s.status = 0, 0, 0, 0
}

// feed runs the state machine of one direction over p.
func (c *Conn) feed(dir Dir, p []byte, ts int64) {
	s := &c.streams[dir]
	s.lastTS = ts
	callStart := c.callStart
	c.callStart = false // a replay inside this feed starts no call
	if callStart && s.resync && (s.phase == phSkipLine || (s.phase == phHead && len(s.head) > 0)) && startsMessage(s.kind, p) {
		// After a gap a message is far likelier to start where a read or
		// write call started than after the next newline. A body without
		// newlines glues the next start line to its tail, and
		// resynchronising at line starts alone never found it again.
		s.resetHead()
		s.phase = phHead
	}
	for len(p) > 0 && !c.stopped() {
		var n int
		switch s.phase {
		case phHead:
			n = c.feedHead(s, p, ts)
		case phSkipLine:
			n = len(p)
			if i := bytes.IndexByte(p, '\n'); i >= 0 {
				n = i + 1
				s.phase = phHead
			}
		case phLength:
			k := int64(len(p))
			if k > s.remaining {
				k = s.remaining
			}
			n = int(k)
			c.capture(s, p[:n], ts)
			s.remaining -= k
			if s.remaining == 0 {
				c.finishMessage(s)
			}
		case phChunked:
			var data []byte
			var err error
			n, data, err = s.chunk.decode(p)
			s.msg.WireSize += int64(n - len(data))
			c.capture(s, data, ts)
			s.msg.LastByte = ts
			if err != nil {
				c.fail(s, fmt.Errorf("chunked body: %w", err))
				return
			}
			if s.chunk.done() {
				tr, err := s.chunk.trailers()
				s.msg.Trailers = tr
				if err != nil {
					c.fail(s, err)
					return
				}
				c.finishMessage(s)
			} else if n == 0 {
				c.fail(s, fmt.Errorf("chunked decoder made no progress"))
				return
			}
		case phClose:
			n = len(p)
			c.capture(s, p, ts)
		case phHold:
			n = len(p)
			if s.holdLost {
				break
			}
			if len(s.hold) == 0 {
				s.holdTS = ts
			}
			keep := p
			if room := c.opts.MaxHeaderBytes - len(s.hold); len(keep) > room {
				// Keep exactly what fits (split-independent); the
				// rest is replayed as a gap.
				keep = keep[:room]
				s.holdLost = true
			}
			s.hold = appendCapped(s.hold, keep, c.opts.MaxHeaderBytes)
		default:
			return
		}
		p = p[n:]
	}
	if c.upgradePending && c.upgrade != nil {
		// This feed carried the end of the 101: what follows it belongs
		// to the new protocol.
		c.upgradePending = false
		if len(p) > 0 {
			c.upgrade.Tail[dir] = append(c.upgrade.Tail[dir], p...)
		}
	}
}

// feedHead accumulates a start line and header section and returns how many
// bytes of p it consumed.
func (c *Conn) feedHead(s *stream, p []byte, ts int64) int {
	i := 0
	if len(s.head) == 0 {
		// Empty lines before a message are ignored (RFC 9112 2.2).
		for i < len(p) && (p[i] == '\r' || p[i] == '\n') {
			i++
		}
		if i == len(p) {
			return i
		}
		s.headTS = ts
		s.sniff.reset(s.kind)
	}
	for i < len(p) {
		seg := p[i:]
		eol := bytes.IndexByte(seg, '\n')
		if eol >= 0 {
			seg = seg[:eol+1]
		}
		if s.firstLine == 0 {
			text := seg
			if eol >= 0 {
				text = seg[:eol]
			}
			if !s.sniff.feed(text) || len(s.head)+len(seg) > c.opts.MaxHeaderBytes {
				c.badStart(s, eol >= 0, text)
				return i + len(seg)
			}
		} else if room := c.opts.MaxHeaderBytes - len(s.head); len(seg) > room {
			// Keep what fits so the partial message's WireSize does not
			// depend on how the input was split.
			s.head = appendCapped(s.head, seg[:room], c.opts.MaxHeaderBytes)
			c.fail(s, fmt.Errorf("message head exceeds %d bytes", c.opts.MaxHeaderBytes))
			return len(p)
		}
		s.head = appendCapped(s.head, seg, c.opts.MaxHeaderBytes)
		i += len(seg)
		if eol < 0 {
			return i
		}
		line := s.head[s.lineStart : len(s.head)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		switch {
		case s.firstLine == 0:
			if !c.startLine(s, line) {
				return i
			}
			s.firstLine = len(s.head)
		case len(line) == 0:
			c.headDone(s, ts)
			return i
		case line[0] != ' ' && line[0] != '\t':
			s.fields++
			if s.fields > maxFields {
				c.fail(s, fmt.Errorf("more than %d header fields", maxFields))
				return len(p)
			}
		}
		s.lineStart = len(s.head)
	}
	return i
}

// startsMessage reports whether p begins with the start of a start line a
// stream of kind k carries: "HTTP/1.x NNN " for a response, a standard
// method and a space for a request. Strict on purpose: a record boundary
// inside a head or a body must not pass for a message start.
func startsMessage(k kind, p []byte) bool {
	if k != kindRequest && len(p) >= 13 && bytes.HasPrefix(p, []byte("HTTP/1.")) &&
		isDigit(p[7]) && p[8] == ' ' && isDigit(p[9]) && isDigit(p[10]) && isDigit(p[11]) && p[12] == ' ' {
		return true
	}
	if k == kindResponse {
		return false
	}
	for _, m := range startMethods {
		if len(p) > len(m) && string(p[:len(m)]) == m && p[len(m)] == ' ' {
			return true
		}
	}
	return false
}

var startMethods = [...]string{"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"}

// badStart handles bytes that cannot be a start line; tail is the last part
// of the rejected line, for the error message.
func (c *Conn) badStart(s *stream, eol bool, tail []byte) {
	switch {
	case s.resync:
		// Not a message start: skip the rest of this line.
		s.resetHead()
		if !eol {
			s.phase = phSkipLine
		}
	case c.state == Detecting:
		c.state = NotHTTP
	default:
		line := s.head
		if len(line) > 40 {
			line = line[:40]
		}
		c.fail(s, fmt.Errorf("invalid start line %q (ending %.20q)", line, tail))
	}
}

// startLine classifies a complete first line. It reports false when the
// line was rejected (and handled).
func (c *Conn) startLine(s *stream, line []byte) bool {
	k := kindAny
	var sp1 int
	if s.kind != kindResponse {
		if a, _, ok := parseRequestLine(line); ok {
			k, sp1 = kindRequest, a
		}
	}
	if k == kindAny && s.kind != kindRequest {
		if code, ok := parseStatusLine(line); ok {
			k, s.status = kindResponse, code
		}
	}
	if k == kindAny {
		c.badStart(s, true, nil)
		return false
	}
	if c.state == Detecting {
		if k == kindRequest {
			c.setRoles(s.dir)
		} else {
			c.setRoles(s.dir.other())
		}
	}
	s.resync = false
	if k == kindRequest {
		e := &entry{}
		e.ex.Role = c.role()
		e.ex.Request = &e.req
		e.req.Method = internMethod(line[:sp1])
		e.req.FirstByte = s.headTS
		s.ent = e
		c.push(e)
	}
	return true
}

// headDone turns a complete head into a message and selects its framing.
func (c *Conn) headDone(s *stream, ts int64) {
	str := string(s.head)
	firstLine, fieldsEnd := s.firstLine, s.lineStart
	status := s.status
	s.resetHead()

	var m *exchange.Message
	if s.kind == kindRequest {
		m = &s.ent.req
	} else {
		if status < 200 && status != 101 {
			return // interim response: not part of any exchange
		}
		s.ent = c.nextResponse(s.headTS)
		if s.ent != nil {
			m = &s.ent.resp
			s.ent.ex.Response = m
		} else {
			m = &exchange.Message{}
		}
		m.FirstByte = s.headTS
	}
	fillStartLine(m, str[:firstLine], s.kind)
	m.WireSize = int64(len(str))
	m.LastByte = ts
	s.msg = m
	hs, err := parseFields(str[firstLine:fieldsEnd], maxFields)
	if err != nil {
		c.fail(s, err)
		return
	}
	m.Headers = hs

	if s.kind == kindRequest {
		c.requestFraming(s, m)
	} else {
		c.responseFraming(s, m, status)
	}
}

// capture counts body bytes and keeps the first MaxBodyBytes of them.
func (c *Conn) capture(s *stream, p []byte, ts int64) {
	m := s.msg
	m.LastByte = ts
	m.WireSize += int64(len(p))
	m.BodySize += int64(len(p))
	if s.holes {
		return
	}
	room := c.opts.MaxBodyBytes - len(m.Body)
	if room <= 0 || len(p) == 0 {
		return
	}
	if len(p) > room {
		p = p[:room]
	}
	m.Body = appendCapped(m.Body, p, c.opts.MaxBodyBytes)
}

// skipBody counts n body bytes that were not seen.
func (c *Conn) skipBody(s *stream, n int64, ts int64, known bool) {
	m := s.msg
	m.LastByte = ts
	m.WireSize += n
	m.BodySize += n
	if known && len(m.Body) >= c.opts.MaxBodyBytes {
		return
	}
	s.holes = true
	s.incomplete = true
}

// finishMessage completes the current message (possibly cut short: see
// s.incomplete), sets the exchange flags and emits what became complete.
func (c *Conn) finishMessage(s *stream) {
	m, e := s.msg, s.ent
	var f exchange.Flags
	if s.incomplete {
		f |= exchange.Incomplete
	}
	if m.BodySize > int64(c.opts.MaxBodyBytes) {
		m.BodyTruncated = true
		if s.kind == kindRequest {
			f |= exchange.RequestTruncated
		} else {
			f |= exchange.ResponseTruncated
		}
	}
	if len(m.Body) > 0 {
		if coding := contentCoding(m.Headers); coding != "" {
			complete := !m.BodyTruncated && !s.holes && !s.incomplete
			out, err := decodeContent(coding, m.Body, complete, c.opts.MaxDecodedBytes)
			if err != nil {
				f |= exchange.DecodeError
			} else {
				m.DecodedBody = out
			}
		}
	}
	if len(m.Body) == 0 {
		m.Body = nil
	}
	s.msg, s.ent, s.holes, s.incomplete, s.remaining = nil, nil, false, false, 0
	s.phase = phHead
	if e == nil {
		return
	}
	e.ex.Flags |= f
	if s.kind == kindRequest {
		e.reqDone = true
		if e.upgrade && e.ex.Response == nil && !e.respDone {
			s.phase, s.holdEnt, s.holdLost = phHold, e, false
			s.hold = s.hold[:0]
		}
	} else {
		e.respDone = true
	}
	c.tryEmit()
}

// abort finishes the message in progress on s early.
func (c *Conn) abort(s *stream, why abortReason) {
	switch {
	case s.msg != nil:
		if !(why == whyClose && s.phase == phClose) {
			s.incomplete = true
		}
		if why == whyGap {
			s.msg.LastByte = s.lastTS // the message reached into the gap
		}
		c.finishMessage(s)
	case len(s.head) > 0:
		c.abortHead(s, why)
	}
	s.resetHead()
	if s.phase == phHold && why != whyGap {
		s.hold, s.holdEnt, s.holdLost = s.hold[:0], nil, false
	}
	if s.phase != phHold {
		s.phase = phHead
	}
}

// abortHead ends a message cut inside its head. A message whose start line
// is complete is kept with the complete header lines seen so far.
func (c *Conn) abortHead(s *stream, why abortReason) {
	if s.firstLine == 0 {
		if why == whyGap {
			c.lostStart(s)
		}
		return
	}
	str := string(s.head[:s.lineStart])
	var m *exchange.Message
	switch {
	case s.kind == kindRequest:
		m = &s.ent.req
	case s.status >= 200 || s.status == 101:
		s.ent = c.nextResponse(s.headTS)
		if s.ent == nil {
			return
		}
		m = &s.ent.resp
		s.ent.ex.Response = m
		m.FirstByte = s.headTS
	default:
		return // interim response: nothing to keep
	}
	fillStartLine(m, str, s.kind)
	m.Headers, _ = parseFields(str[s.firstLine:], maxFields) // best effort
	m.WireSize = int64(len(s.head))
	m.LastByte = s.lastTS
	e := s.ent
	s.msg = m
	s.incomplete = true
	c.finishMessage(s)
	if s.kind == kindResponse {
		c.releaseHold(e)
	}
}

// gap handles n lost bytes on s (see the package doc).
// gap handles n missing bytes. known marks bytes the capture chose not to
// copy (beyond the kernel's per-call cap): inside a body whose captured
// prefix is already full they lose nothing, so they flag nothing.
func (c *Conn) gap(s *stream, n int64, ts int64, known bool) {
	c.gapPrevTS = s.lastTS
	if s.kind == kindResponse && !known {
		c.respGapNew = !c.respGap
		c.respGap = true
		c.respLossTS = ts
	}
	s.lastTS = ts
	switch s.phase {
	case phHead:
		if len(s.head) > 0 {
			c.abort(s, whyGap)
		} else {
			c.lostStart(s)
		}
		s.resync = true
	case phSkipLine:
		s.phase = phHead // the byte after the gap may start a message
	case phLength:
		if n <= s.remaining {
			c.skipBody(s, n, ts, known)
			s.remaining -= n
			if s.remaining == 0 {
				c.finishMessage(s)
			}
			return
		}
		c.skipBody(s, s.remaining, ts, known)
		c.finishMessage(s)
		// The rest of the gap held the start of the next message.
		if s.phase == phHead {
			c.lostStart(s)
			s.resync = true
		} else {
			s.holdLost = true
		}
	case phChunked:
		if s.chunk.skip(n) {
			c.skipBody(s, n, ts, known)
			return
		}
		c.abort(s, whyGap)
		if s.phase == phHead {
			s.resync = true
		}
	case phClose:
		c.skipBody(s, n, ts, known)
	case phHold:
		s.holdLost = true
	}
}
