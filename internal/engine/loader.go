package engine

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"go.uber.org/zap"

	tlsbpf "github.com/tlstap/tlstap/bpf"
	"github.com/tlstap/tlstap/internal/attachpoint"
	"github.com/tlstap/tlstap/internal/goinfo"
)

// rawTracepoints are the programs attached to kernel tracepoints: the two
// syscall dispatchers (the whole data path) and the process lifecycle.
var rawTracepoints = []struct {
	prog, name string
	required   bool
}{
	{"raw_sys_enter", "sys_enter", true},
	{"raw_sys_exit", "sys_exit", true},
	{"raw_sched_exec", "sched_process_exec", false},
	{"raw_sched_exit", "sched_process_exit", false},
}

// sslHooks chooses the probes for one OpenSSL build: the internal
// read/write functions when attachpoint found them (every path, cheap
// probes), else the public SSL_read/SSL_read_ex/SSL_write/SSL_write_ex.
func sslHooks(pts attachpoint.OpenSSL) []probe {
	var hooks []probe
	pair := func(enter, exit string, off uint64, what string) {
		if off != 0 {
			hooks = append(hooks, probe{prog: enter, offset: off, what: what}, probe{prog: exit, offset: off, ret: true, what: what})
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
		hooks = append(hooks, probe{prog: "ssl_shutdown_enter", offset: off, what: "SSL_shutdown"})
	}
	if off := pts.Free; off != 0 {
		// at its entry, or on the emulated je after its NULL check
		hooks = append(hooks, probe{prog: "ssl_free_enter", offset: off, what: "SSL_free"})
	}
	return hooks
}

// kernel owns every eBPF object the engine created.
type kernel struct {
	logger *zap.Logger
	maps   *ebpf.Collection
	progs  map[string]*ebpf.Program
	links  []link.Link // tracepoints

	// multi: uprobes attach as one uprobe_multi link per program and file
	// (Linux ≥ 6.6), else one perf-event link per probe.
	multi bool

	mu       sync.Mutex
	uprobes  map[fileID]hooked
	nUprobes int
	nLinks   int               // kernel links behind nUprobes
	goSlots  uint32            // go_layouts entries ever used
	goFree   []uint32          // go_layouts entries released, reused first
	goSlotOf map[fileID]uint32 // the entry each hooked Go binary uses
}

// checkHost returns a precise error when this host cannot run the agent.
func checkHost() error {
	// Not "must be root": a container or a systemd service can run the
	// agent with only the capabilities it needs.
	if err := checkCaps(); err != nil {
		return err
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return fmt.Errorf("kernel BTF not available (%v): tlstap needs a kernel built with CONFIG_DEBUG_INFO_BTF=y", err)
	}
	return nil
}

// loadKernel loads the eBPF programs and attaches the tracepoints.
// perProbeLinks attaches uprobes as on a kernel without uprobe_multi even
// where it exists, so that path runs on every host (tests).
func loadKernel(cfg Config, logger *zap.Logger, perProbeLinks bool) (*kernel, error) {
	if err := checkHost(); err != nil {
		return nil, err
	}
	if err := checkKernelFeatures(features.HaveProgramHelper); err != nil {
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
	if err := spec.Variables["wakeup_bytes"].Set(uint64(cfg.RingBufferSize / 8)); err != nil {
		return nil, fmt.Errorf("set wakeup_bytes: %w", err)
	}
	if err := spec.Variables["ring_bytes"].Set(uint64(cfg.RingBufferSize)); err != nil {
		return nil, fmt.Errorf("set ring_bytes: %w", err)
	}
	// The kernel checks skip_tgids only when processes are filtered.
	if err := spec.Variables["filter_tgids"].Set(boolByte(cfg.Policy.HasProcessRules())); err != nil {
		return nil, fmt.Errorf("set filter_tgids: %w", err)
	}

	k := &kernel{logger: logger, progs: map[string]*ebpf.Program{}, uprobes: map[fileID]hooked{}, multi: true}
	multiErr := features.HaveBPFLinkUprobeMulti()
	if multiErr == nil && perProbeLinks {
		multiErr = errors.New("one link per probe requested")
	}
	if multiErr != nil {
		// The programs are the same; only how they attach differs. Linux
		// < 6.6 (Debian 12's 6.1, Ubuntu 22.04's 5.15) takes this path:
		// Stats.UprobeLinks then equals the probe count.
		logger.Warn("uprobe_multi links unavailable; attaching one link per probe (slower attach and detach)", zap.Error(multiErr))
		k.multi = false
		for _, ps := range spec.Programs {
			if ps.AttachType == ebpf.AttachTraceUprobeMulti {
				ps.AttachType = ebpf.AttachNone
			}
		}
	}
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
	if err := k.attachSyscalls(); err != nil {
		k.close()
		return nil, err
	}
	return k, nil
}

// attachSyscalls attaches the raw tracepoints. A missing optional one
// degrades capture with a warning; a missing required one is an error.
func (k *kernel) attachSyscalls() error {
	for _, tp := range rawTracepoints {
		err := errors.New("program not loaded")
		if prog := k.progs[tp.prog]; prog != nil {
			var l link.Link
			l, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp.name, Program: prog})
			if err == nil {
				k.links = append(k.links, l)
				continue
			}
		}
		if tp.required {
			return fmt.Errorf("attach raw tracepoint %s: %w", tp.name, err)
		}
		k.logger.Warn("optional tracepoint unavailable; capture degraded", zap.String("tracepoint", tp.name), zap.Error(err))
	}
	return nil
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
// data is known there), Read at its one CALL runtime.memmove when goinfo
// vouched for it (one emulated probe per Read), else at its entry and on
// every RET (never uretprobes on Go: moving stacks corrupt them). The
// binary's struct layout goes into the go_layouts slot its probes carry as
// attach cookie.
func (k *kernel) attachGo(path string, ver fileVersion, info goinfo.Info) (int, error) {
	id := ver.id
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.uprobes[id]; ok {
		return 0, nil
	}
	if k.maps == nil {
		return 0, fmt.Errorf("attach Go TLS probes to %s: the kernel side is closed", path)
	}
	if (info.Read.CopyCall == 0 && len(info.Read.Returns) == 0) || info.Read.Entry == 0 || info.Write.Entry == 0 {
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
	cookie := uint64(slot) // the programs find the binary's layout by it
	probes := []probe{
		{prog: "go_tls_write", offset: goEntry(pinned, info.Write.Entry), cookie: cookie, what: "Write"},
	}
	if info.ReadScheme() == goinfo.ReadCopyCall {
		probes = append(probes, probe{prog: "go_tls_read_copy", offset: info.Read.CopyCall, cookie: cookie, what: "Read copy call"})
	} else {
		probes = append(probes, probe{prog: "go_tls_read_enter", offset: goEntry(pinned, info.Read.Entry), cookie: cookie, what: "Read"})
		for _, r := range info.Read.Returns {
			probes = append(probes, probe{prog: "go_tls_read_ret", offset: r, cookie: cookie, what: "Read return"})
		}
	}
	h, errs := k.attachProbes(ex, probes)
	h.ver = ver
	if len(errs) > 0 {
		// Half-attached Read would leak per-goroutine state: all or nothing.
		closeLinks(h.links)
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
	k.uprobes[id] = h
	k.nUprobes += h.probes
	k.nLinks += len(h.links)
	return h.probes, nil
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
// idempotent per inode and returns how many probes it attached; probes
// that fail are logged while the others stay (a partial hook still sees
// most calls).
func (k *kernel) attachOpenSSL(path string, ver fileVersion) (int, error) {
	return k.attachLibrary(path, ver, "OpenSSL", false, func(pinned string) ([]probe, error) {
		pts, err := attachpoint.FindOpenSSL(pinned)
		return sslHooks(pts), err
	})
}

// attachLibrary is the one way a TLS library file is hooked: pin the
// file, find its probes, attach them and account for them (uprobes and
// the links behind them). allOrNothing drops a partial set.
func (k *kernel) attachLibrary(path string, ver fileVersion, lib string, allOrNothing bool, find func(pinned string) ([]probe, error)) (int, error) {
	id := ver.id
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
	probes, err := find(pinned)
	if err != nil {
		return 0, err
	}
	ex, err := link.OpenExecutable(pinned)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	h, errs := k.attachProbes(ex, probes)
	h.ver = ver
	if h.probes == 0 || (allOrNothing && len(errs) > 0) {
		closeLinks(h.links)
		return 0, fmt.Errorf("attach %s probes to %s: %w", lib, path, errors.Join(append(errs, errors.New("no probe attached"))...))
	}
	k.uprobes[id] = h
	k.nUprobes += h.probes
	k.nLinks += len(h.links)
	if len(errs) > 0 {
		k.logger.Warn("some "+lib+" probes could not be attached", zap.String("path", path), zap.Error(errors.Join(errs...)))
	}
	return h.probes, nil
}

// probe is one uprobe: a program at a file offset, entry or return.
type probe struct {
	prog   string
	offset uint64
	ret    bool
	cookie uint64 // bpf_get_attach_cookie()
	what   string // for messages
}

// hooked is what is attached to one file.
type hooked struct {
	links  []link.Link
	probes int
	ver    fileVersion // the file's content when its offsets were found
}

// attachProbes attaches probes to one executable. With uprobe_multi each
// program gets one link for all its offsets: closing a link waits once for
// the kernel's uprobe synchronization (~25 ms here), where one perf-event
// link per probe waits ~80–100 ms each, serialized in the kernel — what
// made shutdown take seconds. A program whose probes fail is reported in
// errs; the others stay attached.
func (k *kernel) attachProbes(ex *link.Executable, probes []probe) (hooked, []error) {
	var h hooked
	var errs []error
	type group struct {
		prog        string
		ret         bool
		offs, cooks []uint64
		what        []string
	}
	var groups []*group
	byProg := map[string]*group{}
	for _, p := range probes {
		g := byProg[p.prog]
		if g == nil {
			g = &group{prog: p.prog, ret: p.ret}
			byProg[p.prog] = g
			groups = append(groups, g)
		}
		g.offs = append(g.offs, p.offset)
		g.cooks = append(g.cooks, p.cookie)
		g.what = append(g.what, p.what)
	}
	for _, g := range groups {
		prog := k.progs[g.prog]
		if prog == nil {
			errs = append(errs, fmt.Errorf("%s not loaded", g.prog))
			continue
		}
		multi, single := ex.UprobeMulti, ex.Uprobe
		if g.ret {
			multi, single = ex.UretprobeMulti, ex.Uretprobe
		}
		if k.multi {
			l, err := multi(nil, prog, &link.UprobeMultiOptions{Addresses: g.offs, Cookies: g.cooks})
			if err != nil {
				errs = append(errs, fmt.Errorf("%s probes on %s at %#x: %w", g.prog, strings.Join(g.what, ", "), g.offs, err))
				continue
			}
			h.links = append(h.links, l)
			h.probes += len(g.offs)
			continue
		}
		for i, off := range g.offs {
			l, err := single("", prog, &link.UprobeOptions{Address: off, Cookie: g.cooks[i]})
			if err != nil {
				errs = append(errs, fmt.Errorf("%s probe on %s at %#x: %w", g.prog, g.what[i], off, err))
				continue
			}
			h.links = append(h.links, l)
			h.probes++
		}
	}
	return h, errs
}

// closeLinks closes links concurrently: each close may wait for a kernel
// synchronization of its own, and they need not wait for each other.
func closeLinks(links []link.Link) []error {
	errs := make([]error, len(links))
	var wg sync.WaitGroup
	for i, l := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.Close()
		}()
	}
	wg.Wait()
	return errs
}

// detach closes the probes on one file and returns how many there were.
func (k *kernel) detach(id fileID) int {
	k.mu.Lock()
	h := k.uprobes[id]
	delete(k.uprobes, id)
	k.nUprobes -= h.probes
	k.nLinks -= len(h.links)
	if slot, ok := k.goSlotOf[id]; ok {
		delete(k.goSlotOf, id)
		k.goFree = append(k.goFree, slot)
	}
	k.mu.Unlock()
	closeLinks(h.links)
	return h.probes
}

// current reports whether the file is hooked for its content as it is
// now. Probes on the same inode placed for other content — the file was
// rewritten in place since — are detached first: their offsets point into
// other code, where a breakpoint could land inside an instruction.
func (k *kernel) current(ver fileVersion) bool {
	k.mu.Lock()
	h, ok := k.uprobes[ver.id]
	k.mu.Unlock()
	if !ok {
		return false
	}
	if h.ver == ver {
		return true
	}
	n := k.detach(ver.id)
	k.logger.Info("file changed in place since it was hooked: probes detached, re-analysing",
		zap.Uint64("inode", ver.id.ino), zap.Int64("size", ver.size), zap.Int("probes", n))
	return false
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

// uprobeLinks is how many kernel links hold the uprobes: one per program
// and file with uprobe_multi, one per probe without.
func (k *kernel) uprobeLinks() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.nLinks
}

// lossStats sums the per-CPU loss counters into s.
func (k *kernel) lossStats(s *Stats) {
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
	s.EventsLost = sum(tlsbpf.StatLostEvents)
	s.BytesLost = sum(tlsbpf.StatLostBytes)
	s.ControlEventsLost = sum(tlsbpf.StatLostControl)
	s.BytesShed = sum(tlsbpf.StatShed)
}

// close detaches every link and releases every program and map.
func (k *kernel) close() error {
	k.mu.Lock()
	all := append([]link.Link(nil), k.links...)
	for id, h := range k.uprobes {
		all = append(all, h.links...)
		delete(k.uprobes, id)
	}
	k.nUprobes, k.nLinks = 0, 0
	k.links = nil
	progs := k.progs
	k.progs = nil // under mu: an attach racing a late shutdown sees no programs
	maps := k.maps
	k.maps = nil
	k.mu.Unlock()
	errs := closeLinks(all)
	for _, p := range progs {
		errs = append(errs, p.Close())
	}
	if maps != nil {
		// The library maps .rodata and .bss into memory for their
		// variables and unmaps them from a GC cleanup: until then the
		// kernel keeps both maps alive though their fds are closed. Drop
		// the collection and collect now, so Shutdown leaves nothing in the
		// kernel even while the Engine value is still referenced.
		maps.Close()
		runtime.GC()
	}
	return errors.Join(errs...)
}
