package oomkillreceiver

import (
	"context"
	"errors"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/internal/status"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kernlog"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadata"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/oomparse"
)

const (
	// batchEntries bounds how many lines are read between deliveries.
	batchEntries = 4096
	// unrecognizedLogged is how many not-understood lines are logged in
	// full; after that every 1000th is.
	unrecognizedLogged = 20
)

// The status causes of the kernel log: reading it, waiting for it to grow.
const (
	causeRead = "read"
	causeWait = "wait"
)

// follower reads the kernel log and turns its lines into kills: it feeds
// the parser the lines the kernel printed (a line a process wrote to
// /dev/kmsg must not count), reads a line's costly fields only when the
// parser wants the line, and stamps each kill with its ID. It knows the log
// only as a kernlog.Source.
type follower struct {
	src    kernlog.Source
	asm    *oomparse.Assembler
	tb     *metadata.TelemetryBuilder
	logger *zap.Logger
	status *status.Reporter
	// lastBoot is the boot ID of the previous line the parser took.
	lastBoot string
}

func newFollower(src kernlog.Source, tb *metadata.TelemetryBuilder, logger *zap.Logger, st *status.Reporter) *follower {
	asm := oomparse.NewAssembler(oomparse.Options{PageSize: int64(os.Getpagesize())})
	return &follower{src: src, asm: asm, tb: tb, logger: logger, status: st}
}

// batch is what one read found.
type batch struct {
	kills []killRecord
	// lines is how many lines were read; end is where the last one is
	// (zero when none was, or its position could not be read).
	lines int
	end   kernlog.Position
	// caughtUp is when the read that found the log's end began: every line
	// written before it has been read (zero: the end was not reached).
	caughtUp time.Time
	// counted are lines that are not new kills but that the kernel counted
	// a kill for (a group kill beginning, a victim printed again): the
	// witness matches them to its counters.
	counted []countedLine
}

// countedLine is a line besides a kill that the kernel's counters count.
type countedLine struct {
	kind oomparse.LineKind // LineGroup or LineDuplicate
	kill oomparse.Kill     // its time, boot and cgroup
}

// seek puts the follower right after the committed position, or, without
// one, at start_at.
func (f *follower) seek(committed kernlog.Position, startAt string, series int) error {
	if committed.IsZero() {
		f.logger.Info("Starting without checkpoint", zap.String("start_at", startAt))
		if startAt == StartAtBeginning {
			return f.src.SeekHead()
		}
		last, err := f.src.SeekEnd()
		f.logger.Info("Positioned at the end of the kernel log", zap.String("after_cursor", last.Cursor))
		return err
	}
	found, err := f.src.SeekAfter(committed)
	if err != nil {
		return err
	}
	if found {
		f.logger.Info("Resuming after checkpoint", zap.Time("checkpoint_time", committed.Time), zap.Int("series", series))
		return nil
	}
	f.tb.OomkillReceiverCheckpointGaps.Add(context.Background(), 1)
	f.logger.Warn("Checkpoint position is no longer in the kernel log (journal vacuumed or rotated away, or /dev/kmsg of an earlier boot): resuming at the oldest line held after it; kills logged in between and already removed cannot be counted",
		zap.Time("checkpoint_time", committed.Time), zap.String("cursor", committed.Cursor))
	return nil
}

// read reads up to batchEntries lines and returns the kills they hold. A
// failing read is counted and reported (once per failing spell).
func (f *follower) read(ctx context.Context) (batch, error) {
	var b batch
	var err error
	var settleUntil time.Time // bounds the wait for a group kill's members
	start := time.Now()
	for b.lines < batchEntries && ctx.Err() == nil {
		var ok bool
		ok, err = f.src.Next()
		if err != nil && f.gap(ctx, err) {
			err = nil
			continue
		}
		if err != nil {
			break
		}
		if !ok {
			if !f.groupMayContinue(b.kills) {
				b.caughtUp = start
				f.expireReport(ctx, start)
				break
			}
			if settleUntil.IsZero() {
				settleUntil = time.Now().Add(groupSettle)
			}
			if !f.settle(ctx, settleUntil) {
				break
			}
			continue
		}
		b.lines++
		switch k, kind, ferr := f.feed(); {
		case ferr != nil:
			f.tb.OomkillReceiverReadErrors.Add(ctx, 1)
			f.logger.Warn("Skipping unreadable kernel log line", zap.Error(ferr))
		case kind == oomparse.LineKill:
			b.kills = append(b.kills, k)
		case kind == oomparse.LineReport, kind == oomparse.LineGroup, kind == oomparse.LineDuplicate:
			if g, open := f.asm.OpenGroup(); open && kind != oomparse.LineDuplicate {
				markGroupLeader(b.kills, g, f.lastBoot)
			}
			if kind != oomparse.LineReport {
				b.counted = append(b.counted, countedLine{kind: kind, kill: k.Kill})
			}
		}
	}
	countGroups(b.kills)
	if b.lines > 0 {
		f.tb.OomkillReceiverEntriesRead.Add(ctx, int64(b.lines))
		b.end, _ = f.src.Position()
	}
	if err != nil {
		f.tb.OomkillReceiverReadErrors.Add(ctx, 1)
	}
	f.status.Record(causeRead, err, "Reading the kernel log failed; retrying")
	return b, err
}

// groupMayContinue: the batch ends on a member line of a group kill whose
// burst may not be over; its members are delivered together so that
// oom.group.size counts them all.
func (f *follower) groupMayContinue(kills []killRecord) bool {
	if len(kills) == 0 || !kills[len(kills)-1].GroupKill {
		return false
	}
	_, open := f.asm.OpenGroup()
	return open
}

// settle waits, until at most until, for more lines; false: time is up or
// waiting failed.
func (f *follower) settle(ctx context.Context, until time.Time) bool {
	if time.Until(until) <= 0 {
		return false
	}
	waitCtx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	return f.src.Wait(waitCtx) == nil
}

// gap counts and logs lines the source lost, if err says so.
func (f *follower) gap(ctx context.Context, err error) bool {
	var gap *kernlog.Gap
	if !errors.As(err, &gap) {
		return false
	}
	f.tb.OomkillReceiverCheckpointGaps.Add(ctx, 1)
	f.logger.Warn("Kernel log lines were lost; reading on after them", zap.Error(gap))
	return true
}

// feed feeds the current line to the parser.
func (f *follower) feed() (killRecord, oomparse.LineKind, error) {
	text, err := f.src.Text()
	if err != nil {
		return killRecord{}, 0, err
	}
	// Most kernel lines are not about OOM and cannot touch the parser's
	// state: skip reading who printed them, their boot and time.
	if !f.asm.Relevant(text) {
		f.asm.Skip()
		return killRecord{}, oomparse.LineIgnored, nil
	}
	origin := f.src.Origin()
	if !origin.Kernel {
		// Written to /dev/kmsg by a process, not printed by the kernel: a
		// forged "Killed process" line must not count.
		f.tb.OomkillReceiverForeignLines.Add(context.Background(), 1)
		f.logger.Debug("Ignoring a kernel log line not from the kernel", zap.String("identifier", origin.Writer), zap.String("line", text))
		f.asm.Skip()
		return killRecord{}, oomparse.LineIgnored, nil
	}
	boot := origin.BootID
	if boot == "" {
		// Treating a missing boot ID as a reboot would drop the report in
		// progress; assume the boot of the previous line.
		f.logger.Debug("Kernel log line without readable boot ID; assuming the previous line's")
		boot = f.lastBoot
	}
	f.lastBoot = boot
	before := f.asm.Stats()
	k, kind := f.asm.Feed(oomparse.Message{Text: text, Time: origin.Stored, BootID: boot})
	if n := f.asm.Stats().Unrecognized; n > before.Unrecognized {
		f.tb.OomkillReceiverUnrecognizedLines.Add(context.Background(), int64(n-before.Unrecognized))
		if n <= unrecognizedLogged || n%1000 == 0 {
			f.logger.Warn("Kernel line looks like an OOM report but matches no known format; please report it with your kernel version",
				zap.String("line", text), zap.Uint64("unrecognized_total", n))
		}
	}
	f.noteMissingVictims(context.Background(), before.MissingVictims)
	if kind != oomparse.LineKill {
		// Group lines and repeated victims carry their cgroup and time
		// for the witness.
		return killRecord{Kill: k}, kind, nil
	}
	stamp := f.src.Stamp()
	if !stamp.Time.IsZero() {
		k.Time = stamp.Time
	}
	// Every journal entry has a monotonic stamp; should it be unreadable,
	// 0 keeps the ID deterministic (boot and pid still tell kills apart).
	return killRecord{Kill: k, Host: stamp.Host, ID: killID(k.BootID, stamp.MonotonicUsec, k.PID)}, kind, nil
}

// expireReport ends a report that waited too long for its next line once
// the log has been read to its end.
func (f *follower) expireReport(ctx context.Context, now time.Time) {
	before := f.asm.Stats().MissingVictims
	f.asm.Expire(now)
	f.noteMissingVictims(ctx, before)
}

// noteMissingVictims counts and logs reports whose summary named a victim
// that no line reported killed: the parser's own drift signal.
func (f *follower) noteMissingVictims(ctx context.Context, before uint64) {
	n := f.asm.Stats().MissingVictims
	if n <= before {
		return
	}
	f.tb.OomkillReceiverUnrecognizedLines.Add(ctx, int64(n-before))
	if n <= unrecognizedLogged || n%1000 == 0 {
		pid, task := f.asm.MissingVictim()
		f.logger.Warn("An OOM report named a victim but no line reported its kill (nor that it was already exiting): the kernel's victim line may have changed format, or it was lost; please report it with your kernel version",
			zap.Int64("pid", pid), zap.String("summary_task", task), zap.Uint64("missing_total", n))
	}
}

// wait sleeps until more lines may be readable or ctx is done.
func (f *follower) wait(ctx context.Context) error {
	err := f.src.Wait(ctx)
	f.status.Record(causeWait, err, "Waiting for the kernel log to grow failed; retrying")
	return err
}

func (f *follower) close() error { return f.src.Close() }
