package httpparse

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"github.com/tlstap/tlstap/internal/exchange"
)

// chunkState is the position of a chunkedDecoder inside the chunked coding
// (RFC 9112 7.1).
type chunkState uint8

const (
	csSize    chunkState = iota // chunk-size hex digits
	csSizeWS                    // whitespace after the size (tolerated, as most servers do)
	csExt                       // chunk extensions, up to the LF
	csSizeLF                    // CR seen after the size: LF must follow
	csData                      // chunk data; size holds the bytes left
	csDataEnd                   // CRLF (or LF) after chunk data
	csDataLF                    // CR seen after chunk data: LF must follow
	csTrailer                   // trailer section, up to an empty line
	csDone                      // last chunk and trailer section consumed
)

var (
	errChunkSizeTooLarge = errors.New("chunk size overflows int64")
	errChunkExtTooLong   = errors.New("chunk extension too long")
	errTrailerTooLarge   = errors.New("trailer section too large")
)

// chunkedDecoder removes the chunked transfer coding from a byte stream that
// arrives in arbitrary pieces. It keeps no chunk data: decode returns data as
// sub-slices of its input, so the caller decides what to capture. Only the
// trailer section is buffered, bounded by max.
type chunkedDecoder struct {
	state     chunkState
	size      int64 // csSize: value so far; csData: bytes left in the chunk
	digits    int   // hex digits of the current size line
	extLen    int   // bytes of chunk extensions on the current size line
	max       int   // cap on a size line's extensions and on the trailer section
	fields    int   // trailer fields so far
	lineStart int   // start of the current trailer line in trailer
	trailer   []byte
}

// reset prepares the decoder for a new body, keeping the trailer buffer's
// memory for reuse.
func (d *chunkedDecoder) reset(max int) {
	t := d.trailer[:0]
	*d = chunkedDecoder{max: max, trailer: t}
}

func (d *chunkedDecoder) done() bool { return d.state == csDone }

// decode consumes a prefix of p. When it stops on chunk data it returns that
// data (a sub-slice of p) so the caller can capture it before calling again.
// It always makes progress on a non-empty p unless it is done or fails.
func (d *chunkedDecoder) decode(p []byte) (n int, data []byte, err error) {
	for n < len(p) {
		switch d.state {
		case csData:
			k := len(p) - n
			if int64(k) > d.size {
				k = int(d.size)
			}
			data = p[n : n+k]
			n += k
			d.size -= int64(k)
			if d.size == 0 {
				d.state = csDataEnd
			}
			return n, data, nil
		case csTrailer:
			m, err := d.trailerBytes(p[n:])
			n += m
			if err != nil || d.state == csDone {
				return n, nil, err
			}
		case csDone:
			return n, nil, nil
		default:
			b := p[n]
			n++
			if err := d.step(b); err != nil {
				return n, nil, err
			}
		}
	}
	return n, nil, nil
}

// step advances the framing state machine by one byte outside chunk data and
// the trailer section.
func (d *chunkedDecoder) step(b byte) error {
	switch d.state {
	case csSize:
		if v := unhex(b); v >= 0 {
			if d.size > (math.MaxInt64-15)>>4 {
				return errChunkSizeTooLarge
			}
			d.size = d.size<<4 | int64(v)
			d.digits++
			return nil
		}
		if d.digits == 0 {
			return fmt.Errorf("invalid byte %q in chunk size", b)
		}
		return d.afterSize(b)
	case csSizeWS:
		return d.afterSize(b)
	case csExt:
		if b == '\n' {
			d.endSizeLine()
			return nil
		}
		d.extLen++
		if d.extLen > d.max {
			return errChunkExtTooLong
		}
	case csSizeLF:
		if b != '\n' {
			return fmt.Errorf("invalid byte %q after CR in chunk size line", b)
		}
		d.endSizeLine()
	case csDataEnd:
		switch b {
		case '\r':
			d.state = csDataLF
		case '\n':
			d.state, d.size, d.digits = csSize, 0, 0
		default:
			return fmt.Errorf("invalid byte %q after chunk data, want CRLF", b)
		}
	case csDataLF:
		if b != '\n' {
			return fmt.Errorf("invalid byte %q after chunk data, want LF", b)
		}
		d.state, d.size, d.digits = csSize, 0, 0
	}
	return nil
}

func (d *chunkedDecoder) afterSize(b byte) error {
	switch b {
	case ' ', '\t':
		d.state = csSizeWS
	case ';':
		d.state = csExt
	case '\r':
		d.state = csSizeLF
	case '\n':
		d.endSizeLine()
	default:
		return fmt.Errorf("invalid byte %q after chunk size", b)
	}
	return nil
}

func (d *chunkedDecoder) endSizeLine() {
	d.extLen, d.digits = 0, 0
	if d.size == 0 {
		d.state = csTrailer
		return
	}
	d.state = csData
}

// trailerBytes buffers trailer-section bytes up to and including the next LF.
func (d *chunkedDecoder) trailerBytes(p []byte) (int, error) {
	seg := p
	eol := bytes.IndexByte(p, '\n')
	if eol >= 0 {
		seg = p[:eol+1]
	}
	if room := d.max - len(d.trailer); len(seg) > room {
		// Consume exactly through the first byte over the cap, so that
		// the count does not depend on how the input was split.
		return room + 1, errTrailerTooLarge
	}
	d.trailer = appendCapped(d.trailer, seg, d.max)
	if eol < 0 {
		return len(seg), nil
	}
	line := d.trailer[d.lineStart : len(d.trailer)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) == 0 {
		d.state = csDone
		return len(seg), nil
	}
	if line[0] != ' ' && line[0] != '\t' {
		d.fields++
		if d.fields > maxFields {
			return len(seg), fmt.Errorf("more than %d trailer fields", maxFields)
		}
	}
	d.lineStart = len(d.trailer)
	return len(seg), nil
}

// trailers parses the buffered trailer section (complete lines only, so it
// may be called on an unfinished body too).
func (d *chunkedDecoder) trailers() ([]exchange.Header, error) {
	if d.state != csTrailer && d.state != csDone || d.lineStart == 0 {
		return nil, nil
	}
	hs, err := parseFields(string(d.trailer[:d.lineStart]), maxFields)
	if err != nil {
		return nil, fmt.Errorf("trailer: %w", err)
	}
	return hs, nil
}

// skip accounts for n lost bytes. It succeeds only when they fall entirely
// inside the current chunk's data, where the framing is still known.
func (d *chunkedDecoder) skip(n int64) bool {
	if d.state != csData || n > d.size {
		return false
	}
	d.size -= n
	if d.size == 0 {
		d.state = csDataEnd
	}
	return true
}

func unhex(b byte) int {
	switch {
	case '0' <= b && b <= '9':
		return int(b - '0')
	case 'a' <= b && b <= 'f':
		return int(b-'a') + 10
	case 'A' <= b && b <= 'F':
		return int(b-'A') + 10
	}
	return -1
}
