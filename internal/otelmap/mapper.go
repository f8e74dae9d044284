package otelmap

import (
	crand "crypto/rand"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/h2parse"
)

// Mapper maps exchanges one after another. Between exchanges it keeps
// scratch space for the attribute lists, random bytes for identifiers,
// header keys already built and the last peer address formatted, so that a
// front end converting a batch pays for none of them per exchange.
//
// What Map and Resource return lives in that scratch space: it is valid
// until the next call of the same method. The strings in it stay valid, so
// a front end that copies the attributes into its own format (as pdata
// does) may keep them. A Mapper is not safe for concurrent use.
type Mapper struct {
	opts   Options
	single bool // used for one exchange only (Map): build no caches

	rec      Record
	logAttrs Attributes // common attributes, then the log record's own
	spanOwn  Attributes // common attributes, then the span's own (span headers)
	resource Attributes
	values   []string // header values of the current exchange, sliced per attribute
	hkeys    []string // attribute key of each header of the message at hand
	buf      []byte

	// Header attribute keys by header name as sent, one map per prefix.
	// Bounded: names are whatever peers send.
	keyCache [2]map[string]string

	lastAddr    netip.Addr
	lastAddrStr string

	rnd     [randBufSize]byte
	rndPos  int
	rndLen  int
	rndNext int // bytes to read at the next refill
}

const (
	// maxCommonAttributes bounds the attributes the span and the log record
	// share (those of a server span with every optional one).
	maxCommonAttributes = 26

	randBufSize     = 32 * (16 + 8) // trace and span ids of 32 exchanges
	maxCachedKeys   = 256
	reqHeaderCache  = 0
	respHeaderCache = 1
)

// NewMapper returns a Mapper using opts (see Options).
func NewMapper(opts Options) *Mapper {
	return &Mapper{opts: opts}
}

// Map converts one exchange into its span and log record. ex.Request must be
// non-nil (the engine only emits exchanges that have a request).
//
// The first Record.Shared attributes of the span and of the log record are
// the same, so a front end may build them once and copy them. Body content
// attributes alias the exchange's body bytes: the exchange must not be
// modified while the record, or anything built from it without copying the
// bodies, is in use.
func (m *Mapper) Map(ex *exchange.Exchange) *Record {
	req := ex.Request
	if req == nil {
		req = &exchange.Message{}
	}
	resp := ex.Response

	rec := &m.rec
	*rec = Record{}
	span, log := &rec.Span, &rec.Log
	m.values = m.values[:0]

	u := m.resolveURL(ex, req)
	method, methodKnown := normalizeMethod(req.Method)
	log.Body, u.full = m.displayString(req, resp, &u)

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
		span.TraceID = m.newTraceID()
		span.TraceFlags = 1
	}
	span.SpanID = m.newSpanID()

	// Attributes, in a stable order. The log record repeats the span's
	// common attributes, so they are built once, in the log record's list.
	attrs := m.logAttrs[:0]
	if n := maxCommonAttributes + len(req.Headers) + 2; cap(attrs) < n {
		if resp != nil {
			n += len(resp.Headers)
		}
		attrs = make(Attributes, 0, n)
	}
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
	} else {
		if u.full != "" {
			attrs = append(attrs, String(KeyURLFull, u.full))
		}
		// Client spans: url.scheme too, so that metrics and filters need
		// not parse url.full.
		attrs = append(attrs, String(KeyURLScheme, u.scheme))
	}
	if u.serverAddr != "" {
		attrs = append(attrs, String(KeyServerAddress, u.serverAddr))
		if u.serverPort > 0 {
			attrs = append(attrs, Int(KeyServerPort, int64(u.serverPort)))
		}
	}
	remote := ex.Conn.Remote
	if remote.Addr().IsValid() {
		peer := m.addrString(remote.Addr())
		if ex.Role == exchange.RoleServer {
			attrs = append(attrs, String(KeyClientAddress, peer))
			if remote.Port() != 0 {
				attrs = append(attrs, Int(KeyClientPort, int64(remote.Port())))
			}
		}
		attrs = append(attrs, String(KeyNetworkPeerAddress, peer))
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
	if svc, meth, code, ok := h2parse.GRPCInfo(ex); ok {
		// gRPC: RPC conventions on top of the HTTP ones; the span is named
		// after the RPC, and its status follows grpc-status, not :status.
		span.Name = rpcName(req.Target, svc, meth)
		attrs = append(attrs, String(KeyRPCSystemName, "grpc"), String(KeyRPCMethod, span.Name))
		if code >= 0 {
			name := grpcCodeName(code)
			attrs = append(attrs, String(KeyRPCResponseStatusCode, name))
			if grpcError(code, ex.Role) {
				errType, isErr = name, true
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
	if len(ex.PII) > 0 {
		attrs = append(attrs, Strings(KeyTlstapPIITypes, ex.PII))
	}
	common := len(attrs)
	rec.Shared = common

	if isErr {
		span.Status = StatusError
		if resp == nil || resp.StatusCode == 0 {
			// No status code explains the error: say what happened.
			span.StatusMsg = errType
		}
	}

	span.Attributes = attrs[:common:common]
	if m.opts.SpanHeaders != nil {
		reqHs := m.opts.SpanHeaders(req, false)
		var respHs []exchange.Header
		if resp != nil {
			respHs = m.opts.SpanHeaders(resp, true)
		}
		if len(reqHs) > 0 || len(respHs) > 0 {
			own := append(m.spanOwn[:0], attrs[:common]...)
			own = m.appendHeaders(own, reqHeaderCache, reqHs, false)
			own = m.appendHeaders(own, respHeaderCache, respHs, false)
			m.spanOwn = own
			span.Attributes = own[:len(own):len(own)]
		}
	}

	// Log record: the span's common attributes plus headers and bodies.
	redact := m.opts.RedactHeaders
	reqHs := req.Headers
	var respHs []exchange.Header
	if resp != nil {
		respHs = resp.Headers
	}
	if redact != nil {
		reqHs = redact(reqHs)
		if resp != nil {
			respHs = redact(respHs)
		}
	}
	attrs = m.appendHeaders(attrs, reqHeaderCache, reqHs, redact == nil)
	attrs = m.appendHeaders(attrs, respHeaderCache, respHs, redact == nil)
	if kv, ok := bodyContent(KeyHTTPRequestBodyContent, req); ok {
		attrs = append(attrs, kv)
	}
	if kv, ok := bodyContent(KeyHTTPResponseBodyContent, resp); ok {
		attrs = append(attrs, kv)
	}
	m.logAttrs = attrs

	severity, sevText := int32(SeverityInfo), "INFO"
	switch {
	case isErr:
		severity, sevText = SeverityError, "ERROR"
	case resp != nil && resp.StatusCode >= 400:
		severity, sevText = SeverityWarn, "WARN"
	}
	log.EventName = EventName
	log.Timestamp = ex.End
	if log.Timestamp.IsZero() {
		log.Timestamp = ex.Start
	}
	log.Severity, log.SeverityText = severity, sevText
	log.TraceID, log.SpanID, log.TraceFlags = span.TraceID, span.SpanID, span.TraceFlags
	log.Attributes = attrs[:len(attrs):len(attrs)]
	return rec
}

// Resource is the package-level Resource built in the Mapper's scratch
// space: the list is valid until the next call.
func (m *Mapper) Resource(p exchange.Process, hostName string) Attributes {
	m.resource = appendResource(m.resource[:0], p, hostName, m.opts.ServiceNames)
	return m.resource[:len(m.resource):len(m.resource)]
}

// rpcName is service + "/" + method. GRPCInfo cuts both out of the request
// path, so the name is usually that path without its slash and query, and
// needs no new string.
func rpcName(target, svc, meth string) string {
	p := target
	if q := strings.IndexByte(p, '?'); q >= 0 {
		p = p[:q]
	}
	if n := len(svc); len(p) == n+len(meth)+2 && p[0] == '/' && p[1:1+n] == svc && p[1+n] == '/' && p[2+n:] == meth {
		return p[1:]
	}
	return svc + "/" + meth
}

// displayString returns the one-line log body, "GET https://host/path -> 200",
// and url.full. Both come from one allocation: url.full is part of the body
// whenever it was not sent as is.
func (m *Mapper) displayString(req, resp *exchange.Message, u *urlInfo) (body, full string) {
	// Method, scheme, host, port, target, status: one growth at most.
	b := slices.Grow(m.buf[:0], len(req.Method)+len(req.Target)+len(u.serverAddr)+48)
	if req.Method == "" {
		b = append(b, '?')
	} else {
		b = append(b, req.Method...)
	}
	b = append(b, ' ')
	start := len(b)
	switch {
	case u.absolute:
		b = append(b, req.Target...)
	case u.serverAddr != "":
		b = append(b, u.scheme...)
		b = append(b, "://"...)
		if strings.IndexByte(u.serverAddr, ':') >= 0 {
			b = append(b, '[')
			b = append(b, u.serverAddr...)
			b = append(b, ']')
		} else {
			b = append(b, u.serverAddr...)
		}
		if u.serverPort > 0 && u.serverPort != defaultPort(u.scheme) {
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(u.serverPort), 10)
		}
		if strings.HasPrefix(req.Target, "/") {
			b = append(b, req.Target...)
		}
	case req.Target != "":
		b = append(b, req.Target...)
	default:
		b = append(b, '?')
	}
	end := len(b)
	b = append(b, " -> "...)
	if resp != nil && resp.StatusCode > 0 {
		b = strconv.AppendInt(b, int64(resp.StatusCode), 10)
	} else {
		b = append(b, "no response"...)
	}
	m.buf = b
	body = string(b)
	switch {
	case u.absolute:
		full = req.Target
	case u.serverAddr != "":
		full = body[start:end]
	}
	return body, full
}

// appendHeaders adds one string-slice attribute per distinct header name
// (lowercased), values in wire order. redact applies the default redaction
// on the way (RedactSensitiveHeaders without its copy).
func (m *Mapper) appendHeaders(attrs Attributes, which int, hs []exchange.Header, redact bool) Attributes {
	if len(hs) == 0 {
		return attrs
	}
	keys := m.hkeys[:0]
	for _, h := range hs {
		if strings.HasPrefix(h.Name, ":") {
			keys = append(keys, "") // HTTP/2 pseudo-headers are reflected in other attributes
			continue
		}
		keys = append(keys, m.headerKey(which, h.Name))
	}
	m.hkeys = keys
next:
	for i, k := range keys {
		if k == "" {
			continue
		}
		for _, prev := range keys[:i] {
			if prev == k {
				continue next // already added with the first header of that name
			}
		}
		start := len(m.values)
		for j := i; j < len(hs); j++ {
			if keys[j] != k {
				continue
			}
			v := hs[j].Value
			if redact && isSensitiveHeader(hs[j].Name) {
				v = Redacted
			}
			m.values = append(m.values, v)
		}
		// The values array is reused by the next exchange: a capped slice
		// keeps an append by the caller from writing into its neighbour.
		attrs = append(attrs, Strings(k, m.values[start:len(m.values):len(m.values)]))
	}
	return attrs
}

// headerKey returns prefix + the lowercased name, from the cache when the
// same name was seen before.
func (m *Mapper) headerKey(which int, name string) string {
	cache := m.keyCache[which]
	if k, ok := cache[name]; ok {
		return k
	}
	prefix := KeyHTTPRequestHeaderPrefix
	if which == respHeaderCache {
		prefix = KeyHTTPResponseHeaderPrefix
	}
	var k string
	if isASCII(name) {
		b := append(m.buf[:0], prefix...)
		for i := 0; i < len(name); i++ {
			c := name[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b = append(b, c)
		}
		m.buf = b
		k = string(b)
	} else {
		k = prefix + strings.ToLower(name)
	}
	if !m.single {
		if cache == nil {
			cache = make(map[string]string, 16)
			m.keyCache[which] = cache
		}
		if len(cache) < maxCachedKeys {
			cache[name] = k
		}
	}
	return k
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// bodyContent returns the body attribute of m. The value aliases the body:
// copying up to max_body_bytes per message would double the bytes the
// conversion allocates, for data the exchange already owns and nobody
// modifies once it is emitted.
func bodyContent(key string, m *exchange.Message) (KeyValue, bool) {
	if m == nil {
		return KeyValue{}, false
	}
	b := m.Body
	if m.DecodedBody != nil {
		b = m.DecodedBody
	}
	if m.BodyTruncated {
		// The body limit may have split a character: cut the body on the
		// character boundary before it, so that text stays a string.
		b = exchange.CutIncompleteRune(b)
	}
	if len(b) == 0 {
		return KeyValue{}, false
	}
	if utf8.Valid(b) {
		return String(key, unsafe.String(&b[0], len(b))), true
	}
	return Bytes(key, b), true
}

// addrString formats a peer address. Exchanges come in runs from the same
// peers, so the last one is remembered.
func (m *Mapper) addrString(a netip.Addr) string {
	if a == m.lastAddr && m.lastAddrStr != "" {
		return m.lastAddrStr
	}
	s := addrString(a)
	m.lastAddr, m.lastAddrStr = a, s
	return s
}

func (m *Mapper) newTraceID() TraceID {
	if m.opts.NewTraceID != nil {
		return m.opts.NewTraceID()
	}
	var t TraceID
	for t.IsZero() {
		m.random(t[:])
	}
	return t
}

func (m *Mapper) newSpanID() SpanID {
	if m.opts.NewSpanID != nil {
		return m.opts.NewSpanID()
	}
	var s SpanID
	for s.IsZero() {
		m.random(s[:])
	}
	return s
}

// random fills p from crypto/rand through a buffer: on kernels without the
// getrandom vDSO every read is a system call, two per exchange otherwise.
// The buffer grows from one exchange's worth, so a Mapper used once reads
// no more than it needs.
func (m *Mapper) random(p []byte) {
	if m.rndLen-m.rndPos < len(p) {
		n := max(m.rndNext, 16+8, len(p))
		n = min(n, len(m.rnd))
		_, _ = crand.Read(m.rnd[:n])
		m.rndPos, m.rndLen = 0, n
		m.rndNext = 2 * n
	}
	copy(p, m.rnd[m.rndPos:m.rndLen])
	m.rndPos += len(p)
}
