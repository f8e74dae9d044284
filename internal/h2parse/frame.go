package h2parse

import (
	"encoding/binary"

	"github.com/tlstap/tlstap/internal/exchange"
	"golang.org/x/net/http2/hpack"
)

// Frame types and flags (RFC 9113 section 6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	framePriority     = 0x2
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePushPromise  = 0x5
	framePing         = 0x6
	frameGoAway       = 0x7
	frameWindowUpdate = 0x8
	frameContinuation = 0x9

	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20

	frameHeaderLen = 9
	streamMask     = 1<<31 - 1

	settingHeaderTableSize = 0x1
	noTableSetting         = ^uint32(0)
)

// phase is where a direction is in its byte stream.
type phase uint8

const (
	phDetect  phase = iota // roles unknown: bytes are held
	phPreface              // client: inside the connection preface
	phHeader               // inside a 9-byte frame header
	phPrefix               // inside fixed payload fields (pad length, priority, ids, codes)
	phContent              // inside the payload's content (body, header fragment, or ignored)
	phPad                  // inside the payload's trailing padding
	phDead                 // not parsed any more
)

// side is one direction of the connection.
type side struct {
	c      *Conn
	dir    Dir
	client bool
	phase  phase
	ts     int64 // timestamp of the bytes being parsed

	held   []byte // phDetect: bytes held until roles are known
	heldTS []heldMark
	pre    int // phPreface: preface bytes matched

	// The current frame.
	hdr     [frameHeaderLen]byte
	nhdr    int
	frameTS int64
	typ     uint8
	flags   uint8
	sid     uint32
	left    uint32 // payload bytes not consumed yet
	fixed   [8]byte
	nfixed  int
	want    int    // phPrefix: bytes of fixed fields to read
	content uint32 // phContent: content bytes left; the rest of left is padding
	cur     *entry // stream a DATA frame belongs to (nil: ignored)
	tblSet  uint32 // SETTINGS: header table size carried (noTableSetting: none)
	// settingsOK: the current frame is a well-formed SETTINGS (not an ACK).
	settingsOK bool

	blk      block
	dec      *hpack.Decoder
	hpackBad bool
	allowed  uint32   // dynamic table size the decoder accepts
	pending  []uint32 // header table sizes this side announced, awaiting ACK
}

// block is a header block being decoded.
type block struct {
	active    bool // between HEADERS/PUSH_PROMISE and END_HEADERS
	sid       uint32
	target    *entry // stream the block belongs to (nil: decoded for the table only)
	promised  uint32 // PUSH_PROMISE: the promised stream
	endStream bool
	broken    bool // some of it could not be decoded
	over      bool // fields dropped beyond MaxHeaderListBytes
	size      int
	ts        int64 // first frame's timestamp
	fields    []exchange.Header
}

func (s *side) init(c *Conn, d Dir) {
	s.c, s.dir = c, d
	s.allowed = 4096
	s.dec = hpack.NewDecoder(4096, s.onField)
	s.dec.SetMaxStringLength(4 * c.opts.MaxHeaderListBytes)
	s.tblSet = noTableSetting
}

// feed parses p, which arrived at ts.
func (s *side) feed(p []byte, ts int64) {
	s.ts = ts
	for len(p) > 0 {
		switch s.phase {
		case phDead, phDetect:
			return
		case phPreface:
			n := min(len(p), len(clientPreface)-s.pre)
			if string(p[:n]) != clientPreface[s.pre:s.pre+n] {
				s.kill("no client preface")
				return
			}
			s.pre += n
			p = p[n:]
			if s.pre == len(clientPreface) {
				s.phase = phHeader
			}
		case phHeader:
			if s.nhdr == 0 {
				s.frameTS = ts
			}
			n := copy(s.hdr[s.nhdr:], p)
			s.nhdr += n
			p = p[n:]
			if s.nhdr == frameHeaderLen {
				s.nhdr = 0
				s.beginFrame()
			}
		case phPrefix:
			n := copy(s.fixed[s.nfixed:s.want], p)
			s.nfixed += n
			s.left -= uint32(n)
			p = p[n:]
			if s.nfixed == s.want {
				s.onPrefix()
			}
		case phContent:
			n := min(uint32(len(p)), s.content)
			s.onContent(p[:n])
			s.content -= n
			s.left -= n
			p = p[n:]
			s.settle()
		case phPad:
			n := min(uint32(len(p)), s.left)
			s.left -= n
			p = p[n:]
			s.settle()
		}
	}
}

// settle moves on from a finished content or padding stretch.
func (s *side) settle() {
	if s.phase == phContent && s.content == 0 {
		s.phase = phPad
	}
	if s.phase == phPad && s.left == 0 {
		s.endFrame()
	}
}

// lose accounts for n bytes that were not seen. Inside one frame's payload
// frame sync is kept; across a frame boundary the direction stops.
func (s *side) lose(n int64, ts int64, skip bool) {
	c := s.c
	switch s.phase {
	case phDead:
		return
	case phDetect:
		// Roles can no longer be established reliably.
		c.unreliab = true
		c.notHTTP2()
		return
	}
	s.ts = ts
	for n > 0 && s.phase != phDead {
		switch s.phase {
		case phPreface, phHeader:
			s.kill("bytes lost across a frame boundary")
			return
		case phPrefix:
			k := min(n, int64(s.want-s.nfixed))
			n -= k
			s.left -= uint32(k)
			s.prefixLost()
		case phContent:
			k := uint32(min(n, int64(s.content)))
			n -= int64(k)
			s.lostContent(k, skip)
			s.content -= k
			s.left -= k
			s.settle()
		case phPad:
			k := uint32(min(n, int64(s.left)))
			n -= int64(k)
			s.left -= k
			s.settle()
		}
	}
}

// kill stops parsing the direction after lost frame sync or malformed
// framing, and ends its pending messages.
func (s *side) kill(why string) {
	c := s.c
	if s.phase == phDead {
		return
	}
	c.setErr(s, "%s", why)
	s.phase = phDead
	s.blk = block{}
	s.cur = nil
	c.unreliab = true
	c.stats.LostFrames++
	if c.state != HTTP2 {
		return
	}
	if c.sides[s.dir^1].phase == phDead {
		c.flushAll(exchange.Incomplete)
		c.state = Failed
		return
	}
	for _, e := range c.liveEntries() {
		if s.client && !e.reqDone {
			e.ex.Flags |= exchange.Incomplete
			c.endSide(e, true)
		}
		if !s.client && !e.respDone {
			e.ex.Flags |= exchange.Incomplete
			c.endSide(e, false)
		}
	}
}

// beginFrame dispatches on a complete frame header.
func (s *side) beginFrame() {
	c := s.c
	h := s.hdr[:]
	length := uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2])
	s.typ, s.flags = h[3], h[4]
	s.sid = binary.BigEndian.Uint32(h[5:]) & streamMask
	s.left, s.nfixed, s.want, s.content, s.cur = length, 0, 0, 0, nil
	s.settingsOK = false

	if s.blk.active && (s.typ != frameContinuation || s.sid != s.blk.sid) {
		// A header block must continue in the very next frame: the
		// decoder holds a partial block, its table is unknown now.
		s.markBroken()
		s.finishBlock()
	}
	wire := int64(frameHeaderLen) + int64(length)
	padded := 0
	if s.flags&flagPadded != 0 {
		padded = 1
	}
	switch s.typ {
	case frameData:
		s.want = padded
		if s.sid == 0 {
			s.kill("DATA on stream 0")
			return
		}
		if e := c.streams[s.sid]; e != nil && e.head(s.client) {
			s.cur = e
			c.touch(e, s.client, s.frameTS, wire)
		}
	case frameHeaders:
		s.want = padded
		if s.flags&flagPriority != 0 {
			s.want += 5
		}
		if s.sid == 0 {
			s.kill("HEADERS on stream 0")
			return
		}
		e := c.headersTarget(s)
		if e != nil {
			c.touch(e, s.client, s.frameTS, wire)
		}
		s.startBlock(e, s.sid, 0, s.flags&flagEndStream != 0)
	case framePushPromise:
		s.want = padded + 4
	case frameContinuation:
		if !s.blk.active {
			// A fragment of an unknown block: the table may have changed.
			s.markBroken()
		} else if e := s.blk.target; e != nil && !e.emitted {
			c.touch(e, s.client, s.frameTS, wire)
		}
	case frameRSTStream:
		if length == 4 && s.sid != 0 {
			s.want = 4
		}
	case frameSettings:
		switch {
		case s.flags&flagAck != 0:
			c.settingsAck(s)
		case length%6 == 0 && s.sid == 0:
			s.tblSet, s.settingsOK = noTableSetting, true
			if length > 0 {
				s.want = 6
			}
		}
	case frameGoAway:
		if length >= 8 && s.sid == 0 {
			s.want = 8
		}
	}
	if uint32(s.want) > length {
		s.kill("frame too short for its fields")
		return
	}
	if s.want > 0 {
		s.phase = phPrefix
		return
	}
	s.startContent(0)
}

// startContent splits what is left of the payload into content and pad bytes
// of padding.
func (s *side) startContent(pad uint32) {
	if pad > s.left {
		s.kill("padding longer than the frame")
		return
	}
	s.content = s.left - pad
	s.phase = phContent
	s.settle()
}

// onPrefix interprets the fixed fields of the current frame.
func (s *side) onPrefix() {
	c := s.c
	f := s.fixed[:s.nfixed]
	pad := uint32(0)
	if s.flags&flagPadded != 0 && (s.typ == frameData || s.typ == frameHeaders || s.typ == framePushPromise) {
		pad = uint32(f[0])
		f = f[1:]
	}
	switch s.typ {
	case framePushPromise:
		promised := binary.BigEndian.Uint32(f) & streamMask
		var target *entry
		if !s.client && promised > c.maxPush && promised%2 == 0 {
			c.maxPush = promised
			target = c.streams[s.sid] // the push needs a live parent
		}
		s.startBlock(target, s.sid, promised, false)
		if target == nil {
			s.blk.promised = 0
		}
	case frameRSTStream:
		c.reset(s, s.sid, binary.BigEndian.Uint32(f))
	case frameGoAway:
		if !s.client {
			c.goAway(binary.BigEndian.Uint32(f) & streamMask)
		}
	case frameSettings:
		if binary.BigEndian.Uint16(f) == settingHeaderTableSize {
			s.tblSet = binary.BigEndian.Uint32(f[2:])
		}
		if s.left >= 6 {
			s.nfixed = 0
			return // the next setting
		}
	}
	s.startContent(pad)
}

// prefixLost handles fixed fields swallowed by a gap.
func (s *side) prefixLost() {
	c := s.c
	switch s.typ {
	case frameData:
		// The padding length is unknown: the rest counts as lost body.
		if e := s.cur; e != nil {
			e.ex.Flags |= exchange.Incomplete
			e.hole(s.client)
		}
	case frameHeaders:
		s.markBroken()
	case framePushPromise:
		s.startBlock(nil, s.sid, 0, false)
		s.markBroken()
	case frameRSTStream:
		// The stream ended with an unknown code.
		if e := c.streams[s.sid]; e != nil {
			e.ex.Flags |= exchange.Incomplete
			c.endSide(e, true)
			c.endSide(e, false)
		}
	}
	s.settingsOK = false
	s.content = s.left
	s.phase = phContent
	s.settle()
}

// onContent consumes payload content.
func (s *side) onContent(p []byte) {
	switch s.typ {
	case frameData:
		if e := s.cur; e != nil && !e.emitted {
			s.c.body(e, s.client, p)
		}
	case frameHeaders, frameContinuation, framePushPromise:
		if !s.blk.active || s.blk.broken {
			return
		}
		if _, err := s.dec.Write(p); err != nil {
			s.markBroken()
		}
	}
}

// lostContent accounts for k content bytes of the current frame not seen;
// skip says they were left out on purpose.
func (s *side) lostContent(k uint32, skip bool) {
	switch s.typ {
	case frameData:
		if e := s.cur; e != nil && !e.emitted {
			m := e.msg(s.client)
			m.BodySize += int64(k)
			if skip && e.full(s.client, s.c.opts.MaxBodyBytes) {
				s.c.truncated(e, s.client)
				return
			}
			e.ex.Flags |= exchange.Incomplete
			e.hole(s.client)
		}
	case frameHeaders, frameContinuation, framePushPromise:
		if k > 0 {
			s.markBroken()
		}
	}
}

// markBroken records that the current header block cannot be decoded, and
// with it no later block of this direction.
func (s *side) markBroken() {
	s.blk.broken = true
	s.hpackBad = true
	s.c.unreliab = true
}

// endFrame finishes the current frame.
func (s *side) endFrame() {
	c := s.c
	s.phase = phHeader
	switch s.typ {
	case frameData:
		if e := s.cur; e != nil && !e.emitted {
			e.msg(s.client).LastByte = s.ts
			if s.flags&flagEndStream != 0 {
				c.endSide(e, s.client)
			}
		}
		s.cur = nil
	case frameHeaders, framePushPromise, frameContinuation:
		if e := s.blk.target; e != nil && !e.emitted && s.blk.active {
			e.msg(s.client).LastByte = s.ts
		}
		if s.flags&flagEndHeaders != 0 && s.blk.active {
			s.finishBlock()
		}
	case frameSettings:
		if s.settingsOK {
			c.settings(s, s.tblSet)
		}
	}
}

// startBlock begins decoding a header block for target.
func (s *side) startBlock(target *entry, sid, promised uint32, endStream bool) {
	s.blk = block{active: true, sid: sid, target: target, promised: promised, endStream: endStream, ts: s.frameTS}
	if s.hpackBad {
		s.blk.broken = true
		return
	}
	s.dec.SetEmitEnabled(target != nil)
}

// onField collects one decoded field of the current block.
func (s *side) onField(f hpack.HeaderField) {
	b := &s.blk
	if b.over {
		return
	}
	sz := len(f.Name) + len(f.Value) + 32
	if b.size+sz > s.c.opts.MaxHeaderListBytes {
		b.over = true
		s.dec.SetEmitEnabled(false)
		return
	}
	b.size += sz
	if b.fields == nil {
		b.fields = make([]exchange.Header, 0, 8)
	}
	b.fields = append(b.fields, exchange.Header{Name: f.Name, Value: f.Value})
}

// finishBlock ends the current header block and applies it.
func (s *side) finishBlock() {
	b := s.blk
	s.blk = block{}
	if !b.broken {
		if err := s.dec.Close(); err != nil {
			b.broken = true
			s.hpackBad = true
			s.c.unreliab = true
		}
	}
	if b.broken {
		s.c.stats.Undecodable++
		b.fields = nil
		s.resumeHPACK()
	}
	s.c.applyBlock(s, &b)
}

// resumeHPACK restarts decoding after a block that could not be decoded,
// with an empty dynamic table. The encoder's table holds entries we never
// saw, but HPACK indexes the dynamic table newest first and evicts oldest
// first: every entry inserted from here on has the same index in both
// tables for as long as the encoder keeps it (its older entries are
// evicted before any of them). A later block that refers to an entry of
// before the loss asks for an index the empty table does not have: the
// decoder fails and that block is broken (counted, never decoded against
// the wrong entry), and decoding restarts again after it. Blocks made of
// literals, static entries and entries inserted since decode exactly.
func (s *side) resumeHPACK() {
	s.dec = hpack.NewDecoder(s.allowed, s.onField)
	s.dec.SetMaxStringLength(4 * s.c.opts.MaxHeaderListBytes)
	s.hpackBad = false
	s.c.stats.Resumed++
}

// settings handles a SETTINGS frame sent by s: a header table size limits
// the dynamic table of the other direction's encoder, hence decoder. Until
// the ACK the encoder may use either size, so the larger is allowed.
func (c *Conn) settings(s *side, tbl uint32) {
	if len(s.pending) >= maxPendingSettings {
		s.pending = s.pending[1:]
	}
	s.pending = append(s.pending, tbl)
	if o := &c.sides[s.dir^1]; tbl != noTableSetting && min(tbl, maxTableSize) > o.allowed {
		o.setAllowedTable(tbl)
	}
}

// settingsAck handles a SETTINGS ACK sent by s, acknowledging the oldest
// SETTINGS of the other side: the announced size now binds s's encoder.
func (c *Conn) settingsAck(s *side) {
	o := &c.sides[s.dir^1]
	if len(o.pending) == 0 {
		return
	}
	tbl := o.pending[0]
	o.pending = o.pending[1:]
	if tbl != noTableSetting {
		s.setAllowedTable(tbl)
	}
}

func (s *side) setAllowedTable(v uint32) {
	v = min(v, maxTableSize)
	s.allowed = v
	s.dec.SetAllowedMaxDynamicTableSize(v)
}
