package policy

import (
	"bytes"
	"mime"
	"strings"
)

// formEdits appends edits replacing the values of secret fields in a
// form-urlencoded body (name=value&name=value; ';' is not a separator).
func formEdits(b []byte, fields *fieldSet, out []edit) []edit {
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '&')
		if j < 0 {
			j = len(b)
		} else {
			j += i
		}
		if eq := bytes.IndexByte(b[i:j], '='); eq > 0 {
			vs := i + eq + 1
			if vs < j && string(b[vs:j]) != Redacted && fields.hasEncoded(strings.TrimSpace(string(b[i:i+eq]))) {
				out = append(out, edit{vs, j, Redacted})
			}
		}
		i = j + 1
	}
	return out
}

// multipartBoundary returns the boundary parameter of a multipart content
// type, or "".
func multipartBoundary(ct string) string {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		return ""
	}
	return params["boundary"]
}

// multipartEdits appends edits replacing the content of the parts of a
// multipart body whose form field name (Content-Disposition name=) is a
// secret field. A part cut by max_body_bytes is redacted up to the cut.
func multipartEdits(b []byte, boundary string, fields *fieldSet, out []edit) []edit {
	delim := []byte("--" + boundary)
	i := bytes.Index(b, delim)
	for i >= 0 {
		i += len(delim)
		if bytes.HasPrefix(b[i:], []byte("--")) {
			break // closing delimiter
		}
		h := bytes.Index(b[i:], []byte("\r\n\r\n"))
		if h < 0 {
			break
		}
		head, body := b[i:i+h], i+h+4
		next := bytes.Index(b[body:], delim)
		end := len(b)
		if next >= 0 {
			end = body + next
			if end >= body+2 && b[end-2] == '\r' && b[end-1] == '\n' {
				end -= 2
			}
		}
		if name, ok := partName(head); ok && end > body && fields.has(name) {
			out = append(out, edit{body, end, Redacted})
		}
		if next < 0 {
			break
		}
		i = body + next
	}
	return out
}

// partName returns the name parameter of a part's Content-Disposition.
func partName(head []byte) (string, bool) {
	for _, line := range bytes.Split(head, []byte("\r\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || !strings.EqualFold(strings.TrimSpace(string(k)), "content-disposition") {
			continue
		}
		_, params, err := mime.ParseMediaType(strings.TrimSpace(string(v)))
		if err != nil {
			return "", false
		}
		name, ok := params["name"]
		return name, ok
	}
	return "", false
}
