package oomkillreceiver

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/journal"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kernlog"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kmsg"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/sourcechoice"
)

// The journal is reopened, to unmap the files read, after reading
// reopenAfter entries through one handle (this bounds what a catch-up
// holds), or on reaching its end after reopenIdleAfter (so what a catch-up
// read is not kept while idle). Variables so a test can lower them.
var (
	reopenAfter     = journal.DefaultReopenAfter
	reopenIdleAfter = journal.DefaultReopenIdleAfter
)

// openSource opens the kernel log the configuration names: the systemd
// journal, /dev/kmsg, or for auto the one sourcechoice picks (logged with
// its reason). Its errors say what to fix.
func openSource(cfg *Config, logger *zap.Logger) (kernlog.Source, error) {
	loc := journal.Location{Directory: cfg.Journal.Directory, Files: cfg.Journal.Files}
	src := cfg.Source
	if src == SourceAuto {
		choice, err := chooseSource(loc)
		if err != nil {
			return nil, err
		}
		src = choice.Source
		log := logger.Info
		if choice.Doubtful {
			log = logger.Warn
		}
		log("source: auto reads "+describeSource(src)+": "+choice.Reason, zap.String("source", src))
	}
	if src == SourceKmsg {
		return openKmsg(logger)
	}
	return openJournal(loc, logger)
}

func describeSource(src string) string {
	if src == SourceJournal {
		return "the journal"
	}
	return "/dev/kmsg"
}

func openJournal(loc journal.Location, logger *zap.Logger) (kernlog.Source, error) {
	n, err := journal.CheckReadable(loc)
	if err != nil {
		return nil, fmt.Errorf("oomkill receiver cannot read the journal: %w", err)
	}
	if n == 0 {
		logger.Warn("No journal files yet; waiting for journald to create them", zap.Any("journal", loc))
	}
	src, err := journal.Open(loc, journal.Options{Logger: logger, ReopenAfter: reopenAfter, ReopenIdleAfter: reopenIdleAfter})
	if err != nil {
		return nil, fmt.Errorf("oomkill receiver cannot open the journal %+v: %w", loc, err)
	}
	return src, nil
}

func openKmsg(logger *zap.Logger) (kernlog.Source, error) {
	r, err := kmsg.Open(kmsg.Options{})
	if err != nil {
		return nil, fmt.Errorf("oomkill receiver cannot read the kernel log: %w", err)
	}
	logger.Info("Reading the kernel log from /dev/kmsg", zap.String("boot_id", r.BootID()))
	return r, nil
}

// chooseSource gathers what `source: auto` decides from: whether a
// journald is seen, and whether each log can be read.
func chooseSource(loc journal.Location) (sourcechoice.Choice, error) {
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
