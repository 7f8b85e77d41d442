//go:build linux && cgo

// Package journal reads kernel messages from systemd journal files in
// process, through libsystemd (github.com/coreos/go-systemd/v22/sdjournal):
// a kernlog.Source. It is the only cgo in the project.
package journal

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/sdjournal"
	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kernlog"
)

// Reader walks kernel-transport messages (_TRANSPORT=kernel) of a journal
// and is a kernlog.Source. Lines userspace wrote to /dev/kmsg come by that
// transport too; Origin tells them apart. Fields of the current entry are
// fetched only when asked for, since most entries need only MESSAGE.
type Reader struct {
	j    *sdjournal.Journal
	loc  Location
	opts Options
	// watch wakes Wait when the journal's directories change; nil: Wait
	// falls back to libsystemd's timed wait.
	watch *watcher
	// sinceOpen counts entries read through the current handle.
	sinceOpen int
	// gap is an entry that vanished while reopening; Next reports it.
	gap *kernlog.Gap
}

var _ kernlog.Source = (*Reader)(nil)

// Open opens the journal at loc, restricted to kernel messages.
func Open(loc Location, opts Options) (kernlog.Source, error) {
	opts.setDefaults()
	j, err := openHandle(loc)
	if err != nil {
		return nil, err
	}
	r := &Reader{j: j, loc: loc, opts: opts}
	if r.watch, err = newWatcher(loc); err != nil {
		opts.Logger.Warn("Cannot watch the journal directories for changes; checking for new entries every second instead", zap.Error(err))
	}
	return r, nil
}

// openHandle opens a libsystemd handle on loc, restricted to kernel
// messages, with libsystemd's own change tracking started.
func openHandle(loc Location) (*sdjournal.Journal, error) {
	var (
		j   *sdjournal.Journal
		err error
	)
	switch {
	case len(loc.Files) > 0:
		j, err = sdjournal.NewJournalFromFiles(loc.Files...)
	case loc.Directory != "":
		j, err = sdjournal.NewJournalFromDir(loc.Directory)
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
	// libsystemd learns of new and rotated files through inotify watches
	// it sets up at its first wait; set them up now, so that files created
	// while a catch-up reads are found. A failure shows again in Wait.
	_ = j.Wait(0)
	return j, nil
}

// release reopens the journal right after the current entry. libsystemd
// keeps the windows of every journal file it has read mapped until the
// handle is closed: after catching up on a large journal that is hundreds
// of MiB of resident journal pages (BENCHMARKS.md), which a fresh handle
// gives back. Next calls it every ReopenAfter entries, Wait before
// sleeping once ReopenIdleAfter entries were read. An entry that vanished
// meanwhile is reported by the next Next as a gap.
func (r *Reader) release() {
	read := r.sinceOpen
	r.sinceOpen = 0
	at, err := r.Position()
	if err != nil {
		r.opts.Logger.Debug("Not reopening the journal: no current entry", zap.Error(err))
		return
	}
	found, err := r.reopen(at)
	switch {
	case err != nil:
		r.opts.Logger.Warn("Reopening the journal to release memory failed; reading on with the open handle", zap.Error(err))
	case !found:
		r.gap = &kernlog.Gap{Lost: -1, Why: "the last entry read, of " + at.Time.UTC().Format(time.RFC3339Nano) +
			", vanished while the journal was reopened (vacuumed meanwhile); resumed at the oldest entry after its time"}
	default:
		r.opts.Logger.Debug("Reopened the journal, releasing mapped journal files", zap.Int("entries_read", read))
	}
}

// reopen replaces the handle with a fresh one positioned as SeekAfter(at)
// would. On error the old handle stays in place, where it was; after
// success the old one is closed, and a failure to close a handle no longer
// used changes nothing for reading.
func (r *Reader) reopen(at kernlog.Position) (found bool, err error) {
	fresh, err := openHandle(r.loc)
	if err != nil {
		return false, err
	}
	old := r.j
	r.j = fresh
	if found, err = r.SeekAfter(at); err != nil {
		r.j = old
		fresh.Close()
		return false, err
	}
	_ = old.Close()
	return found, nil
}

// Close releases the journal.
func (r *Reader) Close() error {
	if r.watch != nil {
		_ = r.watch.close()
	}
	return r.j.Close()
}

// SeekHead positions before the oldest entry.
func (r *Reader) SeekHead() error { return r.j.SeekHead() }

// SeekEnd positions after the newest entry, so that Next returns only
// entries appended from now on. It returns the position of that newest
// entry (zero when the journal holds none).
func (r *Reader) SeekEnd() (kernlog.Position, error) {
	if err := r.j.SeekTail(); err != nil {
		return kernlog.Position{}, err
	}
	// Resolve the tail now, on the newest entry: a tail seek left pending
	// would be resolved at the next Next, skipping what arrived meanwhile.
	n, err := r.j.Previous()
	if err != nil {
		return kernlog.Position{}, err
	}
	if n == 0 {
		// No entry yet: everything that arrives is new, so read from the
		// head rather than leave the tail seek pending.
		return kernlog.Position{}, r.j.SeekHead()
	}
	return r.Position()
}

// SeekAfter positions right after the entry at p. found is false when that
// entry no longer exists (the journal was vacuumed or rotated away), or p is
// not a journal's (another source's, saved before the source was switched);
// the reader is then positioned before the first entry newer than p.Time, if
// set, or at the oldest entry.
func (r *Reader) SeekAfter(p kernlog.Position) (found bool, err error) {
	if !strings.HasPrefix(p.Cursor, "s=") {
		// Not a journal cursor: another source's.
		return r.seekAfterKernel(p)
	}
	if err = r.j.SeekCursor(p.Cursor); err != nil {
		return false, err
	}
	n, err := r.j.Next()
	if err != nil {
		return false, err
	}
	if n > 0 && r.j.TestCursor(p.Cursor) == nil {
		return true, nil
	}
	return false, r.seekNotBefore(p.Time)
}

// handoverMargin: after another source's position, the journal is read
// from this long before its time, since journald stores a line a little
// after the kernel printed it; the kernel's timestamps then decide.
const handoverMargin = time.Minute

// seekAfterKernel positions after the line another source read, by the
// kernel's own account of it (p.BootID, p.KernelUsec); without that, by
// p.Time. found: lines of p's boot up to it are in the journal.
func (r *Reader) seekAfterKernel(p kernlog.Position) (found bool, err error) {
	if p.BootID == "" || p.Time.IsZero() {
		return false, r.seekNotBefore(p.Time)
	}
	if err := r.seekNotBefore(p.Time.Add(-handoverMargin)); err != nil {
		return false, err
	}
	for {
		n, err := r.j.Next()
		if err != nil || n == 0 {
			return found, err
		}
		boot, _ := r.field("_BOOT_ID")
		stored, _ := r.realtime()
		if boot == p.BootID && r.Stamp().MonotonicUsec <= p.KernelUsec {
			found = true
			continue
		}
		if boot == p.BootID || stored.After(p.Time) {
			// The first line after p: the next Next reads it again.
			c, err := r.j.GetCursor()
			if err != nil {
				return found, err
			}
			return found, r.j.SeekCursor(c)
		}
	}
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
	if r.gap == nil && r.sinceOpen >= r.opts.ReopenAfter {
		r.release()
	}
	if g := r.gap; g != nil {
		r.gap = nil
		return false, g
	}
	n, err := r.j.Next()
	if n > 0 {
		r.sinceOpen++
	}
	return n > 0, err
}

// Wait blocks until the journal changes or ctx is done. Before sleeping it
// releases what a catch-up mapped (see release).
func (r *Reader) Wait(ctx context.Context) error {
	if r.sinceOpen >= r.opts.ReopenIdleAfter {
		r.release()
	}
	if r.gap != nil {
		return nil // Next reports it
	}
	if r.watch == nil {
		return r.waitTimed(ctx)
	}
	if err := r.watch.wait(ctx); err != nil {
		return err
	}
	// Let libsystemd take in what changed (new and rotated files) from
	// its own inotify watches, without waiting.
	if st := r.j.Wait(0); st < 0 {
		return fmt.Errorf("processing journal changes: %w", syscall.Errno(-st))
	}
	return nil
}

// waitTimed is Wait where the directories cannot be watched: libsystemd's
// own wait, for at most a second so that ctx is noticed.
func (r *Reader) waitTimed(ctx context.Context) error {
	d := time.Second
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl))
	}
	if d <= 0 || ctx.Err() != nil {
		return nil
	}
	if st := r.j.Wait(d); st < 0 {
		return fmt.Errorf("waiting for journal changes: %w", syscall.Errno(-st))
	}
	return nil
}

// kernelTransportMatch selects the entries the reader walks.
const kernelTransportMatch = "_TRANSPORT=kernel"

// kernelIdentifier is the SYSLOG_IDENTIFIER journald gives the kernel's own
// messages; a userspace write to /dev/kmsg gets its own tag or none.
const kernelIdentifier = "kernel"

// Text is the MESSAGE field of the current entry.
func (r *Reader) Text() (string, error) {
	return r.field("MESSAGE")
}

// Origin reads the current entry's SYSLOG_IDENTIFIER, _BOOT_ID and time.
func (r *Reader) Origin() kernlog.Origin {
	id, _ := r.field("SYSLOG_IDENTIFIER")
	boot, _ := r.field("_BOOT_ID")
	stored, _ := r.realtime()
	return kernlog.Origin{Kernel: id == kernelIdentifier, Writer: id, BootID: boot, Stored: stored}
}

// Stamp reads when the kernel printed the current entry, and its host.
//
// journald stores the kernel's own monotonic stamp in
// _SOURCE_MONOTONIC_TIMESTAMP. Entries replayed from the ring buffer at
// journald's start were stored later than they were printed, and the
// difference to the entry's __MONOTONIC_TIMESTAMP (when journald received
// it) undoes that delay; without the field the time is when journald
// stored the entry. MonotonicUsec is _SOURCE_MONOTONIC_TIMESTAMP, or
// __MONOTONIC_TIMESTAMP where that is absent: both are stored in the entry,
// so reading it again gives the same value.
func (r *Reader) Stamp() kernlog.Stamp {
	var s kernlog.Stamp
	s.Host, _ = r.field("_HOSTNAME")
	received, recvErr := r.j.GetMonotonicUsec()
	printed, printedErr := r.sourceMonotonic()
	switch {
	case printedErr == nil:
		s.MonotonicUsec = printed
	case recvErr == nil:
		s.MonotonicUsec = received
	}
	if rt, err := r.realtime(); err == nil {
		s.Time = rt
		if printedErr == nil && recvErr == nil && received >= printed {
			s.Time = rt.Add(-time.Duration(received-printed) * time.Microsecond)
		}
	}
	return s
}

func (r *Reader) sourceMonotonic() (uint64, error) {
	v, err := r.field("_SOURCE_MONOTONIC_TIMESTAMP")
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(v, 10, 64)
}

// realtime is when journald stored the current entry.
func (r *Reader) realtime() (time.Time, error) {
	us, err := r.j.GetRealtimeUsec()
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMicro(int64(us)), nil
}

// Position is the current entry's cursor and time.
func (r *Reader) Position() (kernlog.Position, error) {
	c, err := r.j.GetCursor()
	if err != nil {
		return kernlog.Position{}, err
	}
	t, _ := r.realtime()
	boot, _ := r.field("_BOOT_ID")
	return kernlog.Position{Cursor: c, Time: t, BootID: boot, KernelUsec: r.Stamp().MonotonicUsec}, nil
}

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
func CheckReadable(loc Location) (int, error) {
	if len(loc.Files) > 0 {
		for _, f := range loc.Files {
			if err := readable(f); err != nil {
				return 0, fmt.Errorf("the journal exists but cannot be read: %w", err)
			}
		}
		return len(loc.Files), nil
	}
	dirs := DefaultDirectories
	if loc.Directory != "" {
		dirs = []string{loc.Directory}
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
