package oomkillreceiver

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/internal/resend"
	"github.com/otelcol-oomkill/otelcol-oomkill/internal/status"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadata"
)

// causeDelivery is the status cause of the next consumers refusing data.
const causeDelivery = "delivery"

// delivery hands kills' log records and the series they changed to the
// next consumers, and refreshes idle series so exporters keep them.
type delivery struct {
	logs    consumer.Logs    // nil: not in a logs pipeline
	metrics consumer.Metrics // nil: not in a metrics pipeline
	emit    *emitter
	retry   RetryConfig
	tb      *metadata.TelemetryBuilder
	logger  *zap.Logger
	status  *status.Reporter
}

// deliver sends the kills' log records, then the series they changed,
// retrying with backoff until the consumers accept or ctx ends (false).
// Logs and metrics are retried separately, so a consumer that accepted is
// not sent the same data twice.
func (d *delivery) deliver(ctx context.Context, kills []killRecord, t *seriesTable) bool {
	changed := t.takeChanged(time.Now())
	if d.logs != nil {
		ok := d.send(ctx, "logs", func() error {
			return d.logs.ConsumeLogs(ctx, d.emit.logs(kills, time.Now()))
		})
		if !ok {
			return false
		}
	}
	if d.metrics != nil {
		return d.send(ctx, "metrics", func() error {
			return d.metrics.ConsumeMetrics(ctx, d.emit.metrics(changed, time.Now()))
		})
	}
	return true
}

// send calls try until it succeeds, fails permanently, or ctx ends. A
// payload is built afresh for every try: a consumer may modify what it was
// given.
func (d *delivery) send(ctx context.Context, signal string, try func() error) bool {
	backoff := d.retry.InitialInterval
	for {
		err := try()
		if err == nil {
			d.status.Clear(causeDelivery)
			return true
		}
		if consumererror.IsPermanent(err) {
			// Sending the same data again cannot succeed; keep going so
			// that one bad payload does not stop counting.
			d.logger.Error("Next consumer rejected data permanently; it is dropped", zap.String("signal", signal), zap.Error(err))
			return true
		}
		d.tb.OomkillReceiverDeliveryRetries.Add(ctx, 1)
		d.status.Fail(causeDelivery, err, "Next consumer refused data; retrying (reading paused, nothing dropped)",
			zap.String("signal", signal), zap.Duration("backoff", backoff))
		if !sleep(ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, d.retry.MaxInterval)
	}
}

// refresh re-emits the series not emitted within notWithin, so idle series
// do not expire in exporters. Best effort: the next kill or refresh sends
// them again. The delivery is marked as re-sending (internal/resend): a
// processor waiting for metadata (k8smeta) had its wait when the kill was
// first delivered, so it does not hold the refresh, nor the loop with it.
func (d *delivery) refresh(ctx context.Context, t *seriesTable, notWithin time.Duration) {
	if d.metrics == nil {
		return
	}
	due := t.due(time.Now(), notWithin)
	if len(due) == 0 {
		return
	}
	if err := d.metrics.ConsumeMetrics(resend.NewContext(ctx), d.emit.metrics(due, time.Now())); err != nil {
		d.logger.Debug("Metrics refresh refused", zap.Error(err))
	}
}
