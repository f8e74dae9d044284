package procscan

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/tlstap/tlstap/internal/testenv"
)

func TestParseMapsFixture(t *testing.T) {
	f, err := os.Open("testdata/maps.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ParseMaps(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []Mapping{
		{0x55d0c0a00000, 0x55d0c0a02000, "r--p", 0, 0xfe00, 1310727, "/usr/bin/sleep", false},
		{0x55d0c0a02000, 0x55d0c0a06000, "r-xp", 0x2000, 0xfe00, 1310727, "/usr/bin/sleep", false},
		{0x55d0c1e3c000, 0x55d0c1e5d000, "rw-p", 0, 0, 0, "[heap]", false},
		{0x7f08fee0f000, 0x7f08fee6c000, "r-xp", 0x1f000, 0xfe00, 326786, "/usr/lib/x86_64-linux-gnu/libssl.so.3", false},
		// major 0x103 = 259 (NVMe), encoded as stat's st_dev: 259<<8 | 5.
		{0x7f08ff000000, 0x7f08ff001000, "r-xp", 0, 259<<8 | 5, 42, "/opt/my app/lib/libssl.so.1.1", true},
		{0x7f08ff001000, 0x7f08ff002000, "rw-s", 0, 1, 1026, "/dev/shm/a file with spaces", false},
		{0x7f08ff002000, 0x7f08ff003000, "rw-p", 0, 0, 0, "", false},
		{0x7f08ff003000, 0x7f08ff004000, "r-xp", 0, 5, 2049, "/memfd:jit", true},
		{0x7ffd1c9f3000, 0x7ffd1ca14000, "rw-p", 0, 0, 0, "[stack]", false},
		{0x7ffd1cbe9000, 0x7ffd1cbeb000, "r-xp", 0, 0, 0, "[vdso]", false},
		{0xffffffffff600000, 0xffffffffff601000, "--xp", 0, 0, 0, "[vsyscall]", false},
	}
	if !reflect.DeepEqual(got, want) {
		if len(got) != len(want) {
			t.Fatalf("got %d mappings, want %d:\n%+v", len(got), len(want), got)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("line %d:\n got  %+v\n want %+v", i+1, got[i], want[i])
			}
		}
	}

	var exec, file []string
	for _, m := range got {
		if m.Exec() {
			exec = append(exec, m.Path)
		}
		if m.File() {
			file = append(file, m.Path)
		}
	}
	if n := len(exec); n != 6 {
		t.Errorf("Exec() true for %d mappings, want 6: %q", n, exec)
	}
	wantFile := []string{"/usr/bin/sleep", "/usr/bin/sleep", "/usr/lib/x86_64-linux-gnu/libssl.so.3",
		"/opt/my app/lib/libssl.so.1.1", "/dev/shm/a file with spaces", "/memfd:jit"}
	if !reflect.DeepEqual(file, wantFile) {
		t.Errorf("File() mappings = %q, want %q", file, wantFile)
	}
}

func TestParseMapsDevEncodingMatchesStat(t *testing.T) {
	// Large minors use the split encoding: minor bits above 8 go to bit 20.
	m, err := parseMapsLine("1000-2000 r-xp 00000000 fd:1ab 7 /x")
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(0xab | 0xfd<<8 | 0x100<<12); m.Dev != want {
		t.Errorf("Dev = %#x, want %#x", m.Dev, want)
	}
}

func TestParseMapsErrors(t *testing.T) {
	for _, in := range []string{
		"zzzz-2000 r-xp 00000000 fe:00 1 /x",
		"1000 r-xp 00000000 fe:00 1 /x",
		"1000-2000 r-x 00000000 fe:00 1 /x",
		"1000-2000 r-xp 00000000 fe00 1 /x",
		"1000-2000 r-xp 00000000 fe:00 inode /x",
		"1000-2000 r-xp",
	} {
		_, err := ParseMaps(strings.NewReader(in + "\n"))
		if err == nil {
			t.Errorf("ParseMaps(%q) succeeded, want error", in)
		} else if !strings.Contains(err.Error(), "maps line 1") {
			t.Errorf("ParseMaps(%q) error %q lacks line context", in, err)
		}
	}
}

func TestParseMapsRealSelf(t *testing.T) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		testenv.Missing(t, "%v", err)
	}
	defer f.Close()
	ms, err := ParseMaps(f)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(exe)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Path == exe && m.Exec() {
			if m.Inode != inodeOf(fi) || m.Dev != devOf(fi) {
				t.Errorf("test binary mapping dev/inode = %#x/%d, stat says %#x/%d", m.Dev, m.Inode, devOf(fi), inodeOf(fi))
			}
			return
		}
	}
	t.Errorf("no executable mapping of %s in /proc/self/maps", exe)
}
