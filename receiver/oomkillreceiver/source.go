package oomkillreceiver

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/journal"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kernlog"
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
// journal. Its errors say what to fix.
func openSource(cfg *Config, logger *zap.Logger) (kernlog.Source, error) {
	loc := journal.Location{Directory: cfg.Journal.Directory, Files: cfg.Journal.Files}
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
