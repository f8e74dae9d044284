package httpparse

import "github.com/tlstap/tlstap/internal/exchange"

// Pairing of responses with requests, and what a loss does to it: which
// pending request a response answers, when pipelining makes that unknowable
// (pairing stops and responses are counted unpaired), and how a gap that
// swallowed a message start is accounted for.

// nextResponse returns the entry the final response starting at ts belongs
// to, or nil for a response without a known request (its request was never
// seen).
//
// After loss in the response direction the byte counts alone cannot say how
// many responses the gap held. Time can, for a client that waits for each
// response before sending the next request (every request of such a client
// starts after the previous response did): the response belongs to the
// newest pending request sent before it started, and the older pending ones
// lost theirs in the gap (flagged NoResponse|Incomplete). A connection that
// showed pipelining on clean input keeps the queue order. This needs every
// loss in the request direction before the response to be known when the
// response arrives: the engine reports a direction's loss as soon as a
// record of either direction shows it (each record carries both positions).
func (c *Conn) nextResponse(ts int64) *entry {
	e := c.pairResponse(ts)
	if e != nil && !e.drop && c.lostStartSeen {
		e.ex.Flags |= exchange.PairingInferred
	}
	return e
}

func (c *Conn) pairResponse(ts int64) *entry {
	if c.unpairable {
		c.giveUpPending()
		c.stats.UnpairedResponses++
		return nil
	}
	if c.nResp >= len(c.queue) {
		c.respGap = false
		return c.countUnpaired(c.popResponse())
	}
	if c.respGap && !c.pipelined {
		newest := -1
		for i := c.nResp; i < len(c.queue); i++ {
			if e := c.queue[i]; e.req.FirstByte <= ts {
				newest = i
			}
		}
		for c.nResp < newest {
			e := c.queue[c.nResp]
			c.nResp++
			e.respDone = true
			e.ex.Flags |= exchange.Incomplete | exchange.NoResponse
			c.releaseHold(e)
		}
	} else if !c.respGap && c.nResp+1 < len(c.queue) {
		if next := c.queue[c.nResp+1]; !next.drop && next.req.FirstByte < ts {
			c.pipelined = true
			if c.placeholderPending() {
				// A request lost earlier stands for an unknown number
				// of requests: on a pipelined connection nothing says
				// which one this response answers.
				c.unpairable = true
				return c.pairResponse(ts)
			}
		}
	}
	c.respGap = false
	return c.countUnpaired(c.popResponse())
}

// notePipelining marks the connection pipelined when e is sent while an
// earlier request still waits for its response and no response bytes were
// lost since that request: a client that waits for each response would
// not have sent e yet. (With a loss in between, the response it waited for
// may be what was lost.) A lost request's placeholder pending then stands
// for an unknown number of requests, so pairing stops.
func (c *Conn) notePipelining(e *entry) {
	if c.pipelined || c.unpairable {
		return
	}
	// A placeholder's time is when its loss became known: the lost
	// request went out before, so the rule holds for it too.
	for _, p := range c.queue[c.nResp:] {
		if p.req.FirstByte > c.respLossTS {
			c.pipelined = true
			break
		}
	}
	if c.pipelined && c.placeholderPending() {
		c.unpairable = true
		c.giveUpPending()
	}
}

// placeholderPending reports whether a lost request's placeholder still
// waits for its response.
func (c *Conn) placeholderPending() bool {
	for _, e := range c.queue[c.nResp:] {
		if e.drop {
			return true
		}
	}
	return false
}

// giveUpPending ends every request still waiting for a response as
// NoResponse|Incomplete (unpairable connection) and emits what it can.
func (c *Conn) giveUpPending() {
	for c.nResp < len(c.queue) {
		e := c.queue[c.nResp]
		c.nResp++
		e.respDone = true
		e.ex.Flags |= exchange.Incomplete | exchange.NoResponse
		c.releaseHold(e)
	}
	c.tryEmit()
}

// countUnpaired counts a response that pairs with no known request: none
// is pending, or the one pending is the placeholder of a lost request.
func (c *Conn) countUnpaired(e *entry) *entry {
	if e == nil || e.drop {
		c.stats.UnpairedResponses++
	}
	return e
}

// popResponse assigns the next final response to the oldest request still
// without one, or returns nil (an orphan) when none is pending.
func (c *Conn) popResponse() *entry {
	if c.nResp >= len(c.queue) {
		c.orphans++
		return nil
	}
	e := c.queue[c.nResp]
	c.nResp++
	return e
}

// lostStart handles a gap that swallowed the start of a message, so that
// requests and responses stay paired. How many messages the gap held is
// unknown:
//   - a lost request gets a placeholder that absorbs its response, unless
//     responses without a request were already seen since the last request
//     (they answered the lost requests);
//   - a lost response, for a client that waits for each response before
//     the next request, is resolved by time when the next response starts
//     (nextResponse); on a pipelined connection (several requests were
//     outstanding before the gap, or were seen so on clean input) the gap
//     is taken to hold the oldest pending request's response.
func (c *Conn) lostStart(s *stream) {
	c.lostStartSeen = true
	if c.state != HTTP {
		if c.state == Detecting {
			c.lostEarly[s.dir] = true
			c.lostAt[s.dir] = s.lastTS
		}
		return
	}
	if c.unpairable {
		return
	}
	if s.kind == kindRequest && c.pipelined {
		// An unknown number of requests lost among several outstanding.
		c.unpairable = true
		c.giveUpPending()
		return
	}
	if s.kind == kindRequest {
		if c.orphans == 0 {
			// The lost request started before the gap showed: that time
			// bounds it for the pairing check in nextResponse.
			c.push(&entry{drop: true, reqDone: true, req: exchange.Message{FirstByte: s.lastTS}})
		}
		c.orphans = 0
		return
	}
	// Requests outstanding together before the loss began mean pipelining
	// (only on its first gap: gapPrevTS of a later one is the earlier gap's).
	if c.respGapNew {
		early := 0
		for _, e := range c.queue[c.nResp:] {
			if !e.drop && e.req.FirstByte <= c.gapPrevTS {
				early++
			}
		}
		if early > 1 {
			c.pipelined = true
		}
	}
	if !c.pipelined {
		// Which pending requests lost their responses in the gap is
		// decided by time when the next response starts (nextResponse).
		return
	}
	// Pipelined: the gap may have held any number of responses, and the
	// next one may answer any request outstanding. Guessing one (as this
	// did) paired every later response with the wrong request when the
	// gap held two: pairing stops instead, and what follows is counted.
	c.unpairable = true
	c.giveUpPending()
}
