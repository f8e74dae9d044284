// Package elfmut makes hostile variants of a real ELF file for tests: each
// variant changes one header or table field to a value a parser must not
// trust (zero, past the end of the file, near 2^64). Random fuzzing rarely
// produces such structured corruption of a megabyte-sized file; these
// variants reach every length and offset the parsers read.
package elfmut

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"slices"
)

// Mutation is one hostile variant.
type Mutation struct {
	What string // e.g. "section .gopclntab sh_size = 0xffffffffffffffff"
	// The patch, applied to a copy of base by Bytes: holding every variant
	// of a multi-MB executable at once took 24 GB under -race.
	base  []byte
	at    uint64
	width int
	v     uint64
}

// Bytes returns a fresh copy of the file with the mutation applied.
func (m Mutation) Bytes() []byte {
	b := slices.Clone(m.base)
	le := binary.LittleEndian
	switch m.width {
	case 2:
		le.PutUint16(b[m.at:], uint16(m.v))
	case 4:
		le.PutUint32(b[m.at:], uint32(m.v))
	default:
		le.PutUint64(b[m.at:], m.v)
	}
	return b
}

// Interesting sections: the ones the project's parsers read.
var sections = []string{
	".text", ".gopclntab", ".data.rel.ro.gopclntab", ".symtab", ".strtab", ".dynsym", ".dynstr",
	".gnu.hash", ".gnu.version", ".note.go.buildid", ".note.gnu.build-id", ".go.buildinfo",
	".rela.dyn", ".noptrdata", ".data", ".debug_info", ".zdebug_info", ".debug_abbrev", ".zdebug_abbrev",
}

// Symbols whose table entries are mutated when present.
var symbols = []string{
	"crypto/tls.(*Conn).Read", "crypto/tls.(*Conn).Write", "runtime.memmove",
	"SSL_read", "SSL_read_ex", "SSL_write", "SSL_write_ex", "SSL_free", "SSL_shutdown",
}

// Mutations returns the hostile variants of the 64-bit little-endian ELF
// file data (nil for anything else).
func Mutations(data []byte) []Mutation {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil || f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB {
		return nil
	}
	le := binary.LittleEndian
	n := uint64(len(data))
	values := []uint64{0, n + 1, 1<<63 - 1, ^uint64(0)}
	var out []Mutation
	set := func(what string, at uint64, width int, v uint64) {
		if at+uint64(width) > n {
			return
		}
		out = append(out, Mutation{What: fmt.Sprintf("%s = %#x", what, v), base: data, at: at, width: width, v: v})
	}
	// ELF header: table positions and counts.
	for _, fld := range []struct {
		name  string
		at    uint64
		width int
	}{{"e_phoff", 0x20, 8}, {"e_shoff", 0x28, 8}, {"e_phnum", 0x38, 2}, {"e_shnum", 0x3c, 2}, {"e_shstrndx", 0x3e, 2}} {
		for _, v := range []uint64{0, n - 1, 0xffff, ^uint64(0)} {
			set("header "+fld.name, fld.at, fld.width, v)
		}
	}
	// Program headers: where each segment is and how long it claims to be.
	phoff := le.Uint64(data[0x20:])
	for i := range f.Progs {
		base := phoff + uint64(i)*56
		for _, fld := range []struct {
			name string
			at   uint64
		}{{"p_offset", 8}, {"p_vaddr", 16}, {"p_filesz", 32}} {
			for _, v := range values {
				set(fmt.Sprintf("segment %d (%v) %s", i, f.Progs[i].Type, fld.name), base+fld.at, 8, v)
			}
		}
	}
	// Section headers of the sections the parsers read.
	shoff := le.Uint64(data[0x28:])
	for i, s := range f.Sections {
		if !slices.Contains(sections, s.Name) {
			continue
		}
		base := shoff + uint64(i)*64
		for _, fld := range []struct {
			name string
			at   uint64
		}{{"sh_addr", 16}, {"sh_offset", 24}, {"sh_size", 32}} {
			for _, v := range values {
				set(fmt.Sprintf("section %s %s", s.Name, fld.name), base+fld.at, 8, v)
			}
		}
		// The first words of the section's contents (table headers:
		// pclntab, GNU hash, notes, build info).
		if s.Type != elf.SHT_NOBITS && s.Offset < n {
			for w := uint64(0); w < 9; w++ {
				for _, v := range []uint64{0, ^uint64(0), 1 << 31} {
					set(fmt.Sprintf("section %s word %d", s.Name, w), s.Offset+8*w, 8, v)
				}
			}
		}
	}
	// Symbol table entries of the functions the parsers look up.
	for _, tab := range []struct {
		name string
		syms func() ([]elf.Symbol, error)
	}{{".symtab", f.Symbols}, {".dynsym", f.DynamicSymbols}} {
		s := f.Section(tab.name)
		list, err := tab.syms()
		if s == nil || err != nil {
			continue
		}
		for i, sym := range list {
			if !slices.Contains(symbols, sym.Name) {
				continue
			}
			base := s.Offset + uint64(i+1)*24 // debug/elf drops entry 0
			for _, v := range values {
				set(fmt.Sprintf("%s %s st_value", tab.name, sym.Name), base+8, 8, v)
				set(fmt.Sprintf("%s %s st_size", tab.name, sym.Name), base+16, 8, v)
			}
		}
	}
	return out
}
