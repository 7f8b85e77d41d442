//go:build !linux || !cgo

// The journal reader links libsystemd through cgo, so it exists only on Linux
// built with CGO_ENABLED=1. Elsewhere this stub keeps the same API, so the
// pure-Go packages around it (the parser, the receiver's config and emitter,
// k8smeta) build and test on any OS, and the receiver fails at Start with
// ErrUnsupported instead of the whole tree failing to compile.

package journal

import (
	"fmt"
	"runtime"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kernlog"
)

// ErrUnsupported is what Open and CheckReadable return in this build.
var ErrUnsupported = fmt.Errorf("the oomkill receiver reads the systemd journal through libsystemd and runs only on Linux, built with cgo (CGO_ENABLED=1); this is a %s/%s build without it", runtime.GOOS, runtime.GOARCH)

// Open returns ErrUnsupported.
func Open(Location, Options) (kernlog.Source, error) { return nil, ErrUnsupported }

// CheckReadable returns ErrUnsupported.
func CheckReadable(Location) (int, error) { return 0, ErrUnsupported }
