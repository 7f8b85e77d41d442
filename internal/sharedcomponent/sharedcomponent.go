// Package sharedcomponent lets one component instance serve several
// pipelines (a receiver in a logs and a metrics pipeline reads its source
// once; a processor in three pipelines runs one Kubernetes watch). It is the
// small equivalent of the collector's internal/sharedcomponent, which other
// modules cannot import.
package sharedcomponent

import (
	"context"
	"sync"

	"go.opentelemetry.io/collector/component"
)

// Map holds one shared component per key (the component's *Config).
type Map[K comparable, C component.Component] struct {
	mu sync.Mutex
	m  map[K]*Component[C]
}

// LoadOrStore returns the component for key, creating it with create on
// first use. Every returned handle must be shut down once.
func (m *Map[K, C]) LoadOrStore(key K, create func() (C, error)) (*Component[C], error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.m[key]; ok {
		c.refs++
		return c, nil
	}
	inner, err := create()
	if err != nil {
		return nil, err
	}
	if m.m == nil {
		m.m = map[K]*Component[C]{}
	}
	c := &Component[C]{Unwrap: inner, refs: 1}
	c.release = func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		c.refs--
		if c.refs > 0 {
			return false
		}
		delete(m.m, key)
		return true
	}
	m.m[key] = c
	return c, nil
}

// Component starts its inner component on the first Start and shuts it
// down on the last Shutdown.
type Component[C component.Component] struct {
	Unwrap C

	startOnce sync.Once
	startErr  error
	refs      int
	release   func() (last bool)
}

// Start starts the inner component once.
func (c *Component[C]) Start(ctx context.Context, host component.Host) error {
	c.startOnce.Do(func() { c.startErr = c.Unwrap.Start(ctx, host) })
	return c.startErr
}

// Shutdown shuts the inner component down when the last user does.
func (c *Component[C]) Shutdown(ctx context.Context) error {
	if !c.release() {
		return nil
	}
	return c.Unwrap.Shutdown(ctx)
}
