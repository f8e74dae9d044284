package goinfo

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// Cache memoises Inspect per binary identity, so a host running 100
// processes of one executable analyses it once. The key is the Go build ID
// and the GNU build-id (either identifies the linked output); a file with
// neither is keyed by device, inode, size and modification time.
// Deterministic failures (ErrNotGo, ErrNoTLS, ErrUnsupported) are cached
// too; I/O errors are not. Safe for concurrent use; concurrent callers for
// one key wait for a single analysis.
type Cache struct {
	mu       sync.Mutex
	m        map[string]*cacheEntry
	analyses atomic.Int64
	inspect  func(string) (Info, error) // Inspect; replaceable in tests
}

type cacheEntry struct {
	done chan struct{}
	info Info
	err  error
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{m: map[string]*cacheEntry{}, inspect: Inspect}
}

// Analyses returns how many binaries were analysed (cache misses).
func (c *Cache) Analyses() int64 { return c.analyses.Load() }

// Len returns the number of cached binaries.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// Inspect returns the cached analysis of the binary at path, analysing it
// on first sight. The returned Info shares its slices with the cache: do
// not modify them.
func (c *Cache) Inspect(path string) (Info, error) {
	key, err := Key(path)
	if err != nil {
		return Info{}, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*cacheEntry{}
	}
	if e, ok := c.m[key]; ok {
		c.mu.Unlock()
		<-e.done
		return e.info, e.err
	}
	e := &cacheEntry{done: make(chan struct{})}
	c.m[key] = e
	c.mu.Unlock()

	c.analyses.Add(1)
	inspect := c.inspect
	if inspect == nil {
		inspect = Inspect
	}
	defer func() {
		// A panic (a malformed file the parsers did not foresee) must not
		// leave waiters blocked or the key reserved: they get an error,
		// a later call analyses again, and the panic goes on to the
		// caller's analysis boundary.
		if r := recover(); r != nil {
			c.mu.Lock()
			delete(c.m, key)
			c.mu.Unlock()
			e.err = fmt.Errorf("goinfo: %s: analysis panicked: %v", path, r)
			close(e.done)
			panic(r)
		}
	}()
	e.info, e.err = inspect(path)
	if e.err != nil && !errors.Is(e.err, ErrNotGo) && !errors.Is(e.err, ErrNoTLS) && !errors.Is(e.err, ErrUnsupported) {
		c.mu.Lock()
		delete(c.m, key) // transient: let a later call retry
		c.mu.Unlock()
	}
	close(e.done)
	return e.info, e.err
}

// Key returns the cache key of the binary at path: "go:<Go build ID>
// gnu:<GNU build-id>" from its notes, or "file:<dev>:<ino>:<size>:<mtime>"
// when it carries neither (or is not ELF).
func Key(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("goinfo: %w", err)
	}
	defer fh.Close()
	if f, err := elf.NewFile(fh); err == nil {
		goID, gnuID := buildIDs(f)
		if goID != "" || gnuID != "" {
			return "go:" + goID + " gnu:" + gnuID, nil
		}
	}
	st, err := fh.Stat()
	if err != nil {
		return "", fmt.Errorf("goinfo: %w", err)
	}
	var dev, ino uint64
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		dev, ino = uint64(s.Dev), s.Ino
	}
	return fmt.Sprintf("file:%d:%d:%d:%d", dev, ino, st.Size(), st.ModTime().UnixNano()), nil
}
