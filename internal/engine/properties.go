package engine

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ConfigFromProperties builds a Config from flat string properties, the
// shape of Fluent Bit's plugin configuration, with the receiver's option
// names. Properties that are absent keep their defaults. Sizes accept a
// KiB/MiB/GiB (or K/M/G) suffix. The result is validated.
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
	if len(errs) > 0 {
		return cfg, errors.Join(errs...)
	}
	return cfg, cfg.Validate()
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
