package httpparse

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"

	"github.com/tlstap/tlstap/internal/exchange"
)

// contentCoding returns the single supported content coding of a message
// ("gzip" or "deflate"), or "" when there is none, it is unsupported, or
// several codings are stacked (rare enough not to be worth decoding).
func contentCoding(hs []exchange.Header) string {
	coding, n := "", 0
	eachListItem(hs, "Content-Encoding", func(item string) bool {
		if equalFold(item, "identity") {
			return true
		}
		coding = item
		n++
		return true
	})
	if n != 1 {
		return ""
	}
	switch {
	case equalFold(coding, "gzip"), equalFold(coding, "x-gzip"):
		return "gzip"
	case equalFold(coding, "deflate"):
		return "deflate"
	}
	return ""
}

// decodeContent decodes body, producing at most max bytes. complete says
// whether body is the whole message body: when it is only a prefix (capture
// limit, lost bytes, cut connection), running out of input is expected and
// what was decoded so far is returned without error.
func decodeContent(coding string, body []byte, complete bool, max int) ([]byte, error) {
	src := bytes.NewReader(body)
	var r io.Reader
	switch coding {
	case "gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return truncatedOK(nil, err, complete, coding)
		}
		// Trailing bytes after the first member are ignored: observed
		// servers pad, and concatenated members are not used in HTTP.
		zr.Multistream(false)
		r = zr
	case "deflate":
		// "deflate" is specified as zlib (RFC 9110 8.4.1.2) but some
		// servers send raw deflate; the zlib header is recognisable.
		if len(body) >= 2 && body[0]&0x0f == 8 && (uint(body[0])<<8|uint(body[1]))%31 == 0 {
			zr, err := zlib.NewReader(src)
			if err != nil {
				return truncatedOK(nil, err, complete, coding)
			}
			r = zr
		} else {
			if !complete && len(body) < 2 {
				return nil, nil
			}
			r = flate.NewReader(src)
		}
	default:
		return nil, fmt.Errorf("unsupported content coding %q", coding)
	}
	out, err := readCapped(r, max, len(body))
	if err != nil {
		return truncatedOK(out, err, complete, coding)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func truncatedOK(out []byte, err error, complete bool, coding string) ([]byte, error) {
	if !complete && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) {
		if len(out) == 0 {
			return nil, nil
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: %w", coding, err)
}

// readCapped reads r to EOF or until max bytes, whichever comes first; output
// beyond max is not an error (the decoded copy is a convenience view).
func readCapped(r io.Reader, max, hint int) ([]byte, error) {
	if max <= 0 {
		return nil, nil
	}
	size := 4 * hint
	if size < 512 {
		size = 512
	}
	if size > max {
		size = max
	}
	buf := make([]byte, 0, size)
	for len(buf) < max {
		if len(buf) == cap(buf) {
			c := 2 * cap(buf)
			if c > max {
				c = max
			}
			nb := make([]byte, len(buf), c)
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}
