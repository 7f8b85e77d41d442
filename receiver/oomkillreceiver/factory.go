package oomkillreceiver

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/otelcol-oomkill/otelcol-oomkill/internal/sharedcomponent"
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
var receivers sharedcomponent.Map[*Config, *oomReceiver]

func shared(cfg component.Config, set receiver.Settings) (*sharedcomponent.Component[*oomReceiver], error) {
	return receivers.LoadOrStore(cfg.(*Config), func() (*oomReceiver, error) { return newReceiver(cfg.(*Config), set) })
}

func createMetrics(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	r, err := shared(cfg, set)
	if err != nil {
		return nil, err
	}
	r.Unwrap.metrics = next
	return r, nil
}

func createLogs(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
	r, err := shared(cfg, set)
	if err != nil {
		return nil, err
	}
	r.Unwrap.logs = next
	return r, nil
}
