package policy

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/tlstap/tlstap/internal/exchange"
)

// Outcome is what Apply decided.
type Outcome uint8

const (
	Keep       Outcome = iota // emit the (now redacted) exchange
	Filtered                  // dropped by a filter; Verdict.Reason says which
	SampledOut                // dropped by sampling
)

func (o Outcome) String() string {
	switch o {
	case Keep:
		return "keep"
	case Filtered:
		return "filtered"
	case SampledOut:
		return "sampled_out"
	}
	return "unknown"
}

// Reason names the filter that dropped an exchange.
type Reason uint8

const (
	ReasonNone Reason = iota
	ReasonExecutable
	ReasonPID
	ReasonContainerID
	ReasonHost
	ReasonPort
	ReasonDirection
	ReasonLoopback
	numReasons
)

var reasonNames = [numReasons]string{"", "executable", "pid", "container_id", "host", "port", "direction", "loopback"}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons lists every filter reason, for metrics.
func Reasons() []Reason {
	return []Reason{ReasonExecutable, ReasonPID, ReasonContainerID, ReasonHost, ReasonPort, ReasonDirection, ReasonLoopback}
}

// Verdict is the result of Apply.
type Verdict struct {
	Outcome Outcome
	Reason  Reason // set when Outcome is Filtered
}

// Keep reports whether the exchange must be emitted.
func (v Verdict) Keep() bool { return v.Outcome == Keep }

func (v Verdict) String() string {
	if v.Outcome == Filtered {
		return "filtered:" + v.Reason.String()
	}
	return v.Outcome.String()
}

// Stats is a snapshot of the policy counters.
type Stats struct {
	Kept       uint64
	SampledOut uint64
	// Filtered counts dropped exchanges by Reason.String(); every reason is
	// present, zero or not.
	Filtered map[string]uint64
	// Redactions applied to kept exchanges.
	HeadersRedacted         uint64 // header values replaced
	QueryParametersRedacted uint64 // query parameter values replaced
	URLCredentialsRedacted  uint64 // user:password@ replaced
	BodyMatchesRedacted     uint64 // body pattern matches replaced
	FieldsRedacted          uint64 // values of secret fields replaced in bodies
	SecretValuesRedacted    uint64 // secrets recognised by their shape replaced
	PIIRedacted             uint64 // personal data values replaced (pii.redact)
	// PII counts exchanges with personal data by kind (PIIKinds); every
	// kind is present, zero or not.
	PII map[string]uint64
	// BodiesNotInspected counts non-empty bodies that were not inspected
	// for secrets and personal data: not captured (bodies.capture off, no
	// byte captured), content type not allowed (binary), undecodable
	// content encoding.
	BodiesNotInspected uint64
	// Bodies removed from kept exchanges (their sizes stay).
	BodiesSizeOnly    uint64 // content type not allowed, or undecodable content encoding
	BodiesNotCaptured uint64 // bodies.capture is off
}

// FilteredTotal sums Filtered.
func (s Stats) FilteredTotal() uint64 {
	var n uint64
	for _, v := range s.Filtered {
		n += v
	}
	return n
}

type counters struct {
	kept, sampledOut                    atomic.Uint64
	filtered                            [numReasons]atomic.Uint64
	headers, params, creds, bodyMatches atomic.Uint64
	bodiesSizeOnly, bodiesNotCaptured   atomic.Uint64
	fields, values, pii, notInspected   atomic.Uint64
	piiKinds                            [numPIIKinds]atomic.Uint64
}

// Policy is a compiled Config. Apply and ProcessExcluded are safe for
// concurrent use.
type Policy struct {
	include, exclude matcher
	hasProcRules     bool
	direction        string
	loopback         bool
	needDest         bool
	sampler          sampler
	headers          nameSet
	url              urlRedactor
	patterns         []compiledPattern
	capture          bool
	contentTypes     []string // lowercase
	allTypes         bool
	textTypes        bool // text/* is allowed: so is any body with a charset
	spanReq, spanRes nameSet
	insp             inspector

	stats counters
}

// New compiles cfg: globs, regular expressions and lookup tables are built
// once here. The error names every invalid field.
func New(cfg Config) (*Policy, error) { return compile(&cfg) }

func compile(c *Config) (*Policy, error) {
	var errs errList
	p := &Policy{loopback: c.Filters.Loopback, capture: c.Bodies.Capture}

	checkMatch(&errs, "filters.include", &c.Filters.Include)
	checkMatch(&errs, "filters.exclude", &c.Filters.Exclude)
	p.include = newMatcher(&c.Filters.Include)
	p.exclude = newMatcher(&c.Filters.Exclude)
	p.hasProcRules = p.include.hasProc() || p.exclude.hasProc()
	switch c.Filters.Direction {
	case DirectionBoth, DirectionEgress, DirectionIngress:
		p.direction = c.Filters.Direction
	case "":
		p.direction = DirectionBoth
	default:
		errs.add("filters.direction", "%q is not one of egress, ingress, both", c.Filters.Direction)
	}

	checkRatio(&errs, "sampling.ratio", c.Sampling.Ratio)
	p.sampler.ratio = c.Sampling.Ratio
	hosts := make([]string, 0, len(c.Sampling.PerHost))
	for h := range c.Sampling.PerHost {
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	for _, h := range hosts {
		r := c.Sampling.PerHost[h]
		f := "sampling.per_host[" + strconv.Quote(h) + "]"
		checkRatio(&errs, f, r)
		if h == "" {
			errs.add(f, "empty host")
			continue
		}
		if err := validGlob(h); err != nil {
			errs.add(f, "bad pattern: %v", err)
			continue
		}
		p.sampler.add(strings.ToLower(h), r)
	}
	p.sampler.finish()

	red := &c.Redaction
	p.headers = newNameSet(&errs, "redaction.headers", red.Headers)
	p.headers.extend(&errs, "redaction.extra_headers", red.ExtraHeaders)
	p.url.credentials = red.URLCredentials
	for i, q := range slices.Concat(red.QueryParameters, red.ExtraQueryParameters) {
		f := fmt.Sprintf("redaction.query_parameters[%d]", i)
		if i >= len(red.QueryParameters) {
			f = fmt.Sprintf("redaction.extra_query_parameters[%d]", i-len(red.QueryParameters))
		}
		if q == "" {
			errs.add(f, "empty name")
			continue
		}
		p.url.params = append(p.url.params, q)
	}
	seen := map[string]string{}
	for i, bp := range red.BodyPatterns {
		if cp, ok := compilePattern(&errs, fmt.Sprintf("redaction.body_patterns[%d]", i), bp, seen); ok {
			p.patterns = append(p.patterns, cp)
		}
	}
	for i, bp := range red.ExtraBodyPatterns {
		if cp, ok := compilePattern(&errs, fmt.Sprintf("redaction.extra_body_patterns[%d]", i), bp, seen); ok {
			p.patterns = append(p.patterns, cp)
		}
	}

	for i, ct := range c.Bodies.ContentTypes {
		f := fmt.Sprintf("bodies.content_types[%d]", i)
		ct = strings.ToLower(strings.TrimSpace(ct))
		switch {
		case ct == "":
			errs.add(f, "empty content type")
		case ct == "*" || ct == "*/*":
			p.allTypes = true
		case strings.ContainsAny(ct, "; \t"):
			errs.add(f, "%q: give the media type without parameters", c.Bodies.ContentTypes[i])
		case !strings.Contains(ct, "/"):
			errs.add(f, "%q is not a media type (type/subtype)", c.Bodies.ContentTypes[i])
		default:
			p.contentTypes = append(p.contentTypes, ct)
			p.textTypes = p.textTypes || foldGlob(ct, "text/plain")
		}
	}

	p.insp.compile(&errs, red, &c.PII)
	p.url.fields = &p.insp.fields

	p.spanReq = newNameSet(&errs, "span_headers.request", c.SpanHeaders.Request)
	p.spanRes = newNameSet(&errs, "span_headers.response", c.SpanHeaders.Response)

	p.needDest = len(p.include.hosts) > 0 || len(p.include.prefixes) > 0 || len(p.include.ports) > 0 ||
		len(p.exclude.hosts) > 0 || len(p.exclude.prefixes) > 0 || len(p.exclude.ports) > 0 ||
		!p.sampler.uniform()
	if err := errs.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// matcher is a compiled Match.
type matcher struct {
	exes       []string
	pids       []int
	containers []string
	hosts      []string // lowercase globs
	prefixes   []netip.Prefix
	ports      []int
}

func newMatcher(m *Match) matcher {
	var r matcher
	for _, x := range m.Executables {
		if x != "" && validGlob(x) == nil {
			r.exes = append(r.exes, x)
		}
	}
	r.pids = slices.Clone(m.PIDs)
	for _, x := range m.ContainerIDs {
		if x != "" && validGlob(x) == nil {
			r.containers = append(r.containers, strings.ToLower(x))
		}
	}
	for _, h := range m.Hosts {
		switch {
		case h == "":
		case strings.Contains(h, "/"):
			if pf, err := netip.ParsePrefix(h); err == nil {
				r.prefixes = append(r.prefixes, pf.Masked())
			}
		default:
			if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
				r.prefixes = append(r.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			} else if validGlob(h) == nil {
				r.hosts = append(r.hosts, strings.TrimSuffix(strings.ToLower(h), "."))
			}
		}
	}
	r.ports = slices.Clone(m.Ports)
	return r
}

func (m *matcher) hasProc() bool {
	return len(m.exes) > 0 || len(m.pids) > 0 || len(m.containers) > 0
}

func (m *matcher) exeMatch(p *exchange.Process) bool {
	for _, pat := range m.exes {
		if pat == p.ExeName || pat == p.ExePath {
			return true
		}
		if p.ExeName != "" {
			if ok, _ := path.Match(pat, p.ExeName); ok {
				return true
			}
		}
		if p.ExePath != "" {
			if ok, _ := path.Match(pat, p.ExePath); ok {
				return true
			}
		}
	}
	return false
}

func (m *matcher) containerMatch(id string) bool {
	if id == "" {
		return false
	}
	id = lower(id)
	for _, pat := range m.containers {
		if pat == id || (len(pat) >= 12 && strings.HasPrefix(id, pat)) {
			return true
		}
		if ok, _ := path.Match(pat, id); ok {
			return true
		}
	}
	return false
}

func (m *matcher) hostMatch(d *dest) bool {
	for _, pf := range m.prefixes {
		if (d.ip.IsValid() && pf.Contains(d.ip)) || (d.nameIP.IsValid() && pf.Contains(d.nameIP)) {
			return true
		}
	}
	if len(m.hosts) > 0 {
		name := d.name
		if name == "" && d.ip.IsValid() {
			name = d.ip.String()
		}
		if name != "" {
			for _, pat := range m.hosts {
				if ok, _ := path.Match(pat, name); ok {
					return true
				}
			}
		}
	}
	return false
}

// ProcessExcluded reports whether nothing of proc may be captured: an
// exclude rule on its executable, pid or container id matches, or an
// include rule of one of those kinds exists and does not match. The engine
// uses it to stop capturing the process early (in the kernel); Apply checks
// it again for every exchange.
func (p *Policy) ProcessExcluded(proc exchange.Process) bool {
	return p != nil && p.processReason(&proc) != ReasonNone
}

// HasProcessRules reports whether any include or exclude rule concerns
// processes (executables, pids, container ids); without one
// ProcessExcluded is always false.
func (p *Policy) HasProcessRules() bool { return p != nil && p.hasProcRules }

func (p *Policy) processReason(proc *exchange.Process) Reason {
	if !p.hasProcRules {
		return ReasonNone
	}
	in, ex := &p.include, &p.exclude
	switch {
	case len(ex.exes) > 0 && ex.exeMatch(proc), len(in.exes) > 0 && !in.exeMatch(proc):
		return ReasonExecutable
	case len(ex.pids) > 0 && slices.Contains(ex.pids, proc.PID), len(in.pids) > 0 && !slices.Contains(in.pids, proc.PID):
		return ReasonPID
	case len(ex.containers) > 0 && ex.containerMatch(proc.ContainerID), len(in.containers) > 0 && !in.containerMatch(proc.ContainerID):
		return ReasonContainerID
	}
	return ReasonNone
}

// dest is the server side of an exchange.
type dest struct {
	name   string     // lowercase host from the authority; "" when none
	nameIP netip.Addr // name parsed as an IP address
	ip     netip.Addr // server address of the connection
	port   int
}

func destination(ex *exchange.Exchange) dest {
	var d dest
	req := ex.Request
	authority := ""
	scheme := ""
	if req != nil {
		if a, ok := authorityStart(req.Target); ok {
			scheme = req.Target[:a-3]
			end := strings.IndexAny(req.Target[a:], "/?#")
			if end < 0 {
				authority = req.Target[a:]
			} else {
				authority = req.Target[a : a+end]
			}
		} else if h, ok := req.Get("Host"); ok && h != "" {
			authority = h
		} else if h, ok := req.Get(":authority"); ok {
			authority = h
		}
	}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		authority = authority[at+1:]
	}
	host, port := splitAuthority(authority)
	host = strings.TrimSuffix(host, ".")
	d.name = lower(host)
	if d.name != "" && (d.name[0] >= '0' && d.name[0] <= '9' || strings.IndexByte(d.name, ':') >= 0) {
		if a, err := netip.ParseAddr(d.name); err == nil {
			d.nameIP = a.Unmap()
		}
	}
	server := ex.Conn.Remote
	if ex.Role == exchange.RoleServer {
		server = ex.Conn.Local
	}
	d.ip = server.Addr().Unmap()
	d.port = int(server.Port())
	if d.port == 0 {
		d.port = port
	}
	if d.port == 0 {
		if ex.Conn.TLS || equalFoldASCII(scheme, "https") {
			d.port = 443
		} else {
			d.port = 80
		}
	}
	return d
}

// splitAuthority splits "host:port", "[v6]:port", "host" or "[v6]".
func splitAuthority(a string) (string, int) {
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return a[1:], 0
		}
		host, rest := a[1:end], a[end+1:]
		if strings.HasPrefix(rest, ":") {
			return host, atoiPort(rest[1:])
		}
		return host, 0
	}
	i := strings.LastIndexByte(a, ':')
	if i < 0 || strings.IndexByte(a[:i], ':') >= 0 { // no port, or a bare IPv6 address
		return a, 0
	}
	return a[:i], atoiPort(a[i+1:])
}

func atoiPort(s string) int {
	n := 0
	if s == "" || len(s) > 5 {
		return 0
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0
		}
		n = n*10 + int(s[i]-'0')
	}
	if n > 65535 {
		return 0
	}
	return n
}

// lower returns s in ASCII lowercase, allocating only when s has uppercase.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// Apply decides what happens to ex. On Keep it has redacted ex in place
// (headers, request target, URL-valued headers, bodies) and removed the
// bodies the body policy does not allow (sizes stay real). On Filtered or
// SampledOut ex is unchanged and must not be emitted. A nil Policy keeps
// everything unchanged.
func (p *Policy) Apply(ex *exchange.Exchange) Verdict {
	if p == nil {
		return Verdict{}
	}
	r := p.filter(ex)
	var d dest
	if r == ReasonNone && p.needDest {
		d = destination(ex)
		r = p.destFilter(&d)
	}
	if r != ReasonNone {
		p.stats.filtered[r].Add(1)
		return Verdict{Outcome: Filtered, Reason: r}
	}
	if !p.sampler.keep(p.sampler.ratioFor(&d), ex.Request) {
		p.stats.sampledOut.Add(1)
		return Verdict{Outcome: SampledOut}
	}
	p.stats.kept.Add(1)
	p.redact(ex)
	return Verdict{}
}

// filter applies the rules that need no destination: process, direction,
// loopback.
func (p *Policy) filter(ex *exchange.Exchange) Reason {
	if r := p.processReason(&ex.Process); r != ReasonNone {
		return r
	}
	switch p.direction {
	case DirectionEgress:
		if ex.Role != exchange.RoleClient {
			return ReasonDirection
		}
	case DirectionIngress:
		if ex.Role != exchange.RoleServer {
			return ReasonDirection
		}
	}
	if !p.loopback && (ex.Conn.Remote.Addr().Unmap().IsLoopback() || ex.Conn.Local.Addr().Unmap().IsLoopback()) {
		return ReasonLoopback
	}
	return ReasonNone
}

// destFilter applies the host and port rules.
func (p *Policy) destFilter(d *dest) Reason {
	in, ex := &p.include, &p.exclude
	if (len(ex.hosts) > 0 || len(ex.prefixes) > 0) && ex.hostMatch(d) {
		return ReasonHost
	}
	if (len(in.hosts) > 0 || len(in.prefixes) > 0) && !in.hostMatch(d) {
		return ReasonHost
	}
	if len(ex.ports) > 0 && slices.Contains(ex.ports, d.port) {
		return ReasonPort
	}
	if len(in.ports) > 0 && !slices.Contains(in.ports, d.port) {
		return ReasonPort
	}
	return ReasonNone
}

// Stats returns a snapshot of the counters.
func (p *Policy) Stats() Stats {
	s := Stats{Filtered: make(map[string]uint64, numReasons-1), PII: make(map[string]uint64, numPIIKinds)}
	if p == nil {
		for _, r := range Reasons() {
			s.Filtered[r.String()] = 0
		}
		for _, k := range PIIKinds() {
			s.PII[k] = 0
		}
		return s
	}
	c := &p.stats
	s.Kept = c.kept.Load()
	s.SampledOut = c.sampledOut.Load()
	for _, r := range Reasons() {
		s.Filtered[r.String()] = c.filtered[r].Load()
	}
	s.HeadersRedacted = c.headers.Load()
	s.QueryParametersRedacted = c.params.Load()
	s.URLCredentialsRedacted = c.creds.Load()
	s.BodyMatchesRedacted = c.bodyMatches.Load()
	s.BodiesSizeOnly = c.bodiesSizeOnly.Load()
	s.BodiesNotCaptured = c.bodiesNotCaptured.Load()
	s.FieldsRedacted = c.fields.Load()
	s.SecretValuesRedacted = c.values.Load()
	s.PIIRedacted = c.pii.Load()
	s.BodiesNotInspected = c.notInspected.Load()
	for k, name := range PIIKinds() {
		s.PII[name] = c.piiKinds[k].Load()
	}
	return s
}

// SpanHeaders returns the headers of m that span_headers selects for span
// attributes (request or response list), values as redacted by Apply. It
// returns nil, without allocating, when none is selected.
func (p *Policy) SpanHeaders(m *exchange.Message, response bool) []exchange.Header {
	if p == nil || m == nil {
		return nil
	}
	set := &p.spanReq
	if response {
		set = &p.spanRes
	}
	if set.empty() {
		return nil
	}
	var out []exchange.Header
	for _, h := range m.Headers {
		if set.has(h.Name) {
			out = append(out, h)
		}
	}
	return out
}

// PassHeaders returns hs unchanged. Give it to otelmap.Options.RedactHeaders
// when exchanges went through Apply, so that the configured header list is
// the one that counts (and no copy is made).
func PassHeaders(hs []exchange.Header) []exchange.Header { return hs }

// nameSet matches header names case-insensitively: exact names through a
// map, patterns with '*' or '?' through foldGlob.
type nameSet struct {
	exact map[string]struct{}
	globs []nameGlob
}

// nameGlob is a lowercase pattern; the common single-'*' form is matched as
// prefix + suffix.
type nameGlob struct {
	pattern        string
	prefix, suffix string
	simple         bool // exactly one '*' and no '?'
}

func newNameGlob(p string) nameGlob {
	g := nameGlob{pattern: p}
	if strings.Count(p, "*") == 1 && !strings.Contains(p, "?") {
		i := strings.IndexByte(p, '*')
		g.prefix, g.suffix, g.simple = p[:i], p[i+1:], true
	}
	return g
}

func (g *nameGlob) match(s string) bool {
	if !g.simple {
		return foldGlob(g.pattern, s)
	}
	return len(s) >= len(g.prefix)+len(g.suffix) &&
		equalFoldASCII(s[:len(g.prefix)], g.prefix) && equalFoldASCII(s[len(s)-len(g.suffix):], g.suffix)
}

func newNameSet(errs *errList, field string, names []string) nameSet {
	var s nameSet
	s.extend(errs, field, names)
	return s
}

func (s *nameSet) extend(errs *errList, field string, names []string) {
	for i, n := range names {
		before := len(*errs)
		checkName(errs, fmt.Sprintf("%s[%d]", field, i), n)
		if len(*errs) > before {
			continue
		}
		n = strings.ToLower(n)
		if strings.ContainsAny(n, "*?") {
			s.globs = append(s.globs, newNameGlob(n))
			continue
		}
		if s.exact == nil {
			s.exact = make(map[string]struct{})
		}
		s.exact[n] = struct{}{}
	}
}

func (s *nameSet) empty() bool { return len(s.exact) == 0 && len(s.globs) == 0 }

func (s *nameSet) has(name string) bool {
	if len(s.exact) > 0 {
		var buf [64]byte
		if len(name) <= len(buf) {
			for i := 0; i < len(name); i++ {
				c := name[i]
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				buf[i] = c
			}
			if _, ok := s.exact[string(buf[:len(name)])]; ok {
				return true
			}
		} else if _, ok := s.exact[strings.ToLower(name)]; ok {
			return true
		}
	}
	for i := range s.globs {
		if s.globs[i].match(name) {
			return true
		}
	}
	return false
}

// redaction counts for one exchange, added to the counters once.
type redactCounts struct {
	headers, params, creds, sizeOnly, notCaptured, notInspected uint64
	body                                                        bodyCounts
}

func (p *Policy) redact(ex *exchange.Exchange) {
	var c redactCounts
	if req := ex.Request; req != nil {
		p.redactHeaders(req.Headers, &c)
		p.redactHeaders(req.Trailers, &c)
		p.redactURLValue(&req.Target, &c)
		if !p.bodyPolicy(req, &c) {
			ex.Flags |= exchange.RequestBodyNotInspected
		}
	}
	if res := ex.Response; res != nil {
		p.redactHeaders(res.Headers, &c)
		p.redactHeaders(res.Trailers, &c)
		if !p.bodyPolicy(res, &c) {
			ex.Flags |= exchange.ResponseBodyNotInspected
		}
	}
	ex.PII = c.body.kinds.names()
	add := func(a *atomic.Uint64, n uint64) {
		if n > 0 {
			a.Add(n)
		}
	}
	add(&p.stats.headers, c.headers)
	add(&p.stats.params, c.params)
	add(&p.stats.creds, c.creds)
	add(&p.stats.bodyMatches, c.body.patterns)
	add(&p.stats.fields, c.body.fields)
	add(&p.stats.values, c.body.values)
	add(&p.stats.pii, c.body.pii)
	add(&p.stats.bodiesSizeOnly, c.sizeOnly)
	add(&p.stats.bodiesNotCaptured, c.notCaptured)
	add(&p.stats.notInspected, c.notInspected)
	for k := piiKind(0); k < numPIIKinds; k++ {
		if c.body.kinds.has(k) {
			p.stats.piiKinds[k].Add(1)
		}
	}
}

func (p *Policy) redactURLValue(v *string, c *redactCounts) {
	out, n, creds := p.url.redactURL(*v)
	if n == 0 && !creds {
		return
	}
	*v = out
	c.params += uint64(n)
	if creds {
		c.creds++
	}
}

func (p *Policy) redactHeaders(hs []exchange.Header, c *redactCounts) {
	for i := range hs {
		h := &hs[i]
		if p.headers.has(h.Name) {
			if h.Value != "" && h.Value != Redacted {
				h.Value = Redacted
				c.headers++
			}
			continue
		}
		switch len(h.Name) {
		case 4, 10: // Host, :authority
			if equalFoldASCII(h.Name, "host") || h.Name == ":authority" {
				if v, ok := p.url.redactAuthority(h.Value); ok {
					h.Value = v
					c.creds++
				}
			}
		case 5, 7, 8, 16: // :path, Referer, Location, Content-Location
			if h.Name == ":path" || equalFoldASCII(h.Name, "referer") || equalFoldASCII(h.Name, "location") ||
				equalFoldASCII(h.Name, "content-location") {
				p.redactURLValue(&h.Value, c)
			}
		}
	}
}

// bodyPolicy drops bodies the policy does not allow and inspects the
// others. It returns false when a non-empty body was not inspected.
func (p *Policy) bodyPolicy(m *exchange.Message, c *redactCounts) bool {
	if len(m.Body) == 0 && len(m.DecodedBody) == 0 {
		if m.BodySize > 0 {
			c.notInspected++
			return false
		}
		return true
	}
	if !p.capture {
		m.Body, m.DecodedBody = nil, nil
		c.notCaptured++
		c.notInspected++
		return false
	}
	if !p.bodyAllowed(m) {
		m.Body, m.DecodedBody = nil, nil
		c.sizeOnly++
		c.notInspected++
		return false
	}
	if m.DecodedBody != nil {
		if b := p.inspect(m, m.DecodedBody, &c.body); &b[0] != &m.DecodedBody[0] || len(b) != len(m.DecodedBody) {
			// The encoded bytes still carry what was redacted.
			m.DecodedBody, m.Body = b, nil
		}
		return true
	}
	if b := p.inspect(m, m.Body, &c.body); &b[0] != &m.Body[0] || len(b) != len(m.Body) {
		m.Body = b
	}
	return true
}

func (p *Policy) bodyAllowed(m *exchange.Message) bool {
	if ce, ok := m.Get("Content-Encoding"); ok && m.DecodedBody == nil {
		if ce = strings.TrimSpace(ce); ce != "" && !equalFoldASCII(ce, "identity") {
			return false // still encoded: opaque bytes
		}
	}
	full, _ := m.Get("Content-Type")
	ct, params, _ := strings.Cut(full, ";")
	ct = strings.TrimSpace(ct)
	if ct == "" {
		b := m.DecodedBody
		if b == nil {
			b = m.Body
		}
		if m.BodyTruncated {
			b = exchange.CutIncompleteRune(b) // the limit may split a character
		}
		return utf8.Valid(b) && !slices.Contains(b, 0)
	}
	if p.allTypes {
		return true
	}
	for _, pat := range p.contentTypes {
		if foldGlob(pat, ct) {
			return true
		}
	}
	// A charset parameter says the body is text, whatever its media type
	// ("application/x-ndjson; charset=utf-8"): kept while text/* is.
	return p.textTypes && hasCharset(params)
}

// hasCharset reports whether Content-Type parameters name a charset.
func hasCharset(params string) bool {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, _, ok := strings.Cut(p, "=")
		if ok && equalFoldASCII(strings.TrimSpace(name), "charset") {
			return true
		}
	}
	return false
}
