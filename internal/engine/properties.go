package engine

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tlstap/tlstap/internal/otelmap"
	"github.com/tlstap/tlstap/internal/policy"
)

// ConfigFromProperties builds a Config from flat string properties, the
// shape of Fluent Bit's plugin configuration, with the receiver's option
// names. Properties that are absent keep their defaults. Sizes accept a
// KiB/MiB/GiB (or K/M/G) suffix. The result is validated.
//
// Policy options are flat equivalents of the receiver's nested keys. Lists
// are separated by commas and/or spaces; "none" gives an empty list (which
// switches off a default list); booleans accept true/false, on/off, yes/no.
//
//	include_executables   curl,/usr/bin/*   filters.include.executables
//	include_pids          1234,5678         filters.include.pids
//	include_container_ids 4f3a9c0d1e2b      filters.include.container_ids
//	include_hosts         *.example.com     filters.include.hosts
//	include_ports         443,8443          filters.include.ports
//	exclude_executables, exclude_pids, exclude_container_ids,
//	exclude_hosts, exclude_ports                filters.exclude.*
//	direction             egress            filters.direction (egress|ingress|both)
//	loopback              false             filters.loopback
//	sampling_ratio        0.5               sampling.ratio
//	sampling_per_host     api.example.com=0.1,*.internal=0   sampling.per_host
//	redact_headers        authorization,cookie   redaction.headers (replaces the defaults)
//	redact_extra_headers  x-my-secret       redaction.extra_headers (adds to them)
//	redact_query_parameters, redact_extra_query_parameters   redaction.(extra_)query_parameters
//	redact_url_credentials false            redaction.url_credentials
//	redact_body_patterns  card              redaction.body_patterns: the built-in
//	                                        patterns to keep, by name (card, bearer), or none
//	redact_body_pattern_1 ssn=\d{3}-\d{2}-\d{4}   redaction.extra_body_patterns (name=regex;
//	                                        keys _1 to _32, the regex taken verbatim)
//	redact_fields         password,token    redaction.fields (secret field names; replaces the defaults)
//	redact_extra_fields   pin,otp           redaction.extra_fields (adds to them)
//	redact_secret_values  jwt,private_key   redaction.secret_values (built-in detectors, or none)
//	pii_kinds             email,iban        pii.kinds (email, iban, payment_card, phone, or none)
//	redact_pii            true              pii.redact
//	exec_gate             false             exec_gate.enabled
//	exec_gate_timeout     500ms             exec_gate.timeout (a Go duration)
//	capture_bodies        false             bodies.capture
//	body_content_types    text/*,application/json    bodies.content_types
//	span_request_headers  content-type      span_headers.request
//	span_response_headers server            span_headers.response
//	service_names         checkout=python3*,web=/usr/sbin/nginx   service_names
//	                                        (name=executable glob, first match wins)
//
// An invalid policy value is reported with its property name followed by
// the nested field ("include_ports: filters.include.ports[0]: ...").
func ConfigFromProperties(get func(key string) string) (Config, error) {
	cfg := DefaultConfig()
	var errs []error
	if v := strings.TrimSpace(get("max_body_bytes")); v != "" {
		n, err := parseSize(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("max_body_bytes: %w", err))
		} else {
			cfg.MaxBodyBytes = n
		}
	}
	if v := strings.TrimSpace(get("ring_buffer_size")); v != "" {
		n, err := parseSize(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("ring_buffer_size: %w", err))
		} else {
			cfg.RingBufferSize = n
		}
	}
	if v := strings.TrimSpace(get("tls_probes")); v != "" {
		cfg.TLSProbes = nil
		for _, p := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
			cfg.TLSProbes = append(cfg.TLSProbes, strings.ToLower(p))
		}
	}
	if v := strings.TrimSpace(get("java_agent_dir")); v != "" {
		cfg.JavaAgentDir = v
	}
	switch v := strings.ToLower(strings.TrimSpace(get("exec_gate"))); v {
	case "":
	case "true", "on", "yes", "1":
		cfg.ExecGate.Enabled = true
	case "false", "off", "no", "0":
		cfg.ExecGate.Enabled = false
	default:
		errs = append(errs, fmt.Errorf("exec_gate: %q is not a boolean (true/false, on/off, yes/no)", v))
	}
	if v := strings.TrimSpace(get("exec_gate_timeout")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("exec_gate_timeout: %w", err))
		} else {
			cfg.ExecGate.Timeout = d
		}
	}
	pp := policyProps{get: get, cfg: &cfg.Policy}
	pp.parse()
	errs = append(errs, pp.errs...)
	if v := strings.TrimSpace(get("service_names")); v != "" {
		for _, f := range splitList(v) {
			name, glob, ok := strings.Cut(f, "=")
			if !ok {
				errs = append(errs, fmt.Errorf("service_names: %q is not name=executable", f))
				continue
			}
			cfg.ServiceNames = append(cfg.ServiceNames, otelmap.ServiceNameRule{Executable: glob, Name: name})
		}
	}
	if len(errs) > 0 {
		return cfg, errors.Join(errs...)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, pp.rename(err)
	}
	return cfg, nil
}

// parseSize reads "65536", "64KiB", "64K", "16MiB", "1G".
func parseSize(s string) (int, error) {
	mult := 1
	lower := strings.ToLower(s)
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}} {
		if strings.HasSuffix(lower, u.suffix) {
			lower, mult = strings.TrimSpace(strings.TrimSuffix(lower, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(lower, 10, 64)
	if err != nil || n < 0 || n > (1<<40)/int64(mult) {
		return 0, fmt.Errorf("%q is not a size (bytes, or with a KiB/MiB/GiB suffix)", s)
	}
	return int(n) * mult, nil
}

// maxBodyPatternProps is the number of numbered redact_body_pattern_N keys.
const maxBodyPatternProps = 32

// policyProps reads the flat policy properties into a policy.Config.
type policyProps struct {
	get  func(string) string
	cfg  *policy.Config
	errs []error
	// extraPatternKeys[i] is the property that gave ExtraBodyPatterns[i].
	extraPatternKeys []string
}

// flatNames maps nested policy field prefixes to their property names, to
// name both in errors.
var flatNames = []struct{ nested, flat string }{
	{"filters.include.executables", "include_executables"},
	{"filters.include.pids", "include_pids"},
	{"filters.include.container_ids", "include_container_ids"},
	{"filters.include.hosts", "include_hosts"},
	{"filters.include.ports", "include_ports"},
	{"filters.exclude.executables", "exclude_executables"},
	{"filters.exclude.pids", "exclude_pids"},
	{"filters.exclude.container_ids", "exclude_container_ids"},
	{"filters.exclude.hosts", "exclude_hosts"},
	{"filters.exclude.ports", "exclude_ports"},
	{"filters.direction", "direction"},
	{"sampling.ratio", "sampling_ratio"},
	{"sampling.per_host", "sampling_per_host"},
	{"redaction.headers", "redact_headers"},
	{"redaction.extra_headers", "redact_extra_headers"},
	{"redaction.query_parameters", "redact_query_parameters"},
	{"redaction.extra_query_parameters", "redact_extra_query_parameters"},
	{"redaction.body_patterns", "redact_body_patterns"},
	{"redaction.fields", "redact_fields"},
	{"redaction.extra_fields", "redact_extra_fields"},
	{"redaction.secret_values", "redact_secret_values"},
	{"pii.kinds", "pii_kinds"},
	{"bodies.content_types", "body_content_types"},
	{"span_headers.request", "span_request_headers"},
	{"span_headers.response", "span_response_headers"},
}

func (pp *policyProps) value(key string) (string, bool) {
	v := strings.TrimSpace(pp.get(key))
	return v, v != ""
}

func (pp *policyProps) fail(key, format string, args ...any) {
	pp.errs = append(pp.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

// splitList splits on commas and white space; "none" is the empty list.
func splitList(v string) []string {
	if strings.EqualFold(v, "none") {
		return []string{}
	}
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}

func (pp *policyProps) strings(key string, dst *[]string) {
	if v, ok := pp.value(key); ok {
		*dst = splitList(v)
	}
}

func (pp *policyProps) ints(key string, dst *[]int) {
	v, ok := pp.value(key)
	if !ok {
		return
	}
	out := []int{}
	for _, f := range splitList(v) {
		n, err := strconv.Atoi(f)
		if err != nil {
			pp.fail(key, "%q is not an integer", f)
			return
		}
		out = append(out, n)
	}
	*dst = out
}

func (pp *policyProps) bool(key string, dst *bool) {
	v, ok := pp.value(key)
	if !ok {
		return
	}
	switch strings.ToLower(v) {
	case "true", "on", "yes", "1":
		*dst = true
	case "false", "off", "no", "0":
		*dst = false
	default:
		pp.fail(key, "%q is not a boolean (true/false, on/off, yes/no)", v)
	}
}

func (pp *policyProps) ratio(key string, v string) (float64, bool) {
	r, err := strconv.ParseFloat(v, 64)
	if err != nil {
		pp.fail(key, "%q is not a number", v)
		return 0, false
	}
	return r, true
}

func (pp *policyProps) parse() {
	c := pp.cfg
	for _, side := range []struct {
		prefix string
		m      *policy.Match
	}{{"include_", &c.Filters.Include}, {"exclude_", &c.Filters.Exclude}} {
		pp.strings(side.prefix+"executables", &side.m.Executables)
		pp.ints(side.prefix+"pids", &side.m.PIDs)
		pp.strings(side.prefix+"container_ids", &side.m.ContainerIDs)
		pp.strings(side.prefix+"hosts", &side.m.Hosts)
		pp.ints(side.prefix+"ports", &side.m.Ports)
	}
	if v, ok := pp.value("direction"); ok {
		c.Filters.Direction = strings.ToLower(v)
	}
	pp.bool("loopback", &c.Filters.Loopback)

	if v, ok := pp.value("sampling_ratio"); ok {
		if r, ok := pp.ratio("sampling_ratio", v); ok {
			c.Sampling.Ratio = r
		}
	}
	if v, ok := pp.value("sampling_per_host"); ok {
		per := map[string]float64{}
		for _, f := range splitList(v) {
			host, rs, found := strings.Cut(f, "=")
			if !found {
				pp.fail("sampling_per_host", "%q is not host=ratio", f)
				continue
			}
			if r, ok := pp.ratio("sampling_per_host", rs); ok {
				per[host] = r
			}
		}
		c.Sampling.PerHost = per
	}

	pp.strings("redact_headers", &c.Redaction.Headers)
	pp.strings("redact_extra_headers", &c.Redaction.ExtraHeaders)
	pp.strings("redact_query_parameters", &c.Redaction.QueryParameters)
	pp.strings("redact_extra_query_parameters", &c.Redaction.ExtraQueryParameters)
	pp.bool("redact_url_credentials", &c.Redaction.URLCredentials)
	if v, ok := pp.value("redact_body_patterns"); ok {
		builtin := policy.DefaultBodyPatterns()
		c.Redaction.BodyPatterns = []policy.BodyPattern{}
		for _, name := range splitList(v) {
			i := slices.IndexFunc(builtin, func(bp policy.BodyPattern) bool { return strings.EqualFold(bp.Name, name) })
			if i < 0 {
				var known []string
				for _, bp := range builtin {
					known = append(known, bp.Name)
				}
				pp.fail("redact_body_patterns", "unknown built-in pattern %q (known: %s, or none)", name, strings.Join(known, ", "))
				continue
			}
			c.Redaction.BodyPatterns = append(c.Redaction.BodyPatterns, builtin[i])
		}
	}
	for n := 1; n <= maxBodyPatternProps; n++ {
		key := "redact_body_pattern_" + strconv.Itoa(n)
		v, ok := pp.value(key)
		if !ok {
			continue
		}
		name, re, found := strings.Cut(v, "=")
		if !found || strings.TrimSpace(name) == "" {
			pp.fail(key, "%q is not name=regex", v)
			continue
		}
		c.Redaction.ExtraBodyPatterns = append(c.Redaction.ExtraBodyPatterns, policy.BodyPattern{Name: strings.TrimSpace(name), Regex: re})
		pp.extraPatternKeys = append(pp.extraPatternKeys, key)
	}

	pp.strings("redact_fields", &c.Redaction.Fields)
	pp.strings("redact_extra_fields", &c.Redaction.ExtraFields)
	pp.strings("redact_secret_values", &c.Redaction.SecretValues)
	pp.strings("pii_kinds", &c.PII.Kinds)
	pp.bool("redact_pii", &c.PII.Redact)
	pp.bool("capture_bodies", &c.Bodies.Capture)
	pp.strings("body_content_types", &c.Bodies.ContentTypes)
	pp.strings("span_request_headers", &c.SpanHeaders.Request)
	pp.strings("span_response_headers", &c.SpanHeaders.Response)
}

// rename prefixes each policy error line with the property it came from.
func (pp *policyProps) rename(err error) error {
	var out []error
	for _, line := range strings.Split(err.Error(), "\n") {
		if line == "" {
			continue
		}
		flat := ""
		for _, fn := range flatNames {
			if strings.HasPrefix(line, fn.nested) && len(line) > len(fn.nested) && strings.IndexByte(":[", line[len(fn.nested)]) >= 0 {
				flat = fn.flat
				break
			}
		}
		if rest, ok := strings.CutPrefix(line, "redaction.extra_body_patterns["); ok {
			if i, _, ok := strings.Cut(rest, "]"); ok {
				if n, err := strconv.Atoi(i); err == nil && n < len(pp.extraPatternKeys) {
					flat = pp.extraPatternKeys[n]
				}
			}
		}
		if flat != "" {
			line = flat + ": " + line
		}
		out = append(out, errors.New(line))
	}
	return errors.Join(out...)
}
