package oomkillreceiver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/internal/status"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kernlog"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadata"
)

// oomReceiver is the receiver's lifecycle and its loop, which runs the
// stages in turn: the follower reads and assembles kills, the witness
// checks them against the kernel's OOM-kill counters, the outcome observer
// looks at each victim's container, the series table accounts them,
// delivery hands them on, the checkpointer saves how far it got.
type oomReceiver struct {
	cfg    *Config
	set    receiver.Settings
	logger *zap.Logger
	tb     *metadata.TelemetryBuilder
	status *status.Reporter
	// logs and metrics are the next consumers, set by the factory.
	logs    consumer.Logs
	metrics consumer.Metrics
	// open opens the kernel log (openSource; a test may read another).
	open func(*Config, *zap.Logger) (kernlog.Source, error)

	follow   *follower
	witness  *witness // nil: off
	outcomes *outcomeObserver
	series   *seriesTable
	delivery *delivery
	cp       *checkpointer
	killLog  *killLog
	// refreshAt and sweepAt are when the metrics refresh and the series
	// expiry are next due; zero: not scheduled (no series).
	refreshAt, sweepAt time.Time

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func newReceiver(cfg *Config, set receiver.Settings) (*oomReceiver, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	return &oomReceiver{cfg: cfg, set: set, logger: set.Logger, tb: tb, status: status.New(set.Logger), open: openSource}, nil
}

// Start opens the kernel log, restores the checkpoint, positions the
// follower right after it and starts the loop.
func (r *oomReceiver) Start(ctx context.Context, host component.Host) error {
	r.status.SetHost(host)
	exportCountersAtZero(ctx, r.tb)
	src, err := r.open(r.cfg, r.logger)
	if err != nil {
		return err
	}
	if r.cp, err = newCheckpointer(ctx, host, r.cfg.StorageID, r.set.ID, r.logger, r.status); err != nil {
		return errors.Join(err, src.Close())
	}
	r.series = r.cp.load(ctx, r.cfg.Series)
	err = r.tb.RegisterOomkillReceiverSeriesCallback(func(_ context.Context, o metric.Int64Observer) error {
		o.Observe(r.series.liveCount())
		return nil
	})
	if err != nil {
		return errors.Join(err, src.Close())
	}
	r.follow = newFollower(src, r.tb, r.logger, r.status)
	if err := r.follow.seek(r.cp.position(), r.cfg.StartAt, len(r.series.live)); err != nil {
		return errors.Join(fmt.Errorf("oomkill receiver cannot position in the kernel log: %w", err), src.Close())
	}
	r.witness = startWitness(ctx, r.cfg, r.cp, r.logger, r.tb)
	r.outcomes = newOutcomeObserver(r.cfg.Outcome, r.logger)
	r.outcomes.admit(r.cp.restoredPending())
	r.delivery = &delivery{
		logs: r.logs, metrics: r.metrics, retry: r.cfg.Retry, tb: r.tb, logger: r.logger, status: r.status,
		emit: &emitter{cfg: r.cfg, version: r.set.BuildInfo.Version, mb: metadata.NewMetricsBuilder(r.cfg.MetricsBuilderConfig, r.set,
			metadata.WithStartTime(pcommon.NewTimestampFromTime(r.cp.record.startTime())))},
	}
	r.killLog = &killLog{logger: r.logger, series: r.cfg.Series}
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go r.run(runCtx)
	return nil
}

// Shutdown stops reading; everything not delivered stays behind the
// checkpoint and is read again on the next start.
func (r *oomReceiver) Shutdown(ctx context.Context) error {
	var errs []error
	r.once.Do(func() {
		if r.cancel != nil {
			r.cancel()
			select {
			case <-r.done:
			case <-ctx.Done():
				errs = append(errs, ctx.Err())
			}
		}
		if r.cp != nil {
			errs = append(errs, r.cp.close(ctx))
		}
		r.witness.close()
		r.tb.Shutdown()
	})
	return errors.Join(errs...)
}

// run follows the kernel log until Shutdown. Each round runs the stages:
// read a batch of lines and assemble their kills, check them against the
// kernel's counters (adding the kills only the counters saw), observe what
// became of each victim's container (a kill whose outcome the kernel does
// not show yet is held, at most outcome.delay, while reading goes on),
// account the decided kills in their series, deliver them, checkpoint (with
// the kills still held and the witness's state). Caught up, it sleeps until
// the log grows, a held kill is due, or a timer (the witness's poll among
// them) is.
func (r *oomReceiver) run(ctx context.Context) {
	defer close(r.done)
	defer func() { _ = r.follow.close() }()
	defer r.outcomes.close()
	// Counters restored from the checkpoint are exposed at once, not at
	// the next kill or refresh.
	r.delivery.refresh(ctx, r.series, 0)
	for ctx.Err() == nil {
		var b batch
		var err error
		if !r.outcomes.full() {
			b, err = r.follow.read(ctx)
			r.outcomes.admit(r.witness.check(ctx, b))
		}
		kills, unobservable := r.outcomes.ready()
		if len(kills) > 0 {
			r.tb.OomkillReceiverOutcomeUnobservable.Add(ctx, int64(unobservable))
			r.account(ctx, kills)
			if !r.delivery.deliver(ctx, kills, r.series) {
				return // shutting down: the checkpoint stays before these kills, or holds them
			}
		}
		r.cp.advance(b.end)
		if len(kills) > 0 || r.cp.due(time.Now(), r.series) {
			// Delivered data must be checkpointed even when Shutdown has
			// begun, or the next start would send it again.
			r.cp.commit(context.WithoutCancel(ctx), r.series, r.outcomes)
		}
		switch {
		case err != nil:
			sleep(ctx, time.Second) // the follower reported it
		case b.lines == 0:
			r.idle(ctx)
		}
	}
}

// account counts each kill in its series (or an overflow series) and logs it.
func (r *oomReceiver) account(ctx context.Context, kills []killRecord) {
	now := time.Now()
	for _, k := range kills {
		if kind := r.series.count(keyOf(k), now); kind != noOverflow {
			r.tb.OomkillReceiverOverflowKills.Add(ctx, 1)
			r.killLog.overflow(kind, k)
		}
		r.tb.OomkillReceiverKills.Add(ctx, 1)
		if !k.Attributed {
			r.tb.OomkillReceiverUnattributedKills.Add(ctx, 1)
		}
		r.killLog.log(k, now)
	}
}

// idle sleeps until the kernel log may have grown or a timer is due, then
// runs the timers that are. Only timers some state needs are set: with no
// series, no kill to sum up and nothing to checkpoint, the receiver sleeps
// until the log changes or Shutdown.
func (r *oomReceiver) idle(ctx context.Context) {
	now := time.Now()
	if r.series.liveCount() == 0 {
		r.refreshAt, r.sweepAt = time.Time{}, time.Time{}
	} else {
		if r.refreshAt.IsZero() && r.metrics != nil && r.cfg.MetricsRefreshInterval > 0 {
			r.refreshAt = now.Add(r.cfg.MetricsRefreshInterval)
		}
		if r.sweepAt.IsZero() {
			r.sweepAt = now.Add(expirySweepInterval(r.cfg.Series.Retention))
		}
	}
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if wake := earliest(r.refreshAt, r.sweepAt, r.cp.dueAt(r.series), r.killLog.dueAt(), r.outcomes.dueAt()); !wake.IsZero() {
		waitCtx, cancel = context.WithDeadline(waitCtx, wake)
		defer cancel()
	}
	stopInterrupt := r.outcomes.interrupt(waitCtx, cancel)
	waitCtx, stopWait := r.witness.waitBound(waitCtx)
	if r.outcomes.full() {
		// Reading is paused until a held kill is decided.
		<-waitCtx.Done()
	} else if err := r.follow.wait(waitCtx); err != nil {
		sleep(waitCtx, time.Second) // the follower reported it
	}
	stopWait()
	cancel()
	stopInterrupt()
	now = time.Now()
	if !r.refreshAt.IsZero() && !now.Before(r.refreshAt) {
		r.refreshAt = time.Time{}
		r.delivery.refresh(ctx, r.series, r.cfg.MetricsRefreshInterval/2)
	}
	if !r.sweepAt.IsZero() && !now.Before(r.sweepAt) {
		r.sweepAt = time.Time{}
		if n := r.series.expire(now, r.outcomes.alive); n > 0 {
			r.tb.OomkillReceiverSeriesExpired.Add(ctx, int64(n))
			r.logger.Debug("Series expired", zap.Int("expired", n), zap.Int("live", len(r.series.live)))
		}
	}
	r.killLog.flush(now)
}
