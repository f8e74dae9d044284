package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	tlsbpf "github.com/tlstap/tlstap/bpf"
	"github.com/tlstap/tlstap/internal/attachpoint"
	"github.com/tlstap/tlstap/internal/goinfo"
)

// tracepointProgs maps each tracepoint program to its "group/name". Programs
// marked required are the data path: without them the agent captures nothing.
var tracepointProgs = []struct {
	prog, group, name string
	required          bool
}{
	{"tp_enter_write", "syscalls", "sys_enter_write", true},
	{"tp_exit_write", "syscalls", "sys_exit_write", true},
	{"tp_enter_read", "syscalls", "sys_enter_read", true},
	{"tp_exit_read", "syscalls", "sys_exit_read", true},
	{"tp_enter_sendto", "syscalls", "sys_enter_sendto", false},
	{"tp_exit_sendto", "syscalls", "sys_exit_sendto", false},
	{"tp_enter_recvfrom", "syscalls", "sys_enter_recvfrom", false},
	{"tp_exit_recvfrom", "syscalls", "sys_exit_recvfrom", false},
	{"tp_enter_writev", "syscalls", "sys_enter_writev", false},
	{"tp_exit_writev", "syscalls", "sys_exit_writev", false},
	{"tp_enter_readv", "syscalls", "sys_enter_readv", false},
	{"tp_exit_readv", "syscalls", "sys_exit_readv", false},
	{"tp_enter_sendmsg", "syscalls", "sys_enter_sendmsg", false},
	{"tp_exit_sendmsg", "syscalls", "sys_exit_sendmsg", false},
	{"tp_enter_recvmsg", "syscalls", "sys_enter_recvmsg", false},
	{"tp_exit_recvmsg", "syscalls", "sys_exit_recvmsg", false},
	{"tp_enter_connect", "syscalls", "sys_enter_connect", false},
	{"tp_exit_connect", "syscalls", "sys_exit_connect", false},
	{"tp_exit_accept4", "syscalls", "sys_exit_accept4", false},
	{"tp_exit_accept", "syscalls", "sys_exit_accept", false},
	{"tp_enter_close", "syscalls", "sys_enter_close", false},
	{"tp_enter_dup2", "syscalls", "sys_enter_dup2", false},
	{"tp_enter_dup3", "syscalls", "sys_enter_dup3", false},
	{"tp_enter_mmap", "syscalls", "sys_enter_mmap", false},
	{"tp_exit_mmap", "syscalls", "sys_exit_mmap", false},
	{"tp_sched_exec", "sched", "sched_process_exec", false},
	{"tp_sched_exit", "sched", "sched_process_exit", false},
}

// sslHook is one OpenSSL probe: a program on a function, entry or return.
type sslHook struct {
	prog   string
	offset uint64 // file offset of the function
	ret    bool
	what   string // for messages
}

// sslHooks chooses the probes for one OpenSSL build: the internal
// read/write functions when attachpoint found them (every path, cheap
// probes), else the public SSL_read/SSL_read_ex/SSL_write/SSL_write_ex.
func sslHooks(pts attachpoint.OpenSSL) []sslHook {
	var hooks []sslHook
	pair := func(enter, exit string, off uint64, what string) {
		if off != 0 {
			hooks = append(hooks, sslHook{enter, off, false, what}, sslHook{exit, off, true, what})
		}
	}
	if pts.ReadInternal != 0 {
		pair("ssl_read_ex_enter", "ssl_read_ex_exit", pts.ReadInternal, "ssl_read_internal")
	} else {
		pair("ssl_read_enter", "ssl_read_exit", pts.Symbols["SSL_read"], "SSL_read")
		pair("ssl_read_ex_enter", "ssl_read_ex_exit", pts.Symbols["SSL_read_ex"], "SSL_read_ex")
	}
	if pts.WriteInternal != 0 {
		pair("ssl_write_ex_enter", "ssl_write_ex_exit", pts.WriteInternal, "ssl_write_internal")
	} else {
		pair("ssl_write_enter", "ssl_write_exit", pts.Symbols["SSL_write"], "SSL_write")
		pair("ssl_write_ex_enter", "ssl_write_ex_exit", pts.Symbols["SSL_write_ex"], "SSL_write_ex")
	}
	if off := pts.Symbols["SSL_shutdown"]; off != 0 {
		hooks = append(hooks, sslHook{"ssl_shutdown_enter", off, false, "SSL_shutdown"})
	}
	if off := pts.Symbols["SSL_free"]; off != 0 {
		hooks = append(hooks, sslHook{"ssl_free_enter", off, false, "SSL_free"})
	}
	return hooks
}

// kernel owns every eBPF object the engine created.
type kernel struct {
	logger *zap.Logger
	maps   *ebpf.Collection
	progs  map[string]*ebpf.Program
	links  []link.Link // tracepoints

	mu       sync.Mutex
	uprobes  map[fileID][]link.Link
	nUprobes int
	goSlots  uint32            // go_layouts entries ever used
	goFree   []uint32          // go_layouts entries released, reused first
	goSlotOf map[fileID]uint32 // the entry each hooked Go binary uses
}

// fileID identifies an attached file: uprobes live on inodes.
type fileID struct{ dev, ino uint64 }

// checkHost returns a precise error when this host cannot run the agent.
func checkHost() error {
	if os.Geteuid() != 0 {
		return errors.New("tlstap must run as root (it loads eBPF programs and attaches uprobes)")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return fmt.Errorf("kernel BTF not available (%v): tlstap needs a kernel built with CONFIG_DEBUG_INFO_BTF=y", err)
	}
	return nil
}

// ensureTracefs mounts tracefs when no mount is visible: syscall tracepoints
// are attached by the ids it publishes.
func ensureTracefs() error {
	for _, p := range []string{"/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"} {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	if err := unix.Mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
		return fmt.Errorf("tracefs is not mounted and mounting it on /sys/kernel/tracing failed: %w", err)
	}
	return nil
}

func loadKernel(cfg Config, logger *zap.Logger) (*kernel, error) {
	if err := checkHost(); err != nil {
		return nil, err
	}
	if err := ensureTracefs(); err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raise memlock limit: %w", err)
	}
	spec, err := tlsbpf.LoadSpec()
	if err != nil {
		return nil, fmt.Errorf("load eBPF object: %w", err)
	}
	spec.Maps["events"].MaxEntries = uint32(cfg.RingBufferSize)
	if err := spec.Variables["self_tgid"].Set(uint32(os.Getpid())); err != nil {
		return nil, fmt.Errorf("set self_tgid: %w", err)
	}
	if err := spec.Variables["max_call_bytes"].Set(callCap(cfg.MaxBodyBytes)); err != nil {
		return nil, fmt.Errorf("set max_call_bytes: %w", err)
	}
	// The kernel checks skip_tgids only when processes are filtered.
	if err := spec.Variables["filter_tgids"].Set(boolByte(cfg.Policy.HasProcessRules())); err != nil {
		return nil, fmt.Errorf("set filter_tgids: %w", err)
	}

	k := &kernel{logger: logger, progs: map[string]*ebpf.Program{}, uprobes: map[fileID][]link.Link{}}
	if coll, err := ebpf.NewCollection(spec); err == nil {
		// Fast path: everything loads together (one BTF load, one pass).
		k.maps = coll
		for name := range spec.Programs {
			k.progs[name] = coll.DetachProgram(name)
		}
	} else {
		logger.Warn("not every eBPF program loads on this kernel; loading them one by one", zap.Error(err))
		if err := k.loadOneByOne(spec); err != nil {
			return nil, err
		}
	}
	for _, tp := range tracepointProgs {
		prog := k.progs[tp.prog]
		var lerr error
		if prog == nil {
			lerr = errors.New("program not loaded")
		} else {
			var l link.Link
			l, lerr = link.Tracepoint(tp.group, tp.name, prog, nil)
			if lerr == nil {
				k.links = append(k.links, l)
				continue
			}
		}
		if tp.required {
			k.close()
			return nil, fmt.Errorf("attach tracepoint %s/%s: %w", tp.group, tp.name, lerr)
		}
		logger.Warn("optional tracepoint unavailable; capture degraded", zap.String("tracepoint", tp.group+"/"+tp.name), zap.Error(lerr))
	}
	return k, nil
}

// loadOneByOne creates the maps, then each program on its own, so that one
// the kernel rejects degrades the feature it serves instead of aborting.
func (k *kernel) loadOneByOne(spec *ebpf.CollectionSpec) error {
	mapSpec := spec.Copy()
	mapSpec.Programs = nil
	maps, err := ebpf.NewCollection(mapSpec)
	if err != nil {
		return fmt.Errorf("create eBPF maps (is eBPF available on this kernel?): %w", err)
	}
	k.maps = maps
	names := make([]string, 0, len(spec.Programs))
	for name := range spec.Programs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ps := spec.Copy()
		ps.Programs = map[string]*ebpf.ProgramSpec{name: ps.Programs[name]}
		coll, err := ebpf.NewCollectionWithOptions(ps, ebpf.CollectionOptions{MapReplacements: maps.Maps})
		if err != nil {
			k.logger.Warn("eBPF program rejected by the kernel; the feature it serves is degraded", zap.String("program", name), zap.Error(err))
			continue
		}
		k.progs[name] = coll.DetachProgram(name)
		coll.Close()
	}
	return nil
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// skipProcess makes the kernel programs ignore (or again follow) a process.
func (k *kernel) skipProcess(tgid uint32, skip bool) {
	m := k.maps.Maps["skip_tgids"]
	if skip {
		_ = m.Put(tgid, uint8(1))
	} else {
		_ = m.Delete(tgid)
	}
}

// callCap is the per-call capture cap handed to the kernel: enough for a
// body at the limit plus its headers; bytes beyond it are reported as a
// known-size skip instead of being copied.
func callCap(maxBody int) uint32 {
	c := uint64(maxBody) + 64<<10
	if c > tlsbpf.MaxCallBytes {
		c = tlsbpf.MaxCallBytes
	}
	return uint32(c)
}

// attachGo hooks crypto/tls in one Go executable: Write at its entry (the
// data is known there), Read at its entry and on every RET (never
// uretprobes on Go: moving stacks corrupt them). The binary's struct layout
// goes into the go_layouts slot its probes carry as attach cookie.
func (k *kernel) attachGo(path string, id fileID, info goinfo.Info) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.uprobes[id]; ok {
		return 0, nil
	}
	if len(info.Read.Returns) == 0 || info.Read.Entry == 0 || info.Write.Entry == 0 {
		return 0, fmt.Errorf("attach Go TLS probes to %s: functions not located", path)
	}
	var slot uint32
	switch {
	case len(k.goFree) > 0:
		slot = k.goFree[len(k.goFree)-1]
	case k.goSlots < tlsbpf.MaxGoBinaries:
		slot = k.goSlots
	default:
		return 0, fmt.Errorf("attach Go TLS probes to %s: more than %d distinct Go binaries hooked at once", path, tlsbpf.MaxGoBinaries)
	}
	layout := tlsbpf.GoOffsets{
		ConnConn:  info.Offsets.ConnConn,
		TcpconnFd: info.Offsets.TCPConnFD,
		NetfdPfd:  info.Offsets.NetFDPfd,
		PfdSysfd:  info.Offsets.PfdSysfd,
	}
	if err := k.maps.Maps["go_layouts"].Put(slot, layout); err != nil {
		return 0, fmt.Errorf("store Go layout for %s: %w", path, err)
	}
	f, pinned, err := pinFile(path)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	ex, err := link.OpenExecutable(pinned)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	var links []link.Link
	var errs []error
	attach := func(prog string, off uint64) {
		p := k.progs[prog]
		if p == nil {
			errs = append(errs, fmt.Errorf("%s not loaded", prog))
			return
		}
		l, err := ex.Uprobe("", p, &link.UprobeOptions{Address: off, Cookie: uint64(slot)})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s at %#x: %w", prog, off, err))
			return
		}
		links = append(links, l)
	}
	attach("go_tls_write", goEntry(pinned, info.Write.Entry))
	attach("go_tls_read_enter", goEntry(pinned, info.Read.Entry))
	for _, r := range info.Read.Returns {
		attach("go_tls_read_ret", r)
	}
	if len(errs) > 0 {
		// Half-attached Read would leak per-goroutine state: all or nothing.
		for _, l := range links {
			l.Close()
		}
		return 0, fmt.Errorf("attach Go TLS probes to %s: %w", path, errors.Join(errs...))
	}
	if len(k.goFree) > 0 && k.goFree[len(k.goFree)-1] == slot {
		k.goFree = k.goFree[:len(k.goFree)-1]
	} else {
		k.goSlots++
	}
	if k.goSlotOf == nil {
		k.goSlotOf = map[fileID]uint32{}
	}
	k.goSlotOf[id] = slot
	k.uprobes[id] = links
	k.nUprobes += len(links)
	return len(links), nil
}

// goEntry moves an entry probe from a Go function's first instruction
// (single-stepped: ~10 µs a hit) to the push after its stack check
// (emulated: under 1 µs), when the prologue has the expected shape.
func goEntry(path string, entry uint64) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return entry
	}
	defer f.Close()
	code := make([]byte, 64)
	n, _ := f.ReadAt(code, int64(entry))
	if off, ok := attachpoint.GoEntry(code[:n]); ok {
		return entry + uint64(off)
	}
	return entry
}

// attachOpenSSL hooks the OpenSSL build in the file at path. It is
// idempotent per inode and returns how many probes it attached.
func (k *kernel) attachOpenSSL(path string, id fileID) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.uprobes[id]; ok {
		return 0, nil
	}
	f, pinned, err := pinFile(path)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	pts, err := attachpoint.FindOpenSSL(pinned)
	if err != nil {
		return 0, err
	}
	ex, err := link.OpenExecutable(pinned)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	var links []link.Link
	var errs []error
	for _, h := range sslHooks(pts) {
		prog := k.progs[h.prog]
		if prog == nil {
			continue
		}
		opts := &link.UprobeOptions{Address: h.offset}
		var l link.Link
		if h.ret {
			l, err = ex.Uretprobe("", prog, opts)
		} else {
			l, err = ex.Uprobe("", prog, opts)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s probe on %s: %w", h.prog, h.what, err))
			continue
		}
		links = append(links, l)
	}
	if len(links) == 0 {
		return 0, fmt.Errorf("attach OpenSSL probes to %s: %w", path, errors.Join(append(errs, errors.New("no probe attached"))...))
	}
	k.uprobes[id] = links
	k.nUprobes += len(links)
	if len(errs) > 0 {
		k.logger.Warn("some OpenSSL probes could not be attached", zap.String("path", path), zap.Error(errors.Join(errs...)))
	}
	return len(links), nil
}

// detach closes the probes on one file and returns how many there were.
func (k *kernel) detach(id fileID) int {
	k.mu.Lock()
	links := k.uprobes[id]
	delete(k.uprobes, id)
	k.nUprobes -= len(links)
	if slot, ok := k.goSlotOf[id]; ok {
		delete(k.goSlotOf, id)
		k.goFree = append(k.goFree, slot)
	}
	k.mu.Unlock()
	for _, l := range links {
		l.Close()
	}
	return len(links)
}

// pinFile opens path and returns a path to the same file through this
// process's descriptor table, valid while f stays open. Paths under
// /proc/<pid>/ (exe, root/…) vanish when that process exits: a short-lived
// program used to die between two of its uprobes' attachments, failing the
// attach (and warning) each time it ran, and never getting hooked. The
// kernel resolves each uprobe's path at attach time and then holds the inode.
func pinFile(path string) (*os.File, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	return f, fmt.Sprintf("/proc/self/fd/%d", f.Fd()), nil
}

func (k *kernel) attached(id fileID) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.uprobes[id]
	return ok
}

func (k *kernel) probeCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.nUprobes + len(k.links)
}

// lossStats sums the per-CPU loss counters.
func (k *kernel) lossStats() (lostEvents, lostBytes, lostControl uint64) {
	m := k.maps.Maps["stats"]
	sum := func(idx uint32) uint64 {
		var vals []uint64
		if err := m.Lookup(idx, &vals); err != nil {
			return 0
		}
		var s uint64
		for _, v := range vals {
			s += v
		}
		return s
	}
	return sum(tlsbpf.StatLostEvents), sum(tlsbpf.StatLostBytes), sum(tlsbpf.StatLostControl)
}

// close detaches every link and releases every program and map. Links are
// closed concurrently: each tracepoint detach waits for an RCU grace period
// (~65 ms on our kernels), which would add up to seconds one after another.
func (k *kernel) close() error {
	k.mu.Lock()
	all := append([]link.Link(nil), k.links...)
	for id, ls := range k.uprobes {
		all = append(all, ls...)
		delete(k.uprobes, id)
	}
	k.nUprobes = 0
	k.links = nil
	progs := k.progs
	k.progs = nil // under mu: an attach racing a late shutdown sees no programs
	k.mu.Unlock()
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, l := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.Close()
		}()
	}
	wg.Wait()
	for _, p := range progs {
		errs = append(errs, p.Close())
	}
	if k.maps != nil {
		k.maps.Close()
	}
	return errors.Join(errs...)
}

// systemLibSSL lists the host's own libssl files: hooking them up front covers
// every process that will load them later, with no race against its first call.
func systemLibSSL() []string {
	var out []string
	seen := map[string]bool{}
	for _, dir := range []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/usr/lib", "/usr/local/lib", "/usr/local/lib64"} {
		matches, _ := filepath.Glob(filepath.Join(dir, "libssl.so*"))
		for _, m := range matches {
			real, err := filepath.EvalSymlinks(m)
			if err != nil || seen[real] || strings.HasSuffix(real, ".a") {
				continue
			}
			if fi, err := os.Stat(real); err != nil || !fi.Mode().IsRegular() {
				continue
			}
			seen[real] = true
			out = append(out, real)
		}
	}
	return out
}

// fileVersion is one content of one inode: the inode number plus what
// changes when the number is reused or the file rewritten.
type fileVersion struct {
	id      fileID
	size    int64
	mtimeNs int64
}

func statVersion(path string) (fileVersion, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileVersion{}, err
	}
	return fileVersion{id: fileID{dev: st.Dev, ino: st.Ino}, size: st.Size, mtimeNs: st.Mtim.Nano()}, nil
}

func statID(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileID{}, err
	}
	return fileID{dev: st.Dev, ino: st.Ino}, nil
}
