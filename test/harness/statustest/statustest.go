// Package statustest gives tests a component.Host that keeps the status
// events a component reports, in order.
package statustest

import (
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/component/componenttest"
)

// Host is a no-op host that records status events. Safe for concurrent use.
type Host struct {
	component.Host
	mu     sync.Mutex
	events []componentstatus.Status
}

// NewHost returns a host with no events yet.
func NewHost() *Host { return &Host{Host: componenttest.NewNopHost()} }

// Report records e (componentstatus.Reporter).
func (h *Host) Report(e *componentstatus.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e.Status())
}

// Statuses are the statuses reported so far.
func (h *Host) Statuses() []componentstatus.Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]componentstatus.Status(nil), h.events...)
}
