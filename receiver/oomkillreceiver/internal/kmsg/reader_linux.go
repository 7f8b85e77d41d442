//go:build linux

package kmsg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kernlog"
)

// Records are at most 8 KiB (CONSOLE_EXT_LOG_MAX) on the kernels we know; a
// larger one makes read(2) fail with EINVAL, and the buffer grows up to
// maxRecord before that is taken as an error.
const (
	initialRecord = 8 << 10
	maxRecord     = 1 << 20
)

// Why records went missing, for the log.
const (
	wasAway    = "overwritten in the kernel's ring buffer before they were read (the collector was not reading); kills among them cannot be read, the kernel's own OOM counters (oom_kill in /proc/vmstat and memory.events) still count them"
	fellBehind = "overwritten in the kernel's ring buffer before they were read (the reader fell behind); kills among them cannot be read, the kernel's own OOM counters (oom_kill in /proc/vmstat and memory.events) still count them"
)

// Options say what to open; zero values are the defaults.
type Options struct {
	// Device is the kernel's log device (DefaultDevice).
	Device string
	// BootIDFile holds the running boot's ID (BootIDFile).
	BootIDFile string
}

var _ kernlog.Source = (*Reader)(nil)

// Reader follows the kernel's log records: a source of kernel lines. It is
// not safe for concurrent use, except that Close may be called while Wait
// blocks.
type Reader struct {
	dev  device
	path string
	boot string
	buf  []byte

	rec    Record
	have   bool  // rec is a record read (Position has something to say)
	recErr error // the current record could not be parsed

	// next is the sequence number the next record should carry when
	// haveNext; a larger one means records were overwritten before this
	// reader got to them.
	next     uint64
	haveNext bool
	// gapWhy says why records would be missing: while away (after
	// SeekAfter) or by falling behind (while reading).
	gapWhy string
	// pending is a record read but held back while Next reports the gap
	// before it.
	pending *Record

	// skipThrough: records up to this sequence number were read before
	// (SeekAfter); skipping is on until a newer one arrives.
	skipThrough uint64
	skipping    bool
	maxSkipped  uint64
	sawSkipped  bool
	// notAfter: after a position that is not this source's (a journal
	// cursor), records the kernel printed up to this time are skipped.
	notAfter time.Time
	// afterUsec: after another source's position of this boot, records
	// the kernel printed up to notAfterUsec are skipped.
	notAfterUsec uint64
	afterUsec    bool

	// bootWall is the boot's start by the wall clock (bootWallClock).
	bootWall time.Time

	// wake interrupts Wait: written by a cancelled context or by Close.
	wake    int
	closing atomic.Bool // set by Close before it wakes a Wait
	mu      sync.Mutex  // held by Wait, taken by Close before closing the fds
	closed  bool
}

// device is /dev/kmsg as the reader uses it; tests put a fake in its place.
type device interface {
	read(p []byte) (int, error)
	seek(whence int) error
	fd() int
	close() error
}

// Open opens the device read-only and non-blocking, positioned at its
// oldest record. Errors say what to change: a container needs the node's
// /dev/kmsg mounted and, where kernel.dmesg_restrict=1, CAP_SYSLOG.
func Open(opts Options) (*Reader, error) {
	if opts.Device == "" {
		opts.Device = DefaultDevice
	}
	if opts.BootIDFile == "" {
		opts.BootIDFile = BootIDFile
	}
	boot, err := ReadBootID(opts.BootIDFile)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(opts.Device, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, openError(opts.Device, err)
	}
	return newReader(&kmsgDevice{f: fd}, opts.Device, boot)
}

func newReader(dev device, path, boot string) (*Reader, error) {
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = dev.close()
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	return &Reader{dev: dev, path: path, boot: boot, buf: make([]byte, initialRecord), wake: wake, bootWall: bootWallClock()}, nil
}

// openError explains why the device cannot be read and what fixes it.
func openError(path string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("cannot open %s: %w; in a container, mount the node's /dev/kmsg (hostPath, type CharDevice)", path, err)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		restrict := "where kernel.dmesg_restrict=1"
		if b, rerr := os.ReadFile("/proc/sys/kernel/dmesg_restrict"); rerr == nil && strings.TrimSpace(string(b)) == "1" {
			restrict = "kernel.dmesg_restrict is 1 on this node"
		}
		return fmt.Errorf("cannot open %s: %w; reading the kernel log needs CAP_SYSLOG (%s) or root, and in a container the device must also be allowed by the container's device cgroup, which a hostPath mount alone does not do", path, err, restrict)
	}
	return fmt.Errorf("cannot open %s: %w", path, err)
}

// BootID is the boot whose records the reader reads, as 32 hex digits
// (journald's _BOOT_ID form).
func (r *Reader) BootID() string { return r.boot }

// SeekHead positions before the oldest record the kernel still holds.
func (r *Reader) SeekHead() error {
	r.reset()
	return r.seek(unix.SEEK_SET)
}

// SeekEnd positions after the newest record, so that Next returns only
// records printed from now on, and returns that record's position. It
// reads through the records held (the ring buffer, a few hundred KiB) to
// learn the newest sequence number, so that records lost later are counted
// exactly.
func (r *Reader) SeekEnd() (kernlog.Position, error) {
	if err := r.SeekHead(); err != nil {
		return kernlog.Position{}, err
	}
	for {
		n, err := r.readRaw()
		if err != nil {
			return kernlog.Position{}, err
		}
		if n == 0 {
			if !r.have {
				return kernlog.Position{}, nil
			}
			return r.Position()
		}
		if rec, perr := Parse(r.buf[:n]); perr == nil {
			r.rec, r.have = rec, true
			r.next, r.haveNext, r.gapWhy = rec.Seq+1, true, fellBehind
		}
	}
}

// SeekAfter positions right after the line at p.
//   - p of this boot: found; records up to it are skipped, and if the
//     kernel overwrote records after it meanwhile, Next reports them as a
//     Gap with their number.
//   - p of an earlier boot: not found (gone with that boot); reading starts
//     at the oldest record of this boot.
//   - p not this source's (a journal cursor, the source was switched): of
//     this boot, found; records the kernel printed up to p.KernelUsec are
//     skipped. Of an earlier boot, as above. Without the kernel's stamp
//     (an older checkpoint): not found; reading starts at the first
//     record the kernel printed after p.Time, to within the journal's
//     delay in storing lines.
func (r *Reader) SeekAfter(p kernlog.Position) (found bool, err error) {
	if err := r.SeekHead(); err != nil {
		return false, err
	}
	pos, ours := ParseCursor(p.Cursor)
	switch {
	case !ours && p.BootID == r.boot:
		r.notAfterUsec, r.afterUsec = p.KernelUsec, true
		return true, nil
	case !ours && p.BootID == "":
		r.notAfter = p.Time
		return false, nil
	case !ours, pos.BootID != r.boot:
		return false, nil
	}
	r.next, r.haveNext, r.gapWhy = pos.Seq+1, true, wasAway
	r.skipThrough, r.skipping = pos.Seq, true
	return true, nil
}

func (r *Reader) reset() {
	r.have, r.recErr, r.pending = false, nil, nil
	r.haveNext, r.skipping, r.sawSkipped, r.maxSkipped = false, false, false, 0
	r.notAfter, r.afterUsec = time.Time{}, false
}

func (r *Reader) seek(whence int) error {
	if err := r.dev.seek(whence); err != nil {
		return fmt.Errorf("seeking in %s: %w", r.path, err)
	}
	return nil
}

// Next moves to the next record; false with no error means there is none
// yet. A *kernlog.Gap error says records were overwritten, unread, before the next
// one: the next call returns that one. A record that cannot be parsed is
// still a record: Next returns true and Text the error.
func (r *Reader) Next() (bool, error) {
	if r.pending != nil {
		r.rec, r.have, r.recErr, r.pending = *r.pending, true, nil, nil
		return true, nil
	}
	for {
		n, err := r.readRaw()
		if err != nil {
			return false, err
		}
		if n == 0 {
			return false, r.checkAhead()
		}
		rec, perr := Parse(r.buf[:n])
		if perr != nil {
			r.recErr = perr // the position stays at the last good record
			return true, nil
		}
		if r.skip(&rec) {
			continue
		}
		if r.haveNext && rec.Seq > r.next {
			lost := rec.Seq - r.next
			r.next, r.pending = rec.Seq+1, &rec
			return false, &kernlog.Gap{Lost: int64(lost), Why: r.gapWhy}
		}
		r.next, r.haveNext, r.gapWhy = rec.Seq+1, true, fellBehind
		r.rec, r.have, r.recErr = rec, true, nil
		return true, nil
	}
}

// skip tells whether rec was read before (SeekAfter).
func (r *Reader) skip(rec *Record) bool {
	if r.afterUsec {
		if rec.Usec <= r.notAfterUsec {
			return true
		}
		r.afterUsec = false
	}
	if !r.notAfter.IsZero() {
		if !r.wallTime(rec.Usec).After(r.notAfter) {
			return true
		}
		r.notAfter = time.Time{}
	}
	if !r.skipping {
		return false
	}
	if rec.Seq <= r.skipThrough {
		r.sawSkipped, r.maxSkipped = true, max(r.maxSkipped, rec.Seq)
		return true
	}
	r.skipping = false
	return false
}

// checkAhead, at the end of the records held while still skipping: when
// every one was older than the position sought, the position cannot be
// this boot's. Read them all again rather than lose them.
func (r *Reader) checkAhead() error {
	if !r.skipping || !r.sawSkipped || r.maxSkipped >= r.skipThrough {
		return nil
	}
	ahead, newest := r.skipThrough, r.maxSkipped
	if err := r.SeekHead(); err != nil {
		return err
	}
	return fmt.Errorf("%w: seq %d, newest %d; reading again from the oldest record held", ErrPositionAhead, ahead, newest)
}

// readRaw reads one record into r.buf; 0 with no error means none is
// there yet. EPIPE means the ring buffer overwrote the records this reader
// was about to read; the kernel then moves it to the oldest record still
// held, whose sequence number tells how many were lost.
func (r *Reader) readRaw() (int, error) {
	for {
		n, err := r.dev.read(r.buf)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, unix.EAGAIN):
			return 0, nil
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EPIPE):
			continue
		case errors.Is(err, unix.EINVAL) && len(r.buf) < maxRecord:
			r.buf = make([]byte, 2*len(r.buf))
			continue
		default:
			return 0, fmt.Errorf("reading %s: %w", r.path, err)
		}
	}
}

// Text is the current record's message, unescaped.
func (r *Reader) Text() (string, error) {
	if r.recErr != nil {
		return "", r.recErr
	}
	return r.rec.Message, nil
}

// Origin says who printed the current record: the kernel (facility 0) or a
// process that wrote it into /dev/kmsg (any other facility; the kernel
// never lets a process write facility 0). Stored is the kernel's time:
// the device stores nothing else.
func (r *Reader) Origin() kernlog.Origin {
	o := kernlog.Origin{Kernel: r.recErr == nil && r.rec.FromKernel(), BootID: r.boot, Stored: r.wallTime(r.rec.Usec)}
	if !o.Kernel {
		o.Writer = "a process, syslog facility " + strconv.FormatUint(uint64(r.rec.Facility), 10)
	}
	return o
}

// Stamp is when the kernel printed the current record. The device names
// no host: Host stays empty (k8s.node.name comes from the configuration;
// the node's hostname is not the collector's inside a pod).
func (r *Reader) Stamp() kernlog.Stamp {
	return kernlog.Stamp{Time: r.wallTime(r.rec.Usec), MonotonicUsec: r.rec.Usec}
}

// wallTime turns the kernel's µs since boot into wall-clock time: the
// boot's wall-clock start plus the µs, the same correction the journal
// reader applies to journald's entries.
func (r *Reader) wallTime(usec uint64) time.Time {
	return r.bootWall.Add(time.Duration(usec) * time.Microsecond)
}

// bootWallClock is when the machine booted by the wall clock: now minus
// CLOCK_MONOTONIC. Taken at open and before every wait, so a stepped
// clock is followed.
func bootWallClock() time.Time {
	var mono unix.Timespec
	now := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err != nil {
		return now
	}
	return now.Add(-time.Duration(mono.Nano())).Round(time.Microsecond)
}

// Position is where the current record is: this boot and its sequence
// number, and the kernel's time of it.
func (r *Reader) Position() (kernlog.Position, error) {
	if !r.have {
		return kernlog.Position{}, errors.New("no record read yet")
	}
	return kernlog.Position{
		Cursor: Position{BootID: r.boot, Seq: r.rec.Seq}.Cursor(), Time: r.wallTime(r.rec.Usec),
		BootID: r.boot, KernelUsec: r.rec.Usec,
	}, nil
}

// Record is the current record.
func (r *Reader) Record() Record { return r.rec }

// Wait blocks until a record can be read or ctx is done, with poll(2) on the
// device and on an eventfd that a cancelled ctx (or Close) writes: no
// periodic wake-ups. When ctx ended it returns nil, as kernlog.Source
// says: a deadline is the caller's timer, not a failure to wait.
func (r *Reader) Wait(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.closing.Load() {
		return fs.ErrClosed
	}
	drain(r.wake)         // a wake-up left over from an earlier, finished Wait
	if r.closing.Load() { // Close's wake-up may have been the one drained
		return fs.ErrClosed
	}
	if ctx.Err() != nil {
		return nil
	}
	r.bootWall = bootWallClock()
	stop := context.AfterFunc(ctx, r.interrupt)
	defer stop()
	fds := []unix.PollFd{{Fd: int32(r.dev.fd()), Events: unix.POLLIN}, {Fd: int32(r.wake), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", r.path, err)
		}
		break
	}
	// POLLERR on the device means the reader was overrun: the next read
	// says so (EPIPE), so it counts as readable.
	if r.closing.Load() {
		return fs.ErrClosed
	}
	return nil
}

// interrupt wakes a Wait in progress.
func (r *Reader) interrupt() {
	var one [8]byte
	one[0] = 1 // eventfd counters are host-endian; any non-zero value wakes
	_, _ = unix.Write(r.wake, one[:])
}

func drain(fd int) {
	var b [8]byte
	_, _ = unix.Read(fd, b[:])
}

// Close releases the device. A Wait in progress returns first.
func (r *Reader) Close() error {
	r.closing.Store(true)
	r.interrupt()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	return errors.Join(r.dev.close(), unix.Close(r.wake))
}

// kmsgDevice is the real /dev/kmsg.
type kmsgDevice struct{ f int }

func (d *kmsgDevice) read(p []byte) (int, error) { return unix.Read(d.f, p) }

func (d *kmsgDevice) seek(whence int) error {
	_, err := unix.Seek(d.f, 0, whence)
	return err
}

func (d *kmsgDevice) fd() int      { return d.f }
func (d *kmsgDevice) close() error { return unix.Close(d.f) }
