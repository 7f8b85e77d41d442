package kmsg

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Default paths. Neither is namespaced: inside a container they are the
// node's, once the node's /dev/kmsg is mounted there.
const (
	DefaultDevice = "/dev/kmsg"
	BootIDFile    = "/proc/sys/kernel/random/boot_id"
)

// Position is where a reader is: the boot and the sequence number of the
// last record read. Sequence numbers start at 0 on every boot, so the boot
// ID is part of the position.
type Position struct {
	BootID string `json:"boot_id"`
	Seq    uint64 `json:"seq"`
}

func (p Position) String() string { return fmt.Sprintf("boot %s seq %d", p.BootID, p.Seq) }

// cursorPrefix starts every cursor of this source; a journal cursor starts
// with "s=", so the two never pass for each other.
const cursorPrefix = "kmsg;b="

// Cursor is p in the checkpoint's form: "kmsg;b=<boot ID>;s=<seq>".
func (p Position) Cursor() string {
	return cursorPrefix + p.BootID + ";s=" + strconv.FormatUint(p.Seq, 10)
}

// ParseCursor reads a Cursor; ok is false for anything else (e.g. a
// journal cursor saved before the source was switched).
func ParseCursor(c string) (p Position, ok bool) {
	rest, ok := strings.CutPrefix(c, cursorPrefix)
	if !ok {
		return Position{}, false
	}
	boot, seq, ok := strings.Cut(rest, ";s=")
	if !ok || len(boot) != 32 {
		return Position{}, false
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return Position{}, false
	}
	return Position{BootID: boot, Seq: n}, true
}

// ReadBootID reads the running kernel's boot ID (a random UUID chosen at
// boot), the same value journald stores as _BOOT_ID.
func ReadBootID(path string) (string, error) {
	b, err := os.ReadFile(path) //nolint:gosec // G304: the kernel's boot_id file (a test may point elsewhere)
	if err != nil {
		return "", fmt.Errorf("reading the boot ID: %w", err)
	}
	id := strings.ReplaceAll(strings.TrimSpace(string(b)), "-", "")
	if len(id) != 32 {
		return "", fmt.Errorf("reading the boot ID: %s holds %q, not a UUID", path, b)
	}
	return id, nil
}

// ErrUnsupported is what Open returns where there is no /dev/kmsg to read.
var ErrUnsupported = fmt.Errorf("/dev/kmsg is Linux's; this is a %s/%s build", runtime.GOOS, runtime.GOARCH)

// ErrPositionAhead is returned once by Next when a position sought after
// lies beyond the newest record of this boot (a checkpoint that cannot be
// this boot's): reading then goes on from the oldest record held.
var ErrPositionAhead = errors.New("the saved position is ahead of the kernel's newest record")
