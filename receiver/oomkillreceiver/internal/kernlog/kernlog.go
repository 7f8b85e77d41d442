// Package kernlog is the seam between where the kernel's log lines come
// from and what the receiver does with them. A Source walks the kernel's
// lines in order: the systemd journal (internal/journal) or another log the
// kernel writes, such as /dev/kmsg. The receiver's follower reads through
// a Source and knows none of them.
//
// A Source is lazy because most lines cost nothing to skip: the follower
// asks for the Text of every line, for the Origin only of the few lines the
// parser wants, and for the Stamp only of the line that ends a kill. On the
// journal each of these is a cgo call per field; a catch-up of a million
// lines reads little more than their text.
package kernlog

import (
	"context"
	"fmt"
	"time"
)

// Source is a kernel log read in order. Its methods are called from one
// goroutine; those about "the current line" read the line the last Next
// moved to.
type Source interface {
	// Next moves to the next line. false with a nil error: no line is
	// readable yet (Wait, then call Next again). A *Gap error: lines were
	// lost before the next one (the source has moved past them; record
	// the gap and call Next again). Any other error: reading failed.
	Next() (bool, error)
	// Text is the current line's message. It is read for every line, so
	// it must be cheap.
	Text() (string, error)
	// Origin says who printed the current line and in which boot. It is
	// read only for lines that may belong to an OOM report.
	Origin() Origin
	// Stamp says when and where the kernel printed the current line. It
	// is read only for the line that ends a kill.
	Stamp() Stamp
	// Position is where the current line is, for the checkpoint.
	Position() (Position, error)

	// SeekAfter positions right after the line at p. found is false when
	// that line is gone (rotated or vacuumed away, overwritten): the
	// source then resumes at the oldest line stored after p.Time, or at
	// the oldest line when p.Time is zero. Given another source's p, it
	// resumes after the line p.BootID and p.KernelUsec name (found: lines
	// of that boot up to it are there), or by p.Time without them.
	SeekAfter(p Position) (found bool, err error)
	// SeekHead positions before the oldest line.
	SeekHead() error
	// SeekEnd positions after the newest line, so that Next returns only
	// lines printed from now on, and returns that newest line's position
	// (zero when there is none).
	SeekEnd() (Position, error)

	// Wait blocks until more lines may be readable or ctx is done, and
	// then returns nil; it may also return early, for nothing (the caller
	// finds no line and waits again). It must not wake up periodically
	// on its own: an idle node's collector should cost nothing. An error
	// says waiting itself failed.
	Wait(ctx context.Context) error
	// Close releases the source; no other method is called after it.
	Close() error
}

// Origin is who printed a line, and in which boot.
type Origin struct {
	// Kernel is true when the kernel printed the line. A process allowed
	// to write /dev/kmsg can put any text into the kernel's log (the
	// journal stores it under the kernel transport), so only the kernel's
	// own lines may count: in the journal those with SYSLOG_IDENTIFIER
	// "kernel", in /dev/kmsg those of facility 0 (user space cannot write
	// facility 0).
	Kernel bool
	// Writer names who wrote a line that is not the kernel's, for the log
	// (the journal: its SYSLOG_IDENTIFIER).
	Writer string
	// BootID is the boot the line was printed in ("" when the source
	// could not read it).
	BootID string
	// Stored is when the line was stored in the log (the journal's
	// __REALTIME_TIMESTAMP); the parser ages unfinished reports by it.
	Stored time.Time
}

// Stamp is when and where the kernel printed a line.
type Stamp struct {
	// Time is the wall-clock time the kernel printed the line; zero when
	// the source cannot tell (the kill then keeps Origin.Stored).
	Time time.Time
	// MonotonicUsec is the kernel's own timestamp of the line, in µs
	// since boot (the journal's _SOURCE_MONOTONIC_TIMESTAMP, /dev/kmsg's
	// USEC field). With the boot ID and pid it makes oom.kill.id, so it
	// must read the same whichever source read the line, on every read.
	MonotonicUsec uint64
	// Host is the name of the host that logged the line ("" if unknown).
	Host string
}

// Position is where a line is in its source, as the checkpoint keeps it.
type Position struct {
	// Cursor names the line, in the source's own form (the journal's
	// cursor; for /dev/kmsg, e.g., boot ID and sequence number). Empty: no
	// line. A source given a cursor that is not its own reports the line
	// as not found.
	Cursor string
	// Time is when the line was stored: where to resume when the line
	// itself is gone.
	Time time.Time
	// BootID and KernelUsec are the line by the kernel's own account (its
	// Origin.BootID and Stamp.MonotonicUsec), the same in every source: a
	// source given another's position (the source was switched) resumes
	// right after them. Empty and 0 when unknown.
	BootID     string
	KernelUsec uint64
}

// IsZero reports whether p names no line.
func (p Position) IsZero() bool { return p.Cursor == "" }

// Gap is the error Next returns when lines were lost between two reads
// (the journal vacuumed the next entry away while it was being reopened,
// the ring buffer overwrote records not yet read). The source has moved
// past them; reading goes on.
type Gap struct {
	// Lost is the number of lines lost, or -1 when the source cannot tell.
	Lost int64
	// Why says what happened, for the log.
	Why string
}

func (g *Gap) Error() string {
	if g.Lost < 0 {
		return "kernel log lines lost: " + g.Why
	}
	return fmt.Sprintf("%d kernel log lines lost: %s", g.Lost, g.Why)
}
