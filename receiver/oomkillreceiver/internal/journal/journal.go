//go:build linux && cgo

// Package journal reads kernel messages from systemd journal files in
// process, through libsystemd (github.com/coreos/go-systemd/v22/sdjournal).
// It is the only cgo in the project.
package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/sdjournal"
)

// DefaultDirectories are where journald keeps the system journal:
// persistent storage first, then the volatile one.
var DefaultDirectories = []string{"/var/log/journal", "/run/log/journal"}

// Source says which journal to open. With neither field set the local
// system journal is opened (DefaultDirectories).
type Source struct {
	Directory string
	Files     []string
}

// Reader walks kernel-transport messages (_TRANSPORT=kernel). Lines userspace
// wrote to /dev/kmsg come by that transport too; Identifier tells them apart.
// Accessors read fields of the entry the last Next moved to; fields are only
// fetched when asked for, since most entries need only MESSAGE.
type Reader struct {
	j   *sdjournal.Journal
	src Source
}

// Open opens the journal and restricts it to kernel messages.
func Open(src Source) (*Reader, error) {
	var (
		j   *sdjournal.Journal
		err error
	)
	switch {
	case len(src.Files) > 0:
		j, err = sdjournal.NewJournalFromFiles(src.Files...)
	case src.Directory != "":
		j, err = sdjournal.NewJournalFromDir(src.Directory)
	default:
		j, err = sdjournal.NewJournal()
	}
	if err != nil {
		return nil, err
	}
	// One match, not also SYSLOG_IDENTIFIER=kernel: libsystemd intersects
	// two matches entry by entry, which costs more than checking the
	// identifier of the few lines that matter (BENCHMARKS.md).
	if err := j.AddMatch(kernelTransportMatch); err != nil {
		j.Close()
		return nil, fmt.Errorf("journal match %s: %w", kernelTransportMatch, err)
	}
	// Kernel lines are short; never let libsystemd truncate one.
	if err := j.SetDataThreshold(0); err != nil {
		j.Close()
		return nil, err
	}
	return &Reader{j: j, src: src}, nil
}

// Reopen replaces the journal handle with a fresh one positioned as
// SeekAfter(cursor, notBefore) would. libsystemd keeps the windows of every
// journal file it has read mapped until the handle is closed: after catching
// up on a large journal that is hundreds of MiB of resident journal pages
// (BENCHMARKS.md), which a fresh handle gives back. On error the old handle
// stays in place, where it was; after success the old one is closed, and a
// failure to close a handle no longer used changes nothing for reading.
func (r *Reader) Reopen(cursor string, notBefore time.Time) (found bool, err error) {
	fresh, err := Open(r.src)
	if err != nil {
		return false, err
	}
	if found, err = fresh.SeekAfter(cursor, notBefore); err != nil {
		fresh.Close()
		return false, err
	}
	old := r.j
	r.j = fresh.j
	_ = old.Close()
	return found, nil
}

// Close releases the journal. It waits for a Wait in progress to return.
func (r *Reader) Close() error { return r.j.Close() }

// SeekHead positions before the oldest entry.
func (r *Reader) SeekHead() error { return r.j.SeekHead() }

// SeekEnd positions after the newest entry, so that Next returns only
// entries appended from now on. It returns the cursor of that newest entry
// ("" when the journal holds none).
func (r *Reader) SeekEnd() (string, error) {
	if err := r.j.SeekTail(); err != nil {
		return "", err
	}
	// Resolve the tail now, on the newest entry: a tail seek left pending
	// would be resolved at the next Next, skipping what arrived meanwhile.
	n, err := r.j.Previous()
	if err != nil {
		return "", err
	}
	if n == 0 {
		// No entry yet: everything that arrives is new, so read from the
		// head rather than leave the tail seek pending.
		return "", r.j.SeekHead()
	}
	return r.j.GetCursor()
}

// SeekAfter positions right after the entry with the cursor. found is false
// when that entry no longer exists (the journal was vacuumed or rotated
// away), or the cursor is not a journal's (another source's, saved before
// the source was switched); the reader is then positioned before the first
// entry newer than notBefore, if set, or at the oldest entry.
func (r *Reader) SeekAfter(cursor string, notBefore time.Time) (found bool, err error) {
	if !strings.HasPrefix(cursor, "s=") {
		// Not a journal cursor: another source's (the source was
		// switched). Its line is not in the journal; resume by time.
		return false, r.seekNotBefore(notBefore)
	}
	if err = r.j.SeekCursor(cursor); err != nil {
		return false, err
	}
	n, err := r.j.Next()
	if err != nil {
		return false, err
	}
	if n > 0 && r.j.TestCursor(cursor) == nil {
		return true, nil
	}
	return false, r.seekNotBefore(notBefore)
}

// seekNotBefore positions before the first entry stored after notBefore, or
// at the oldest entry when notBefore is zero.
func (r *Reader) seekNotBefore(notBefore time.Time) error {
	if notBefore.IsZero() {
		return r.j.SeekHead()
	}
	return r.j.SeekRealtimeUsec(uint64(notBefore.UnixMicro()) + 1)
}

// Next moves to the next kernel entry; false means there is none yet.
func (r *Reader) Next() (bool, error) {
	n, err := r.j.Next()
	return n > 0, err
}

// Wait blocks until the journal changes or timeout passes. It returns true
// when there may be new entries (appended, or files added or rotated).
func (r *Reader) Wait(timeout time.Duration) (bool, error) {
	switch st := r.j.Wait(timeout); {
	case st == sdjournal.SD_JOURNAL_APPEND || st == sdjournal.SD_JOURNAL_INVALIDATE:
		return true, nil
	case st < 0:
		return false, fmt.Errorf("waiting for journal changes: %w", syscall.Errno(-st))
	default:
		return false, nil
	}
}

// Message is the MESSAGE field of the current entry.
func (r *Reader) Message() (string, error) {
	return r.field("MESSAGE")
}

// kernelTransportMatch selects the entries the reader walks.
const kernelTransportMatch = "_TRANSPORT=kernel"

// KernelIdentifier is the SYSLOG_IDENTIFIER journald gives the kernel's own
// messages; a userspace write to /dev/kmsg gets its own tag or none.
const KernelIdentifier = "kernel"

// Identifier is the SYSLOG_IDENTIFIER of the current entry ("" when absent).
func (r *Reader) Identifier() string {
	id, _ := r.field("SYSLOG_IDENTIFIER")
	return id
}

// BootID is the _BOOT_ID of the current entry.
func (r *Reader) BootID() (string, error) { return r.field("_BOOT_ID") }

// Hostname is the _HOSTNAME of the current entry ("" when absent).
func (r *Reader) Hostname() string {
	h, _ := r.field("_HOSTNAME")
	return h
}

// Realtime is when journald stored the current entry.
func (r *Reader) Realtime() (time.Time, error) {
	us, err := r.j.GetRealtimeUsec()
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMicro(int64(us)), nil
}

// KernelTime is when the kernel printed the current entry. journald stores
// the kernel's own monotonic stamp in _SOURCE_MONOTONIC_TIMESTAMP; entries
// replayed from the ring buffer at journald's start were stored later than
// they were printed, and this undoes that delay. Falls back to Realtime.
func (r *Reader) KernelTime() (time.Time, error) {
	rt, err := r.Realtime()
	if err != nil {
		return rt, err
	}
	src, err := r.field("_SOURCE_MONOTONIC_TIMESTAMP")
	if err != nil {
		return rt, nil
	}
	srcUs, err := strconv.ParseUint(src, 10, 64)
	if err != nil {
		return rt, nil
	}
	monoUs, err := r.j.GetMonotonicUsec()
	if err != nil || monoUs < srcUs {
		return rt, nil
	}
	return rt.Add(-time.Duration(monoUs-srcUs) * time.Microsecond), nil
}

// KernelMonotonicUsec is the kernel's own stamp of the current entry, in µs
// since boot: _SOURCE_MONOTONIC_TIMESTAMP, or the entry's
// __MONOTONIC_TIMESTAMP (when journald received it) where that is absent.
// Both are stored in the entry, so reading it again gives the same value.
func (r *Reader) KernelMonotonicUsec() (uint64, error) {
	if src, err := r.field("_SOURCE_MONOTONIC_TIMESTAMP"); err == nil {
		if us, err := strconv.ParseUint(src, 10, 64); err == nil {
			return us, nil
		}
	}
	return r.j.GetMonotonicUsec()
}

// Cursor identifies the current entry for a later SeekAfter.
func (r *Reader) Cursor() (string, error) { return r.j.GetCursor() }

// field returns a field of the current entry; a missing field is an error
// wrapping ErrNoField.
func (r *Reader) field(name string) (string, error) {
	v, err := r.j.GetDataValue(name)
	if errors.Is(err, syscall.ENOENT) {
		return "", fmt.Errorf("%s: %w", name, ErrNoField)
	}
	return v, err
}

// ErrNoField reports that the current entry lacks a field.
var ErrNoField = errors.New("field not in entry")

// CheckReadable tells, before any reading, why a journal would read as
// empty: a missing directory, or directories or files the collector may
// not read (an AccessError naming the group to add). It returns how many
// readable journal files it found; zero with no error means the journal
// directories exist, are readable and hold no file yet.
func CheckReadable(src Source) (int, error) {
	if len(src.Files) > 0 {
		for _, f := range src.Files {
			if err := readable(f); err != nil {
				return 0, fmt.Errorf("the journal exists but cannot be read: %w", err)
			}
		}
		return len(src.Files), nil
	}
	dirs := DefaultDirectories
	if src.Directory != "" {
		dirs = []string{src.Directory}
	}
	return checkDirs(dirs)
}

func checkDirs(dirs []string) (int, error) {
	found, existing := 0, 0
	var denied []*AccessError
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			continue
		}
		existing++
		files, deniedDirs, err := scanDir(d)
		if err != nil {
			return 0, err
		}
		denied = append(denied, deniedDirs...)
		for _, f := range files {
			if err := readable(f); err != nil {
				var ae *AccessError
				if !errors.As(err, &ae) {
					return 0, err
				}
				denied = append(denied, ae)
				continue
			}
			found++
		}
	}
	if existing == 0 {
		return 0, fmt.Errorf("no journal directory: %s (mount the host's journal into the container, or set journal.directory)", strings.Join(dirs, ", "))
	}
	// A directory we may not list hides a whole journal, whether files
	// elsewhere are readable or not; unreadable files matter when no other
	// file can be read.
	for _, d := range denied {
		if d.Dir {
			return 0, fmt.Errorf("the journal exists but cannot be read: %w", d)
		}
	}
	if found == 0 && len(denied) > 0 {
		return 0, fmt.Errorf("the journal exists but cannot be read: %w", denied[0])
	}
	return found, nil
}

func readable(path string) error {
	f, err := os.Open(path) //nolint:gosec // G304: opening the configured journal files is the point
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return newAccessError(path, false, err)
		}
		return err
	}
	return f.Close()
}
