package otelmap

import (
	crand "crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/h2parse"
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
	// NewTraceID and NewSpanID generate identifiers. Nil means crypto/rand.
	NewTraceID func() TraceID
	NewSpanID  func() SpanID
}

// Map converts one exchange into its span and log record. ex.Request must be
// non-nil (the engine only emits exchanges that have a request).
func Map(ex *exchange.Exchange, opts Options) Record {
	req := ex.Request
	if req == nil {
		req = &exchange.Message{}
	}
	resp := ex.Response

	u := resolveURL(ex, req)
	method, methodKnown := normalizeMethod(req.Method)

	var span Span
	span.Start, span.End = ex.Start, ex.End
	switch ex.Role {
	case exchange.RoleClient:
		span.Kind = SpanKindClient
	case exchange.RoleServer:
		span.Kind = SpanKindServer
	default:
		span.Kind = SpanKindInternal
	}
	span.Name = method
	if !methodKnown {
		// Semantic conventions: "{method}" is "HTTP" when the method is _OTHER.
		span.Name = "HTTP"
	}

	// Trace context: join the application's trace when the request carries
	// a valid W3C traceparent.
	if tid, pid, flags, ok := ParseTraceparent(header(req, "traceparent")); ok {
		span.TraceID, span.ParentSpanID, span.TraceFlags = tid, pid, flags
		span.TraceState = header(req, "tracestate")
	} else {
		span.TraceID = newTraceID(opts)
		span.TraceFlags = 1
	}
	span.SpanID = newSpanID(opts)

	// Attributes, in a stable order.
	attrs := make(Attributes, 0, 24)
	attrs = append(attrs, String(KeyHTTPRequestMethod, method))
	if !methodKnown {
		attrs = append(attrs, String(KeyHTTPRequestMethodOriginal, req.Method))
	}
	if ex.Role == exchange.RoleServer {
		if u.path != "" {
			attrs = append(attrs, String(KeyURLPath, u.path))
		}
		if u.hasQuery {
			attrs = append(attrs, String(KeyURLQuery, u.query))
		}
		attrs = append(attrs, String(KeyURLScheme, u.scheme))
	} else if u.full != "" {
		attrs = append(attrs, String(KeyURLFull, u.full))
	}
	if u.serverAddr != "" {
		attrs = append(attrs, String(KeyServerAddress, u.serverAddr))
		if u.serverPort > 0 {
			attrs = append(attrs, Int(KeyServerPort, int64(u.serverPort)))
		}
	}
	remote := ex.Conn.Remote
	if ex.Role == exchange.RoleServer && remote.Addr().IsValid() {
		attrs = append(attrs, String(KeyClientAddress, addrString(remote.Addr())))
		if remote.Port() != 0 {
			attrs = append(attrs, Int(KeyClientPort, int64(remote.Port())))
		}
	}
	if remote.Addr().IsValid() {
		attrs = append(attrs, String(KeyNetworkPeerAddress, addrString(remote.Addr())))
		if remote.Port() != 0 {
			attrs = append(attrs, Int(KeyNetworkPeerPort, int64(remote.Port())))
		}
	}
	attrs = append(attrs, String(KeyNetworkProtocolName, "http"))
	if v := protocolVersion(req, resp); v != "" {
		attrs = append(attrs, String(KeyNetworkProtocolVersion, v))
	}
	attrs = append(attrs, String(KeyNetworkTransport, "tcp"))
	if resp != nil && resp.StatusCode > 0 {
		attrs = append(attrs, Int(KeyHTTPResponseStatusCode, int64(resp.StatusCode)))
	}
	if ua, ok := req.Get("User-Agent"); ok {
		attrs = append(attrs, String(KeyUserAgentOriginal, ua))
	}
	attrs = append(attrs, Int(KeyHTTPRequestBodySize, req.BodySize))
	if resp != nil {
		attrs = append(attrs, Int(KeyHTTPResponseBodySize, resp.BodySize))
	}
	errType, isErr := errorType(ex)
	if svc, m, code, ok := h2parse.GRPCInfo(ex); ok {
		// gRPC: RPC conventions on top of the HTTP ones; the span is named
		// after the RPC, and its status follows grpc-status, not :status.
		span.Name = svc + "/" + m
		attrs = append(attrs, String(KeyRPCSystem, "grpc"), String(KeyRPCService, svc), String(KeyRPCMethod, m))
		if code >= 0 {
			attrs = append(attrs, Int(KeyRPCGRPCStatusCode, int64(code)))
			if grpcError(code, ex.Role) {
				errType, isErr = strconv.Itoa(code), true
			} else if resp != nil && resp.StatusCode < 400 {
				errType, isErr = "", false
			}
		}
	}
	if errType != "" {
		attrs = append(attrs, String(KeyErrorType, errType))
	}
	if names := ex.Flags.Names(); len(names) > 0 {
		attrs = append(attrs, Strings(KeyTlstapFlags, names))
	}
	if ex.Conn.Source != "" {
		attrs = append(attrs, String(KeyTlstapTLSLibrary, ex.Conn.Source))
	}
	attrs = append(attrs, Int(KeyTlstapConnectionID, int64(ex.Conn.ID)))

	if isErr {
		span.Status = StatusError
		if resp == nil || resp.StatusCode == 0 {
			// No status code explains the error: say what happened.
			span.StatusMsg = errType
		}
	}
	common := len(attrs) // the log record repeats these, then adds every header
	if opts.SpanHeaders != nil {
		attrs = appendHeaders(attrs, KeyHTTPRequestHeaderPrefix, opts.SpanHeaders(req, false))
		if resp != nil {
			attrs = appendHeaders(attrs, KeyHTTPResponseHeaderPrefix, opts.SpanHeaders(resp, true))
		}
	}
	span.Attributes = attrs

	// Log record: the span's attributes plus headers and bodies.
	redact := opts.RedactHeaders
	if redact == nil {
		redact = RedactSensitiveHeaders
	}
	logAttrs := make(Attributes, common, common+len(req.Headers)+8)
	copy(logAttrs, attrs[:common])
	logAttrs = appendHeaders(logAttrs, KeyHTTPRequestHeaderPrefix, redact(req.Headers))
	if resp != nil {
		logAttrs = appendHeaders(logAttrs, KeyHTTPResponseHeaderPrefix, redact(resp.Headers))
	}
	if kv, ok := bodyContent(KeyHTTPRequestBodyContent, req); ok {
		logAttrs = append(logAttrs, kv)
	}
	if kv, ok := bodyContent(KeyHTTPResponseBodyContent, resp); ok {
		logAttrs = append(logAttrs, kv)
	}

	severity, sevText := int32(SeverityInfo), "INFO"
	switch {
	case isErr:
		severity, sevText = SeverityError, "ERROR"
	case resp != nil && resp.StatusCode >= 400:
		severity, sevText = SeverityWarn, "WARN"
	}

	log := LogRecord{
		EventName:    EventName,
		Timestamp:    ex.End,
		Severity:     severity,
		SeverityText: sevText,
		Body:         displayString(req, resp, u),
		TraceID:      span.TraceID,
		SpanID:       span.SpanID,
		TraceFlags:   span.TraceFlags,
		Attributes:   logAttrs,
	}
	if log.Timestamp.IsZero() {
		log.Timestamp = ex.Start
	}
	return Record{Span: span, Log: log}
}

// Resource returns the resource attributes of the process that made the
// exchange. hostName is os.Hostname(), passed in; empty omits host.name.
func Resource(p exchange.Process, hostName string) Attributes {
	attrs := make(Attributes, 0, 9)
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
	if p.ContainerID != "" {
		attrs = append(attrs, String(KeyContainerID, p.ContainerID))
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

// knownMethods are the methods the HTTP semantic conventions name.
var knownMethods = map[string]bool{
	"CONNECT": true, "DELETE": true, "GET": true, "HEAD": true, "OPTIONS": true,
	"PATCH": true, "POST": true, "PUT": true, "TRACE": true, "QUERY": true,
}

// normalizeMethod returns the method as it goes into http.request.method and
// whether it is a known method (methods are case-sensitive).
func normalizeMethod(m string) (string, bool) {
	if knownMethods[m] {
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
	full       string // absolute URL, "" when the host is unknown
	display    string // for the log body: full, else the target
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
func resolveURL(ex *exchange.Exchange, req *exchange.Message) urlInfo {
	var u urlInfo
	u.scheme = "http"
	if ex.Conn.TLS {
		u.scheme = "https"
	}
	target := req.Target

	// Absolute-form target (proxy requests): used as is.
	if scheme, rest, ok := cutScheme(target); ok {
		u.scheme = scheme
		u.full = target
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
		u.display = u.full
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
		u.serverAddr, u.serverPort = splitHostPort(authority, u.scheme)
		if ex.Role == exchange.RoleServer && !hasExplicitPort(authority) && ex.Conn.Local.Port() != 0 {
			u.serverPort = int(ex.Conn.Local.Port())
		}
	} else {
		// No Host header (HTTP/1.0): the server is the remote end for a
		// client, the local end for a server.
		ap := ex.Conn.Remote
		if ex.Role == exchange.RoleServer {
			ap = ex.Conn.Local
		}
		if ap.Addr().IsValid() {
			u.serverAddr = addrString(ap.Addr())
			u.serverPort = int(ap.Port())
		}
	}

	switch {
	case req.Method == "CONNECT" || target == "*":
		// authority-form / asterisk-form: no path.
	default:
		u.path, u.query, u.hasQuery = splitPathQuery(target)
	}

	if u.serverAddr != "" {
		var b strings.Builder
		b.WriteString(u.scheme)
		b.WriteString("://")
		host := u.serverAddr
		if strings.IndexByte(host, ':') >= 0 {
			host = "[" + host + "]"
		}
		b.WriteString(host)
		if u.serverPort > 0 && u.serverPort != defaultPort(u.scheme) {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(u.serverPort))
		}
		if strings.HasPrefix(target, "/") {
			b.WriteString(target)
		}
		u.full = b.String()
		u.display = u.full
	} else {
		u.display = target
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

func hasExplicitPort(authority string) bool {
	_, port := splitHostPort(authority, "")
	return port > 0
}

// splitHostPort splits an authority into host and port; without an explicit
// port the scheme's default port is returned (0 when scheme is "").
func splitHostPort(authority, scheme string) (string, int) {
	host, portStr, err := net.SplitHostPort(authority)
	if err != nil {
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

// appendHeaders adds one string-slice attribute per distinct header name
// (lowercased), values in wire order.
func appendHeaders(attrs Attributes, prefix string, hs []exchange.Header) Attributes {
	start := len(attrs)
	for _, h := range hs {
		if strings.HasPrefix(h.Name, ":") {
			continue // HTTP/2 pseudo-headers are reflected in other attributes
		}
		key := prefix + strings.ToLower(h.Name)
		found := false
		for i := start; i < len(attrs); i++ {
			if attrs[i].Key == key {
				attrs[i].Value.Strings = append(attrs[i].Value.Strings, h.Value)
				found = true
				break
			}
		}
		if !found {
			attrs = append(attrs, Strings(key, []string{h.Value}))
		}
	}
	return attrs
}

func bodyContent(key string, m *exchange.Message) (KeyValue, bool) {
	if m == nil {
		return KeyValue{}, false
	}
	b := m.Body
	if m.DecodedBody != nil {
		b = m.DecodedBody
	}
	if len(b) == 0 {
		return KeyValue{}, false
	}
	if utf8.Valid(b) {
		return String(key, string(b)), true
	}
	return Bytes(key, append([]byte(nil), b...)), true
}

// DisplayString is the one-line log body: "GET https://host/path -> 200".
func displayString(req, resp *exchange.Message, u urlInfo) string {
	var b strings.Builder
	m := req.Method
	if m == "" {
		m = "?"
	}
	b.WriteString(m)
	b.WriteByte(' ')
	if u.display != "" {
		b.WriteString(u.display)
	} else {
		b.WriteString("?")
	}
	b.WriteString(" -> ")
	if resp != nil && resp.StatusCode > 0 {
		b.WriteString(strconv.Itoa(resp.StatusCode))
	} else {
		b.WriteString("no response")
	}
	return b.String()
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

func newTraceID(o Options) TraceID {
	if o.NewTraceID != nil {
		return o.NewTraceID()
	}
	var t TraceID
	for t.IsZero() {
		_, _ = crand.Read(t[:])
	}
	return t
}

func newSpanID(o Options) SpanID {
	if o.NewSpanID != nil {
		return o.NewSpanID()
	}
	var s SpanID
	for s.IsZero() {
		_, _ = crand.Read(s[:])
	}
	return s
}
