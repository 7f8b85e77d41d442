//go:build !linux

// /dev/kmsg exists only on Linux. Elsewhere this stub keeps the API, so the
// receiver builds on any OS and fails at Start with ErrUnsupported.

package kmsg

import (
	"context"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kernlog"
)

// Options say what to open.
type Options struct {
	Device     string
	BootIDFile string
}

// Reader is never returned in this build: Open fails.
type Reader struct{}

// Open returns ErrUnsupported.
func Open(Options) (*Reader, error) { return nil, ErrUnsupported }

// The methods below exist so that callers compile; no Reader is ever made.

// BootID returns "".
func (*Reader) BootID() string { return "" }

// SeekHead returns ErrUnsupported.
func (*Reader) SeekHead() error { return ErrUnsupported }

// SeekEnd returns ErrUnsupported.
func (*Reader) SeekEnd() (kernlog.Position, error) { return kernlog.Position{}, ErrUnsupported }

// SeekAfter returns ErrUnsupported.
func (*Reader) SeekAfter(kernlog.Position) (bool, error) { return false, ErrUnsupported }

// Next returns ErrUnsupported.
func (*Reader) Next() (bool, error) { return false, ErrUnsupported }

// Text returns ErrUnsupported.
func (*Reader) Text() (string, error) { return "", ErrUnsupported }

// Origin returns the zero Origin.
func (*Reader) Origin() kernlog.Origin { return kernlog.Origin{} }

// Stamp returns the zero Stamp.
func (*Reader) Stamp() kernlog.Stamp { return kernlog.Stamp{} }

// Position returns ErrUnsupported.
func (*Reader) Position() (kernlog.Position, error) { return kernlog.Position{}, ErrUnsupported }

// Record returns the zero Record.
func (*Reader) Record() Record { return Record{} }

// Wait returns ErrUnsupported.
func (*Reader) Wait(context.Context) error { return ErrUnsupported }

// Close returns nil.
func (*Reader) Close() error { return nil }
