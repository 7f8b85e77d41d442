package oomkillreceiver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/journal"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kmsg"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/sourcechoice"
)

// logReader is a kernel log as the loop reads it: the journal reader's
// methods, which the /dev/kmsg reader is adapted to below. It stands in
// for the source seam being introduced in the receiver (a source of kernel
// lines both readers implement), into which this file then dissolves.
type logReader interface {
	Close() error
	SeekHead() error
	SeekEnd() (string, error)
	SeekAfter(cursor string, notBefore time.Time) (bool, error)
	Reopen(cursor string, notBefore time.Time) (bool, error)
	Next() (bool, error)
	Wait(timeout time.Duration) (bool, error)
	Message() (string, error)
	Identifier() string
	BootID() (string, error)
	Hostname() string
	Realtime() (time.Time, error)
	KernelTime() (time.Time, error)
	KernelMonotonicUsec() (uint64, error)
	Cursor() (string, error)
}

// openSource opens the kernel log the configuration names (for auto: the
// one sourcechoice picks, logged with its reason) and returns it with the
// source it is. Its errors say what to fix.
func openSource(cfg *Config, logger *zap.Logger, onGap func(*kmsg.Gap)) (logReader, string, error) {
	src := cfg.Source
	loc := journal.Source{Directory: cfg.Journal.Directory, Files: cfg.Journal.Files}
	if src == SourceAuto {
		choice, err := chooseSource(loc)
		if err != nil {
			return nil, "", err
		}
		src = choice.Source
		where := "/dev/kmsg"
		if src == SourceJournal {
			where = "the journal"
		}
		if choice.Doubtful {
			logger.Warn("source: auto reads "+where+": "+choice.Reason, zap.String("source", src))
		} else {
			logger.Info("source: auto reads "+where+": "+choice.Reason, zap.String("source", src))
		}
	}
	if src == SourceKmsg {
		r, err := kmsg.Open(kmsg.Options{})
		if err != nil {
			return nil, "", fmt.Errorf("oomkill receiver cannot read the kernel log: %w", err)
		}
		logger.Info("Reading the kernel log from /dev/kmsg", zap.String("boot_id", r.BootID()))
		return &kmsgLog{r: r, onGap: onGap}, src, nil
	}
	n, err := journal.CheckReadable(loc)
	if err != nil {
		return nil, "", fmt.Errorf("oomkill receiver cannot read the journal: %w", err)
	}
	if n == 0 {
		logger.Warn("No journal files yet; waiting for journald to create them", zap.Any("journal", loc))
	}
	r, err := journal.Open(loc)
	if err != nil {
		return nil, "", fmt.Errorf("oomkill receiver cannot open the journal %+v: %w", loc, err)
	}
	return r, src, nil
}

// chooseSource gathers what `source: auto` decides from: whether a
// journald is seen, and whether each log can be read.
func chooseSource(loc journal.Source) (sourcechoice.Choice, error) {
	e := sourcechoice.Evidence{}
	e.Journald, e.JournaldSeen = sourcechoice.LookForJournald(sourcechoice.DefaultSocket, "/proc")
	if _, err := journal.CheckReadable(loc); err != nil {
		e.JournalErr = err
	}
	if r, err := kmsg.Open(kmsg.Options{}); err != nil {
		e.KmsgErr = err
	} else {
		_ = r.Close()
	}
	return sourcechoice.Decide(e)
}

// kmsgLog adapts the /dev/kmsg reader to logReader.
type kmsgLog struct {
	r     *kmsg.Reader
	onGap func(*kmsg.Gap)
}

func (k *kmsgLog) Close() error    { return k.r.Close() }
func (k *kmsgLog) SeekHead() error { return k.r.SeekHead() }

func (k *kmsgLog) SeekEnd() (string, error) {
	p, err := k.r.SeekEnd()
	return p.Cursor, err
}

func (k *kmsgLog) SeekAfter(cursor string, notBefore time.Time) (bool, error) {
	return k.r.SeekAfter(kmsg.SeamPosition{Cursor: cursor, Time: notBefore})
}

// Reopen has nothing to release: the device maps nothing.
func (k *kmsgLog) Reopen(string, time.Time) (bool, error) { return true, nil }

// Next reports lost records (a *kmsg.Gap) and reads on.
func (k *kmsgLog) Next() (bool, error) {
	for {
		ok, err := k.r.Next()
		var gap *kmsg.Gap
		if errors.As(err, &gap) {
			k.onGap(gap)
			continue
		}
		return ok, err
	}
}

func (k *kmsgLog) Wait(timeout time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	switch err := k.r.Wait(ctx); {
	case errors.Is(err, context.DeadlineExceeded):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

func (k *kmsgLog) Message() (string, error) { return k.r.Text() }

func (k *kmsgLog) Identifier() string {
	if o := k.r.Origin(); !o.Kernel {
		return o.Writer
	}
	return journal.KernelIdentifier
}

func (k *kmsgLog) BootID() (string, error)        { return k.r.BootID(), nil }
func (k *kmsgLog) Hostname() string               { return "" }
func (k *kmsgLog) Realtime() (time.Time, error)   { return k.r.Origin().Stored, nil }
func (k *kmsgLog) KernelTime() (time.Time, error) { return k.r.Stamp().Time, nil }

func (k *kmsgLog) KernelMonotonicUsec() (uint64, error) { return k.r.Stamp().MonotonicUsec, nil }

func (k *kmsgLog) Cursor() (string, error) {
	p, err := k.r.Position()
	return p.Cursor, err
}
