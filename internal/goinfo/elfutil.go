package goinfo

import (
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// fileOffset converts a virtual address range to the file offset of its
// start through the PT_LOAD segment that holds it with file-backed bytes.
func fileOffset(f *elf.File, addr, size uint64) (uint64, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		if addr >= p.Vaddr && addr+size <= p.Vaddr+p.Filesz && addr+size >= addr {
			return addr - p.Vaddr + p.Off, nil
		}
	}
	return 0, fmt.Errorf("%w: address %#x+%d not in a file-backed PT_LOAD segment", ErrUnsupported, addr, size)
}

// buildIDs returns the Go build ID and the hex GNU build-id from the note
// sections (or PT_NOTE segments when the section headers are gone).
func buildIDs(f *elf.File) (goID, gnuID string) {
	var blobs [][]byte
	for _, s := range f.Sections {
		if s.Type == elf.SHT_NOTE {
			if b, err := s.Data(); err == nil {
				blobs = append(blobs, b)
			}
		}
	}
	if len(blobs) == 0 {
		for _, p := range f.Progs {
			if p.Type != elf.PT_NOTE || p.Filesz > 1<<16 {
				continue
			}
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err == nil {
				blobs = append(blobs, b)
			}
		}
	}
	for _, b := range blobs {
		for len(b) >= 12 {
			namesz := binary.LittleEndian.Uint32(b)
			descsz := binary.LittleEndian.Uint32(b[4:])
			typ := binary.LittleEndian.Uint32(b[8:])
			nameEnd := 12 + uint64(align4(namesz))
			descEnd := nameEnd + uint64(align4(descsz))
			if descEnd > uint64(len(b)) || uint64(namesz) > nameEnd-12 {
				break
			}
			name := string(trimNUL(b[12 : 12+namesz]))
			desc := b[nameEnd : nameEnd+uint64(descsz)]
			switch {
			case name == "Go" && typ == 4:
				goID = string(trimNUL(desc))
			case name == "GNU" && typ == 3: // NT_GNU_BUILD_ID
				gnuID = hex.EncodeToString(desc)
			}
			b = b[descEnd:]
		}
	}
	return goID, gnuID
}

func align4(n uint32) uint32 { return (n + 3) &^ 3 }

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}
