package journal

import "go.uber.org/zap"

// DefaultDirectories are where journald keeps the system journal:
// persistent storage first, then the volatile one.
var DefaultDirectories = []string{"/var/log/journal", "/run/log/journal"}

// Location says which journal to open. With neither field set the local
// system journal is opened (DefaultDirectories).
type Location struct {
	Directory string
	Files     []string
}

// The journal is reopened, to unmap the files read, after reading
// DefaultReopenAfter entries through one handle (this bounds what a
// catch-up holds), and on reaching its end after DefaultReopenIdleAfter
// (so that what a catch-up read is not kept while idle).
const (
	DefaultReopenAfter     = 25_000
	DefaultReopenIdleAfter = 10_000
)

// Options tune a Reader.
type Options struct {
	// Logger gets the reader's own lines (reopening, falling back to
	// timed waits). Nil: none.
	Logger *zap.Logger
	// ReopenAfter and ReopenIdleAfter: zero means the defaults above.
	ReopenAfter, ReopenIdleAfter int
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.ReopenAfter <= 0 {
		o.ReopenAfter = DefaultReopenAfter
	}
	if o.ReopenIdleAfter <= 0 {
		o.ReopenIdleAfter = DefaultReopenIdleAfter
	}
}
