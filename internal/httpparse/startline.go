package httpparse

// Start-line recognition.
//
// A direction is classified by its first line, which may arrive one byte at a
// time. The sniffer validates the line incrementally so that a binary
// protocol is rejected after a few bytes instead of after MaxHeaderBytes, and
// so that resynchronisation after a gap can abandon a candidate line early.
// The complete line is then checked again by parseRequestLine or
// parseStatusLine, which are the authority.

// kind is what a direction carries, or may still carry while detecting.
type kind uint8

const (
	kindAny kind = iota // not decided yet: either start line is accepted
	kindRequest
	kindResponse
)

// httpPrefix starts every HTTP/1.x version string.
const httpPrefix = "HTTP/1."

// sniffer incrementally checks that the bytes of a line (LF excluded) can
// still become a request line and/or a status line.
type sniffer struct {
	req, resp bool  // candidates still possible
	cr        bool  // a CR was seen: only the LF may follow
	rstate    uint8 // request part: 0 method, 1 target, 2 version, 3 done
	rn        int   // bytes seen in the current request part
	sn        int   // bytes of the status line seen
}

func (s *sniffer) reset(k kind) {
	*s = sniffer{req: k != kindResponse, resp: k != kindRequest}
}

// feed adds line bytes (without LF) and reports whether the line may still
// be a valid start line.
func (s *sniffer) feed(p []byte) bool {
	for _, b := range p {
		if s.cr {
			s.req, s.resp = false, false
			return false
		}
		if b == '\r' {
			s.cr = true
			continue
		}
		if s.req {
			s.req = s.reqByte(b)
		}
		if s.resp {
			s.resp = s.statusByte(b)
		}
		if !s.req && !s.resp {
			return false
		}
	}
	return s.req || s.resp
}

func (s *sniffer) reqByte(b byte) bool {
	switch s.rstate {
	case 0: // method = token
		if b == ' ' {
			if s.rn == 0 {
				return false
			}
			s.rstate, s.rn = 1, 0
			return true
		}
		s.rn++
		return isTchar(b)
	case 1: // request-target: visible bytes, obs-text tolerated
		if b == ' ' {
			if s.rn == 0 {
				return false
			}
			s.rstate, s.rn = 2, 0
			return true
		}
		s.rn++
		return b > ' ' && b != 0x7f
	case 2: // HTTP-version
		if s.rn < len(httpPrefix) {
			ok := b == httpPrefix[s.rn]
			s.rn++
			return ok
		}
		s.rstate = 3
		return isDigit(b)
	}
	return false // nothing may follow the version
}

func (s *sniffer) statusByte(b byte) bool {
	n := s.sn
	s.sn++
	switch {
	case n < len(httpPrefix):
		return b == httpPrefix[n]
	case n == 7, n >= 9 && n <= 11:
		return isDigit(b)
	case n == 8, n == 12:
		return b == ' '
	}
	return isReasonByte(b)
}

// parseRequestLine validates "method SP request-target SP HTTP/1.x" and
// returns the positions of the two spaces.
func parseRequestLine[T string | []byte](line T) (sp1, sp2 int, ok bool) {
	sp1 = -1
	for i := 0; i < len(line); i++ {
		b := line[i]
		if b == ' ' {
			sp1 = i
			break
		}
		if !isTchar(b) {
			return 0, 0, false
		}
	}
	if sp1 <= 0 {
		return 0, 0, false
	}
	sp2 = -1
	for i := sp1 + 1; i < len(line); i++ {
		b := line[i]
		if b == ' ' {
			sp2 = i
			break
		}
		if b <= ' ' || b == 0x7f {
			return 0, 0, false
		}
	}
	if sp2 <= sp1+1 || !isVersion(line[sp2+1:]) {
		return 0, 0, false
	}
	return sp1, sp2, true
}

// parseStatusLine validates "HTTP/1.x SP 3DIGIT [SP reason]" and returns the
// status code. A missing reason (and its space) is tolerated.
func parseStatusLine(line []byte) (code int, ok bool) {
	if len(line) < 12 || !isVersion(line[:8]) || line[8] != ' ' {
		return 0, false
	}
	for _, b := range line[9:12] {
		if !isDigit(b) {
			return 0, false
		}
		code = code*10 + int(b-'0')
	}
	if code < 100 {
		return 0, false
	}
	if len(line) > 12 {
		if line[12] != ' ' {
			return 0, false
		}
		for _, b := range line[13:] {
			if !isReasonByte(b) {
				return 0, false
			}
		}
	}
	return code, true
}

func isVersion[T string | []byte](v T) bool {
	if len(v) != 8 || !isDigit(v[7]) {
		return false
	}
	for i := 0; i < 7; i++ {
		if v[i] != httpPrefix[i] {
			return false
		}
	}
	return true
}

// internMethod avoids an allocation for the common methods; the request
// head string is not built until the head is complete, but the response
// parser may need the method earlier.
func internMethod(b []byte) string {
	switch string(b) {
	case "GET":
		return "GET"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "HEAD":
		return "HEAD"
	case "OPTIONS":
		return "OPTIONS"
	case "PATCH":
		return "PATCH"
	case "CONNECT":
		return "CONNECT"
	}
	return string(b)
}

// isTchar reports whether b is a token character (RFC 9110 5.6.2).
func isTchar(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	switch b {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// isReasonByte: HTAB, SP, VCHAR, obs-text (RFC 9112 4).
func isReasonByte(b byte) bool { return b == '\t' || (b >= ' ' && b != 0x7f) }
