package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

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
	// sig has bit nameSig(n) set for every exact name n: most names that
	// are not in exact are rejected by it before hashing for the map.
	sig   [8]uint64
	globs []nameGlob
	// globLast has bit c set for the last byte c (lower case) of every
	// simple glob with a suffix ("*-api-key"); anyGlob is set when some
	// glob has no such fixed last byte. A name whose last byte is not in
	// globLast then needs no glob match.
	globLast [4]uint64
	anyGlob  bool
}

// maybeExact reports whether name may be in exact. Names longer than 64
// bytes always may: they are lowered with strings.ToLower, which can change
// their length.
func (s *nameSet) maybeExact(name string) bool {
	if name == "" || len(name) > 64 {
		return name != ""
	}
	k := nameSig(name)
	return s.sig[k>>6]&(1<<(k&63)) != 0
}

// nameSig mixes a name's length and its last byte (case folded) into 9
// bits.
func nameSig(n string) uint {
	c := n[len(n)-1]
	if 'A' <= c && c <= 'Z' {
		c += 'a' - 'A'
	}
	return (uint(len(n))*37 + uint(c)) & 511
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
			g := newNameGlob(n)
			s.globs = append(s.globs, g)
			if g.simple && g.suffix != "" {
				c := g.suffix[len(g.suffix)-1]
				s.globLast[c>>6] |= 1 << (c & 63)
			} else {
				s.anyGlob = true
			}
			continue
		}
		if s.exact == nil {
			s.exact = make(map[string]struct{})
		}
		s.exact[n] = struct{}{}
		k := nameSig(n)
		s.sig[k>>6] |= 1 << (k & 63)
	}
}

func (s *nameSet) empty() bool { return len(s.exact) == 0 && len(s.globs) == 0 }

func (s *nameSet) has(name string) bool {
	if len(s.exact) > 0 && s.maybeExact(name) {
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
	if len(s.globs) == 0 {
		return false
	}
	if !s.anyGlob {
		if name == "" {
			return false
		}
		c := name[len(name)-1]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if s.globLast[c>>6]&(1<<(c&63)) == 0 {
			return false
		}
	}
	for i := range s.globs {
		if s.globs[i].match(name) {
			return true
		}
	}
	return false
}
