package oomkillreceiver

import (
	"context"

	"go.opentelemetry.io/otel/metric"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadata"
)

// exportCountersAtZero adds 0 to every counter of the receiver's own
// telemetry at start. A counter is exported only once something was added
// to it, so without this a healthy receiver shows no unrecognized lines,
// checkpoint gaps or delivery retries at all, rather than zero: a dashboard
// panel has nothing to draw, and increase() misses a counter's first
// increment (the series is born at 1).
func exportCountersAtZero(ctx context.Context, tb *metadata.TelemetryBuilder) {
	for _, c := range []metric.Int64Counter{
		tb.OomkillReceiverCheckpointGaps,
		tb.OomkillReceiverCounterAttributedKills,
		tb.OomkillReceiverCounterOnlyKills,
		tb.OomkillReceiverDeliveryRetries,
		tb.OomkillReceiverEntriesRead,
		tb.OomkillReceiverForeignLines,
		tb.OomkillReceiverKills,
		tb.OomkillReceiverLateLogKills,
		tb.OomkillReceiverOutcomeUnobservable,
		tb.OomkillReceiverOverflowKills,
		tb.OomkillReceiverReadErrors,
		tb.OomkillReceiverSeriesExpired,
		tb.OomkillReceiverUnattributedKills,
		tb.OomkillReceiverUnrecognizedLines,
	} {
		c.Add(ctx, 0)
	}
}
