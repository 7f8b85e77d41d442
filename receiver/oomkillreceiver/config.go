package oomkillreceiver

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadata"
)

// Where kernel lines are read from (Config.Source).
const (
	// SourceJournal reads the systemd journal (cgo, libsystemd).
	SourceJournal = "journal"
	// SourceKmsg reads the kernel's own log device, /dev/kmsg (pure Go).
	SourceKmsg = "kmsg"
	// SourceAuto picks the journal when a journald is seen writing it, the
	// device otherwise, once at start (internal/sourcechoice).
	SourceAuto = "auto"
)

// Where reading starts when there is no checkpoint.
const (
	StartAtEnd       = "end"
	StartAtBeginning = "beginning"
)

// Config is the oomkill receiver's configuration.
type Config struct {
	// Source is where kernel lines come from: "journal" (the default, as
	// before this key existed), "kmsg" or "auto".
	Source string `mapstructure:"source"`
	// Journal selects the journal to read; by default the local system
	// journal (/var/log/journal and /run/log/journal).
	Journal JournalConfig `mapstructure:"journal"`
	// StartAt is where to begin when there is no checkpoint: "end" (only
	// kills from now on) or "beginning" (every kill the journal still holds).
	StartAt string `mapstructure:"start_at"`
	// StorageID names a storage extension (e.g. file_storage) that keeps
	// the journal cursor and the counter totals across restarts. Without
	// it, every start begins at StartAt and counters start from zero.
	StorageID *component.ID `mapstructure:"storage"`
	// NodeName is set as k8s.node.name, typically ${env:K8S_NODE_NAME}.
	NodeName string `mapstructure:"node_name"`
	// MetricsRefreshInterval re-emits every counter series this often even
	// without new kills, so exporters that expire idle series (Prometheus:
	// 5m) keep them. 0 disables.
	MetricsRefreshInterval time.Duration `mapstructure:"metrics_refresh_interval"`
	// Series bounds the counter series kept, exported and checkpointed.
	Series SeriesConfig `mapstructure:"series"`
	// Outcome configures how the receiver observes whether a victim's
	// container lived on after the kill (oom.container.outcome).
	Outcome OutcomeConfig `mapstructure:"outcome"`
	// Witness configures the second witness of OOM kills: the kernel's own
	// OOM-kill counters, reconciled with the kills read from the log.
	Witness WitnessConfig `mapstructure:"witness"`
	// Retry bounds the backoff while the next consumer refuses data. Data
	// is never dropped for a retryable error: reading pauses instead.
	Retry RetryConfig `mapstructure:"retry"`

	metadata.MetricsBuilderConfig `mapstructure:",squash"`
}

// JournalConfig selects journal files.
type JournalConfig struct {
	// Directory holding journal files (and machine-id subfolders), e.g. the
	// host's /var/log/journal mounted into the pod. Files appearing there
	// later (rotation) are followed.
	Directory string `mapstructure:"directory"`
	// Files lists journal files to read instead of a directory.
	Files []string `mapstructure:"files"`
}

// SeriesConfig bounds the state behind container.oom_kill.count. Kills
// beyond a cap are counted in an overflow series (otel.metric.overflow),
// so the sum over all series is still every kill.
type SeriesConfig struct {
	// MaxSeries caps the live series (one checkpoint key each). Kills of
	// new series beyond it go to one overflow series without pod or
	// container.
	MaxSeries int `mapstructure:"max_series"`
	// MaxSeriesPerContainer caps the series of one container (one per
	// process name, constraint and outcome): a process that renames itself
	// cannot use up MaxSeries. Beyond it, kills go to the container's own
	// overflow series, which keeps the pod and container.
	MaxSeriesPerContainer int `mapstructure:"max_series_per_container"`
	// Retention: a series that has not grown for this long, counted from
	// when this collector last counted a kill in it, and whose cgroup has
	// no process left (or cannot be observed), stops being exported and
	// leaves the checkpoint. Keep it well above the alert rules' windows.
	Retention time.Duration `mapstructure:"retention"`
	// MaxExpiredSeries is how many expired series' totals are remembered
	// (24 bytes each, in memory and in the checkpoint), so that a series
	// that comes back continues its count rather than restarting at 1.
	MaxExpiredSeries int `mapstructure:"max_expired_series"`
}

// OutcomeConfig: after a kill, the receiver looks at the victim's cgroup
// to tell whether processes lived on (survived) or the container exited,
// as soon as the kernel shows it.
type OutcomeConfig struct {
	// CgroupRoot is where the node's cgroup filesystem is mounted: the
	// host's /sys/fs/cgroup, mounted read-only into the DaemonSet's pods.
	// Empty disables the observation (every outcome is unknown).
	CgroupRoot string `mapstructure:"cgroup_root"`
	// ProcRoot is a procfs of the host's pid namespace, where the victims
	// the kernel names by pid are looked up: /proc when the collector runs
	// in it, the host's /proc mounted read-only into a pod that does not.
	// Without it (empty, or a pod's own /proc), a container that lived on
	// is known only at Delay.
	ProcRoot string `mapstructure:"proc_root"`
	// Delay is the longest a kill waits for its outcome to become visible:
	// an emptied cgroup is seen at once; processes left count as survived
	// once the victims are gone (and Settle later), or at Delay.
	Delay time.Duration `mapstructure:"delay"`
	// Settle is how long a cgroup must still hold processes after its
	// victims are gone to count as survived: a parent that ends when its
	// child is killed (a shell script's last command) ends within it.
	Settle time.Duration `mapstructure:"settle"`
	// MaxAge: a kill read more than this long after it happened (a
	// catch-up of history) was not observed in time; if its cgroup is
	// gone or empty by now, its outcome is unknown, not exited.
	MaxAge time.Duration `mapstructure:"max_age"`
	// MaxPending bounds the kills waiting for their outcome; when reached,
	// reading pauses until one is decided (at most Delay).
	MaxPending int `mapstructure:"max_pending"`
}

// WitnessConfig: the kernel counts every OOM kill without text, on the
// node (/proc/vmstat oom_kill) and per memory cgroup (cgroup v2
// memory.events, v1 memory.oom_control). The receiver reads those counters
// under outcome.cgroup_root and matches their rises to the kills read from
// the log; a rise no log line explains within Grace is counted as a kill
// the log did not show (oom.source=kernel_counter).
type WitnessConfig struct {
	// Enabled turns the witness on. It needs no privilege beyond the
	// read-only cgroup filesystem the outcome observation reads.
	Enabled bool `mapstructure:"enabled"`
	// PollInterval: how often /proc/vmstat is read to notice a kill. On
	// cgroup v2 a kill in a pod also wakes the receiver at once (inotify);
	// on cgroup v1 polling is the only way. Each poll reads one small file.
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// Grace is how long a counter rise waits for its log line (journald's
	// own delay must fit in it) before it counts as a kill the log did not
	// show. A line that comes later is matched to that kill, not counted
	// again.
	Grace time.Duration `mapstructure:"grace"`
	// MaxCgroups bounds the kubelet cgroups watched (pods first, then
	// containers); kills in cgroups beyond it count at node level only.
	MaxCgroups int `mapstructure:"max_cgroups"`
}

// RetryConfig is the backoff between deliveries the next consumer refused.
type RetryConfig struct {
	InitialInterval time.Duration `mapstructure:"initial_interval"`
	MaxInterval     time.Duration `mapstructure:"max_interval"`
}

var _ confmap.Validator = (*Config)(nil)

func createDefaultConfig() component.Config {
	return &Config{
		Source:                 SourceJournal,
		StartAt:                StartAtEnd,
		MetricsRefreshInterval: time.Minute,
		Series: SeriesConfig{
			MaxSeries:             1000,
			MaxSeriesPerContainer: 20,
			Retention:             time.Hour,
			MaxExpiredSeries:      10000,
		},
		Outcome: OutcomeConfig{
			CgroupRoot: "/sys/fs/cgroup", ProcRoot: "/proc",
			Delay: 2 * time.Second, Settle: 20 * time.Millisecond, MaxAge: 30 * time.Second, MaxPending: 1000,
		},
		Witness:              WitnessConfig{Enabled: true, PollInterval: 10 * time.Second, Grace: 10 * time.Second, MaxCgroups: 2000},
		Retry:                RetryConfig{InitialInterval: 500 * time.Millisecond, MaxInterval: 30 * time.Second},
		MetricsBuilderConfig: metadata.NewDefaultMetricsBuilderConfig(),
	}
}

// Validate reports every configuration mistake at once, each saying what
// to change.
func (c *Config) Validate() error {
	var errs []error
	switch c.Source {
	case SourceJournal, SourceAuto:
	case SourceKmsg:
		if c.Journal.Directory != "" || len(c.Journal.Files) > 0 {
			errs = append(errs, errors.New("journal: set, but source is kmsg, which reads no journal; remove journal or use source: journal or auto"))
		}
	default:
		errs = append(errs, fmt.Errorf("source %q: use %q, %q or %q", c.Source, SourceJournal, SourceKmsg, SourceAuto))
	}
	if c.Journal.Directory != "" && len(c.Journal.Files) > 0 {
		errs = append(errs, errors.New("journal: set either directory or files, not both"))
	}
	for i, f := range c.Journal.Files {
		if f == "" {
			errs = append(errs, fmt.Errorf("journal.files[%d] is empty", i))
		} else if filepath.Ext(f) != ".journal" && filepath.Ext(f) != ".journal~" {
			errs = append(errs, fmt.Errorf("journal.files[%d] %q: journal files end in .journal", i, f))
		}
	}
	if c.StartAt != StartAtEnd && c.StartAt != StartAtBeginning {
		errs = append(errs, fmt.Errorf("start_at %q: use %q or %q", c.StartAt, StartAtEnd, StartAtBeginning))
	}
	if c.MetricsRefreshInterval < 0 {
		errs = append(errs, fmt.Errorf("metrics_refresh_interval %v: must be 0 (off) or positive", c.MetricsRefreshInterval))
	}
	if c.Series.MaxSeries < 1 {
		errs = append(errs, fmt.Errorf("series.max_series %d: must be at least 1", c.Series.MaxSeries))
	}
	if c.Series.MaxSeriesPerContainer < 1 {
		errs = append(errs, fmt.Errorf("series.max_series_per_container %d: must be at least 1", c.Series.MaxSeriesPerContainer))
	}
	if c.Series.Retention <= 0 {
		errs = append(errs, fmt.Errorf("series.retention %v: must be positive (series expire only when their container is gone)", c.Series.Retention))
	} else if c.MetricsRefreshInterval > 0 && c.Series.Retention < 2*c.MetricsRefreshInterval {
		errs = append(errs, fmt.Errorf("series.retention %v: must be at least twice metrics_refresh_interval (%v)", c.Series.Retention, c.MetricsRefreshInterval))
	}
	if c.Series.MaxExpiredSeries < 0 {
		errs = append(errs, fmt.Errorf("series.max_expired_series %d: must be 0 (forget) or positive", c.Series.MaxExpiredSeries))
	}
	if c.Outcome.Delay < 0 || c.Outcome.Delay > time.Minute {
		errs = append(errs, fmt.Errorf("outcome.delay %v: must be between 0 and 1m (a kill waits for its outcome this long at most)", c.Outcome.Delay))
	}
	if c.Outcome.Settle < 0 || c.Outcome.Settle > c.Outcome.Delay {
		errs = append(errs, fmt.Errorf("outcome.settle %v: must be between 0 and outcome.delay (%v)", c.Outcome.Settle, c.Outcome.Delay))
	}
	if c.Outcome.MaxPending < 1 {
		errs = append(errs, fmt.Errorf("outcome.max_pending %d: must be at least 1", c.Outcome.MaxPending))
	}
	if c.Outcome.MaxAge < c.Outcome.Delay {
		errs = append(errs, fmt.Errorf("outcome.max_age %v: must not be below outcome.delay (%v)", c.Outcome.MaxAge, c.Outcome.Delay))
	}
	if c.Witness.Enabled {
		if c.Witness.PollInterval <= 0 || c.Witness.PollInterval > time.Minute {
			errs = append(errs, fmt.Errorf("witness.poll_interval %v: must be between 0 and 1m", c.Witness.PollInterval))
		}
		if c.Witness.Grace < c.Witness.PollInterval {
			errs = append(errs, fmt.Errorf("witness.grace %v: must not be below witness.poll_interval (%v)", c.Witness.Grace, c.Witness.PollInterval))
		}
		if c.Witness.MaxCgroups < 0 {
			errs = append(errs, fmt.Errorf("witness.max_cgroups %d: must be 0 (node level only) or positive", c.Witness.MaxCgroups))
		}
	}
	if c.Retry.InitialInterval <= 0 || c.Retry.MaxInterval < c.Retry.InitialInterval {
		errs = append(errs, fmt.Errorf("retry: initial_interval (%v) must be positive and not above max_interval (%v)", c.Retry.InitialInterval, c.Retry.MaxInterval))
	}
	return errors.Join(errs...)
}
