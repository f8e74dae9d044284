// Package goinfo analyses a Go executable for TLS capture: where
// crypto/tls.(*Conn).Read and .Write start and return (as file offsets, what
// uprobes want), and the struct layout that leads from a *tls.Conn to the
// socket's file descriptor.
//
// Functions come from the ELF symbol table when it is present and from the
// Go runtime's own symbol table (.gopclntab) when the binary is stripped.
// Struct offsets come from DWARF when present, otherwise from a table
// generated per Go release by ./gen (see offsets_table.go).
//
// Only x86-64 ELF executables built by Go 1.18 or newer (pclntab formats
// 0xfffffff0 and 0xfffffff1) are supported; the register ABI needed by the
// probes exists since Go 1.17.
package goinfo

import (
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Names of the hooked functions.
const (
	ReadSymbol  = "crypto/tls.(*Conn).Read"
	WriteSymbol = "crypto/tls.(*Conn).Write"
	// TCPConnItabSymbol is the itab of *net.TCPConn as a net.Conn (only in
	// the ELF symbol table: stripped binaries lose it).
	TCPConnItabSymbol = "go:itab.*net.TCPConn,net.Conn"
)

var (
	// ErrNotGo: the file is not an ELF executable built by Go.
	ErrNotGo = errors.New("not a Go executable")
	// ErrNoTLS: crypto/tls.(*Conn).Read (or Write) is not linked in.
	ErrNoTLS = errors.New("crypto/tls.(*Conn).Read/Write not linked in")
	// ErrUnsupported: a Go executable this package cannot analyse (other
	// architecture, pclntab of a Go release before 1.18, undecodable code).
	ErrUnsupported = errors.New("unsupported Go executable")
)

// Info is what the probes need to know about one Go executable.
type Info struct {
	GoVersion  string // from the build info, e.g. "go1.22.12"
	Stripped   bool   // no .symtab
	PIE        bool   // ET_DYN: add the load bias to virtual addresses
	BuildID    string // Go build ID (empty if absent)
	GNUBuildID string // hex GNU build-id note (empty if absent)

	Read, Write Func // crypto/tls.(*Conn).Read and .Write

	Offsets     Offsets // struct layout needed to reach the fd
	OffsetsFrom string  // "dwarf", "table:go1.22" or "nearest:go1.25"

	// TCPConnItab is the link-time virtual address of the itab of
	// *net.TCPConn implementing net.Conn: the first word of tls.Conn.conn
	// equals it (plus the load bias for PIE) when the connection is a plain
	// TCP connection. 0 when unknown (stripped binaries).
	TCPConnItab uint64

	// FuncsFrom says where Read and Write were found: "symtab" or "pclntab".
	FuncsFrom string

	// NoCopyCall says why Read.CopyCall is 0 (empty when it is set).
	NoCopyCall string
}

// How Read is probed (see ReadScheme).
const (
	ReadCopyCall = "copy-call" // one probe on its CALL runtime.memmove
	ReadReturns  = "returns"   // at its entry and on every RET
)

// ReadScheme says how Read's data is to be captured: at its copy call when
// one was found, else at its entry and returns.
func (i Info) ReadScheme() string {
	if i.Read.CopyCall != 0 {
		return ReadCopyCall
	}
	return ReadReturns
}

// OffsetsNearest reports whether the offsets were borrowed from the nearest
// known Go release (the caller should log a warning).
func (i Info) OffsetsNearest() bool {
	return len(i.OffsetsFrom) > 8 && i.OffsetsFrom[:8] == "nearest:"
}

// Func locates one function.
type Func struct {
	Entry   uint64   // file offset of the function entry
	Returns []uint64 // file offsets of every RET instruction in the function
	Size    uint64   // bytes
	Addr    uint64   // link-time virtual address of the entry
	// TailJumps are file offsets of direct JMPs leaving the function (a
	// return path without RET). The Go compiler emits none for these
	// functions today; non-empty means return probes would miss calls.
	TailJumps []uint64
	// CopyCall (Read only) is the file offset of its one CALL
	// runtime.memmove, where the plaintext is copied into the caller's
	// buffer, when the code has every property the copy-call probe relies
	// on (see findCopyCall); 0 otherwise: probe the entry and returns.
	CopyCall uint64
}

// Offsets is the struct layout from a *tls.Conn to the socket fd:
//
//	conn  := *(iface)(tlsConn + ConnConn)      // net.Conn: itab, data
//	fdp   := *(*netFD)(conn.data + TCPConnFD)  // when conn is *net.TCPConn
//	sysfd := *(int)(fdp + NetFDPfd + PfdSysfd)
type Offsets struct {
	ConnConn     uint64 // `conn net.Conn` in crypto/tls.Conn (itab ptr, then data ptr)
	ConnIsClient uint64 // `isClient bool` in crypto/tls.Conn
	TCPConnFD    uint64 // `conn.fd *netFD` in net.TCPConn (net.conn embedded)
	NetFDPfd     uint64 // `pfd poll.FD` in net.netFD
	PfdSysfd     uint64 // `Sysfd int` in internal/poll.FD
	GGoid        uint64 // `goid` in runtime.g (R14 holds the g pointer)
}

// Inspect analyses the Go executable at path.
func Inspect(path string) (Info, error) {
	return inspect(path, options{})
}

type options struct {
	forcePclntab bool // ignore .symtab (tests: compare both sources)
	forceTable   bool // ignore DWARF
}

// MaxFuncSize bounds the code read and decoded per function: crypto/tls
// Read and Write are a few KiB; a symbol claiming more is not trusted
// (a hostile file could claim gigabytes).
const MaxFuncSize = 1 << 20

func inspect(path string, opt options) (Info, error) {
	fh, err := os.Open(path)
	if err != nil {
		return Info{}, fmt.Errorf("goinfo: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return Info{}, fmt.Errorf("goinfo: %w", err)
	}
	return inspectReader(fh, uint64(st.Size()), path, opt)
}

// inspectReader analyses the ELF file in r (size bytes long). Every length
// the file declares is checked against size before anything is allocated
// for it: the file may be hostile.
func inspectReader(fh io.ReaderAt, size uint64, path string, opt options) (Info, error) {
	f, err := elf.NewFile(fh)
	if err != nil {
		return Info{}, fmt.Errorf("goinfo: %s: %w (%v)", path, ErrNotGo, err)
	}
	defer f.Close()
	bi, err := buildinfo.Read(fh)
	if err != nil {
		return Info{}, fmt.Errorf("goinfo: %s: %w (%v)", path, ErrNotGo, err)
	}
	info := Info{
		GoVersion: bi.GoVersion,
		Stripped:  f.Section(".symtab") == nil,
		PIE:       f.Type == elf.ET_DYN,
	}
	info.BuildID, info.GNUBuildID = buildIDs(f)
	if f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB {
		return info, fmt.Errorf("goinfo: %s: %w: machine %v", path, ErrUnsupported, f.Machine)
	}

	names := []string{ReadSymbol, WriteSymbol, MemmoveSymbol}
	var syms map[string]symbol
	if !info.Stripped && !opt.forcePclntab {
		syms, info.TCPConnItab, err = symtabLookup(f, names)
		if err != nil {
			return info, fmt.Errorf("goinfo: %s: %w", path, err)
		}
		info.FuncsFrom = "symtab"
	}
	if len(syms) < len(names) {
		pt, err := openPclntab(f, size)
		if err != nil {
			return info, fmt.Errorf("goinfo: %s: %w", path, err)
		}
		syms, err = pt.lookup(names)
		if err != nil {
			return info, fmt.Errorf("goinfo: %s: %w", path, err)
		}
		info.FuncsFrom = "pclntab"
	}
	rs, ok := syms[ReadSymbol]
	ws, ok2 := syms[WriteSymbol]
	if !ok || !ok2 {
		return info, fmt.Errorf("goinfo: %s: %w", path, ErrNoTLS)
	}
	if info.Read, err = locate(f, fh, rs); err != nil {
		return info, fmt.Errorf("goinfo: %s: %s: %w", path, ReadSymbol, err)
	}
	if info.Write, err = locate(f, fh, ws); err != nil {
		return info, fmt.Errorf("goinfo: %s: %s: %w", path, WriteSymbol, err)
	}
	info.Read.CopyCall, err = copyCall(fh, info.Read, syms[MemmoveSymbol].addr)
	if err != nil {
		info.NoCopyCall = err.Error()
	}

	// The table entry of a known release was read from that release's own
	// DWARF, and reading a binary's (compressed) DWARF costs ~135 ms on
	// the path from exec to hooked, against ~4 ms for the rest: DWARF is
	// read only for releases the table does not know exactly.
	off, from, known := TableOffsets(info.GoVersion)
	if known && (opt.forceTable || !strings.HasPrefix(from, "nearest:")) {
		info.Offsets, info.OffsetsFrom = off, from
		return info, nil
	}
	if d, ok, err := dwarfOffsets(f); err == nil && ok {
		info.Offsets, info.OffsetsFrom = d, "dwarf"
		return info, nil
	}
	if !known {
		return info, fmt.Errorf("goinfo: %s: %w: no struct offsets for %s", path, ErrUnsupported, info.GoVersion)
	}
	info.Offsets, info.OffsetsFrom = off, from
	return info, nil
}

// symbol is a function found in a symbol table.
type symbol struct {
	addr, size uint64
}

func symtabLookup(f *elf.File, names []string) (map[string]symbol, uint64, error) {
	syms, err := f.Symbols()
	if err != nil {
		return nil, 0, fmt.Errorf("read .symtab: %w", err)
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := make(map[string]symbol, len(names))
	var itab uint64
	for _, s := range syms {
		if s.Name == TCPConnItabSymbol && s.Section != elf.SHN_UNDEF {
			itab = s.Value
			continue
		}
		if want[s.Name] && elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Section != elf.SHN_UNDEF {
			out[s.Name] = symbol{addr: s.Value, size: s.Size}
		}
	}
	return out, itab, nil
}

// copyCall reads Read's body again and looks for its copy call.
func copyCall(r io.ReaderAt, read Func, memmove uint64) (uint64, error) {
	code := make([]byte, read.Size)
	if _, err := r.ReadAt(code, int64(read.Entry)); err != nil {
		return 0, err
	}
	return findCopyCall(code, read.Entry, read.Addr, memmove)
}

// locate turns a symbol into file offsets and finds its returns.
func locate(f *elf.File, r io.ReaderAt, s symbol) (Func, error) {
	if s.size == 0 {
		return Func{}, fmt.Errorf("%w: function of size 0", ErrUnsupported)
	}
	if s.size > MaxFuncSize {
		return Func{}, fmt.Errorf("%w: function of %d bytes (more than %d)", ErrUnsupported, s.size, MaxFuncSize)
	}
	off, err := fileOffset(f, s.addr, s.size)
	if err != nil {
		return Func{}, err
	}
	code := make([]byte, s.size)
	if _, err := r.ReadAt(code, int64(off)); err != nil {
		return Func{}, fmt.Errorf("read function body: %w", err)
	}
	rets, tails, err := scanReturns(code, off)
	if err != nil {
		return Func{}, err
	}
	if len(rets) == 0 {
		return Func{}, fmt.Errorf("%w: no RET instruction", ErrUnsupported)
	}
	return Func{Entry: off, Returns: rets, Size: s.size, Addr: s.addr, TailJumps: tails}, nil
}
