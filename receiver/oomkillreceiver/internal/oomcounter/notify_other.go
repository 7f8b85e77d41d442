//go:build !linux

package oomcounter

import "errors"

// Notifier is Linux-only; elsewhere the counters are polled.
type Notifier struct{ C chan struct{} }

// NewNotifier fails off Linux.
func NewNotifier() (*Notifier, error) { return nil, errors.New("inotify is Linux-only") }

// Watch is never reached off Linux.
func (n *Notifier) Watch(string) error { return errors.New("inotify is Linux-only") }

// Close is never reached off Linux.
func (n *Notifier) Close() error { return nil }
