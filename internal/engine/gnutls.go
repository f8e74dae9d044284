package engine

import (
	"go.uber.org/zap"

	"github.com/tlstap/tlstap/internal/attachpoint"
)

// GnuTLS as one unit: which probes (gnutlsHooks), how they attach
// (attachGnuTLS) and which files are hooked up front (systemLibGnuTLS).
// Recognition lives in procscan (Library GnuTLS), the programs in
// bpf/tlstap.bpf.c ("GnuTLS").

// gnutlsHooks chooses the probes for one GnuTLS build: entry and return of
// the send function(s) and gnutls_record_recv, and the session ends.
func gnutlsHooks(pts attachpoint.GnuTLS) []probe {
	var hooks []probe
	for i, off := range pts.Send {
		hooks = append(hooks,
			probe{prog: "gnutls_send_enter", offset: off, what: pts.SendWhat[i]},
			probe{prog: "gnutls_send_exit", offset: off, ret: true, what: pts.SendWhat[i]})
	}
	hooks = append(hooks,
		probe{prog: "gnutls_recv_enter", offset: pts.Recv, what: "gnutls_record_recv"},
		probe{prog: "gnutls_recv_exit", offset: pts.Recv, ret: true, what: "gnutls_record_recv"})
	if pts.Bye != 0 {
		hooks = append(hooks, probe{prog: "gnutls_bye_enter", offset: pts.Bye, what: "gnutls_bye"})
	}
	if pts.Deinit != 0 {
		hooks = append(hooks, probe{prog: "gnutls_deinit_enter", offset: pts.Deinit, what: "gnutls_deinit"})
	}
	return hooks
}

// attachGnuTLS hooks the GnuTLS build in the file at path. It is idempotent
// per inode and returns how many probes it attached. Data probes go all or
// nothing: a send without its recv would pair nothing.
func (k *kernel) attachGnuTLS(path string, ver fileVersion) (int, error) {
	return k.attachLibrary(path, ver, "GnuTLS", true, func(pinned string) ([]probe, error) {
		pts, err := attachpoint.FindGnuTLS(pinned)
		return gnutlsHooks(pts), err
	})
}

// systemLibGnuTLS lists the host's own libgnutls files, hooked up front
// like libssl so that a short-lived client (wget, git) is captured from
// its first call.
func systemLibGnuTLS() []string {
	return systemLibs("libgnutls.so*")
}

// attachSystemLibs hooks the host's copies of one TLS library and pins
// them (they stay hooked while the agent runs).
func (d *discoverer) attachSystemLibs(name string, paths []string, attach func(string, fileVersion) (int, error)) {
	for _, p := range paths {
		ver, err := statVersion(p)
		if err != nil {
			continue
		}
		if _, err := attach(p, ver); err != nil {
			d.stats.attachErrors.Add(1)
			d.logger.Warn("cannot hook system "+name, zap.String("path", p), zap.Error(err))
			continue
		}
		d.pinned[ver.id] = true
	}
}
