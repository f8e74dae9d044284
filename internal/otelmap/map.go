package otelmap

import (
	"encoding/hex"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tlstap/tlstap/internal/exchange"
)

// TraceID and SpanID are W3C trace context identifiers.
type (
	TraceID [16]byte
	SpanID  [8]byte
)

func (t TraceID) IsZero() bool   { return t == TraceID{} }
func (s SpanID) IsZero() bool    { return s == SpanID{} }
func (t TraceID) String() string { return hex.EncodeToString(t[:]) }
func (s SpanID) String() string  { return hex.EncodeToString(s[:]) }

// SpanKind mirrors the OpenTelemetry span kinds tlstap produces.
type SpanKind uint8

const (
	SpanKindUnspecified SpanKind = iota
	SpanKindInternal
	SpanKindServer
	SpanKindClient
)

func (k SpanKind) String() string {
	switch k {
	case SpanKindInternal:
		return "internal"
	case SpanKindServer:
		return "server"
	case SpanKindClient:
		return "client"
	}
	return "unspecified"
}

// StatusCode mirrors the OpenTelemetry span status codes.
type StatusCode uint8

const (
	StatusUnset StatusCode = iota
	StatusOK
	StatusError
)

// Severity numbers used for exchange log records (OpenTelemetry log data model).
const (
	SeverityInfo  = 9
	SeverityWarn  = 13
	SeverityError = 17
)

// Span is the neutral form of the span of one exchange.
type Span struct {
	TraceID      TraceID
	SpanID       SpanID
	ParentSpanID SpanID // zero when the request carried no valid traceparent
	TraceState   string // W3C tracestate header, when a traceparent was honoured
	TraceFlags   uint8  // W3C trace flags from the traceparent (sampled = 1)
	Name         string
	Kind         SpanKind
	Start        time.Time
	End          time.Time
	Status       StatusCode
	StatusMsg    string
	Attributes   Attributes
}

// LogRecord is the neutral form of the log record of one exchange.
type LogRecord struct {
	EventName    string
	Timestamp    time.Time // the end of the exchange
	Severity     int32
	SeverityText string
	Body         string // one-line display string
	TraceID      TraceID
	SpanID       SpanID
	TraceFlags   uint8
	Attributes   Attributes
}

// Record is everything one exchange maps to.
type Record struct {
	Span Span
	Log  LogRecord
	// Shared is the number of leading attributes Span.Attributes and
	// Log.Attributes have in common (the log record repeats the span's
	// attributes, except the span headers).
	Shared int
}

// Options tune Map. The zero value is ready to use: default redaction and
// cryptographically random identifiers.
type Options struct {
	// RedactHeaders returns the headers as they may be exported. Nil means
	// RedactSensitiveHeaders.
	RedactHeaders func([]exchange.Header) []exchange.Header
	// SpanHeaders returns the headers of a message that become span
	// attributes http.request.header.<name> / http.response.header.<name>
	// (opt-in per the semantic conventions). Nil means none; every header
	// is on the log record regardless.
	SpanHeaders func(m *exchange.Message, response bool) []exchange.Header
	// ServiceNames name the service of each process (service.name); nil
	// gives every process "unknown_service:<executable name>".
	ServiceNames ServiceNames
	// NewTraceID and NewSpanID generate identifiers. Nil means crypto/rand.
	NewTraceID func() TraceID
	NewSpanID  func() SpanID
}

// Map converts one exchange into its span and log record. ex.Request must be
// non-nil (the engine only emits exchanges that have a request).
//
// Body content attributes alias the exchange's body bytes: the exchange must
// not be modified while the record is in use.
func Map(ex *exchange.Exchange, opts Options) Record {
	m := Mapper{opts: opts, single: true}
	rec := *m.Map(ex)
	// A fresh Mapper's scratch space belongs to this record alone, but the
	// span and the log record must not share their backing arrays: a caller
	// may modify one list without expecting the other to change.
	rec.Span.Attributes = slices.Clone(rec.Span.Attributes)
	return rec
}

// Resource returns the resource attributes of the process that made the
// exchange. hostName is os.Hostname(), passed in; empty omits host.name.
func Resource(p exchange.Process, hostName string, names ServiceNames) Attributes {
	return appendResource(make(Attributes, 0, 11), p, hostName, names)
}

func appendResource(attrs Attributes, p exchange.Process, hostName string, names ServiceNames) Attributes {
	attrs = append(attrs, String(KeyServiceName, names.Resolve(p)))
	attrs = append(attrs, Int(KeyProcessPID, int64(p.PID)))
	if p.PPID > 0 {
		attrs = append(attrs, Int(KeyProcessParentPID, int64(p.PPID)))
	}
	if !p.CreationTime.IsZero() {
		attrs = append(attrs, String(KeyProcessCreationTime, p.CreationTime.UTC().Format(time.RFC3339Nano)))
	}
	if p.ExeName != "" {
		attrs = append(attrs, String(KeyProcessExecutableName, p.ExeName))
	}
	if p.ExePath != "" {
		attrs = append(attrs, String(KeyProcessExecutablePath, p.ExePath))
	}
	if len(p.CommandArgs) > 0 {
		attrs = append(attrs, Strings(KeyProcessCommandArgs, p.CommandArgs))
	}
	if p.Owner != "" {
		attrs = append(attrs, String(KeyProcessOwner, p.Owner))
	}
	if p.UIDKnown {
		attrs = append(attrs, Int(KeyProcessUserID, int64(p.UID)))
	}
	if p.ContainerID != "" {
		attrs = append(attrs, String(KeyContainerID, p.ContainerID))
	}
	if p.PodUID != "" {
		// What k8sattributes associates the pod by: the data is produced
		// on the node, so a connection IP would name the agent's pod.
		attrs = append(attrs, String(KeyK8sPodUID, p.PodUID))
	}
	if hostName != "" {
		attrs = append(attrs, String(KeyHostName, hostName))
	}
	return attrs
}

// ProcessKey identifies a process across PID reuse: two exchanges belong to
// the same resource when their keys are equal.
type ProcessKey struct {
	PID     int
	Created int64 // unix nanoseconds of the creation time, 0 when unknown
}

// KeyOf returns the resource grouping key of p.
func KeyOf(p exchange.Process) ProcessKey {
	k := ProcessKey{PID: p.PID}
	if !p.CreationTime.IsZero() {
		k.Created = p.CreationTime.UnixNano()
	}
	return k
}

// normalizeMethod returns the method as it goes into http.request.method and
// whether it is one of the methods the HTTP semantic conventions name
// (methods are case-sensitive).
func normalizeMethod(m string) (string, bool) {
	switch m {
	case "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "QUERY":
		return m, true
	}
	return "_OTHER", false
}

// errorType returns error.type and whether the span status is Error.
func errorType(ex *exchange.Exchange) (string, bool) {
	resp := ex.Response
	if resp != nil && resp.StatusCode > 0 {
		if resp.StatusCode >= 500 || (resp.StatusCode >= 400 && ex.Role == exchange.RoleClient) {
			return strconv.Itoa(resp.StatusCode), true
		}
		return "", false
	}
	switch {
	case ex.Flags.Has(exchange.ParseError):
		return "parse_error", true
	case ex.Flags.Has(exchange.NoResponse) || resp == nil:
		return "no_response", true
	}
	return "", false
}

// grpcError applies the RPC conventions: every non-OK code is an error on a
// client span; on a server span only the codes that mean a server fault.
func grpcError(code int, role exchange.Role) bool {
	if code == 0 {
		return false
	}
	if role != exchange.RoleServer {
		return true
	}
	switch code {
	case 2, 4, 12, 13, 14, 15: // Unknown, DeadlineExceeded, Unimplemented, Internal, Unavailable, DataLoss
		return true
	}
	return false
}

// grpcCodes are the names of the gRPC status codes, by number.
var grpcCodes = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

// grpcCodeName is rpc.response.status_code of a grpc-status: the code's
// name, or its number for a code gRPC does not define.
func grpcCodeName(code int) string {
	if code >= 0 && code < len(grpcCodes) {
		return grpcCodes[code]
	}
	return strconv.Itoa(code)
}

func protocolVersion(req, resp *exchange.Message) string {
	p := req.Proto
	if p == "" && resp != nil {
		p = resp.Proto
	}
	v, ok := strings.CutPrefix(p, "HTTP/")
	if !ok {
		return ""
	}
	if v == "2.0" {
		v = "2"
	}
	return v
}

func header(m *exchange.Message, name string) string {
	v, _ := m.Get(name)
	return v
}

func addrString(a netip.Addr) string { return a.Unmap().String() }

// urlInfo is what the request target and connection say about the URL.
type urlInfo struct {
	scheme     string
	absolute   bool   // the target is in absolute form: it is url.full as sent
	full       string // absolute URL, "" when the host is unknown (see Mapper.displayString)
	path       string
	query      string
	hasQuery   bool
	serverAddr string
	serverPort int
}

func defaultPort(scheme string) int {
	if scheme == "https" {
		return 443
	}
	return 80
}

// resolveURL derives scheme, host, port, path and query from the request
// target, the Host header (or HTTP/2 :authority) and the connection.
// url.full is assembled with the log body (Mapper.displayString).
func (m *Mapper) resolveURL(ex *exchange.Exchange, req *exchange.Message) urlInfo {
	var u urlInfo
	u.scheme = "http"
	if ex.Conn.TLS {
		u.scheme = "https"
	}
	target := req.Target

	// Absolute-form target (proxy requests): used as is.
	if scheme, rest, ok := cutScheme(target); ok {
		u.scheme = scheme
		u.absolute = true
		authority, pathQuery := rest, ""
		if i := strings.IndexAny(rest, "/?"); i >= 0 {
			authority, pathQuery = rest[:i], rest[i:]
		}
		if at := strings.LastIndexByte(authority, '@'); at >= 0 {
			authority = authority[at+1:]
		}
		u.serverAddr, u.serverPort = splitHostPort(authority, u.scheme)
		u.path, u.query, u.hasQuery = splitPathQuery(pathQuery)
		if u.path == "" {
			u.path = "/"
		}
		return u
	}

	// The authority the client addressed.
	authority := header(req, "Host")
	if authority == "" {
		authority = header(req, ":authority")
	}
	if req.Method == "CONNECT" && authority == "" {
		authority = target // authority-form
	}
	if authority != "" {
		host, port := splitHostPort(authority, "")
		switch {
		case port > 0:
		case ex.Role == exchange.RoleServer && ex.Conn.Local.Port() != 0:
			port = int(ex.Conn.Local.Port())
		default:
			port = defaultPort(u.scheme)
		}
		u.serverAddr, u.serverPort = host, port
	} else {
		// No Host header (HTTP/1.0): the server is the remote end for a
		// client, the local end for a server.
		ap := ex.Conn.Remote
		if ex.Role == exchange.RoleServer {
			ap = ex.Conn.Local
		}
		if ap.Addr().IsValid() {
			u.serverAddr = m.addrString(ap.Addr())
			u.serverPort = int(ap.Port())
		}
	}

	switch {
	case req.Method == "CONNECT" || target == "*":
		// authority-form / asterisk-form: no path.
	default:
		u.path, u.query, u.hasQuery = splitPathQuery(target)
	}
	return u
}

func cutScheme(target string) (scheme, rest string, ok bool) {
	for _, s := range [...]string{"https", "http"} {
		if len(target) > len(s)+3 && strings.EqualFold(target[:len(s)], s) && target[len(s):len(s)+3] == "://" {
			return s, target[len(s)+3:], true
		}
	}
	return "", "", false
}

func splitPathQuery(pq string) (path, query string, hasQuery bool) {
	if i := strings.IndexByte(pq, '#'); i >= 0 {
		pq = pq[:i]
	}
	path, query, hasQuery = strings.Cut(pq, "?")
	return path, query, hasQuery
}

// splitHostPort splits an authority into host and port; without an explicit
// port the scheme's default port is returned (0 when scheme is "").
func splitHostPort(authority, scheme string) (string, int) {
	var host, portStr string
	ok := false
	// Without a colon (the usual Host header) SplitHostPort can only fail,
	// and it allocates its error.
	if strings.IndexByte(authority, ':') >= 0 {
		var err error
		host, portStr, err = net.SplitHostPort(authority)
		ok = err == nil
	}
	if !ok {
		host = strings.TrimSuffix(strings.TrimPrefix(authority, "["), "]")
		portStr = ""
	}
	if portStr != "" {
		if p, err := strconv.Atoi(portStr); err == nil && p > 0 && p < 65536 {
			return host, p
		}
	}
	if scheme == "" {
		return host, 0
	}
	return host, defaultPort(scheme)
}

// ParseTraceparent parses a W3C traceparent header value
// ("00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>").
func ParseTraceparent(v string) (TraceID, SpanID, uint8, bool) {
	var tid TraceID
	var sid SpanID
	v = strings.TrimSpace(v)
	if len(v) < 55 {
		return tid, sid, 0, false
	}
	version, ok := hexByte(v[0:2])
	if !ok || version == 0xff || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return tid, sid, 0, false
	}
	// Version 00 is exactly 55 characters; later versions may append fields.
	if (version == 0 && len(v) != 55) || (len(v) > 55 && v[55] != '-') {
		return tid, sid, 0, false
	}
	if !isLowerHex(v[3:35]) || !isLowerHex(v[36:52]) {
		return tid, sid, 0, false
	}
	if _, err := hex.Decode(tid[:], []byte(v[3:35])); err != nil {
		return TraceID{}, sid, 0, false
	}
	if _, err := hex.Decode(sid[:], []byte(v[36:52])); err != nil {
		return TraceID{}, SpanID{}, 0, false
	}
	flags, ok := hexByte(v[53:55])
	if !ok || tid.IsZero() || sid.IsZero() {
		return TraceID{}, SpanID{}, 0, false
	}
	return tid, sid, flags, true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func hexByte(s string) (uint8, bool) {
	if len(s) != 2 || !isLowerHex(s) {
		return 0, false
	}
	var b [1]byte
	if _, err := hex.Decode(b[:], []byte(s)); err != nil {
		return 0, false
	}
	return b[0], true
}
