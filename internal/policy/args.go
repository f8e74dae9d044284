package policy

import "strings"

// RedactCommandArgs returns args with the secrets a command line commonly
// carries replaced by REDACTED: the value of a redacted header written as
// one argument ("Authorization: Bearer x", as curl -H takes it), credentials
// and signed query parameters in URL arguments, and the password of
// `-u user:pass` / `--user user:pass`, the values of secret fields
// (redaction.fields) written as name=value, --name=value, --name value,
// form bodies (a=1&password=x) or JSON documents (curl -d '{...}'), and
// secret values recognised by their shape (redaction.secret_values).
// process.command_args is exported on every exchange's resource, so it must
// not undo the body and header redaction.
// args itself is never modified; it is returned as is when nothing changed.
func (p *Policy) RedactCommandArgs(args []string) []string {
	if p == nil {
		return args
	}
	var out []string
	set := func(i int, v string) {
		if out == nil {
			out = append([]string(nil), args...)
		}
		out[i] = v
	}
	for i, a := range args {
		if i > 0 && (args[i-1] == "-u" || args[i-1] == "--user" || args[i-1] == "--proxy-user") {
			if user, _, ok := strings.Cut(a, ":"); ok {
				set(i, user+":"+Redacted)
			}
			continue
		}
		if name, _, ok := strings.Cut(a, ":"); ok && !strings.Contains(a, "://") && p.headers.has(strings.TrimSpace(name)) {
			set(i, strings.TrimSpace(name)+": "+Redacted)
			continue
		}
		if i > 0 && isSecretOption(&p.insp.fields, args[i-1]) {
			set(i, Redacted)
			continue
		}
		v := a
		if strings.Contains(v, "://") || strings.Contains(v, "?") {
			v, _, _ = p.url.redactURL(v)
		}
		v = p.redactArgValue(v)
		if v != a {
			set(i, v)
		}
	}
	if out == nil {
		return args
	}
	return out
}

// isSecretOption reports whether a is an option without a value (--name,
// -name) that names a secret field: the next argument is its value.
func isSecretOption(fields *fieldSet, a string) bool {
	if len(a) < 2 || a[0] != '-' || strings.IndexByte(a, '=') >= 0 {
		return false
	}
	return fields.has(strings.TrimLeft(a, "-"))
}

// redactArgValue redacts secret fields and secret values inside one
// argument.
func (p *Policy) redactArgValue(a string) string {
	b := []byte(a)
	var edits []edit
	var js jsonScan
	isJSON := looksJSON(b) && js.scan(b, &p.insp.fields)
	switch {
	case isJSON:
		edits = append(edits, js.edits...)
	case strings.IndexByte(a, '=') > 0 && !strings.Contains(a, "://"):
		// name=value, --name=value, a=1&b=2: the name's leading dashes are
		// separators to the field matcher.
		edits = formEdits(b, &p.insp.fields, edits)
	}
	var raw []edit
	var spans []span
	for _, f := range p.insp.values {
		spans = f(b, spans[:0])
		for _, sp := range spans {
			raw = append(raw, edit{sp.start, sp.end, Redacted})
		}
	}
	for i := range p.patterns {
		spans = p.patterns[i].find(b, spans[:0])
		for _, sp := range spans {
			raw = append(raw, edit{sp.start, sp.end, p.patterns[i].replStr})
		}
	}
	if isJSON {
		for _, e := range raw {
			edits = js.fitJSON(b, e, edits)
		}
	} else {
		edits = append(edits, raw...)
	}
	if len(edits) == 0 {
		return a
	}
	return string(applyByteEdits(b, mergeEdits(edits)))
}
