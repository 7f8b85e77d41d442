//go:build !linux

// /dev/kmsg exists only on Linux. Elsewhere this stub keeps the API, so the
// receiver builds on any OS and fails at Start with ErrUnsupported.

package kmsg

import (
	"context"
	"time"
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
func (*Reader) SeekEnd() error { return ErrUnsupported }

// SeekAfter returns ErrUnsupported.
func (*Reader) SeekAfter(Position) (bool, error) { return false, ErrUnsupported }

// Next returns ErrUnsupported.
func (*Reader) Next() (bool, error) { return false, ErrUnsupported }

// Lost returns 0.
func (*Reader) Lost() uint64 { return 0 }

// Message returns ErrUnsupported.
func (*Reader) Message() (string, error) { return "", ErrUnsupported }

// FromKernel returns false.
func (*Reader) FromKernel() bool { return false }

// Record returns the zero Record.
func (*Reader) Record() Record { return Record{} }

// KernelMonotonicUsec returns 0.
func (*Reader) KernelMonotonicUsec() uint64 { return 0 }

// KernelTime returns the zero time.
func (*Reader) KernelTime() time.Time { return time.Time{} }

// Position returns the zero Position.
func (*Reader) Position() Position { return Position{} }

// Wait returns ErrUnsupported.
func (*Reader) Wait(context.Context) error { return ErrUnsupported }

// Close returns nil.
func (*Reader) Close() error { return nil }
