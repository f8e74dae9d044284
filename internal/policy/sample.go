package policy

import (
	"cmp"
	"math/rand/v2"
	"path"
	"slices"
	"strings"

	"github.com/tlstap/tlstap/internal/exchange"
)

// sampler holds the global and per-host ratios.
type sampler struct {
	ratio float64
	exact map[string]float64
	globs []hostRatio // longest pattern first
}

type hostRatio struct {
	pattern string
	ratio   float64
}

func (s *sampler) add(host string, r float64) {
	host = strings.TrimSuffix(host, ".")
	if strings.ContainsAny(host, "*?[\\") {
		s.globs = append(s.globs, hostRatio{host, r})
		return
	}
	if s.exact == nil {
		s.exact = make(map[string]float64)
	}
	s.exact[host] = r
}

func (s *sampler) finish() {
	slices.SortStableFunc(s.globs, func(a, b hostRatio) int {
		return cmp.Or(cmp.Compare(len(b.pattern), len(a.pattern)), strings.Compare(a.pattern, b.pattern))
	})
}

// uniform reports whether every host has the same ratio (no per-host rule).
func (s *sampler) uniform() bool { return len(s.exact) == 0 && len(s.globs) == 0 }

func (s *sampler) ratioFor(d *dest) float64 {
	if s.uniform() {
		return s.ratio
	}
	name := d.name
	if name == "" && d.ip.IsValid() {
		name = d.ip.String()
	}
	if name == "" {
		return s.ratio
	}
	if r, ok := s.exact[name]; ok {
		return r
	}
	for _, g := range s.globs {
		if ok, _ := path.Match(g.pattern, name); ok {
			return g.ratio
		}
	}
	return s.ratio
}

// keep decides with ratio: by the request's W3C trace id when it has a
// valid traceparent (the low 56 bits of the trace id, the randomness W3C
// Trace Context level 2 guarantees, compared with ratio·2^56: the same on
// every agent that sees the trace), by a random draw otherwise.
func (s *sampler) keep(ratio float64, req *exchange.Message) bool {
	if ratio >= 1 {
		return true
	}
	if ratio <= 0 {
		return false
	}
	threshold := uint64(ratio * (1 << 56))
	if req != nil {
		if tp, ok := req.Get("traceparent"); ok {
			if r, ok := traceRandomness(tp); ok {
				return r < threshold
			}
		}
	}
	return rand.Uint64()>>8 < threshold
}

// traceRandomness returns the low 56 bits of the trace id of a valid
// traceparent ("vv-<32 hex>-<16 hex>-<2 hex>").
func traceRandomness(v string) (uint64, bool) {
	v = strings.TrimSpace(v)
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || (len(v) > 55 && v[55] != '-') {
		return 0, false
	}
	if v[:2] == "ff" || !lowerHex(v[:2]) || !lowerHex(v[36:52]) || !lowerHex(v[53:55]) {
		return 0, false
	}
	if v[:2] == "00" && len(v) != 55 {
		return 0, false
	}
	tid := v[3:35]
	if !lowerHex(tid) || tid == "00000000000000000000000000000000" {
		return 0, false
	}
	var r uint64
	for i := 32 - 14; i < 32; i++ {
		c := tid[i]
		if c <= '9' {
			c -= '0'
		} else {
			c -= 'a' - 10
		}
		r = r<<4 | uint64(c)
	}
	return r, true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
