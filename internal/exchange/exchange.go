// Package exchange defines one captured HTTP exchange: the unit the engine
// hands to its front ends (the Collector receiver and the Fluent Bit plugin).
package exchange

import (
	"net/netip"
	"strings"
	"time"
)

// Header is one HTTP header field as it appeared on the wire (original case,
// original order, duplicates kept).
type Header struct {
	Name  string
	Value string
}

// Message is one parsed HTTP request or response.
type Message struct {
	// Request line (requests only).
	Method string
	Target string // request-target exactly as sent: origin-form, absolute-form, authority-form or "*"

	// Status line (responses only).
	StatusCode int
	Reason     string

	Proto    string // "HTTP/1.1", "HTTP/1.0", "HTTP/2"
	Headers  []Header
	Trailers []Header

	// Body holds the first bytes of the message body after transfer decoding
	// (de-chunked) and before content decoding, at most the configured limit.
	Body []byte
	// BodySize is the real body size after transfer decoding, even when Body
	// was truncated or bytes were lost in a gap.
	BodySize int64
	// WireSize counts every byte of the message on the wire (head + framing + body).
	WireSize int64
	// BodyTruncated is set when BodySize > len(Body) because of the body limit.
	BodyTruncated bool
	// DecodedBody holds Body after Content-Encoding (gzip, deflate) decoding,
	// when the message was content-encoded and decoding succeeded (possibly
	// partially, for a truncated body). Nil otherwise.
	DecodedBody []byte

	// FirstByte and LastByte are monotonic kernel timestamps (ns) of the
	// events carrying the message's first and last bytes.
	FirstByte int64
	LastByte  int64
}

// Get returns the first value of the named header (case-insensitive).
func (m *Message) Get(name string) (string, bool) {
	if m == nil {
		return "", false
	}
	for _, h := range m.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

// Role is the part the captured process played in the exchange.
type Role uint8

const (
	RoleUnknown Role = iota
	RoleClient       // the process sent the request
	RoleServer       // the process received the request
)

func (r Role) String() string {
	switch r {
	case RoleClient:
		return "client"
	case RoleServer:
		return "server"
	}
	return "unknown"
}

// Flags say what the engine knows it did not see or could not decode.
type Flags uint32

const (
	// Incomplete: bytes of this exchange were lost (ring buffer overflow,
	// capture gap); sizes are still real, the body has holes or ends early.
	Incomplete Flags = 1 << iota
	// RequestTruncated / ResponseTruncated: the body exceeded max_body_bytes.
	RequestTruncated
	ResponseTruncated
	// NoResponse: the connection ended (or the process exited) before a
	// complete response arrived.
	NoResponse
	// ParseError: the stream stopped being valid HTTP; the exchange carries
	// what was parsed before the error.
	ParseError
	// DecodeError: Content-Encoding could not be decoded.
	DecodeError
	// RequestBodyNotInspected / ResponseBodyNotInspected: a non-empty body
	// was not looked at for secrets and personal data (not captured,
	// content type not allowed, undecodable content encoding). A body cut
	// at max_body_bytes is inspected up to the cut (and flagged truncated).
	RequestBodyNotInspected
	ResponseBodyNotInspected
	// PairingInferred: a message start was lost on the connection earlier,
	// and nothing since proves which request this response answers (a
	// client that pipelines before its pipelining could be seen is paired
	// in order). Sequential clients, nearly all, are paired right; the flag
	// says the pairing is the parser's inference, not what the bytes show.
	PairingInferred
)

// Has reports whether every flag in f2 is set.
func (f Flags) Has(f2 Flags) bool { return f&f2 == f2 }

// Names lists the set flags, for logs and records.
func (f Flags) Names() []string {
	var out []string
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

var flagNames = [...]string{"incomplete", "request_truncated", "response_truncated", "no_response", "parse_error", "decode_error",
	"request_body_not_inspected", "response_body_not_inspected", "pairing_inferred"}

// Process is the captured process, cached from /proc when it was first seen
// so that a process that exits right after its exchange is still attributed.
type Process struct {
	PID         int
	PPID        int
	ExePath     string
	ExeName     string
	CommandArgs []string
	Owner       string // user name, or the numeric uid when it has no name
	// UID is the effective user id (process.user.id) when UIDKnown. Read
	// from /proc it is the effective uid; from an exec record it is the uid
	// the kernel reported at exec, which differs only for set-user-ID files.
	UID          uint32
	UIDKnown     bool
	CreationTime time.Time
	ContainerID  string
	PodUID       string // Kubernetes pod UID from the cgroup path, "" outside a pod
}

// Conn identifies the transport the exchange travelled on.
type Conn struct {
	ID     uint64         // engine-unique connection id
	Local  netip.AddrPort // zero when unknown (memory-BIO TLS such as Node.js)
	Remote netip.AddrPort
	TLS    bool
	// Source names the hook that produced the plaintext: "openssl", "gnutls",
	// "go", "socket".
	Source string
}

// Exchange is one HTTP request and its response.
type Exchange struct {
	Role     Role
	Request  *Message
	Response *Message // nil when Flags has NoResponse
	Start    time.Time
	End      time.Time
	Process  Process
	Conn     Conn
	Flags    Flags
	// Reset is set when an HTTP/2 RST_STREAM ended the exchange's stream.
	Reset *StreamReset
	// PII lists the kinds of personal data found in the bodies, sorted
	// (policy.PIIKinds names); nil when none.
	PII []string
}

// StreamReset records the RST_STREAM frame that ended an HTTP/2 stream.
type StreamReset struct {
	// Code is the RFC 9113 section 7 error code (0 NO_ERROR, 8 CANCEL, ...).
	Code uint32
	// ByServer: the responding peer sent it; false: the requesting peer.
	ByServer bool
}
