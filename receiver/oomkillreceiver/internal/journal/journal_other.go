//go:build !linux || !cgo

// The journal reader links libsystemd through cgo, so it exists only on Linux
// built with CGO_ENABLED=1. Elsewhere this stub keeps the same API, so the
// pure-Go packages around it (the parser, the receiver's config and emitter,
// k8smeta) build and test on any OS, and the receiver fails at Start with
// ErrUnsupported instead of the whole tree failing to compile.

package journal

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

// ErrUnsupported is what Open and CheckReadable return in this build.
var ErrUnsupported = fmt.Errorf("the oomkill receiver reads the systemd journal through libsystemd and runs only on Linux, built with cgo (CGO_ENABLED=1); this is a %s/%s build without it", runtime.GOOS, runtime.GOARCH)

// DefaultDirectories are where journald keeps the system journal.
var DefaultDirectories = []string{"/var/log/journal", "/run/log/journal"}

// Source says which journal to open.
type Source struct {
	Directory string
	Files     []string
}

// KernelIdentifier is the SYSLOG_IDENTIFIER journald gives the kernel's own messages.
const KernelIdentifier = "kernel"

// ErrNoField reports that the current entry lacks a field.
var ErrNoField = errors.New("field not in entry")

// Reader is never returned in this build: Open fails.
type Reader struct{}

// Open returns ErrUnsupported.
func Open(Source) (*Reader, error) { return nil, ErrUnsupported }

// CheckReadable returns ErrUnsupported.
func CheckReadable(Source) (int, error) { return 0, ErrUnsupported }

// The methods below exist so that callers compile; no Reader is ever made.

// Reopen returns ErrUnsupported.
func (*Reader) Reopen(string, time.Time) (bool, error) { return false, ErrUnsupported }

// Close returns ErrUnsupported.
func (*Reader) Close() error { return ErrUnsupported }

// SeekHead returns ErrUnsupported.
func (*Reader) SeekHead() error { return ErrUnsupported }

// SeekEnd returns ErrUnsupported.
func (*Reader) SeekEnd() (string, error) { return "", ErrUnsupported }

// SeekAfter returns ErrUnsupported.
func (*Reader) SeekAfter(string, time.Time) (bool, error) { return false, ErrUnsupported }

// Next returns ErrUnsupported.
func (*Reader) Next() (bool, error) { return false, ErrUnsupported }

// Wait returns ErrUnsupported.
func (*Reader) Wait(time.Duration) (bool, error) { return false, ErrUnsupported }

// Message returns ErrUnsupported.
func (*Reader) Message() (string, error) { return "", ErrUnsupported }

// Identifier returns "".
func (*Reader) Identifier() string { return "" }

// BootID returns ErrUnsupported.
func (*Reader) BootID() (string, error) { return "", ErrUnsupported }

// Hostname returns "".
func (*Reader) Hostname() string { return "" }

// Realtime returns ErrUnsupported.
func (*Reader) Realtime() (time.Time, error) { return time.Time{}, ErrUnsupported }

// KernelTime returns ErrUnsupported.
func (*Reader) KernelTime() (time.Time, error) { return time.Time{}, ErrUnsupported }

// KernelMonotonicUsec returns ErrUnsupported.
func (*Reader) KernelMonotonicUsec() (uint64, error) { return 0, ErrUnsupported }

// Cursor returns ErrUnsupported.
func (*Reader) Cursor() (string, error) { return "", ErrUnsupported }
