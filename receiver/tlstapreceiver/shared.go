package tlstapreceiver

import (
	"context"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
)

// sharedComponents lets several pipelines (here: logs and traces) use one
// component instance per key. It mirrors the Collector's internal
// sharedcomponent helper, which receivers outside the core cannot import:
//
//   - LoadOrStore creates the instance for a key once;
//   - the first Start starts it, later Starts return the first result;
//   - the first Shutdown shuts it down and forgets the key, so that a new
//     pipeline build (config reload) creates a fresh instance; later
//     Shutdowns return the first result.
//
// Status events the instance reports are fanned out to the host of every
// pipeline that started it, and replayed to hosts that start later.
type sharedComponents[K comparable, V component.Component] struct {
	mu    sync.Mutex
	comps map[K]*sharedComponent[V]
}

func newSharedComponents[K comparable, V component.Component]() *sharedComponents[K, V] {
	return &sharedComponents[K, V]{comps: make(map[K]*sharedComponent[V])}
}

// LoadOrStore returns the shared instance for key, creating it with create
// when there is none.
func (m *sharedComponents[K, V]) LoadOrStore(key K, create func() (V, error)) (*sharedComponent[V], error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.comps[key]; ok {
		return c, nil
	}
	v, err := create()
	if err != nil {
		return nil, err
	}
	c := &sharedComponent[V]{component: v}
	c.remove = func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.comps[key] == c {
			delete(m.comps, key)
		}
	}
	m.comps[key] = c
	return c, nil
}

// has reports whether key has a live shared instance (for tests).
func (m *sharedComponents[K, V]) has(key K) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.comps[key]
	return ok
}

// sharedComponent wraps the one instance shared by several pipelines.
type sharedComponent[V component.Component] struct {
	component V
	remove    func()

	startOnce sync.Once
	startErr  error
	stopOnce  sync.Once
	stopErr   error

	mu        sync.Mutex
	hosts     []component.Host
	lastEvent *componentstatus.Event
}

// Unwrap returns the shared instance.
func (c *sharedComponent[V]) Unwrap() V { return c.component }

// Start starts the instance on the first call; every call registers host
// for status reports.
func (c *sharedComponent[V]) Start(ctx context.Context, host component.Host) error {
	c.mu.Lock()
	c.hosts = append(c.hosts, host)
	last := c.lastEvent
	c.mu.Unlock()
	if last != nil {
		componentstatus.ReportStatus(host, last)
	}
	c.startOnce.Do(func() {
		c.startErr = c.component.Start(ctx, &fanoutHost{Host: host, owner: c})
	})
	return c.startErr
}

// Shutdown shuts the instance down on the first call and forgets it.
func (c *sharedComponent[V]) Shutdown(ctx context.Context) error {
	c.stopOnce.Do(func() {
		c.stopErr = c.component.Shutdown(ctx)
		if c.remove != nil {
			c.remove()
		}
	})
	return c.stopErr
}

func (c *sharedComponent[V]) report(ev *componentstatus.Event) {
	c.mu.Lock()
	c.lastEvent = ev
	hosts := append([]component.Host(nil), c.hosts...)
	c.mu.Unlock()
	for _, h := range hosts {
		componentstatus.ReportStatus(h, ev)
	}
}

// fanoutHost is the host the shared instance sees: extensions and factories
// come from the first pipeline's host, status reports go to every pipeline.
type fanoutHost struct {
	component.Host
	owner interface{ report(*componentstatus.Event) }
}

var _ componentstatus.Reporter = (*fanoutHost)(nil)

func (h *fanoutHost) Report(ev *componentstatus.Event) { h.owner.report(ev) }
