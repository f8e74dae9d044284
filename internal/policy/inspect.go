package policy

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// inspector finds secrets and personal data in bodies.
type inspector struct {
	fields    fieldSet
	values    []spanFinder // secret values by shape
	pii       []piiKind    // kinds to detect
	redactPII bool
	scratch   sync.Pool // *inspectScratch
}

type inspectScratch struct {
	js    jsonScan
	raw   []edit // edits on the raw bytes (value rules)
	edits []edit
	spans []span
}

func (in *inspector) compile(errs *errList, red *Redaction, pii *PII) {
	in.fields = newFieldSet(errs, "redaction.fields", red.Fields, "redaction.extra_fields", red.ExtraFields)
	seen := map[string]bool{}
	for i, name := range red.SecretValues {
		f, ok := secretValueFinders[strings.ToLower(name)]
		switch {
		case !ok:
			errs.add(fmt.Sprintf("redaction.secret_values[%d]", i), "unknown detector %q (known: %s)", name, strings.Join(DefaultSecretValues, ", "))
		case seen[strings.ToLower(name)]:
			errs.add(fmt.Sprintf("redaction.secret_values[%d]", i), "%q listed twice", name)
		default:
			seen[strings.ToLower(name)] = true
			in.values = append(in.values, f)
		}
	}
	all := PIIKinds()
	for i, name := range pii.Kinds {
		k := slices.Index(all, strings.ToLower(name))
		switch {
		case k < 0:
			errs.add(fmt.Sprintf("pii.kinds[%d]", i), "unknown kind %q (known: %s)", name, strings.Join(all, ", "))
		case slices.Contains(in.pii, piiKind(k)):
			errs.add(fmt.Sprintf("pii.kinds[%d]", i), "%q listed twice", name)
		default:
			in.pii = append(in.pii, piiKind(k))
		}
	}
	in.redactPII = pii.Redact
	in.scratch.New = func() any { return new(inspectScratch) }
}

// bodyCounts are what inspecting one body found.
type bodyCounts struct {
	fields, values, patterns, pii uint64
	kinds                         piiSet
}

// bodyFormat is how a body's structure is understood.
type bodyFormat uint8

const (
	formatText bodyFormat = iota
	formatJSON
	formatForm
	formatMultipart
)

// formatOf tells the format of body b from its Content-Type ct.
func formatOf(ct string, b []byte) (bodyFormat, string) {
	mt := ct
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.TrimSpace(mt)
	switch {
	case equalFoldASCII(mt, "application/x-www-form-urlencoded"):
		return formatForm, ""
	case len(mt) > 10 && equalFoldASCII(mt[:10], "multipart/"):
		if bd := multipartBoundary(ct); bd != "" {
			return formatMultipart, bd
		}
	case looksJSON(b) || isJSONType(mt):
		return formatJSON, ""
	}
	return formatText, ""
}

// inspect redacts secrets (fields, secret values, body patterns) and, when
// configured, personal data in b, and reports the kinds of personal data
// found. It returns b itself when nothing changed.
// ct is the message's Content-Type (looked up once per message).
func (p *Policy) inspect(ct string, b []byte, c *bodyCounts) []byte {
	in := &p.insp
	sc := in.scratch.Get().(*inspectScratch)
	defer in.scratch.Put(sc)
	sc.edits, sc.raw = sc.edits[:0], sc.raw[:0]

	format, boundary := formatOf(ct, b)
	isJSON, scanned := false, false
	switch format {
	case formatJSON:
		// Most documents have no secret key: the full scan (which also
		// records where strings and numbers are) runs only when a key may
		// be one, or when a value rule matched.
		if mayHaveSecretKey(b, &in.fields) {
			isJSON, scanned = sc.js.scan(b, &in.fields), true
			if isJSON {
				sc.edits = append(sc.edits, sc.js.edits...)
			}
		}
	case formatForm:
		if !in.fields.empty() {
			sc.edits = formEdits(b, &in.fields, sc.edits)
		}
	case formatMultipart:
		if !in.fields.empty() {
			sc.edits = multipartEdits(b, boundary, &in.fields, sc.edits)
		}
	}
	c.fields += uint64(len(sc.edits))

	// Value rules look at the raw bytes.
	for _, f := range in.values {
		sc.spans = f(b, sc.spans[:0])
		for _, sp := range sc.spans {
			sc.raw = append(sc.raw, edit{sp.start, sp.end, Redacted})
		}
		c.values += uint64(len(sc.spans))
	}
	// Card numbers (the default pattern and the personal data kind) need
	// a run of 13 digits, spaces, dashes or '+': one scan for both.
	cardRun := -1 // unknown
	hasCardRun := func() bool {
		if cardRun < 0 {
			cardRun = 0
			if hasClassRun(b, cardClass, cardMinLen) {
				cardRun = 1
			}
		}
		return cardRun == 1
	}
	for i := range p.patterns {
		cp := &p.patterns[i]
		if cp.pre.cardRuns && !hasCardRun() {
			continue
		}
		sc.spans = cp.find(b, sc.spans[:0])
		for _, sp := range sc.spans {
			sc.raw = append(sc.raw, edit{sp.start, sp.end, cp.replStr})
		}
		c.patterns += uint64(len(sc.spans))
	}
	for _, k := range in.pii {
		if k == kindPaymentCard && !hasCardRun() {
			continue
		}
		sc.spans = piiFinders[k](b, sc.spans[:0])
		if len(sc.spans) == 0 {
			continue
		}
		c.kinds |= 1 << k
		if in.redactPII {
			for _, sp := range sc.spans {
				sc.raw = append(sc.raw, edit{sp.start, sp.end, Redacted})
			}
			c.pii += uint64(len(sc.spans))
		}
	}
	if format == formatJSON && !scanned && len(sc.raw) > 0 {
		isJSON = sc.js.scan(b, &in.fields)
		if isJSON {
			sc.edits = append(sc.edits, sc.js.edits...)
		}
	}
	if isJSON {
		for _, e := range sc.raw {
			sc.edits = sc.js.fitJSON(b, e, sc.edits)
		}
	} else {
		sc.edits = append(sc.edits, sc.raw...)
	}
	if len(sc.edits) == 0 {
		return b
	}
	return applyByteEdits(b, mergeEdits(sc.edits))
}

// mergeEdits sorts edits and merges overlapping ones; the wider edit's
// replacement wins.
func mergeEdits(es []edit) []edit {
	if len(es) > 1 {
		slices.SortFunc(es, func(a, b edit) int { return a.start - b.start })
	}
	out := es[:0]
	for _, e := range es {
		if n := len(out); n > 0 && e.start < out[n-1].end {
			last := &out[n-1]
			if e.end-e.start > last.end-last.start {
				last.repl = e.repl
			}
			last.end = max(last.end, e.end)
			continue
		}
		out = append(out, e)
	}
	return out
}

func applyByteEdits(b []byte, es []edit) []byte {
	n := len(b)
	for _, e := range es {
		n += len(e.repl) - (e.end - e.start)
	}
	out := make([]byte, 0, n)
	last := 0
	for _, e := range es {
		out = append(out, b[last:e.start]...)
		out = append(out, e.repl...)
		last = e.end
	}
	return append(out, b[last:]...)
}

// isJSONType reports whether mt is application/json or application/*+json.
func isJSONType(mt string) bool {
	return equalFoldASCII(mt, "application/json") ||
		(len(mt) > 17 && equalFoldASCII(mt[:12], "application/") && equalFoldASCII(mt[len(mt)-5:], "+json"))
}
