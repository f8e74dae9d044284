// Package elfsym looks up a few dynamic symbols in an ELF file without
// decoding its whole symbol table.
//
// A node executable exports tens of thousands of symbols; decoding all of
// them (debug/elf's DynamicSymbols) takes ~50 ms and allocates megabytes,
// on the path between a process's exec and its TLS library being hooked.
// The GNU hash table the dynamic linker itself uses answers in microseconds.
package elfsym

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Symbol is a defined dynamic symbol.
type Symbol struct {
	Name  string
	Value uint64 // virtual address
	Size  uint64
	Info  byte
}

// Lookup returns the defined symbols among names found in f's dynamic
// symbol table (default versions, as the dynamic linker would bind them).
// Files without .gnu.hash fall back to a full table scan.
func Lookup(f *elf.File, names []string) (map[string]Symbol, error) {
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB {
		return scan(f, names)
	}
	gh := f.Section(".gnu.hash")
	dynsym := f.Section(".dynsym")
	dynstr := f.Section(".dynstr")
	if gh == nil || dynsym == nil || dynstr == nil || gh.Type == elf.SHT_NOBITS {
		return scan(f, names)
	}
	hash, err := gh.Data()
	if err != nil {
		return nil, fmt.Errorf("elfsym: read .gnu.hash: %w", err)
	}
	t, err := parseTable(hash)
	if err != nil {
		return nil, err
	}
	// .gnu.version marks non-default versions of a name (bit 15): skip
	// them, as the dynamic linker does for unversioned references.
	t.versym = f.Section(".gnu.version")
	out := make(map[string]Symbol, len(names))
	for _, name := range names {
		if s, ok := t.find(name, dynsym, dynstr); ok {
			out[name] = s
		}
	}
	return out, nil
}

// table is a parsed GNU hash section (64-bit little endian).
type table struct {
	nbuckets, symoffset, bloomShift uint32
	bloom                           []byte      // nbloom 64-bit words
	buckets                         []byte      // nbuckets uint32
	chains                          []byte      // uint32 per symbol from symoffset
	versym                          io.ReaderAt // uint16 per symbol, may be nil
}

var errBadHash = errors.New("elfsym: malformed .gnu.hash")

func parseTable(b []byte) (*table, error) {
	le := binary.LittleEndian
	if len(b) < 16 {
		return nil, errBadHash
	}
	t := &table{nbuckets: le.Uint32(b), symoffset: le.Uint32(b[4:]), bloomShift: le.Uint32(b[12:])}
	nbloom := uint64(le.Uint32(b[8:]))
	off := uint64(16)
	end := off + nbloom*8
	if nbloom == 0 || t.nbuckets == 0 || end > uint64(len(b)) {
		return nil, errBadHash
	}
	t.bloom = b[off:end]
	off, end = end, end+uint64(t.nbuckets)*4
	if end > uint64(len(b)) {
		return nil, errBadHash
	}
	t.buckets = b[off:end]
	t.chains = b[end:]
	return t, nil
}

func gnuHash(name string) uint32 {
	h := uint32(5381)
	for i := 0; i < len(name); i++ {
		h = h*33 + uint32(name[i])
	}
	return h
}

const symSize = 24 // Elf64_Sym

// find reads only the entries it visits: .dynsym and .dynstr are megabytes
// in large executables.
func (t *table) find(name string, syms, strs io.ReaderAt) (Symbol, bool) {
	le := binary.LittleEndian
	h := gnuHash(name)
	// Bloom filter: two bits per symbol, a cheap definite "absent".
	nwords := uint32(len(t.bloom) / 8)
	word := le.Uint64(t.bloom[(h/64%nwords)*8:])
	if word>>(h%64)&1 == 0 || word>>((h>>t.bloomShift)%64)&1 == 0 {
		return Symbol{}, false
	}
	idx := le.Uint32(t.buckets[(h%t.nbuckets)*4:])
	if idx == 0 || idx < t.symoffset {
		return Symbol{}, false
	}
	for {
		ci := uint64(idx-t.symoffset) * 4
		if ci+4 > uint64(len(t.chains)) {
			return Symbol{}, false
		}
		ch := le.Uint32(t.chains[ci:])
		if ch|1 == h|1 {
			if s, ok := symbolAt(syms, strs, idx, len(name)); ok && s.Name == name && s.Value != 0 && !t.hidden(idx) {
				return s, true
			}
		}
		if ch&1 != 0 {
			return Symbol{}, false
		}
		idx++
	}
}

func (t *table) hidden(idx uint32) bool {
	if t.versym == nil {
		return false
	}
	var v [2]byte
	if _, err := t.versym.ReadAt(v[:], int64(idx)*2); err != nil {
		return false
	}
	return binary.LittleEndian.Uint16(v[:])&0x8000 != 0
}

// symbolAt reads symbol idx; its name is read up to maxName+1 bytes, enough
// to compare with the name looked for.
func symbolAt(syms, strs io.ReaderAt, idx uint32, maxName int) (Symbol, bool) {
	le := binary.LittleEndian
	var e [symSize]byte
	if _, err := syms.ReadAt(e[:], int64(idx)*symSize); err != nil {
		return Symbol{}, false
	}
	if le.Uint16(e[6:]) == uint16(elf.SHN_UNDEF) {
		return Symbol{}, false
	}
	n := make([]byte, maxName+1)
	k, err := strs.ReadAt(n, int64(le.Uint32(e[:])))
	if err != nil && !errors.Is(err, io.EOF) {
		return Symbol{}, false
	}
	n = n[:k]
	if i := bytes.IndexByte(n, 0); i >= 0 {
		n = n[:i]
	}
	return Symbol{Name: string(n), Info: e[4], Value: le.Uint64(e[8:]), Size: le.Uint64(e[16:])}, true
}

// scan is the slow path for files without a GNU hash table.
func scan(f *elf.File, names []string) (map[string]Symbol, error) {
	list, err := f.DynamicSymbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("elfsym: read .dynsym: %w", err)
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := map[string]Symbol{}
	for _, s := range list {
		if want[s.Name] && s.Section != elf.SHN_UNDEF && s.Value != 0 {
			if s.HasVersion && s.VersionIndex.IsHidden() {
				if _, ok := out[s.Name]; ok {
					continue
				}
			}
			out[s.Name] = Symbol{Name: s.Name, Value: s.Value, Size: s.Size, Info: s.Info}
		}
	}
	return out, nil
}
