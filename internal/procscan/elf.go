package procscan

import (
	"bytes"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tlstap/tlstap/internal/elfsym"
)

// openSSLSymbols are the OpenSSL entry points the engine hooks. SSL_read and
// SSL_write are required for a file to be a target; the others are hooked
// when present (the _ex variants appeared in OpenSSL 1.1.1).
var openSSLSymbols = []string{"SSL_read", "SSL_read_ex", "SSL_write", "SSL_write_ex", "SSL_shutdown", "SSL_free"}

// verdict is what inspecting one file's ELF yields; it is cached per file.
type verdict struct {
	lib     Library
	symbols map[string]uint64
	buildID string
}

// inspectELF decides whether the ELF file at path is a TLS target.
// A file that is not ELF at all is not an error: it is simply no target.
func inspectELF(path string) (verdict, error) {
	f, err := os.Open(path)
	if err != nil {
		return verdict{}, err
	}
	defer f.Close()
	ef, err := elf.NewFile(f)
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return verdict{}, nil
		}
		return verdict{}, fmt.Errorf("procscan: parse ELF %s: %w", path, err)
	}
	defer ef.Close()

	v := verdict{buildID: buildID(ef)}
	syms := make(map[string]uint64, len(openSSLSymbols))
	hidden := make(map[string]bool)

	// .dynsym first: it survives stripping and is small even in a 100 MB
	// node binary. Go reports versioned names ("SSL_read@@OPENSSL_3.0.0")
	// without the version suffix here.
	// elfsym answers from the GNU hash table, ~80x faster than decoding
	// node's whole .dynsym on the path from exec to hooked.
	dyn, err := elfsym.Lookup(ef, openSSLSymbols)
	if err != nil {
		return verdict{}, fmt.Errorf("procscan: read .dynsym of %s: %w", path, err)
	}
	for name, s := range dyn {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			syms[name] = s.Value
		}
	}
	// .symtab only when .dynsym lacks something: it can be large (every
	// static function), and libraries that export OpenSSL have it all in
	// .dynsym anyway.
	if len(syms) < len(openSSLSymbols) {
		st, err := ef.Symbols()
		if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
			return verdict{}, fmt.Errorf("procscan: read .symtab of %s: %w", path, err)
		}
		for _, s := range st {
			if _, ok := syms[baseName(s.Name)]; ok {
				continue // .dynsym has the authoritative exported definition
			}
			addSymbol(syms, hidden, s, false)
		}
	}
	if _, ok := syms["SSL_read"]; !ok {
		if v, err := gnutlsVerdict(ef, v); err != nil || v.lib != LibraryUnknown {
			return v, err
		}
		if len(syms) == 0 && strippedLibSSL(ef) {
			v.lib = OpenSSLNoSymbols
		}
		return v, nil
	}
	if _, ok := syms["SSL_write"]; !ok {
		return v, nil
	}
	v.lib = OpenSSL
	v.symbols = syms
	return v, nil
}

// libsslMarker is the source file name OpenSSL's libssl (1.1.1 and 3.x)
// records with its errors (ERR_raise: OPENSSL_FILE): present in every
// program that links libssl in, stripped or not.
var libsslMarker = []byte("ssl/ssl_lib.c\x00")

// maxMarkerScan bounds the read-only data searched for libsslMarker.
const maxMarkerScan = 256 << 20

// strippedLibSSL reports whether ef, which has no SSL_* symbols, carries
// libssl's code all the same: a statically linked, stripped OpenSSL.
// Only files without .symtab are searched (an unstripped one would have
// named its SSL_read); the verdict is cached per file.
func strippedLibSSL(ef *elf.File) bool {
	if s := ef.Section(".symtab"); s != nil {
		return false
	}
	for _, p := range ef.Progs {
		// libssl's strings sit in a read-only, non-executable PT_LOAD
		// (or the text segment in old single-segment layouts).
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_W != 0 || p.Filesz == 0 {
			continue
		}
		if containsBounded(p.Open(), libsslMarker, maxMarkerScan) {
			return true
		}
	}
	return false
}

// containsBounded searches the first limit bytes of r for marker, in
// 1 MiB pieces (a large library is never read into memory whole).
func containsBounded(r io.Reader, marker []byte, limit int64) bool {
	buf := make([]byte, 1<<20+len(marker))
	keep := 0 // bytes carried over from the previous piece
	var read int64
	for read < limit {
		n, err := io.ReadFull(r, buf[keep:])
		if n > 0 && bytes.Contains(buf[:keep+n], marker) {
			return true
		}
		read += int64(n)
		if err != nil {
			return false
		}
		keep = copy(buf, buf[keep+n-(len(marker)-1):keep+n])
	}
	return false
}

// gnutlsSymbols are GnuTLS's record functions and session ends. A file is
// a GnuTLS target when it defines the first two.
var gnutlsSymbols = []string{"gnutls_record_send", "gnutls_record_recv", "gnutls_record_send2", "gnutls_bye", "gnutls_deinit"}

// gnutlsVerdict recognises libgnutls by its exported record functions.
// Only .dynsym is read: GnuTLS is shipped as a shared library; an importer
// (libcurl-gnutls, wget) has them undefined and is no target.
func gnutlsVerdict(ef *elf.File, v verdict) (verdict, error) {
	dyn, err := elfsym.Lookup(ef, gnutlsSymbols)
	if err != nil {
		return verdict{}, fmt.Errorf("procscan: read .dynsym: %w", err)
	}
	syms := map[string]uint64{}
	for name, s := range dyn {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
			syms[name] = s.Value
		}
	}
	if syms["gnutls_record_send"] == 0 || syms["gnutls_record_recv"] == 0 {
		return v, nil
	}
	v.lib = GnuTLS
	v.symbols = syms
	return v, nil
}

// addSymbol records s when it is a definition of one of openSSLSymbols.
// When several versions define the same name, the default (non-hidden)
// version wins, as it does for the dynamic linker.
func addSymbol(syms map[string]uint64, hidden map[string]bool, s elf.Symbol, isHidden bool) {
	name := baseName(s.Name)
	if !wanted(name) || !defined(s) {
		return
	}
	if _, seen := syms[name]; seen && (isHidden || !hidden[name]) {
		return
	}
	syms[name] = s.Value
	hidden[name] = isHidden
}

// baseName strips an ELF symbol version ("name@VER" or "name@@VER"), which
// .symtab entries may carry in their names.
func baseName(name string) string {
	if i := strings.IndexByte(name, '@'); i >= 0 {
		return name[:i]
	}
	return name
}

func wanted(name string) bool {
	for _, w := range openSSLSymbols {
		if name == w {
			return true
		}
	}
	return false
}

// defined reports whether s is a function defined in this file, as opposed
// to an import (SHN_UNDEF), which is what e.g. Python's _ssl module has.
func defined(s elf.Symbol) bool {
	if s.Section == elf.SHN_UNDEF || s.Value == 0 {
		return false
	}
	switch elf.ST_TYPE(s.Info) {
	case elf.STT_FUNC, elf.STT_GNU_IFUNC:
		return true
	}
	return false
}

// buildID returns the hex GNU build-id of ef, or "" when it has none.
func buildID(ef *elf.File) string {
	for _, s := range ef.Sections {
		if s.Type != elf.SHT_NOTE {
			continue
		}
		if b, err := s.Data(); err == nil {
			if id := findBuildID(b, ef.ByteOrder, s.Addralign); id != "" {
				return id
			}
		}
	}
	// Section headers may be stripped; the loader's view still has notes.
	for _, p := range ef.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			continue
		}
		if id := findBuildID(b, ef.ByteOrder, p.Align); id != "" {
			return id
		}
	}
	return ""
}

// findBuildID walks ELF notes (namesz, descsz, type, name, desc; name and
// desc padded to the note alignment) looking for NT_GNU_BUILD_ID.
func findBuildID(b []byte, bo interface{ Uint32([]byte) uint32 }, align uint64) string {
	const ntGNUBuildID = 3
	pad := uint64(4)
	if align == 8 {
		pad = 8
	}
	roundUp := func(n uint64) uint64 { return (n + pad - 1) &^ (pad - 1) }
	for len(b) >= 12 {
		namesz, descsz, typ := uint64(bo.Uint32(b)), uint64(bo.Uint32(b[4:])), bo.Uint32(b[8:])
		b = b[12:]
		nameEnd := roundUp(namesz)
		descEnd := nameEnd + roundUp(descsz)
		if nameEnd > uint64(len(b)) || nameEnd+descsz > uint64(len(b)) {
			return ""
		}
		if typ == ntGNUBuildID && namesz == 4 && string(b[:4]) == "GNU\x00" && descsz > 0 {
			return hex.EncodeToString(b[nameEnd : nameEnd+descsz])
		}
		if descEnd > uint64(len(b)) {
			return ""
		}
		b = b[descEnd:]
	}
	return ""
}
