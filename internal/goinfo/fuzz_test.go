package goinfo

import (
	"bytes"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlstap/tlstap/internal/elfmut"
	"github.com/tlstap/tlstap/internal/testenv"
)

// The fuzz targets and TestHostileExecutables feed real Go executables,
// mutated, to the analysis the agent runs as root on every executable a
// process maps. Seeds are built by the test (two toolchains, plain and
// stripped, PIE), not committed: they are megabytes each.

// seedVariants are the real executables the corpus starts from.
func seedVariants() []variant {
	return []variant{
		{toolchain: "local", prog: "tlsprog", strip: true},                // functions from .gopclntab
		{toolchain: "local", prog: "tlsprog"},                             // .symtab, DWARF
		{toolchain: "go1.24.13", prog: "tlsprog", pie: true, strip: true}, // PIE: relocations, moduledata
	}
}

func seedFiles(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, v := range seedVariants() {
		b, err := os.ReadFile(build(tb, v))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// inspectBytes analyses data as a file and checks what a success promises:
// every offset handed to the kernel lies inside the file.
func inspectBytes(t *testing.T, data []byte, opt options) {
	t.Helper()
	info, err := inspectReader(bytes.NewReader(data), uint64(len(data)), "fuzz", opt)
	if err != nil {
		return
	}
	n := uint64(len(data))
	for _, fn := range []Func{info.Read, info.Write} {
		if fn.Entry == 0 || fn.Entry+fn.Size > n || fn.Size > MaxFuncSize {
			t.Fatalf("function outside the file: entry %#x size %d, file %d bytes", fn.Entry, fn.Size, n)
		}
		for _, r := range fn.Returns {
			if r < fn.Entry || r >= fn.Entry+fn.Size {
				t.Fatalf("RET at %#x outside its function [%#x, %#x)", r, fn.Entry, fn.Entry+fn.Size)
			}
		}
		if fn.CopyCall != 0 && (fn.CopyCall < fn.Entry || fn.CopyCall >= fn.Entry+fn.Size) {
			t.Fatalf("copy call at %#x outside its function", fn.CopyCall)
		}
	}
}

func FuzzInspect(f *testing.F) {
	if !testenv.FuzzWorker() {
		for _, b := range seedFiles(f) {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inspectBytes(t, data, options{})
		inspectBytes(t, data, options{forcePclntab: true})
	})
}

// FuzzDecode drives the x86 decoding (return scan, copy-call analysis)
// with the real Read and Write bodies as seeds.
func FuzzDecode(f *testing.F) {
	for _, v := range seedVariants() {
		if testenv.FuzzWorker() {
			break
		}
		path := build(f, v)
		info, err := Inspect(path)
		if err != nil {
			f.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		for _, fn := range []Func{info.Read, info.Write} {
			f.Add(data[fn.Entry:fn.Entry+fn.Size], fn.Addr, uint64(0x401000))
		}
	}
	f.Fuzz(func(t *testing.T, code []byte, addr, memmove uint64) {
		if len(code) > 64<<10 {
			// Real bodies are a few KiB; decoding is linear in the length
			// (TestHostileExecutables covers the MaxFuncSize bound), and
			// megabyte inputs would only slow the search down.
			return
		}
		rets, _, err := scanReturns(code, 0x1000)
		if err == nil {
			for _, r := range rets {
				if r < 0x1000 || r >= 0x1000+uint64(len(code)) {
					t.Fatalf("RET at %#x outside the code", r)
				}
			}
		}
		if off, err := findCopyCall(code, 0x1000, addr, memmove); err == nil {
			if off < 0x1000 || off >= 0x1000+uint64(len(code)) {
				t.Fatalf("copy call at %#x outside the code", off)
			}
		}
	})
}

// TestHostileExecutables mutates the headers and tables of real Go
// executables field by field (the structured corruption random fuzzing
// rarely reaches: sizes near 2^64, offsets past the end, counts in the
// millions) and checks that analysis neither panics nor takes long.
func TestHostileExecutables(t *testing.T) {
	const budget = 5 * time.Second // per file, under -race on a loaded host
	for i, seed := range seedFiles(t) {
		muts := elfmut.Mutations(seed)
		if len(muts) < 100 {
			t.Fatalf("seed %d: only %d mutations", i, len(muts))
		}
		for _, m := range muts {
			start := time.Now()
			inspectBytes(t, m.Bytes(), options{})
			if d := time.Since(start); d > budget {
				t.Errorf("seed %d, %s: analysis took %v", i, m.What, d)
			}
		}
		t.Logf("seed %d: %d hostile variants analysed", i, len(muts))
	}
}

// TestCachePanicReleasesWaiters: an analysis that panics passes the panic
// on to its caller (the engine's analysis boundary recovers it), hands the
// callers waiting for the same file an error instead of blocking them
// forever, and leaves the key free for a later attempt.
func TestCachePanicReleasesWaiters(t *testing.T) {
	path := build(t, variant{toolchain: "local", prog: "tlsprog", strip: true})
	started, release := make(chan struct{}), make(chan struct{})
	c := NewCache()
	var calls atomic.Int32
	c.inspect = func(string) (Info, error) {
		if calls.Add(1) > 1 {
			// The waiter came after the key was freed and analysed anew.
			return Info{}, errors.New("second analysis")
		}
		close(started)
		<-release
		panic("hostile file")
	}
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		c.Inspect(path)
	}()
	<-started
	waiter := make(chan error, 1)
	go func() {
		_, err := c.Inspect(path)
		waiter <- err
	}()
	close(release)
	if r := <-panicked; r != "hostile file" {
		t.Fatalf("first caller recovered %v, want the panic", r)
	}
	select {
	case err := <-waiter:
		if err == nil {
			t.Fatal("waiter got no error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("waiter still blocked 30 s after the panic")
	}
	c.inspect = Inspect
	if _, err := c.Inspect(path); err != nil {
		t.Fatalf("later analysis: %v", err)
	}
	if _, err := c.Inspect(path); err != nil || c.Analyses() != int64(calls.Load())+1 {
		t.Errorf("cached result: err %v, %d analyses for %d failed ones + 1", err, c.Analyses(), calls.Load())
	}
}
