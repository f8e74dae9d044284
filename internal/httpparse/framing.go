package httpparse

import (
	"fmt"

	"github.com/tlstap/tlstap/internal/exchange"
)

func (c *Conn) requestFraming(s *stream, m *exchange.Message) {
	s.ent.upgrade = m.Method == "CONNECT" || hasField(m.Headers, "Upgrade")
	if te, chunked := transferEncoding(m.Headers); te {
		if !chunked {
			c.fail(s, fmt.Errorf("request Transfer-Encoding without final chunked"))
			return
		}
		c.startChunked(s)
		return
	}
	n, ok, err := contentLength(m.Headers)
	if err != nil {
		c.fail(s, err)
		return
	}
	if ok && n > 0 {
		c.startLength(s, n)
		return
	}
	c.finishMessage(s) // no body (RFC 9112 6.3 rule 7)
}

func (c *Conn) responseFraming(s *stream, m *exchange.Message, status int) {
	e := s.ent
	method := ""
	if e != nil {
		method = e.req.Method
	}
	switch {
	case status == 101, method == "CONNECT" && status/100 == 2:
		if status == 101 && e != nil {
			c.noteUpgrade(e, m)
		}
		c.finishMessage(s)
		c.upgraded()
		return
	case method == "HEAD", status == 204, status == 304:
		c.finishMessage(s)
	default:
		if te, chunked := transferEncoding(m.Headers); te {
			if chunked {
				c.startChunked(s)
			} else {
				s.phase = phClose
			}
			break
		}
		n, ok, err := contentLength(m.Headers)
		switch {
		case err != nil:
			c.fail(s, err)
			return
		case !ok:
			s.phase = phClose
		case n > 0:
			c.startLength(s, n)
		default:
			c.finishMessage(s)
		}
	}
	if e != nil {
		c.releaseHold(e)
	}
}

// fillStartLine sets the start-line fields from head, which begins with the
// start line (terminated by LF).
func fillStartLine(m *exchange.Message, head string, k kind) {
	line, _ := nextLine(head)
	if k == kindRequest {
		sp1, sp2, ok := parseRequestLine(line)
		if !ok {
			return
		}
		if m.Method == "" || len(m.Method) != sp1 {
			m.Method = line[:sp1]
		}
		m.Target = line[sp1+1 : sp2]
		m.Proto = line[sp2+1:]
		return
	}
	m.Proto = line[:8]
	m.StatusCode = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	if len(line) > 13 {
		m.Reason = line[13:]
	}
}

func (c *Conn) startLength(s *stream, n int64) {
	s.phase = phLength
	s.remaining = n
	if c.opts.MaxBodyBytes > 0 {
		k := int64(c.opts.MaxBodyBytes)
		if n < k {
			k = n
		}
		s.msg.Body = make([]byte, 0, k)
	}
}

func (c *Conn) startChunked(s *stream) {
	s.phase = phChunked
	s.chunk.reset(c.opts.MaxHeaderBytes)
}
