package procscan

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/testenv"
)

const systemLibSSL = "/lib/x86_64-linux-gnu/libssl.so.3"

func requireLibSSL(t *testing.T) string {
	t.Helper()
	p, err := filepath.EvalSymlinks(systemLibSSL)
	if err != nil {
		testenv.Missing(t, "%s: %v", systemLibSSL, err)
	}
	return p
}

// checkSymbols asserts that all six OpenSSL symbols are present with the
// addresses .dynsym gives them, read independently with readelf.
func checkSymbols(t *testing.T, tg Target, file string) {
	t.Helper()
	want := readelfDynsyms(t, file)
	for _, name := range openSSLSymbols {
		got, ok := tg.Symbols[name]
		if !ok {
			t.Errorf("%s: Symbols lacks %s: %v", tg.Path, name, tg.Symbols)
			continue
		}
		if w, ok := want[name]; ok && got != w {
			t.Errorf("%s: Symbols[%s] = %#x, readelf says %#x", tg.Path, name, got, w)
		}
	}
	if len(tg.Symbols) != len(openSSLSymbols) {
		t.Errorf("%s: Symbols has %d entries, want %d: %v", tg.Path, len(tg.Symbols), len(openSSLSymbols), tg.Symbols)
	}
}

// readelfDynsyms returns the defined OpenSSL functions readelf lists in
// .dynsym (empty when readelf is missing).
func readelfDynsyms(t *testing.T, file string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	if _, err := exec.LookPath("readelf"); err != nil {
		return out
	}
	cmd := exec.Command("readelf", "-W", "--dyn-syms", file)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// "  564: 0000000000035980   131 FUNC    GLOBAL DEFAULT   13 SSL_write@@OPENSSL_3.0.0"
	re := regexp.MustCompile(`^\s*\d+: ([0-9a-f]+)\s+\d+ FUNC\s+\S+\s+\S+\s+\d+ (SSL_\w+)(@@\S+)?$`)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil && wanted(m[2]) {
			var v uint64
			fmt.Sscanf(m[1], "%x", &v)
			out[m[2]] = v
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("readelf: %v", err)
	}
	return out
}

func readelfBuildID(t *testing.T, file string) string {
	t.Helper()
	out, err := exec.Command("readelf", "-n", file).Output()
	if err != nil {
		testenv.Missing(t, "readelf -n: %v", err)
	}
	m := regexp.MustCompile(`Build ID: ([0-9a-f]+)`).FindSubmatch(out)
	if m == nil {
		return ""
	}
	return string(m[1])
}

func TestTLSTargetsPython(t *testing.T) {
	requireRoot(t)
	lib := requireLibSSL(t)
	py := "/usr/bin/python3" // the distribution's, linked against the system libssl
	if _, err := os.Stat(py); err != nil {
		py = lookPath(t, "python3")
	}
	cmd := start(t, exec.Command(py, "-c", "import ssl,time; time.sleep(30)"))
	s := New("/proc")
	got := waitTargets(t, s, cmd.Process.Pid, func(ts []Target) bool { return len(ts) > 0 })

	// Exactly libssl: the _ssl extension module imports SSL_read but does
	// not define it, and libcrypto is never a target.
	if len(got) != 1 {
		t.Fatalf("targets = %+v, want only libssl", got)
	}
	tg := got[0]
	fi, err := os.Stat(systemLibSSL)
	if err != nil {
		t.Fatal(err)
	}
	if tg.Library != OpenSSL || tg.Path != lib {
		t.Errorf("target = %v %q, want openssl %q", tg.Library, tg.Path, lib)
	}
	if tg.Key.Inode != inodeOf(fi) || tg.Key.Dev != devOf(fi) ||
		tg.Key.Size != fi.Size() || tg.Key.ModTime != fi.ModTime().UnixNano() {
		t.Errorf("Key = %+v, stat says dev %#x inode %d size %d mtime %d",
			tg.Key, devOf(fi), inodeOf(fi), fi.Size(), fi.ModTime().UnixNano())
	}
	if want := readelfBuildID(t, lib); tg.Key.BuildID != want || want == "" {
		t.Errorf("BuildID = %q, readelf says %q", tg.Key.BuildID, want)
	}
	checkSymbols(t, tg, lib)
}

// libcurl-gnutls (what git's HTTPS helper links) imports GnuTLS's record
// functions and is no target; the libgnutls it loads is, exactly once.
func TestTLSTargetsGnuTLS(t *testing.T) {
	requireRoot(t)
	py := lookPath(t, "python3")
	lib, err := filepath.EvalSymlinks("/usr/lib/x86_64-linux-gnu/libgnutls.so.30")
	if err != nil {
		t.Skip("no libgnutls30")
	}
	cmd := start(t, exec.Command(py, "-c", "import ctypes,time; ctypes.CDLL('libcurl-gnutls.so.4'); print('ok', flush=True); time.sleep(30)"))
	s := New("/proc")
	got := waitTargets(t, s, cmd.Process.Pid, func(ts []Target) bool { return len(ts) > 0 })
	if len(got) != 1 || got[0].Library != GnuTLS || got[0].Path != lib {
		t.Fatalf("targets = %+v, want only gnutls %s", got, lib)
	}
	for _, name := range []string{"gnutls_record_send", "gnutls_record_recv", "gnutls_record_send2", "gnutls_bye", "gnutls_deinit"} {
		if got[0].Symbols[name] == 0 {
			t.Errorf("symbol %s missing: %v", name, got[0].Symbols)
		}
	}
}

func TestTLSTargetsNode(t *testing.T) {
	requireRoot(t)
	node, err := filepath.EvalSymlinks(lookPath(t, "node"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := start(t, exec.Command(node, "-e", "setTimeout(()=>{},30000)"))
	s := New("/proc")
	got := waitTargets(t, s, cmd.Process.Pid, func(ts []Target) bool {
		for _, tg := range ts {
			if tg.Path == node {
				return true
			}
		}
		return false
	})
	for _, tg := range got {
		if tg.Path != node {
			continue
		}
		if tg.Library != OpenSSL {
			t.Errorf("node target library = %v", tg.Library)
		}
		fi, err := os.Stat(node)
		if err != nil {
			t.Fatal(err)
		}
		if tg.Key.Inode != inodeOf(fi) {
			t.Errorf("node Key.Inode = %d, stat says %d", tg.Key.Inode, inodeOf(fi))
		}
		checkSymbols(t, tg, node)
	}
}

func TestTLSTargetsSleepHasNone(t *testing.T) {
	requireRoot(t)
	cmd := start(t, exec.Command(lookPath(t, "sleep"), "30"))
	s := New("/proc")
	got, skipped, err := s.ScanTLS(cmd.Process.Pid)
	if err != nil || len(got) != 0 || len(skipped) != 0 {
		t.Errorf("ScanTLS(sleep) = %+v, skipped %v, err %v; want nothing", got, skipped, err)
	}
	// Only the sleep binary itself was opened: libc and ld.so are skipped
	// by name.
	if n := s.Stats().ELFOpens; n != 1 {
		t.Errorf("ELFOpens = %d, want 1 (the sleep executable)", n)
	}
}

func TestTLSTargetsVanished(t *testing.T) {
	requireRoot(t)
	cmd := exec.Command(lookPath(t, "sleep"), "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if _, err := New("/proc").TLSTargets(pid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("TLSTargets of a reaped process: err = %v, want os.ErrNotExist", err)
	}
}

// copyFile copies src to dst (creating directories), keeping the mode.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// lddDeps lists the absolute paths ldd reports for file, including the
// dynamic loader.
func lddDeps(t *testing.T, file string) []string {
	t.Helper()
	out, err := exec.Command("ldd", file).Output()
	if err != nil {
		testenv.Missing(t, "ldd %s: %v", file, err)
	}
	var deps []string
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				deps = append(deps, f)
			}
		}
	}
	return deps
}

// buildRootfs copies sleep, libssl and their dependencies into a new
// directory at the same paths, making a minimal container image.
func buildRootfs(t *testing.T, sleep string) string {
	t.Helper()
	dir := t.TempDir()
	files := append([]string{sleep, systemLibSSL}, lddDeps(t, sleep)...)
	files = append(files, lddDeps(t, systemLibSSL)...)
	for _, f := range files {
		copyFile(t, f, filepath.Join(dir, f))
	}
	return dir
}

// TestTLSTargetsMountNamespace runs a process the way container runtimes
// do: in its own mount namespace, pivoted into a private root. The kernel
// then prints maps paths relative to that root and /proc/<pid>/root reads
// as "/", so only the mount namespace tells the agent to go through
// /proc/<pid>/root.
func TestTLSTargetsMountNamespace(t *testing.T) {
	requireRoot(t)
	requireLibSSL(t)
	unshare := lookPath(t, "unshare")
	sleep := lookPath(t, "sleep")
	dir := buildRootfs(t, sleep)
	if err := os.Mkdir(filepath.Join(dir, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("mount --bind %[1]s %[1]s && cd %[1]s && pivot_root . old && exec %[2]s 30", dir, sleep)
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LD_PRELOAD=" + systemLibSSL}
	start(t, cmd)
	pid := cmd.Process.Pid // unshare and sh exec, so sleep keeps this pid

	copyFI, err := os.Stat(filepath.Join(dir, systemLibSSL))
	if err != nil {
		t.Fatal(err)
	}
	// Until sh has pivoted and exec'd sleep, the pid maps the host's
	// libssl (sh is preloaded too); wait for the image's copy, then check
	// the path the agent would open.
	s := New("/proc")
	got := waitTargets(t, s, pid, func(ts []Target) bool {
		return len(ts) == 1 && ts[0].Key.Inode == inodeOf(copyFI)
	})
	tg := got[0]
	if want := fmt.Sprintf("/proc/%d/root%s", pid, systemLibSSL); tg.Path != want {
		t.Errorf("Path = %q, want %q", tg.Path, want)
	}
	checkSymbols(t, tg, systemLibSSL)
	p, err := s.Process(pid)
	if err != nil {
		t.Fatal(err)
	}
	if p.ExePath != sleep || p.ExeName != "sleep" {
		t.Errorf("ExePath = %q, want %q", p.ExePath, sleep)
	}
}

// TestTLSTargetsChroot runs a process whose root is a private tree with its
// own copy of libssl, as a container's would be, and checks that the
// target path goes through /proc/<pid>/root and names that copy.
func TestTLSTargetsChroot(t *testing.T) {
	requireRoot(t)
	requireLibSSL(t)
	chroot := lookPath(t, "chroot")
	sleep := lookPath(t, "sleep")
	dir := buildRootfs(t, sleep)
	cmd := exec.Command(chroot, dir, sleep, "30")
	cmd.Env = []string{"LD_PRELOAD=" + systemLibSSL, "LD_LIBRARY_PATH=" + filepath.Dir(systemLibSSL)}
	start(t, cmd)
	pid := cmd.Process.Pid

	s := New("/proc")
	prefix := fmt.Sprintf("/proc/%d/root/", pid)
	// Until it execs sleep, the process is chroot(1) itself, which the
	// LD_PRELOAD gives the host's libssl: wait for the chrooted image.
	got := waitTargets(t, s, pid, func(ts []Target) bool { return len(ts) > 0 && strings.HasPrefix(ts[0].Path, prefix) })
	if len(got) != 1 {
		t.Fatalf("targets = %+v, want the chroot's libssl", got)
	}
	tg := got[0]
	if want := prefix + strings.TrimPrefix(systemLibSSL, "/"); tg.Path != want {
		t.Errorf("Path = %q, want %q", tg.Path, want)
	}
	copyFI, err := os.Stat(filepath.Join(dir, systemLibSSL))
	if err != nil {
		t.Fatal(err)
	}
	hostFI, err := os.Stat(systemLibSSL)
	if err != nil {
		t.Fatal(err)
	}
	if tg.Key.Inode != inodeOf(copyFI) || tg.Key.Inode == inodeOf(hostFI) {
		t.Errorf("Key.Inode = %d, want the copy's %d (host's is %d)", tg.Key.Inode, inodeOf(copyFI), inodeOf(hostFI))
	}
	checkSymbols(t, tg, systemLibSSL)

	// The chrooted process reports paths as it sees them.
	p, err := s.Process(pid)
	if err != nil {
		t.Fatal(err)
	}
	if p.ExePath != sleep {
		t.Errorf("ExePath = %q, want %q", p.ExePath, sleep)
	}
}

// TestTLSTargetsDeletedLibrary covers a library removed (e.g. upgraded)
// while a process still maps it: only /proc/<pid>/map_files reaches it.
func TestTLSTargetsDeletedLibrary(t *testing.T) {
	requireRoot(t)
	requireLibSSL(t)
	lib := filepath.Join(t.TempDir(), "libssl.so.3")
	copyFile(t, systemLibSSL, lib)
	fi, err := os.Stat(lib)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(lookPath(t, "sleep"), "30")
	cmd.Env = []string{"LD_PRELOAD=" + lib}
	start(t, cmd)
	pid := cmd.Process.Pid
	s := New("/proc")
	got := waitTargets(t, s, pid, func(ts []Target) bool { return len(ts) == 1 })
	if got[0].Path != lib {
		t.Fatalf("before deletion Path = %q, want %q", got[0].Path, lib)
	}
	if err := os.Remove(lib); err != nil {
		t.Fatal(err)
	}
	got, err = s.TLSTargets(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("after deletion targets = %+v", got)
	}
	tg := got[0]
	if prefix := fmt.Sprintf("/proc/%d/map_files/", pid); !strings.HasPrefix(tg.Path, prefix) {
		t.Errorf("Path = %q, want prefix %q", tg.Path, prefix)
	}
	if tg.Key.Inode != inodeOf(fi) {
		t.Errorf("Key.Inode = %d, want %d", tg.Key.Inode, inodeOf(fi))
	}
	// The path really opens the deleted library.
	ef, err := elf.Open(tg.Path)
	if err != nil {
		t.Fatalf("open %s: %v", tg.Path, err)
	}
	ef.Close()
	checkSymbols(t, tg, systemLibSSL)
}

// TestTLSTargetsCacheRealProcesses starts several processes mapping the
// same libssl and checks the files are inspected once, and that every
// process yields the same key.
func TestTLSTargetsCacheRealProcesses(t *testing.T) {
	requireRoot(t)
	requireLibSSL(t)
	sleep := lookPath(t, "sleep")
	var pids []int
	for range 3 {
		cmd := exec.Command(sleep, "30")
		cmd.Env = []string{"LD_PRELOAD=" + systemLibSSL}
		pids = append(pids, start(t, cmd).Process.Pid)
	}
	s := New("/proc")
	first := waitTargets(t, s, pids[0], func(ts []Target) bool { return len(ts) == 1 })
	opens := s.Stats().ELFOpens
	if opens != 2 { // sleep and libssl
		t.Errorf("ELFOpens after first process = %d, want 2", opens)
	}
	for _, pid := range pids[1:] {
		got := waitTargets(t, s, pid, func(ts []Target) bool { return len(ts) == 1 })
		if got[0].Key != first[0].Key {
			t.Errorf("pid %d key %+v differs from %+v", pid, got[0].Key, first[0].Key)
		}
	}
	if n := s.Stats().ELFOpens; n != opens {
		t.Errorf("ELFOpens grew from %d to %d scanning processes of the same files", opens, n)
	}
}

// TestTLSTargetsCacheFixture simulates 100 processes mapping one library
// and scans them concurrently: the library must be opened exactly once.
func TestTLSTargetsCacheFixture(t *testing.T) {
	requireLibSSL(t)
	lib := filepath.Join(t.TempDir(), "lib", "libssl.so.3")
	copyFile(t, systemLibSSL, lib)
	fi, err := os.Stat(lib)
	if err != nil {
		t.Fatal(err)
	}
	notELF := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	nfi, err := os.Stat(notELF)
	if err != nil {
		t.Fatal(err)
	}

	f := newFakeProc(t)
	const n = 100
	maps := fmt.Sprintf("1000-2000 r-xp 00000000 %x:%x %d %s\n3000-4000 r-xp 00000000 %x:%x %d %s\n",
		devOf(fi)>>8, devOf(fi)&0xff, inodeOf(fi), lib,
		devOf(nfi)>>8, devOf(nfi)&0xff, inodeOf(nfi), notELF)
	for pid := 100; pid < 100+n; pid++ {
		f.write(fmt.Sprintf("%d/maps", pid), maps)
		f.symlink(fmt.Sprintf("%d/root", pid), "/")
	}
	s := New(f.root)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for pid := 100; pid < 100+n; pid++ {
		wg.Go(func() {
			got, skipped, err := s.ScanTLS(pid)
			switch {
			case err != nil:
				errs <- err
			case len(skipped) != 0:
				errs <- fmt.Errorf("pid %d skipped %v", pid, skipped[0])
			case len(got) != 1 || got[0].Path != lib || got[0].Key.Inode != inodeOf(fi):
				errs <- fmt.Errorf("pid %d targets %+v", pid, got)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// One open for the library, one for the non-ELF script; everything
	// else came from the cache.
	if st := s.Stats(); st.ELFOpens != 2 || st.ELFCacheHits != 2*(n-1) {
		t.Errorf("Stats = %+v, want 2 opens and %d hits", st, 2*(n-1))
	}

	// Rewriting the file in place (same inode, new mtime) is a new version
	// and is inspected again.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(lib, later, later); err != nil {
		t.Fatal(err)
	}
	got, err := s.TLSTargets(100)
	if err != nil || len(got) != 1 {
		t.Fatalf("TLSTargets after touch = %+v, %v", got, err)
	}
	if got[0].Key.ModTime != later.UnixNano() {
		t.Errorf("Key.ModTime = %d, want %d", got[0].Key.ModTime, later.UnixNano())
	}
	if st := s.Stats(); st.ELFOpens != 3 {
		t.Errorf("ELFOpens after touch = %d, want 3", st.ELFOpens)
	}
}

func TestTLSTargetsCacheLimit(t *testing.T) {
	requireLibSSL(t)
	dir := t.TempDir()
	f := newFakeProc(t)
	var maps strings.Builder
	for i := range 3 {
		lib := filepath.Join(dir, fmt.Sprintf("libssl.so.%d", i))
		copyFile(t, systemLibSSL, lib)
		fi, err := os.Stat(lib)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&maps, "%x-%x r-xp 00000000 %x:%x %d %s\n", 0x1000*(i+1), 0x1000*(i+2)-1,
			devOf(fi)>>8, devOf(fi)&0xff, inodeOf(fi), lib)
	}
	f.write("7/maps", maps.String())
	f.symlink("7/root", "/")
	s := New(f.root, WithELFCacheLimit(2))
	for range 2 {
		got, err := s.TLSTargets(7)
		if err != nil || len(got) != 3 {
			t.Fatalf("TLSTargets = %d targets, %v; want 3", len(got), err)
		}
	}
	s.elf.mu.Lock()
	size := len(s.elf.m)
	s.elf.mu.Unlock()
	if size > 2 {
		t.Errorf("cache holds %d entries, limit 2", size)
	}
}

func TestTLSTargetsUnreadableRoot(t *testing.T) {
	requireLibSSL(t)
	fi, err := os.Stat(systemLibSSL)
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeProc(t)
	f.write("8/maps", fmt.Sprintf("1000-2000 r-xp 00000000 %x:%x %d %s\n",
		devOf(fi)>>8, devOf(fi)&0xff, inodeOf(fi), systemLibSSL))
	f.write("8/root", "not a symlink") // readlink fails with EINVAL
	_, err = New(f.root).TLSTargets(8)
	if err == nil || !strings.Contains(err.Error(), "read root of pid 8") || errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want a 'read root of pid 8' error that is not ErrNotExist", err)
	}

	// No candidate files: the root is never needed.
	f.write("9/maps", "1000-2000 r-xp 00000000 00:00 0 [vdso]\n")
	f.write("9/root", "not a symlink")
	if got, err := New(f.root).TLSTargets(9); err != nil || got != nil {
		t.Errorf("TLSTargets(9) = %v, %v; want nothing", got, err)
	}
}

func TestTLSTargetsSkipsFileMismatch(t *testing.T) {
	requireLibSSL(t)
	fi, err := os.Stat(systemLibSSL)
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeProc(t)
	// maps claims another inode than the path holds: the file was replaced.
	// With no map_files in the fixture, it must be reported, not guessed.
	f.write("10/maps", fmt.Sprintf("1000-2000 r-xp 00000000 %x:%x %d %s\n",
		devOf(fi)>>8, devOf(fi)&0xff, inodeOf(fi)+1, systemLibSSL))
	f.symlink("10/root", "/")
	s := New(f.root)
	got, skipped, err := s.ScanTLS(10)
	if err != nil || len(got) != 0 || len(skipped) != 1 {
		t.Fatalf("ScanTLS = %+v, %v, %v; want one skipped file", got, skipped, err)
	}
	if skipped[0].Path != systemLibSSL || !strings.Contains(skipped[0].Error(), "maps has") {
		t.Errorf("skipped = %v", skipped[0])
	}
	if s.Stats().ELFOpens != 0 {
		t.Errorf("a mismatched file was opened")
	}
}

func TestSkipByName(t *testing.T) {
	for name, skip := range map[string]bool{
		"libc.so.6": true, "ld-linux-x86-64.so.2": true, "libcrypto.so.3": true,
		"libssl.so.3": false, "libssl.so.1.1": false, "node": false, "libnode.so.108": false,
		"libcustom.so": false, "python3.11": false,
	} {
		if got := skipByName(name); got != skip {
			t.Errorf("skipByName(%q) = %v, want %v", name, got, skip)
		}
	}
}

func TestLibraryString(t *testing.T) {
	if OpenSSL.String() != "openssl" || GnuTLS.String() != "gnutls" || LibraryUnknown.String() != "unknown" {
		t.Errorf("Library strings: %q %q %q", OpenSSL, GnuTLS, LibraryUnknown)
	}
}
