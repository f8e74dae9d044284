package goinfo

import (
	"debug/dwarf"
	"debug/elf"
	"fmt"
)

// structFields lists, per DWARF struct type name, the members Offsets
// needs.
var structFields = map[string][]string{
	"crypto/tls.Conn":  {"conn", "isClient"},
	"net.TCPConn":      {"conn"},
	"net.conn":         {"fd"},
	"net.netFD":        {"pfd"},
	"internal/poll.FD": {"Sysfd"},
	"runtime.g":        {"goid"},
}

// dwarfOffsets reads Offsets from the binary's DWARF. ok is false when the
// binary has no DWARF.
func dwarfOffsets(f *elf.File) (Offsets, bool, error) {
	if f.Section(".debug_info") == nil && f.Section(".zdebug_info") == nil {
		return Offsets{}, false, nil
	}
	o, err := OffsetsFromDWARF(f)
	return o, err == nil, err
}

// OffsetsFromDWARF reads Offsets from the DWARF of f (the generator uses
// it on its probe programs).
func OffsetsFromDWARF(f *elf.File) (Offsets, error) {
	d, err := f.DWARF()
	if err != nil {
		return Offsets{}, err
	}
	m, err := DWARFFieldOffsets(d)
	if err != nil {
		return Offsets{}, err
	}
	return offsetsFromFields(m)
}

// DWARFFieldOffsets returns the byte offset of every wanted member, keyed
// "type.member" (e.g. "net.netFD.pfd").
func DWARFFieldOffsets(d *dwarf.Data) (map[string]uint64, error) {
	out := map[string]uint64{}
	found := 0
	r := d.Reader()
	for found < len(structFields) {
		e, err := r.Next()
		if err != nil {
			return nil, err
		}
		if e == nil {
			break
		}
		if e.Tag == dwarf.TagCompileUnit {
			continue // descend into the unit
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		fields, want := structFields[name]
		if e.Tag != dwarf.TagStructType || !want {
			if e.Children {
				r.SkipChildren()
			}
			continue
		}
		if _, done := out[name+"."+fields[0]]; done || !e.Children {
			if e.Children {
				r.SkipChildren()
			}
			continue
		}
		found++
		for {
			c, err := r.Next()
			if err != nil {
				return nil, err
			}
			if c == nil || c.Tag == 0 {
				break
			}
			if c.Children {
				r.SkipChildren()
			}
			if c.Tag != dwarf.TagMember {
				continue
			}
			cn, _ := c.Val(dwarf.AttrName).(string)
			for _, w := range fields {
				if cn != w {
					continue
				}
				if loc, ok := c.Val(dwarf.AttrDataMemberLoc).(int64); ok && loc >= 0 {
					out[name+"."+w] = uint64(loc)
				}
			}
		}
	}
	return out, nil
}

func offsetsFromFields(m map[string]uint64) (Offsets, error) {
	var missing []string
	get := func(k string) uint64 {
		v, ok := m[k]
		if !ok {
			missing = append(missing, k)
		}
		return v
	}
	o := Offsets{
		ConnConn:     get("crypto/tls.Conn.conn"),
		ConnIsClient: get("crypto/tls.Conn.isClient"),
		TCPConnFD:    get("net.TCPConn.conn") + get("net.conn.fd"),
		NetFDPfd:     get("net.netFD.pfd"),
		PfdSysfd:     get("internal/poll.FD.Sysfd"),
		GGoid:        get("runtime.g.goid"),
	}
	if len(missing) > 0 {
		return Offsets{}, fmt.Errorf("goinfo: DWARF lacks %v", missing)
	}
	return o, nil
}
