package oomkillreceiver

import (
	"context"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadata"
)

// NewFactory creates the oomkill receiver factory.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		receiver.WithMetrics(createMetrics, metadata.MetricsStability),
		receiver.WithLogs(createLogs, metadata.LogsStability),
	)
}

// receivers holds one receiver per configuration, so that a receiver ID in
// both a logs and a metrics pipeline reads the journal once.
var receivers = sharedReceivers{m: map[*Config]*shared{}}

func createMetrics(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	s, err := receivers.get(cfg.(*Config), set)
	if err != nil {
		return nil, err
	}
	s.r.metrics = next
	return s, nil
}

func createLogs(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
	s, err := receivers.get(cfg.(*Config), set)
	if err != nil {
		return nil, err
	}
	s.r.logs = next
	return s, nil
}

// sharedReceivers is the small equivalent of the collector's internal
// sharedcomponent: the receiver starts on the first Start and stops on the
// last Shutdown.
type sharedReceivers struct {
	mu sync.Mutex
	m  map[*Config]*shared
}

type shared struct {
	owner *sharedReceivers
	cfg   *Config
	r     *oomReceiver

	startOnce sync.Once
	startErr  error
	refs      int // created and not yet shut down
}

func (s *sharedReceivers) get(cfg *Config, set receiver.Settings) (*shared, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sh, ok := s.m[cfg]; ok {
		sh.refs++
		return sh, nil
	}
	r, err := newReceiver(cfg, set)
	if err != nil {
		return nil, err
	}
	sh := &shared{owner: s, cfg: cfg, r: r, refs: 1}
	s.m[cfg] = sh
	return sh, nil
}

func (sh *shared) Start(ctx context.Context, host component.Host) error {
	sh.startOnce.Do(func() { sh.startErr = sh.r.Start(ctx, host) })
	return sh.startErr
}

func (sh *shared) Shutdown(ctx context.Context) error {
	sh.owner.mu.Lock()
	sh.refs--
	last := sh.refs <= 0
	if last {
		delete(sh.owner.m, sh.cfg)
	}
	sh.owner.mu.Unlock()
	if !last {
		return nil
	}
	return sh.r.Shutdown(ctx)
}
