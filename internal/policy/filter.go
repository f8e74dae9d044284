package policy

import (
	"net/netip"
	"path"
	"slices"
	"strings"

	"github.com/tlstap/tlstap/internal/exchange"
)

// Filters: process, destination, direction and loopback rules.

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
