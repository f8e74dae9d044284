// Package policy decides which captured exchanges leave the engine and what
// they may carry: process/host/port/direction filters, sampling, header,
// URL and body redaction, and the body content-type policy. Everything is
// compiled once by New; Apply runs per exchange on the engine's pipeline.
package policy

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path"
	"regexp"
	"regexp/syntax"
	"strings"
)

// Redacted replaces every redacted value (header values, query parameter
// values, URL credentials, body matches by default).
const Redacted = "REDACTED"

// Directions for Filters.Direction.
const (
	DirectionBoth    = "both"    // everything (default)
	DirectionEgress  = "egress"  // the captured process is the client
	DirectionIngress = "ingress" // the captured process is the server
)

// Config is the policy configuration. Its keys sit at the top level of the
// engine configuration (engine.Config squashes it):
//
//	filters:
//	  include: { executables: [curl, "/usr/bin/*"], pids: [], container_ids: [], hosts: ["*.example.com"], ports: [443] }
//	  exclude: { executables: [], pids: [], container_ids: [], hosts: [], ports: [] }
//	  direction: both      # egress | ingress | both
//	  loopback: true
//	sampling: { ratio: 1.0, per_host: { api.example.com: 0.1 } }
//	redaction:
//	  headers: [...]              # replaces the default list
//	  extra_headers: [...]        # added to headers
//	  query_parameters: [...]     # replaces the default list
//	  extra_query_parameters: []  # added to query_parameters
//	  url_credentials: true
//	  body_patterns: [ { name: card, regex: "...", luhn: true }, ... ]  # replaces the defaults
//	  extra_body_patterns: []     # added to body_patterns
//	  fields: [password, token, ...]  # secret field names; replaces the defaults
//	  extra_fields: []            # added to fields
//	  secret_values: [jwt, aws_access_key, google_api_key, github_token, private_key]
//	pii: { kinds: [email, iban, payment_card, phone], redact: false }
//	bodies: { capture: true, content_types: [text/*, application/json, ...] }
//	span_headers: { request: [], response: [] }
//
// Every list that has defaults comes in two keys: the plain key replaces the
// defaults (an empty list disables them), the extra_ key extends them.
type Config struct {
	Filters     Filters     `mapstructure:"filters"`
	Sampling    Sampling    `mapstructure:"sampling"`
	Redaction   Redaction   `mapstructure:"redaction"`
	Bodies      Bodies      `mapstructure:"bodies"`
	SpanHeaders SpanHeaders `mapstructure:"span_headers"`
	PII         PII         `mapstructure:"pii"`
}

// PII says which kinds of personal data are looked for in bodies. Every
// exchange where one is found carries the sorted list of kinds
// (tlstap.pii.types); the values stay unless Redact is on.
type PII struct {
	// Kinds to detect: email, iban, payment_card, phone. The default is
	// all; an empty list switches detection off.
	Kinds []string `mapstructure:"kinds"`
	// Redact replaces every value found by "REDACTED" (the kinds are still
	// reported).
	Redact bool `mapstructure:"redact"`
}

// Filters select the exchanges to keep.
//
// Include lists are combined with AND across kinds and OR within a kind: an
// empty list does not restrict, a non-empty one must match. Any match in an
// exclude list drops the exchange. A process rejected by its executable, pid
// or container id produces nothing at all (see Policy.ProcessExcluded).
type Filters struct {
	Include Match `mapstructure:"include"`
	Exclude Match `mapstructure:"exclude"`
	// Direction is egress (the process is the client), ingress (the process
	// is the server) or both. Exchanges whose role is unknown are kept only
	// with both.
	Direction string `mapstructure:"direction"`
	// Loopback keeps traffic whose local or remote address is a loopback
	// address. Exchanges with unknown addresses are kept.
	Loopback bool `mapstructure:"loopback"`
}

// Match lists what an include or exclude rule matches.
// processRules reports whether m names processes (executables, pids or
// containers), the rules the kernel can apply before any other work.
func (m *Match) processRules() bool {
	return len(m.Executables) > 0 || len(m.PIDs) > 0 || len(m.ContainerIDs) > 0
}

// HasProcessRules reports whether the filters include or exclude processes.
func (c *Config) HasProcessRules() bool {
	return c.Filters.Include.processRules() || c.Filters.Exclude.processRules()
}

type Match struct {
	// Executables: an exact executable name or path, or a path.Match glob
	// tried on both ("curl", "/usr/bin/*", "python3*").
	Executables []string `mapstructure:"executables"`
	PIDs        []int    `mapstructure:"pids"`
	// ContainerIDs: a full id, a prefix of at least 12 characters (docker's
	// short id), or a glob.
	ContainerIDs []string `mapstructure:"container_ids"`
	// Hosts: destination host globs matched case-insensitively against the
	// authority the client addressed (absolute-form target, Host header or
	// :authority; the server address when there is none), or an IP address
	// or CIDR prefix matched against the server address.
	Hosts []string `mapstructure:"hosts"`
	// Ports: destination (server) ports.
	Ports []int `mapstructure:"ports"`
}

// Sampling keeps a fraction of the exchanges that passed the filters. The
// decision is deterministic by trace id when the request carries a valid
// W3C traceparent (both ends of a trace agree when they use the same ratio),
// random otherwise.
type Sampling struct {
	// Ratio in [0, 1] for hosts without a per-host ratio.
	Ratio float64 `mapstructure:"ratio"`
	// PerHost maps a host (exact or glob, case-insensitive) to its ratio.
	// An exact key wins over globs; among globs the longest pattern wins.
	PerHost map[string]float64 `mapstructure:"per_host"`
}

// Redaction says what is replaced by "REDACTED" before an exchange leaves
// the engine.
type Redaction struct {
	// Headers whose values are replaced (the header stays). Case-insensitive
	// names; '*' and '?' are wildcards.
	Headers      []string `mapstructure:"headers"`
	ExtraHeaders []string `mapstructure:"extra_headers"`
	// QueryParameters whose values are replaced in the request target and in
	// URL-valued headers (Referer, Location, Content-Location, :path).
	// Case-insensitive.
	QueryParameters      []string `mapstructure:"query_parameters"`
	ExtraQueryParameters []string `mapstructure:"extra_query_parameters"`
	// URLCredentials replaces user:password@ in absolute URLs and in the
	// Host / :authority headers with REDACTED:REDACTED@.
	URLCredentials bool `mapstructure:"url_credentials"`
	// BodyPatterns are applied to allowed bodies (Body, and DecodedBody when
	// the body was content-encoded).
	BodyPatterns      []BodyPattern `mapstructure:"body_patterns"`
	ExtraBodyPatterns []BodyPattern `mapstructure:"extra_body_patterns"`
	// Fields are names whose values are secrets: in JSON bodies (any depth;
	// the value, or every scalar inside an object or array value, becomes
	// "REDACTED" and the document stays valid JSON), form-urlencoded and
	// multipart form bodies, query strings and command-line arguments
	// (name=value, --name=value, --name value, JSON arguments). A name
	// matches when, ignoring ASCII case and the separators _ - . and space,
	// it equals an entry or ends with one ("token" covers "access_token"
	// and "csrfToken").
	Fields      []string `mapstructure:"fields"`
	ExtraFields []string `mapstructure:"extra_fields"`
	// SecretValues are the built-in detectors of secrets by their shape,
	// anywhere in a body or a command-line argument: jwt, aws_access_key,
	// google_api_key, github_token, private_key (PEM blocks). The plain
	// key replaces the default (all of them); an empty list disables them.
	SecretValues []string `mapstructure:"secret_values"`
}

// BodyPattern is one body redaction rule.
type BodyPattern struct {
	Name string `mapstructure:"name"`
	// Regex is RE2 syntax (Go regexp); it must not match the empty string.
	Regex string `mapstructure:"regex"`
	// Replacement replaces each match; empty means "REDACTED".
	Replacement string `mapstructure:"replacement"`
	// Luhn redacts a match only when its digits pass the Luhn checksum
	// (card numbers), which spares timestamps and other long numbers.
	Luhn bool `mapstructure:"luhn"`
}

// Bodies is the body capture policy.
type Bodies struct {
	// Capture off keeps only body sizes.
	Capture bool `mapstructure:"capture"`
	// ContentTypes whose bodies are kept (case-insensitive media types,
	// parameters ignored; '*' matches any run of characters, so "text/*" and
	// "application/*+json" work; "*" allows everything). While text/* is
	// allowed, a Content-Type with a charset parameter is text too. Other
	// bodies are recorded as size only. A message without Content-Type keeps
	// its body when the body is valid UTF-8 without NUL bytes (a character
	// split by max_body_bytes at its end does not count against it). A content-encoded body
	// that could not be decoded is recorded as size only.
	ContentTypes []string `mapstructure:"content_types"`
}

// SpanHeaders lists the headers that also become span attributes
// (http.request.header.<key> / http.response.header.<key>, opt-in per the
// semantic conventions). Every header stays on the log record.
type SpanHeaders struct {
	Request  []string `mapstructure:"request"`
	Response []string `mapstructure:"response"`
}

// DefaultHeaders are redacted by default.
var DefaultHeaders = []string{
	"authorization", "proxy-authorization", "cookie", "set-cookie",
	"x-api-key", "api-key", "apikey", "*-api-key", "x-auth-token", "*-auth-token",
	"x-access-token", "*-access-token", "x-amz-security-token", "x-goog-api-key",
	"x-csrf-token", "x-xsrf-token", "private-token", "x-vault-token",
	"ocp-apim-subscription-key", "*-authorization",
}

// DefaultQueryParameters are the signed-URL parameters the semantic
// conventions say to redact in url.full / url.query.
var DefaultQueryParameters = []string{
	"X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token",
	"AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature",
}

// DefaultBodyPatterns: payment card numbers (13–19 digits, optionally
// separated by spaces, dashes or '+' (a space in form-encoded bodies),
// Luhn-checked) and bearer tokens.
func DefaultBodyPatterns() []BodyPattern {
	return []BodyPattern{
		{Name: "card", Regex: `\b\d(?:[ +-]?\d){12,18}\b`, Luhn: true},
		{Name: "bearer", Regex: `(?i)\bbearer\s+[a-z0-9._~+/-]+=*`},
	}
}

// DefaultContentTypes are the body media types captured by default.
var DefaultContentTypes = []string{
	"text/*", "application/json", "application/*+json", "application/xml",
	"application/*+xml", "application/x-www-form-urlencoded",
	"application/yaml", "application/*+yaml", "application/x-yaml",
	// gRPC messages are kept as the length-prefixed frames (rpc semantic
	// conventions need them as bytes, up to max_body_bytes).
	"application/grpc", "application/grpc+*",
}

// DefaultConfig captures everything (both directions, loopback included,
// no sampling) with the default redaction and body policy.
func DefaultConfig() Config {
	return Config{
		Filters:  Filters{Direction: DirectionBoth, Loopback: true},
		Sampling: Sampling{Ratio: 1},
		Redaction: Redaction{
			Headers:         append([]string(nil), DefaultHeaders...),
			QueryParameters: append([]string(nil), DefaultQueryParameters...),
			URLCredentials:  true,
			BodyPatterns:    DefaultBodyPatterns(),
			Fields:          append([]string(nil), DefaultFields...),
			SecretValues:    append([]string(nil), DefaultSecretValues...),
		},
		PII:    PII{Kinds: PIIKinds()},
		Bodies: Bodies{Capture: true, ContentTypes: append([]string(nil), DefaultContentTypes...)},
	}
}

// Validate reports every invalid field; each error names it with its full
// key path ("filters.include.executables[2]: ...").
func (c *Config) Validate() error {
	_, err := compile(c)
	return err
}

// errList collects field errors.
type errList []error

func (e *errList) add(field string, format string, args ...any) {
	*e = append(*e, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

func (e errList) err() error { return errors.Join(e...) }

func validGlob(p string) error {
	_, err := path.Match(p, "")
	return err
}

func checkMatch(errs *errList, prefix string, m *Match) {
	for i, x := range m.Executables {
		f := fmt.Sprintf("%s.executables[%d]", prefix, i)
		if x == "" {
			errs.add(f, "empty pattern")
		} else if err := validGlob(x); err != nil {
			errs.add(f, "bad pattern %q: %v", x, err)
		}
	}
	for i, pid := range m.PIDs {
		if pid <= 0 {
			errs.add(fmt.Sprintf("%s.pids[%d]", prefix, i), "%d is not a pid (must be > 0)", pid)
		}
	}
	for i, x := range m.ContainerIDs {
		f := fmt.Sprintf("%s.container_ids[%d]", prefix, i)
		if x == "" {
			errs.add(f, "empty container id")
		} else if err := validGlob(x); err != nil {
			errs.add(f, "bad pattern %q: %v", x, err)
		}
	}
	for i, x := range m.Hosts {
		f := fmt.Sprintf("%s.hosts[%d]", prefix, i)
		if x == "" {
			errs.add(f, "empty host")
			continue
		}
		if strings.Contains(x, "/") {
			if _, err := netip.ParsePrefix(x); err != nil {
				errs.add(f, "bad CIDR prefix %q: %v", x, err)
			}
		} else if err := validGlob(x); err != nil {
			errs.add(f, "bad pattern %q: %v", x, err)
		}
	}
	for i, p := range m.Ports {
		if p < 1 || p > 65535 {
			errs.add(fmt.Sprintf("%s.ports[%d]", prefix, i), "%d not in [1, 65535]", p)
		}
	}
}

func checkRatio(errs *errList, field string, r float64) {
	if math.IsNaN(r) || r < 0 || r > 1 {
		errs.add(field, "%v not in [0,1]", r)
	}
}

// checkName validates a header-like name pattern: token characters plus the
// wildcards '*' and '?' (and a leading ':' for HTTP/2 pseudo-headers).
func checkName(errs *errList, field, name string) {
	if name == "" {
		errs.add(field, "empty name")
		return
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == ':' && i == 0 {
			continue
		}
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>@[\]{}`, c) >= 0 {
			errs.add(field, "%q: invalid character %q in a header name", name, c)
			return
		}
	}
}

// compiledPattern is a BodyPattern ready to run.
type compiledPattern struct {
	name        string
	re          *regexp.Regexp
	replacement []byte
	replStr     string
	luhn        bool
	pre         prefilter
}

func compilePattern(errs *errList, field string, bp BodyPattern, seen map[string]string) (compiledPattern, bool) {
	ok := true
	if bp.Name == "" {
		errs.add(field+".name", "empty name")
		ok = false
	} else if prev, dup := seen[bp.Name]; dup {
		errs.add(field+".name", "%q already used by %s", bp.Name, prev)
		ok = false
	} else {
		seen[bp.Name] = field
	}
	if bp.Regex == "" {
		errs.add(field+".regex", "empty regular expression")
		return compiledPattern{}, false
	}
	re, err := regexp.Compile(bp.Regex)
	if err != nil {
		errs.add(field+".regex", "%v", err)
		return compiledPattern{}, false
	}
	st, err := syntax.Parse(bp.Regex, syntax.Perl)
	if err != nil { // cannot happen after regexp.Compile
		errs.add(field+".regex", "%v", err)
		return compiledPattern{}, false
	}
	st = st.Simplify()
	pre := newPrefilter(st)
	if pre.minLen == 0 {
		errs.add(field+".regex", "%q can match the empty string", bp.Regex)
		return compiledPattern{}, false
	}
	repl := bp.Replacement
	if repl == "" {
		repl = Redacted
	}
	return compiledPattern{name: bp.Name, re: re, replacement: []byte(repl), replStr: repl, luhn: bp.Luhn, pre: pre}, ok
}
