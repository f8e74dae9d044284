package execgate

import (
	"testing"
)

// TestWireRoundTrip: every field survives encode and decode, both ways.
func TestWireRoundTrip(t *testing.T) {
	w := wardenMsg{kind: msgEvent, slot: 7, seq: 1 << 31, pid: 4242, mask: 0x40000, timedOut: 3, full: 4, fd: 99, cached: 5}
	var b [wardenMsgLen]byte
	w.encode(b[:])
	got, err := decodeWardenMsg(b[:])
	if err != nil || got != w {
		t.Fatalf("warden message %+v %v, want %+v", got, err, w)
	}
	a := agentMsg{kind: msgAllowNoTLS, slot: 2047, seq: 9, key: Key{Dev: 1, Ino: 1 << 40, Size: -1, MtimeNs: 5, CtimeNs: 6}}
	var c [agentMsgLen]byte
	a.encode(c[:])
	back, err := decodeAgentMsg(c[:])
	if err != nil || back != a {
		t.Fatalf("agent message %+v %v, want %+v", back, err, a)
	}
	for _, bad := range [][]byte{nil, b[:wardenMsgLen-1], append(b[:], 0)} {
		if _, err := decodeWardenMsg(bad); err == nil {
			t.Errorf("decoded a %d-byte warden message", len(bad))
		}
	}
	b[0] = 99
	if _, err := decodeWardenMsg(b[:]); err == nil {
		t.Error("decoded an unknown kind")
	}
}

// FuzzWireDecode: any packet decodes to a message or an error, never a
// panic, and a decoded message encodes back to the same bytes.
func FuzzWireDecode(f *testing.F) {
	var b [wardenMsgLen]byte
	(&wardenMsg{kind: msgEvent, slot: 1, seq: 2, pid: 3, fd: 4}).encode(b[:])
	f.Add(b[:])
	var c [agentMsgLen]byte
	agentMsg{kind: msgAllow, slot: 1, seq: 2}.encode(c[:])
	f.Add(c[:])
	f.Fuzz(func(t *testing.T, p []byte) {
		if m, err := decodeWardenMsg(p); err == nil {
			var out [wardenMsgLen]byte
			m.encode(out[:])
			if string(out[:]) != string(p) {
				t.Fatalf("warden message %x re-encoded as %x", p, out)
			}
		}
		if m, err := decodeAgentMsg(p); err == nil {
			var out [agentMsgLen]byte
			m.encode(out[:])
			if string(out[:]) != string(p) {
				t.Fatalf("agent message %x re-encoded as %x", p, out)
			}
		}
	})
}
