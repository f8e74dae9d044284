package procscan

import (
	"sync"
	"sync/atomic"
)

// cacheKey is FileKey without the build-id, which is only known after the
// file has been opened: everything in it comes from maps and stat.
type cacheKey struct {
	dev, ino    uint64
	mtime, size int64
}

// elfCache holds one verdict per file version. Concurrent lookups of a file
// that is being inspected wait for that inspection instead of opening the
// file again, so N processes of one binary cost one open however they race.
type elfCache struct {
	limit int

	mu sync.Mutex
	m  map[cacheKey]*cacheEntry

	opens atomic.Int64
	hits  atomic.Int64
}

type cacheEntry struct {
	done chan struct{} // closed when v and err are set
	v    verdict
	err  error
}

func (c *elfCache) get(k FileKey, load func() (verdict, error)) (verdict, error) {
	key := cacheKey{k.Dev, k.Inode, k.ModTime, k.Size}
	c.mu.Lock()
	if e, ok := c.m[key]; ok {
		c.mu.Unlock()
		<-e.done
		if e.err == nil {
			c.hits.Add(1)
		}
		return e.v, e.err
	}
	if c.m == nil || (c.limit > 0 && len(c.m) >= c.limit) {
		c.m = make(map[cacheKey]*cacheEntry)
	}
	e := &cacheEntry{done: make(chan struct{})}
	c.m[key] = e
	c.mu.Unlock()

	c.opens.Add(1)
	e.v, e.err = load()
	close(e.done)
	if e.err != nil {
		// Errors are mostly transient (a process exiting under us); do not
		// remember them.
		c.mu.Lock()
		if c.m[key] == e {
			delete(c.m, key)
		}
		c.mu.Unlock()
	}
	return e.v, e.err
}
