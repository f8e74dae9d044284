package procscan

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/exchange"
)

func TestProcessSelf(t *testing.T) {
	requireRoot(t)
	s := New("/proc")
	p, err := s.Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if p.PID != os.Getpid() || p.PPID != os.Getppid() {
		t.Errorf("PID/PPID = %d/%d, want %d/%d", p.PID, p.PPID, os.Getpid(), os.Getppid())
	}
	if p.ExePath != exe || p.ExeName != filepath.Base(exe) {
		t.Errorf("ExePath/ExeName = %q/%q, want %q/%q", p.ExePath, p.ExeName, exe, filepath.Base(exe))
	}
	if !reflect.DeepEqual(p.CommandArgs, os.Args) {
		t.Errorf("CommandArgs = %q, want %q", p.CommandArgs, os.Args)
	}
	if p.Owner != "root" {
		t.Errorf("Owner = %q, want root", p.Owner)
	}
	// The test binary started moments ago; btime has 1 s resolution.
	if age := time.Since(p.CreationTime); age < -2*time.Second || age > 2*time.Minute {
		t.Errorf("CreationTime %v is %v before now", p.CreationTime, age)
	}
}

func TestProcessChild(t *testing.T) {
	requireRoot(t)
	sleep, err := filepath.EvalSymlinks(lookPath(t, "sleep"))
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	// exec.Cmd.Start returns once the child's exec passed the point where
	// it closes the close-on-exec pipe; the new image's argument pages are
	// set up a moment later, so /proc/<pid>/cmdline can still read empty.
	cmd := start(t, exec.Command("sleep", "30"))
	s := New("/proc")
	var p exchange.Process
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		p, err = s.Process(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.CommandArgs) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if p.PID != cmd.Process.Pid || p.PPID != os.Getpid() {
		t.Errorf("PID/PPID = %d/%d, want %d/%d", p.PID, p.PPID, cmd.Process.Pid, os.Getpid())
	}
	if p.ExePath != sleep || p.ExeName != "sleep" {
		t.Errorf("ExePath/ExeName = %q/%q, want %q/sleep", p.ExePath, p.ExeName, sleep)
	}
	if want := []string{"sleep", "30"}; !reflect.DeepEqual(p.CommandArgs, want) {
		t.Errorf("CommandArgs = %q, want %q", p.CommandArgs, want)
	}
	if p.Owner != "root" {
		t.Errorf("Owner = %q, want root", p.Owner)
	}
	if d := p.CreationTime.Sub(before); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("CreationTime %v is %v from the start call %v", p.CreationTime, d, before)
	}
	if p.ContainerID != "" {
		t.Errorf("ContainerID = %q for a host process", p.ContainerID)
	}

	// Once reaped, the process is reported as gone.
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if _, err := s.Process(cmd.Process.Pid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Process of a reaped child: err = %v, want os.ErrNotExist", err)
	}
}

func TestPIDsReal(t *testing.T) {
	cmd := start(t, exec.Command(lookPath(t, "sleep"), "30"))
	pids, err := New("/proc").PIDs()
	if err != nil {
		t.Fatal(err)
	}
	var self, child bool
	for _, p := range pids {
		self = self || p == os.Getpid()
		child = child || p == cmd.Process.Pid
	}
	if !self || !child {
		t.Errorf("PIDs() lacks self (%v) or child (%v): %v", self, child, pids)
	}
}

// fakeProc builds a proc tree in a temporary directory.
type fakeProc struct {
	t    *testing.T
	root string
}

func newFakeProc(t *testing.T) *fakeProc {
	f := &fakeProc{t, t.TempDir()}
	f.write("stat", "cpu  1 2 3 4\nbtime 1700000000\nprocesses 99\n")
	f.write("1/root/etc/passwd", "# comment\nroot:x:0:0:root:/root:/bin/bash\n+nis::::::\nalice:x:1000:1000::/home/alice:/bin/sh\nalias:x:1000:1000::/:/bin/sh\n")
	return f
}

func (f *fakeProc) write(name, content string) {
	f.t.Helper()
	p := filepath.Join(f.root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeProc) symlink(name, target string) {
	f.t.Helper()
	p := filepath.Join(f.root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		f.t.Fatal(err)
	}
}

// statLine builds a /proc/<pid>/stat line with the given comm, ppid and
// starttime; the other fields are plausible filler.
func statLine(pid int, comm string, ppid int, start uint64) string {
	f := make([]string, 52-2)
	for i := range f {
		f[i] = "0"
	}
	f[0] = "S"
	f[4-3] = strconv.Itoa(ppid)
	f[22-3] = strconv.Itoa(int(start))
	return strconv.Itoa(pid) + " (" + comm + ") " + strings.Join(f, " ") + "\n"
}

func TestProcessFixture(t *testing.T) {
	f := newFakeProc(t)
	cg, err := os.ReadFile("testdata/cgroup/crio_v2.txt")
	if err != nil {
		t.Fatal(err)
	}
	// comm with spaces and parentheses: only the last ')' ends it.
	f.write("42/stat", statLine(42, "my (app) ) x", 7, 123456))
	f.symlink("42/exe", "/usr/local/bin/my app (deleted)")
	f.write("42/cmdline", "/usr/local/bin/my app\x00--flag\x00\x00value with space\x00")
	f.write("42/status", "Name:\tmy app\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n")
	f.write("42/cgroup", string(cg))

	// A kernel thread: no exe link, empty cmdline, no cgroup file.
	f.write("2/stat", statLine(2, "kthreadd", 0, 5))
	f.write("2/cmdline", "")
	f.write("2/status", "Name:\tkthreadd\nUid:\t4242\t4242\t4242\t4242\n")

	s := New(f.root)
	p, err := s.Process(42)
	if err != nil {
		t.Fatal(err)
	}
	hz := s.clockTicks()
	want := struct {
		PID, PPID        int
		ExePath, ExeName string
		Args             []string
		Owner            string
		Created          time.Time
		ContainerID      string
	}{42, 7, "/usr/local/bin/my app", "my app",
		[]string{"/usr/local/bin/my app", "--flag", "", "value with space"}, "alice",
		time.Unix(1700000000, 0).Add(time.Duration(123456) * time.Second / time.Duration(hz)),
		"3f4e1c2b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"}
	if p.PID != want.PID || p.PPID != want.PPID || p.ExePath != want.ExePath || p.ExeName != want.ExeName ||
		!reflect.DeepEqual(p.CommandArgs, want.Args) || p.Owner != want.Owner ||
		!p.CreationTime.Equal(want.Created) || p.ContainerID != want.ContainerID {
		t.Errorf("Process(42) =\n %+v\nwant\n %+v", p, want)
	}
	// Uid: real 1000 (owner alice), effective 0: process.user.id is the
	// effective uid.
	if !p.UIDKnown || p.UID != 0 {
		t.Errorf("Process(42) UID = %d (known %v), want effective uid 0", p.UID, p.UIDKnown)
	}

	k, err := s.Process(2)
	if err != nil {
		t.Fatal(err)
	}
	if k.ExePath != "" || k.ExeName != "kthreadd" || k.CommandArgs != nil || k.Owner != "4242" || k.PPID != 0 || k.UID != 4242 || !k.UIDKnown {
		t.Errorf("Process(2) = %+v, want kernel thread kthreadd owned by 4242", k)
	}

	if _, err := s.Process(99); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Process(99) err = %v, want os.ErrNotExist", err)
	}

	// The user database is re-read when it changes.
	f.write("1/root/etc/passwd", "bob:x:1000:1000::/:/bin/sh\n")
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(f.root, "1/root/etc/passwd"), future, future); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Process(42); err != nil || p.Owner != "bob" {
		t.Errorf("after passwd change Owner = %q (err %v), want bob", p.Owner, err)
	}

	pids, err := s.PIDs()
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 2, 42}; !reflect.DeepEqual(pids, want) {
		t.Errorf("PIDs() = %v, want %v", pids, want)
	}
}

func TestParseStat(t *testing.T) {
	st, err := parseStat([]byte(statLine(9, ") (a b) ((", 1, 77)))
	if err != nil {
		t.Fatal(err)
	}
	if st.comm != ") (a b) ((" || st.ppid != 1 || st.startTicks != 77 {
		t.Errorf("parseStat = %+v", st)
	}
	for _, bad := range []string{"", "1 no parens", "1 (x) S 1 2", "1 (x) S notanumber " + strings.Repeat("0 ", 30)} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}

func TestBootTimeMissing(t *testing.T) {
	f := &fakeProc{t, t.TempDir()}
	f.write("stat", "cpu 1 2 3\n")
	f.write("5/stat", statLine(5, "x", 1, 1))
	if _, err := New(f.root).Process(5); err == nil || !strings.Contains(err.Error(), "btime") {
		t.Errorf("Process without btime: err = %v, want a btime error", err)
	}
}

// TestFromExecMatchesProcess: the identity built from an exec record is the
// one /proc gives for the same process, creation time included (rounded to
// clock ticks from a start time anywhere inside the tick).
func TestFromExecMatchesProcess(t *testing.T) {
	requireRoot(t)
	s := New("/proc")
	want, err := s.Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	bt, err := s.bootTime()
	if err != nil {
		t.Fatal(err)
	}
	since := want.CreationTime.Sub(bt) // a whole number of ticks
	tick := time.Second / time.Duration(s.clockTicks())
	cmdline, err := os.ReadFile("/proc/self/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	for _, within := range []time.Duration{0, 1, tick / 2, tick - 1} {
		got, err := s.FromExec(Exec{
			PID: want.PID, PPID: want.PPID, UID: uint32(os.Getuid()),
			StartBoottime: since + within, Path: want.ExePath, Args: cmdline,
		})
		if err != nil {
			t.Fatal(err)
		}
		want.ContainerID = "" // not known from an exec record
		if !reflect.DeepEqual(got, want) {
			t.Errorf("start +%v into its tick:\n got %+v\nwant %+v", within, got, want)
		}
	}
	// A start time an exact tick later is another process (pid reuse).
	got, _ := s.FromExec(Exec{PID: want.PID, StartBoottime: since + tick})
	if got.CreationTime.Equal(want.CreationTime) {
		t.Errorf("creation times one tick apart compare equal")
	}
	// Args cut by the kernel's 512-byte copy keep what they have.
	got, _ = s.FromExec(Exec{PID: 1, Path: "/usr/bin/curl", Args: []byte("curl\x00-s\x00http://exa")})
	if got.ExeName != "curl" || !reflect.DeepEqual(got.CommandArgs, []string{"curl", "-s", "http://exa"}) {
		t.Errorf("cut args: %+v", got)
	}
	// The container comes from the cgroup v2 path the record carries.
	const id = "4f1c0a5e2b7d9c3e8a6f1b0d2c4e6a8b9d7f5e3c1a2b4d6f8e0c9a7b5d3f1e2c"
	got, _ = s.FromExec(Exec{PID: 1, CgroupPath: "/system.slice/docker-" + id + ".scope"})
	if got.ContainerID != id {
		t.Errorf("container from the exec record's cgroup: %q, want %q", got.ContainerID, id)
	}
	if got, _ = s.FromExec(Exec{PID: 1, CgroupPath: "/user.slice/session-3.scope"}); got.ContainerID != "" {
		t.Errorf("container %q found in a session cgroup", got.ContainerID)
	}
}
