//go:build linux

package kmsg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Records are at most 8 KiB (CONSOLE_EXT_LOG_MAX) on the kernels we know; a
// larger one makes read(2) fail with EINVAL, and the buffer grows up to
// maxRecord before that is taken as an error.
const (
	initialRecord = 8 << 10
	maxRecord     = 1 << 20
)

// Options say what to open; zero values are the defaults.
type Options struct {
	// Device is the kernel's log device (DefaultDevice).
	Device string
	// BootIDFile holds the running boot's ID (BootIDFile).
	BootIDFile string
}

// Reader follows the kernel's log records. It is not safe for concurrent
// use, except that Close may be called while Wait blocks.
type Reader struct {
	dev  device
	path string
	boot string
	buf  []byte

	rec    Record
	recErr error // the current record could not be parsed

	// next is the sequence number the next record should carry when
	// haveNext; a larger one means records were overwritten before this
	// reader got to them (lost).
	next     uint64
	haveNext bool
	lost     uint64
	// skipThrough: records up to this sequence number were read before
	// (SeekAfter); skipping is on until a newer one arrives.
	skipThrough uint64
	skipping    bool
	maxSkipped  uint64
	sawSkipped  bool

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
	return &Reader{dev: dev, path: path, boot: boot, buf: make([]byte, initialRecord), wake: wake}, nil
}

// openError explains why the device cannot be read and what fixes it.
func openError(path string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("cannot open %s: %w; in a container, mount the node's /dev/kmsg (hostPath, type CharDevice)", path, err)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		restrict := "kernel.dmesg_restrict is 1 on this node"
		if b, rerr := os.ReadFile("/proc/sys/kernel/dmesg_restrict"); rerr != nil || strings.TrimSpace(string(b)) != "1" {
			restrict = "where kernel.dmesg_restrict=1"
		}
		return fmt.Errorf("cannot open %s: %w; reading the kernel log needs CAP_SYSLOG (%s) or root, and in a container the device must be allowed by its device cgroup as well as mounted", path, err, restrict)
	}
	return fmt.Errorf("cannot open %s: %w", path, err)
}

// BootID is the boot whose records the reader reads, as 32 hex digits
// (journald's _BOOT_ID form).
func (r *Reader) BootID() string { return r.boot }

// SeekHead positions before the oldest record the kernel still holds.
func (r *Reader) SeekHead() error {
	r.haveNext, r.skipping = false, false
	return r.seek(unix.SEEK_SET)
}

// SeekEnd positions after the newest record, so that Next returns only
// records printed from now on. It reads through the records held (the
// ring buffer, a few hundred KiB) to learn the newest sequence number, so
// that records lost later are counted exactly.
func (r *Reader) SeekEnd() error {
	if err := r.SeekHead(); err != nil {
		return err
	}
	for {
		n, err := r.readRaw()
		if err != nil || n == 0 {
			return err
		}
		if rec, perr := Parse(r.buf[:n]); perr == nil {
			r.next, r.haveNext = rec.Seq+1, true
		}
	}
}

// SeekAfter positions right after p. When p is of this boot, records up to
// p.Seq are skipped and a first record beyond p.Seq+1 counts the ones in
// between as lost (Lost). When p is of another boot, reading starts at the
// oldest record held, and the records of this boot already overwritten
// count as lost. sameBoot tells which.
func (r *Reader) SeekAfter(p Position) (sameBoot bool, err error) {
	if err := r.seek(unix.SEEK_SET); err != nil {
		return false, err
	}
	r.sawSkipped, r.maxSkipped = false, 0
	if p.BootID != r.boot {
		r.next, r.haveNext, r.skipping = 0, true, false
		return false, nil
	}
	r.next, r.haveNext = p.Seq+1, true
	r.skipThrough, r.skipping = p.Seq, true
	return true, nil
}

func (r *Reader) seek(whence int) error {
	if err := r.dev.seek(whence); err != nil {
		return fmt.Errorf("seeking in %s: %w", r.path, err)
	}
	return nil
}

// Next moves to the next record; false means there is none yet. A record
// that cannot be parsed is still a record: Next returns true and Message
// the error.
func (r *Reader) Next() (bool, error) {
	for {
		n, err := r.readRaw()
		if err != nil || n == 0 {
			if err == nil && r.skipping && r.sawSkipped && r.maxSkipped < r.skipThrough {
				// Every record held is older than the position: it
				// cannot be this boot's. Read them all again rather
				// than lose them.
				ahead := r.skipThrough
				r.skipping, r.haveNext = false, false
				if err := r.seek(unix.SEEK_SET); err != nil {
					return false, err
				}
				return false, fmt.Errorf("%w: seq %d, newest %d; reading again from the oldest record held", ErrPositionAhead, ahead, r.maxSkipped)
			}
			return false, err
		}
		rec, perr := Parse(r.buf[:n])
		if perr != nil {
			r.recErr = perr // the position stays at the last good record
			return true, nil
		}
		if r.skipping {
			if rec.Seq <= r.skipThrough {
				r.sawSkipped, r.maxSkipped = true, max(r.maxSkipped, rec.Seq)
				continue
			}
			r.skipping = false
		}
		if r.haveNext && rec.Seq > r.next {
			r.lost += rec.Seq - r.next
		}
		r.next, r.haveNext = rec.Seq+1, true
		r.rec, r.recErr = rec, nil
		return true, nil
	}
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

// Lost returns how many records were overwritten in the ring buffer,
// unread, since the last call: the kernel keeps a fixed amount of log
// (often 128 KiB to a few MiB) and a reader that falls behind, or stays
// away, loses the oldest.
func (r *Reader) Lost() uint64 {
	n := r.lost
	r.lost = 0
	return n
}

// Message is the current record's text, unescaped.
func (r *Reader) Message() (string, error) {
	if r.recErr != nil {
		return "", r.recErr
	}
	return r.rec.Message, nil
}

// FromKernel tells whether the kernel printed the current record; lines
// processes write into /dev/kmsg are not the kernel's.
func (r *Reader) FromKernel() bool { return r.recErr == nil && r.rec.FromKernel() }

// Record is the current record.
func (r *Reader) Record() Record { return r.rec }

// KernelMonotonicUsec is the kernel's timestamp of the current record, in
// µs since boot: journald's _SOURCE_MONOTONIC_TIMESTAMP for the same line.
func (r *Reader) KernelMonotonicUsec() uint64 { return r.rec.Usec }

// KernelTime is the current record's timestamp as wall-clock time: the
// boot's wall-clock start (now minus CLOCK_MONOTONIC) plus the record's µs,
// the same correction the journal reader applies to journald's entries.
func (r *Reader) KernelTime() time.Time {
	var mono unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err != nil {
		return time.Now()
	}
	boot := time.Now().Add(-time.Duration(mono.Nano()))
	return boot.Add(time.Duration(r.rec.Usec) * time.Microsecond)
}

// Position is where the reader is: this boot and the current record.
func (r *Reader) Position() Position { return Position{BootID: r.boot, Seq: r.rec.Seq} }

// Wait blocks until a record can be read or ctx is done, with poll(2) on the
// device and on an eventfd that a cancelled ctx (or Close) writes: no
// periodic wake-ups. It returns ctx's error when ctx ended.
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
	if err := ctx.Err(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, r.interrupt)
	defer stop()
	fds := []unix.PollFd{{Fd: int32(r.dev.fd()), Events: unix.POLLIN}, {Fd: int32(r.wake), Events: unix.POLLIN}} //nolint:gosec // G115: fds fit in int32
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
	return ctx.Err()
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
