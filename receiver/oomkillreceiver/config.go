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

// Where reading starts when there is no checkpoint.
const (
	StartAtEnd       = "end"
	StartAtBeginning = "beginning"
)

// Config is the oomkill receiver's configuration.
type Config struct {
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

// RetryConfig is the backoff between deliveries the next consumer refused.
type RetryConfig struct {
	InitialInterval time.Duration `mapstructure:"initial_interval"`
	MaxInterval     time.Duration `mapstructure:"max_interval"`
}

var _ confmap.Validator = (*Config)(nil)

func createDefaultConfig() component.Config {
	return &Config{
		StartAt:                StartAtEnd,
		MetricsRefreshInterval: time.Minute,
		Retry:                  RetryConfig{InitialInterval: 500 * time.Millisecond, MaxInterval: 30 * time.Second},
		MetricsBuilderConfig:   metadata.NewDefaultMetricsBuilderConfig(),
	}
}

// Validate reports every configuration mistake at once, each saying what
// to change.
func (c *Config) Validate() error {
	var errs []error
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
	if c.Retry.InitialInterval <= 0 || c.Retry.MaxInterval < c.Retry.InitialInterval {
		errs = append(errs, fmt.Errorf("retry: initial_interval (%v) must be positive and not above max_interval (%v)", c.Retry.InitialInterval, c.Retry.MaxInterval))
	}
	return errors.Join(errs...)
}
