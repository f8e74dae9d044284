package goinfo

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
)

// The runtime symbol table (pclntab) formats this parser understands. The
// layout used here (header words, functab pairs, the first fields of a
// func record) is the same in both; 1.20 only changed the magic.
const (
	pclntabMagic118 = 0xfffffff0 // Go 1.18, 1.19
	pclntabMagic120 = 0xfffffff1 // Go 1.20 ... 1.26
)

// pclntab is a parsed .gopclntab (64-bit little endian only).
type pclntab struct {
	data     []byte
	vaddr    uint64 // link-time address of data[0]
	nfunc    uint64
	quantum  uint64
	funcname []byte // funcnametab
	pctab    []byte
	pcln     []byte // pclntable: functab, then the func records
	functab  []byte // (nfunc+1) pairs of uint32 {entryoff, funcoff}
	text     uint64 // runtime.text: entryoff is relative to it
	hdrText  uint64 // the header's textStart word (0 when not stored)
	textFrom string // "moduledata", "header" or "reloc"
}

var errNoPclntab = errors.New("no Go pclntab found")

// openPclntab finds the pclntab (by section name, else by scanning the
// loaded segments for its header) and the runtime.text address its entry
// offsets are relative to.
func openPclntab(f *elf.File, fileSize uint64) (*pclntab, error) {
	var t *pclntab
	var err error
	for _, name := range []string{".gopclntab", ".data.rel.ro.gopclntab"} {
		s := f.Section(name)
		if s == nil || s.Type == elf.SHT_NOBITS {
			continue
		}
		data, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		if t, err = parsePclntab(data, s.Addr); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		break
	}
	if t == nil {
		if t, err = scanPclntab(f, fileSize); err != nil {
			return nil, err
		}
	}
	if t.text, t.textFrom, err = findText(f, t, fileSize); err != nil {
		return nil, err
	}
	return t, nil
}

func parsePclntab(data []byte, vaddr uint64) (*pclntab, error) {
	if len(data) < 72 {
		return nil, fmt.Errorf("%w: pclntab too short", ErrUnsupported)
	}
	le := binary.LittleEndian
	magic := le.Uint32(data)
	if magic != pclntabMagic118 && magic != pclntabMagic120 {
		return nil, fmt.Errorf("%w: pclntab magic %#x (Go before 1.18?)", ErrUnsupported, magic)
	}
	if data[4] != 0 || data[5] != 0 || data[7] != 8 || data[6] == 0 {
		return nil, fmt.Errorf("%w: pclntab header (pointer size %d, quantum %d)", ErrUnsupported, data[7], data[6])
	}
	word := func(i int) uint64 { return le.Uint64(data[8+8*i:]) }
	t := &pclntab{data: data, vaddr: vaddr, nfunc: word(0), quantum: uint64(data[6]), hdrText: word(2)}
	sub := func(i int) ([]byte, error) {
		off := word(i)
		if off >= uint64(len(data)) {
			return nil, fmt.Errorf("%w: pclntab header offset %d out of range", ErrUnsupported, i)
		}
		return data[off:], nil
	}
	var err error
	if t.funcname, err = sub(3); err != nil {
		return nil, err
	}
	if t.pctab, err = sub(6); err != nil {
		return nil, err
	}
	if t.pcln, err = sub(7); err != nil {
		return nil, err
	}
	n := (t.nfunc + 1) * 8
	if t.nfunc == 0 || t.nfunc > 1<<24 || n > uint64(len(t.pcln)) {
		return nil, fmt.Errorf("%w: pclntab function count %d", ErrUnsupported, t.nfunc)
	}
	t.functab = t.pcln[:n]
	return t, nil
}

// scanPclntab looks for the pclntab header in the loaded segments (for
// binaries whose section headers are gone).
func scanPclntab(f *elf.File, fileSize uint64) (*pclntab, error) {
	hdr := []byte{0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8}
	hdr118 := []byte{0xf0, 0xff, 0xff, 0xff, 0, 0, 1, 8}
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Filesz == 0 || p.Flags&elf.PF_X != 0 || !inFile(p, fileSize) {
			continue
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil {
			continue
		}
		for _, h := range [][]byte{hdr, hdr118} {
			for i := 0; ; {
				j := bytes.Index(data[i:], h)
				if j < 0 {
					break
				}
				at := i + j
				if at%8 == 0 {
					if t, err := parsePclntab(data[at:], p.Vaddr+uint64(at)); err == nil && t.sane() {
						return t, nil
					}
				}
				i = at + 1
			}
		}
	}
	return nil, fmt.Errorf("%w: %w", ErrUnsupported, errNoPclntab)
}

// sane checks that the functab is sorted and its records are in range.
func (t *pclntab) sane() bool {
	prev := uint32(0)
	for i := uint64(0); i <= t.nfunc; i++ {
		e, fo := t.entry(i)
		if e < prev || (i < t.nfunc && uint64(fo)+20 > uint64(len(t.pcln))) {
			return false
		}
		prev = e
	}
	return true
}

func (t *pclntab) entry(i uint64) (entryoff, funcoff uint32) {
	return binary.LittleEndian.Uint32(t.functab[8*i:]), binary.LittleEndian.Uint32(t.functab[8*i+4:])
}

// name returns the name of function i.
func (t *pclntab) name(i uint64) []byte {
	_, fo := t.entry(i)
	if uint64(fo)+8 > uint64(len(t.pcln)) {
		return nil
	}
	off := int32(binary.LittleEndian.Uint32(t.pcln[uint64(fo)+4:]))
	if off < 0 || int(off) >= len(t.funcname) {
		return nil
	}
	s := t.funcname[off:]
	if k := bytes.IndexByte(s, 0); k >= 0 {
		return s[:k]
	}
	return nil
}

// size returns the size of function i: where its pc-value tables (sp
// delta, file, line) end, which excludes the alignment padding before the
// next function; the distance to the next function when no table says.
// (The sp table alone can end early in assembly functions.)
func (t *pclntab) size(i uint64) uint64 {
	e, fo := t.entry(i)
	next, _ := t.entry(i + 1)
	if next < e {
		return 0 // unsorted functab: not a real pclntab
	}
	limit := uint64(next - e)
	if uint64(fo)+28 > uint64(len(t.pcln)) {
		return limit
	}
	var size uint64
	for _, field := range []uint64{16, 20, 24} { // pcsp, pcfile, pcln
		off := binary.LittleEndian.Uint32(t.pcln[uint64(fo)+field:])
		if off == 0 || uint64(off) >= uint64(len(t.pctab)) {
			continue
		}
		if end, ok := pcvalueEnd(t.pctab[off:], t.quantum); ok && end <= limit {
			size = max(size, end)
		}
	}
	if size == 0 {
		return limit
	}
	return size
}

// pcvalueEnd walks a pc-value table (pairs of zig-zag value delta and pc
// delta, ended by a zero value delta after the first pair) and returns the
// pc offset it ends at: the end of the function.
func pcvalueEnd(p []byte, quantum uint64) (uint64, bool) {
	var pc uint64
	for first := true; ; first = false {
		if len(p) == 0 {
			return 0, false
		}
		vd, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, false
		}
		if vd == 0 && !first {
			return pc, true
		}
		p = p[n:]
		pd, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, false
		}
		p = p[n:]
		pc += pd * quantum
	}
}

// lookup finds the named functions. A name can occur twice: an assembly
// function's ABI wrapper carries the same name in the pclntab (the symbol
// table calls it name.abi0); the larger of the two is the real body.
func (t *pclntab) lookup(names []string) (map[string]symbol, error) {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := make(map[string]symbol, len(names))
	for i := uint64(0); i < t.nfunc; i++ {
		nm := t.name(i)
		if !want[string(nm)] {
			continue
		}
		e, _ := t.entry(i)
		s := symbol{addr: t.text + uint64(e), size: t.size(i)}
		if prev, ok := out[string(nm)]; !ok || s.size > prev.size {
			out[string(nm)] = s
		}
	}
	return out, nil
}

// Offsets of fields in runtime.moduledata (unchanged from Go 1.18 to 1.26):
// pcHeader, then six slices, findfunctab, minpc, maxpc, text.
const (
	mdFtab  = 8 + 5*24
	mdMinpc = 8 + 6*24 + 8
	mdText  = mdMinpc + 16
)

// findText returns the address of runtime.text, which the functab's entry
// offsets are relative to. The pclntab header stopped carrying it in Go
// 1.26 (and in PIE binaries it is a dynamic relocation anyway), so the
// runtime's moduledata is located instead: the word that points at the
// pclntab, followed by the slices into it.
func findText(f *elf.File, t *pclntab, fileSize uint64) (uint64, string, error) {
	mem := newMemReader(f, fileSize)
	first, _ := t.entry(0)
	ftab := t.vaddr + uint64(len(t.data)-len(t.pcln))
	for _, md := range mem.pointersTo(t.vaddr) {
		fp, ok1 := mem.word(md + mdFtab)
		fl, ok2 := mem.word(md + mdFtab + 8)
		minpc, ok3 := mem.word(md + mdMinpc)
		text, ok4 := mem.word(md + mdText)
		if ok1 && ok2 && ok3 && ok4 && fp == ftab && fl == t.nfunc+1 && minpc == text+uint64(first) {
			return text, "moduledata", nil
		}
	}
	if t.hdrText != 0 {
		return t.hdrText, "header", nil
	}
	if v, ok := mem.reloc[t.vaddr+24]; ok {
		return v, "reloc", nil
	}
	return 0, "", fmt.Errorf("%w: cannot find runtime.text (no moduledata)", ErrUnsupported)
}

// memReader reads link-time memory contents: file bytes of PT_LOAD
// segments, with R_X86_64_RELATIVE dynamic relocations applied (their
// addend is the link-time value; the file may hold 0 there).
type memReader struct {
	f        *elf.File
	fileSize uint64
	reloc    map[uint64]uint64
	segs     [][]byte
}

// maxRelocs bounds the relocations remembered: a large PIE Go binary has a
// few hundred thousand; a hostile file could declare a section of millions.
const maxRelocs = 1 << 22

func newMemReader(f *elf.File, fileSize uint64) *memReader {
	m := &memReader{f: f, fileSize: fileSize, reloc: map[uint64]uint64{}}
	for _, s := range f.Sections {
		if s.Type != elf.SHT_RELA || s.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		b, err := s.Data()
		if err != nil {
			continue
		}
		for ; len(b) >= 24 && len(m.reloc) < maxRelocs; b = b[24:] {
			off := binary.LittleEndian.Uint64(b)
			info := binary.LittleEndian.Uint64(b[8:])
			if elf.R_X86_64(info&0xffffffff) == elf.R_X86_64_RELATIVE {
				m.reloc[off] = binary.LittleEndian.Uint64(b[16:])
			}
		}
	}
	m.segs = make([][]byte, len(f.Progs))
	return m
}

func (m *memReader) seg(i int) []byte {
	if m.segs[i] == nil {
		p := m.f.Progs[i]
		b := []byte{}
		if inFile(p, m.fileSize) {
			b = make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				b = []byte{}
			}
		}
		m.segs[i] = b
	}
	return m.segs[i]
}

// word reads the 8-byte word at link-time address a.
func (m *memReader) word(a uint64) (uint64, bool) {
	if v, ok := m.reloc[a]; ok {
		return v, true
	}
	for i, p := range m.f.Progs {
		if p.Type == elf.PT_LOAD && a >= p.Vaddr && a+8 <= p.Vaddr+p.Filesz {
			b := m.seg(i)
			if a-p.Vaddr+8 > uint64(len(b)) {
				return 0, false
			}
			return binary.LittleEndian.Uint64(b[a-p.Vaddr:]), true
		}
	}
	return 0, false
}

// pointersTo returns the addresses of aligned words in writable segments
// holding v (directly or through a relocation).
func (m *memReader) pointersTo(v uint64) []uint64 {
	var out []uint64
	for a, val := range m.reloc {
		if val == v {
			out = append(out, a)
		}
	}
	for i, p := range m.f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_W == 0 {
			continue
		}
		b := m.seg(i)
		for off := (8 - p.Vaddr%8) % 8; off+8 <= uint64(len(b)); off += 8 {
			if binary.LittleEndian.Uint64(b[off:]) == v {
				out = append(out, p.Vaddr+off)
			}
		}
	}
	return out
}

// inFile reports whether segment p's file bytes lie inside a file of
// fileSize bytes: only then is a buffer of p.Filesz bytes allocated.
func inFile(p *elf.Prog, fileSize uint64) bool {
	end := p.Off + p.Filesz
	return end >= p.Off && end <= fileSize
}
