package engine

import (
	"net/netip"
	"testing"
)

func TestParseProcNetTCP(t *testing.T) {
	for _, tc := range []struct {
		line          string
		local, remote string
		state         uint8
		inode         uint64
	}{
		{"   3: 0100007F:8E1D 0100007F:EB0E 01 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 20 4 30 10 -1",
			"127.0.0.1:36381", "127.0.0.1:60174", 1, 123456},
		{"   0: 00000000000000000000000001000000:1F90 0000000000000000FFFF00000100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 98765 1 0000000000000000 20 4 1 10 -1",
			"[::1]:8080", "127.0.0.1:54321", 1, 98765},
	} {
		e, ok := parseProcNetTCP(tc.line)
		if !ok || e.local != netip.MustParseAddrPort(tc.local) || e.remote != netip.MustParseAddrPort(tc.remote) || e.state != tc.state || e.inode != tc.inode {
			t.Errorf("%q: got %+v ok=%v", tc.line, e, ok)
		}
	}
	for _, bad := range []string{"", "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
		"0: 0100007F 0100007F:EB0E 01 0 0 0 0 0 1", "0: 0100007:8E1D 0100007F:EB0E 01 0 0 0 0 0 1", "0: 0100007F:8E1D 0100007F:EB0E zz 0 0 0 0 0 1"} {
		if _, ok := parseProcNetTCP(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseProcNetTCP(f *testing.F) {
	f.Add("   3: 0100007F:8E1D 0100007F:EB0E 01 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 20 4 30 10 -1")
	f.Add("   0: 00000000000000000000000001000000:1F90 0000000000000000FFFF00000100007F:D431 0A 00000000:00000000 00:00000000 00000000  1000        0 98765 1")
	f.Fuzz(func(t *testing.T, line string) {
		e, ok := parseProcNetTCP(line)
		if ok && (!e.local.IsValid() || !e.remote.IsValid()) {
			t.Fatalf("%q: invalid addresses accepted %+v", line, e)
		}
	})
}
