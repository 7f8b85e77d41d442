package oomkillreceiver

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	storage := component.MustNewIDWithName("file_storage", "checkpoints")
	custom := createDefaultConfig().(*Config)
	custom.Journal.Directory = "/host/var/log/journal"
	custom.StartAt = StartAtBeginning
	custom.StorageID = &storage
	custom.NodeName = "node-a"
	custom.MetricsRefreshInterval = 30 * time.Second
	custom.Retry = RetryConfig{InitialInterval: time.Second, MaxInterval: time.Minute}
	// Set as the user set them (the builder config remembers what was set).
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"metrics":             map[string]any{"container.oom_kill.count": map[string]any{"enabled": true}},
		"resource_attributes": map[string]any{"oom.cgroup.path": map[string]any{"enabled": false}},
	}).Unmarshal(&custom.MetricsBuilderConfig))

	files := createDefaultConfig().(*Config)
	files.Journal.Files = []string{"/var/log/journal/abc/system.journal", "/var/log/journal/abc/system@x.journal~"}

	bounded := createDefaultConfig().(*Config)
	bounded.Series = SeriesConfig{MaxSeries: 200, MaxSeriesPerContainer: 5, Retention: 24 * time.Hour}
	bounded.Outcome = OutcomeConfig{CgroupRoot: "/host/sys/fs/cgroup", ProcRoot: "/host/proc", Delay: 500 * time.Millisecond, Settle: 50 * time.Millisecond, MaxAge: 10 * time.Second, MaxPending: 100}

	witness := createDefaultConfig().(*Config)
	witness.Witness = WitnessConfig{Enabled: true, PollInterval: 5 * time.Second, Grace: 30 * time.Second, MaxCgroups: 500}
	witnessOff := createDefaultConfig().(*Config)
	witnessOff.Witness.Enabled = false
	kmsg := createDefaultConfig().(*Config)
	kmsg.Source = SourceKmsg
	auto := createDefaultConfig().(*Config)
	auto.Source = SourceAuto
	auto.Journal.Directory = "/host/var/log/journal"

	tests := []struct {
		id      component.ID
		want    *Config
		wantErr string
	}{
		{id: component.NewID(metadata.Type), want: createDefaultConfig().(*Config)},
		{id: component.NewIDWithName(metadata.Type, "custom"), want: custom},
		{id: component.NewIDWithName(metadata.Type, "files"), want: files},
		{id: component.NewIDWithName(metadata.Type, "both"), wantErr: "journal: set either directory or files, not both"},
		{id: component.NewIDWithName(metadata.Type, "bad_start"), wantErr: `start_at "yesterday": use "end" or "beginning"`},
		{id: component.NewIDWithName(metadata.Type, "bad_file"), wantErr: `journal.files[0] "/var/log/messages": journal files end in .journal`},
		{id: component.NewIDWithName(metadata.Type, "bad_retry"), wantErr: "retry: initial_interval (0s) must be positive"},
		{id: component.NewIDWithName(metadata.Type, "bad_series"), wantErr: "series.max_series 0: must be at least 1\nseries.retention 30s: must be at least twice metrics_refresh_interval (1m0s)"},
		{id: component.NewIDWithName(metadata.Type, "bad_outcome"), wantErr: "outcome.delay 2m0s: must be between 0 and 1m"},
		{id: component.NewIDWithName(metadata.Type, "bad_settle"), wantErr: "outcome.settle 3s: must be between 0 and outcome.delay (2s)\noutcome.max_pending 0: must be at least 1"},
		{id: component.NewIDWithName(metadata.Type, "bounded"), want: bounded},
		{id: component.NewIDWithName(metadata.Type, "witness"), want: witness},
		{id: component.NewIDWithName(metadata.Type, "witness_off"), want: witnessOff},
		{id: component.NewIDWithName(metadata.Type, "bad_witness"), wantErr: "witness.poll_interval 2m0s: must be between 0 and 1m\nwitness.grace 1s: must not be below witness.poll_interval (2m0s)\nwitness.max_cgroups -1: must be 0 (node level only) or positive"},
		{id: component.NewIDWithName(metadata.Type, "kmsg"), want: kmsg},
		{id: component.NewIDWithName(metadata.Type, "auto"), want: auto},
		{id: component.NewIDWithName(metadata.Type, "bad_source"), wantErr: `source "dmesg": use "journal", "kmsg" or "auto"`},
		{id: component.NewIDWithName(metadata.Type, "kmsg_with_journal"), wantErr: "journal: set, but source is kmsg, which reads no journal"},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig()
			sub, err := cm.Sub(tt.id.String())
			require.NoError(t, err)
			require.NoError(t, sub.Unmarshal(cfg))
			err = confmap.Validate(cfg)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, cfg)
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	assert.Equal(t, SourceJournal, cfg.Source, "as before the key existed")
	assert.Equal(t, StartAtEnd, cfg.StartAt)
	assert.Empty(t, cfg.Journal.Directory)
	assert.Nil(t, cfg.StorageID)
	assert.Equal(t, time.Minute, cfg.MetricsRefreshInterval)
	assert.NoError(t, cfg.Validate())
}
