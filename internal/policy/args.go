package policy

import "strings"

// RedactCommandArgs returns args with the secrets a command line commonly
// carries replaced by REDACTED: the value of a redacted header written as
// one argument ("Authorization: Bearer x", as curl -H takes it), credentials
// and signed query parameters in URL arguments, and the password of
// `-u user:pass` / `--user user:pass`. process.command_args is exported on
// every exchange's resource, so it must not undo the header redaction.
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
		if strings.Contains(a, "://") || strings.Contains(a, "?") {
			if r, _, _ := p.url.redactURL(a); r != a {
				set(i, r)
			}
		}
	}
	if out == nil {
		return args
	}
	return out
}
