package execgate

import (
	"strings"
	"testing"
	"time"
)

func TestParseMountinfo(t *testing.T) {
	in := `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:21 / /proc rw,nosuid - proc proc rw
95 22 0:45 / /var/lib/docker/overlay2/x/merged rw - overlay overlay rw,lowerdir=a
96 22 0:46 / /mnt/with\040space rw shared:7 master:3 - tmpfs tmpfs rw
`
	ms, err := ParseMountinfo(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{Dev: mkdev(254, 0), Point: "/", FSType: "ext4"},
		{Dev: mkdev(0, 21), Point: "/proc", FSType: "proc"},
		{Dev: mkdev(0, 45), Point: "/var/lib/docker/overlay2/x/merged", FSType: "overlay"},
		{Dev: mkdev(0, 46), Point: "/mnt/with space", FSType: "tmpfs"},
	}
	if len(ms) != len(want) {
		t.Fatalf("got %d mounts: %+v", len(ms), ms)
	}
	for i := range want {
		if ms[i] != want[i] {
			t.Errorf("mount %d = %+v, want %+v", i, ms[i], want[i])
		}
	}
	if ms[1].Executable() || !ms[0].Executable() || !ms[3].Executable() {
		t.Error("proc must not be marked; ext4 and tmpfs must")
	}
	for _, bad := range []string{"22 1 254:0 / /", "22 1 x:0 / / rw - ext4 a rw", "22 1 254:0 / / rw shared:1 -"} {
		if _, err := ParseMountinfo(strings.NewReader(bad + "\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: error %v", bad, err)
		}
	}
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add("22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n")
	f.Add("96 22 0:46 / /mnt/a\\134b rw - tmpfs tmpfs rw\n")
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseMountinfo(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, m := range ms {
			if strings.ContainsRune(m.FSType, ' ') {
				t.Errorf("file system type with a space: %+v", m)
			}
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{Timeout: 0}, {Timeout: time.Minute}, {Timeout: time.Second, Workers: 100}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if err := (Config{Timeout: DefaultTimeout}).Validate(); err != nil {
		t.Error(err)
	}
}
