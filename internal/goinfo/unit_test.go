package goinfo

import (
	"errors"
	"reflect"
	"testing"
)

// TestScanReturnsHandAssembled decodes a hand-assembled function in which
// 0xC3 appears inside immediates, displacements and ModRM bytes of other
// instructions; only the real returns may be reported.
func TestScanReturnsHandAssembled(t *testing.T) {
	code := []byte{
		0xb8, 0xc3, 0x00, 0x00, 0x00, // 0x00 mov eax, 0xc3
		0x48, 0x8d, 0x05, 0xc3, 0x00, 0x00, 0x00, // 0x05 lea rax, [rip+0xc3]
		0xb0, 0xc3, // 0x0c mov al, 0xc3
		0x48, 0x89, 0xc3, // 0x0e mov rbx, rax (ModRM 0xc3)
		0x66, 0x0f, 0x1f, 0x84, 0x00, 0xc3, 0x00, 0x00, 0x00, // 0x11 nop word [rax+rax+0xc3]
		0x74, 0x01, // 0x1a je +1 (over the ret)
		0xc3,                   // 0x1c ret                  <- return
		0x48, 0x83, 0xc3, 0x08, // 0x1d add rbx, 8 (ModRM 0xc3)
		0xf3, 0xc3, // 0x21 rep ret              <- return (at the prefix)
		0xc2, 0x08, 0x00, // 0x23 ret 8                <- return
		0x48, 0xb9, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, // 0x26 mov rcx, imm64 of c3s
		0xe9, 0x00, 0x10, 0x00, 0x00, // 0x30 jmp +0x1000 (leaves the function: a tail jump)
		0xeb, 0xce, // 0x35 jmp -0x32 (back to 0x05: inside)
		0xe8, 0xc3, 0x00, 0x00, 0x00, // 0x37 call +0xc3
		0xc3,             // 0x3c ret                  <- return
		0xcc, 0xcc, 0xcc, // 0x3d int3 padding
	}
	const base = 0x1000
	rets, tails, err := scanReturns(code, base)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{base + 0x1c, base + 0x21, base + 0x23, base + 0x3c}; !reflect.DeepEqual(rets, want) {
		t.Errorf("returns %#x, want %#x", rets, want)
	}
	if want := []uint64{base + 0x30}; !reflect.DeepEqual(tails, want) {
		t.Errorf("tail jumps %#x, want %#x", tails, want)
	}

	// A truncated instruction at the end is an error, not a silent stop.
	_, _, err = scanReturns(append(code[:0:0], 0xc3, 0xb8, 0xc3), base)
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("truncated instruction: err %v", err)
	}
}

func TestPcvalueEnd(t *testing.T) {
	// value deltas (zig-zag) and pc deltas: +1 over 4 bytes, +8 over 10,
	// -8 over 3, then the terminator.
	tab := []byte{0x02, 4, 0x10, 10, 0x0f, 3, 0x00}
	end, ok := pcvalueEnd(tab, 1)
	if !ok || end != 17 {
		t.Errorf("end %d ok %v, want 17", end, ok)
	}
	if _, ok := pcvalueEnd(tab[:3], 1); ok {
		t.Error("truncated table accepted")
	}
}

func TestTableOffsets(t *testing.T) {
	if len(offsetTable) < 7 {
		t.Fatalf("offsets table has %d entries; run make go-offsets", len(offsetTable))
	}
	for _, c := range []struct {
		version, from string
	}{
		{"go1.22.12", "table:go1.22"},
		{"go1.22.0", "table:go1.22"},
		{"go1.26rc1", "table:go1.26"},
		{"go1.20", "table:go1.20"},
		{"go1.19.13", "nearest:go1.20"},
		{"go1.31.2", "nearest:go1.26"},
		{"devel go1.27-1234abcd Tue Jan 1 00:00:00 2030 +0000", "nearest:go1.26"},
	} {
		off, from, ok := TableOffsets(c.version)
		if !ok || from != c.from {
			t.Errorf("%s: from %q ok %v, want %q", c.version, from, ok, c.from)
		}
		minor, _ := GoMinor(c.version)
		if ok && from == c.from && from[:6] == "table:" {
			for _, e := range offsetTable {
				if e.Minor == minor && e.Offsets != off {
					t.Errorf("%s: %+v, table %+v", c.version, off, e.Offsets)
				}
			}
		}
	}
	if _, _, ok := TableOffsets("not a version"); ok {
		t.Error("garbage version accepted")
	}
	if !(Info{OffsetsFrom: "nearest:go1.26"}).OffsetsNearest() || (Info{OffsetsFrom: "table:go1.26"}).OffsetsNearest() {
		t.Error("OffsetsNearest")
	}
	// The table covers every toolchain the generator is told to use.
	for _, tc := range Toolchains {
		m, _ := GoMinor(tc)
		found := false
		for _, e := range offsetTable {
			found = found || (e.Minor == m && e.Toolchain == tc)
		}
		if !found {
			t.Errorf("%s missing from offsets_table.go; run make go-offsets", tc)
		}
	}
}
