package h2parse

import "encoding/binary"

// clientPreface opens every HTTP/2 connection from the client side
// (RFC 9113 section 3.4).
const clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// LooksLikePreface reports whether b is consistent with the client
// connection preface: it starts with the preface, or is a non-empty prefix
// of it.
func LooksLikePreface(b []byte) bool {
	n := min(len(b), len(clientPreface))
	return n > 0 && string(b[:n]) == clientPreface[:n]
}

// LooksLikeServerStart reports whether b can open the server's side of an
// HTTP/2 connection: it starts with (at least 9 bytes of) a SETTINGS frame
// header on stream 0, not an ACK, whose length is a whole number of settings
// of a plausible count. The engine can use it when the server's bytes are
// seen before the client preface.
func LooksLikeServerStart(h []byte) bool {
	if len(h) < frameHeaderLen {
		return false
	}
	length := uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2])
	return h[3] == frameSettings && h[4]&flagAck == 0 &&
		binary.BigEndian.Uint32(h[5:])&streamMask == 0 &&
		length%6 == 0 && length <= 6*64
}

// heldMark is the timestamp of held bytes from offset off on.
type heldMark struct {
	off int
	ts  int64
}

// detect holds the first bytes of a direction until the client preface shows
// which direction is the client.
func (c *Conn) detect(s *side, data []byte, ts int64) {
	s.heldTS = append(s.heldTS, heldMark{len(s.held), ts})
	s.held = append(s.held, data...)
	b := s.held
	switch {
	case LooksLikePreface(b):
		if len(b) < len(clientPreface) {
			return
		}
		c.setRoles(s.dir)
		s.phase = phPreface
		c.replay(s)
		if o := &c.sides[s.dir^1]; o.phase == phDetect {
			o.phase = phHeader
			c.replay(o)
		}
	case len(b) < frameHeaderLen:
	case !LooksLikeServerStart(b) || len(b) > c.opts.MaxHeaderListBytes+detectSlack:
		c.notHTTP2()
	}
}

// replay feeds the bytes a direction held while roles were unknown.
func (c *Conn) replay(s *side) {
	held, marks := s.held, s.heldTS
	s.held, s.heldTS = nil, nil
	for i, m := range marks {
		end := len(held)
		if i+1 < len(marks) {
			end = marks[i+1].off
		}
		if s.phase == phDead || c.stopped() {
			return
		}
		s.feed(held[m.off:end], m.ts)
	}
}

// notHTTP2 gives up on a connection that does not carry HTTP/2.
func (c *Conn) notHTTP2() {
	c.state = NotHTTP2
	for d := range c.sides {
		c.sides[d].held, c.sides[d].heldTS = nil, nil
		c.sides[d].phase = phDead
	}
}
