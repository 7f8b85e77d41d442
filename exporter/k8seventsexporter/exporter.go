package k8seventsexporter

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/aggregate"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/apiwriter"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/event"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/kill"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/metadata"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/ratelimit"
	"github.com/otelcol-oomkill/otelcol-oomkill/internal/status"
)

// Causes of a failing status (internal/status): the component is OK again
// once none of them fails.
const (
	// causeWrite: the last batch could not be written and is retried.
	causeWrite = "write"
	// causeQueueFull: the sending queue refused the last batch; its kills
	// were dropped.
	causeQueueFull = "queue_full"
)

// eventsExporter runs the stages over each batch: internal/kill reads the
// kills, the aggregate table counts them into series, the rate limiter
// says which series are written now, and the API writer writes them with
// what internal/event builds. mu serialises push, the flush loop and
// shutdown over the table, the limiter and the writer, none of which is
// safe for concurrent use.
type eventsExporter struct {
	cfg       *Config
	logger    *zap.Logger
	tb        *metadata.TelemetryBuilder
	newClient func(*Config) (kubernetes.Interface, error)
	writer    *apiwriter.Writer
	status    *status.Reporter
	builder   event.Builder
	now       func() time.Time

	mu      sync.Mutex
	series  *aggregate.Table
	limiter *ratelimit.Limiter

	// kick tells the flush loop that push added kills.
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	// wakeups counts the flush loop's timer wake-ups (tests of idleness).
	wakeups atomic.Int64
}

func newExporter(cfg *Config, set exporter.Settings, newClient func(*Config) (kubernetes.Interface, error)) (*eventsExporter, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	hn, _ := os.Hostname()
	e := &eventsExporter{
		cfg: cfg, logger: set.Logger, tb: tb, newClient: newClient, now: time.Now, status: status.New(set.Logger),
		builder: event.Builder{Controller: cfg.ReportingController, Instance: cfg.ReportingInstance, Hostname: hn},
		series: aggregate.New(aggregate.Options{
			Window: cfg.Aggregation.Window, MaxSeries: cfg.Aggregation.MaxSeries, MaxKillIDs: cfg.Aggregation.MaxKillIDs, NodeEvents: cfg.NodeEvents,
		}, tb, set.Logger),
		limiter: ratelimit.New(ratelimit.Bucket(cfg.RateLimit.PerPod), ratelimit.Bucket(cfg.RateLimit.Total), cfg.RateLimit.MaxPods),
		kick:    make(chan struct{}, 1),
	}
	return e, nil
}

func (e *eventsExporter) start(_ context.Context, host component.Host) error {
	c, err := e.newClient(e.cfg)
	if err != nil {
		return err
	}
	e.writer = apiwriter.New(c, e.series, apiwriter.Options{
		VerifyPod: e.cfg.VerifyPod, Builder: e.builder, Now: func() time.Time { return e.now() },
	}, e.tb, e.logger)
	e.status.SetHost(host)
	e.stop, e.done = make(chan struct{}), make(chan struct{})
	go e.flushLoop()
	return nil
}

func (e *eventsExporter) shutdown(ctx context.Context) error {
	if e.stop != nil {
		close(e.stop)
		<-e.done
		e.mu.Lock()
		e.flushPending(ctx)
		lost := e.series.Unwritten()
		e.mu.Unlock()
		if lost > 0 {
			e.logger.Warn("Shut down with kills not yet written to their events (rate limit or API errors)", zap.Int("kills", lost))
		}
	}
	e.tb.Shutdown()
	return nil
}

// flushLoop writes series the rate limit deferred and forgets series
// whose window has passed. It sleeps while neither is due: push kicks it
// when kills arrive, and it then wakes flush_interval later, again every
// flush_interval while writes wait for the rate limit, and when the first
// written series' window ends. With no series it does not wake at all.
func (e *eventsExporter) flushLoop() {
	defer close(e.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var due time.Time // when the timer fires; zero: not set
	arm := func(d time.Duration) {
		if at := time.Now().Add(d); due.IsZero() || at.Before(due) {
			timer.Reset(d)
			due = at
		}
	}
	for {
		select {
		case <-e.stop:
			timer.Stop()
			return
		case <-e.kick:
			arm(e.cfg.FlushInterval)
		case <-timer.C:
			due = time.Time{}
			e.wakeups.Add(1)
			if d, ok := e.flushAndSweep(); ok {
				arm(d)
			}
		}
	}
}

// flushAndSweep writes deferred series and forgets ended ones, and says
// how long the loop may then sleep (ok false: until kicked). Sweeps come
// no more often than flush_interval, so series ending close together are
// forgotten in one wake-up.
func (e *eventsExporter) flushAndSweep() (time.Duration, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeout)
	defer cancel()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.flushPending(ctx)
	now := e.now()
	e.series.Sweep(now)
	if e.series.HasPending() {
		return e.cfg.FlushInterval, true
	}
	if end, ok := e.series.NextExpiry(); ok {
		// Sweep forgets a series strictly after its window's end.
		return max(e.cfg.FlushInterval, end.Sub(now)+time.Millisecond), true
	}
	return 0, false
}

func (e *eventsExporter) flushPending(ctx context.Context) {
	for _, s := range e.series.Pending() {
		if err := e.flush(ctx, s); err != nil {
			e.logger.Debug("Deferred event write failed; will retry", zap.Error(err))
		}
	}
}

// push is the exporter helper's callback. A retryable error makes the
// queue deliver the batch again; kill IDs already counted are then only
// flushed, not counted again.
func (e *eventsExporter) push(ctx context.Context, ld plog.Logs) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var touched []*aggregate.Series
	touch := func(s *aggregate.Series) {
		for _, t := range touched {
			if t == s {
				return
			}
		}
		touched = append(touched, s)
	}
	for i := 0; i < ld.ResourceLogs().Len(); i++ {
		rl := ld.ResourceLogs().At(i)
		for j := 0; j < rl.ScopeLogs().Len(); j++ {
			lrs := rl.ScopeLogs().At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				kl, ok := kill.FromRecord(rl.Resource().Attributes(), lrs.At(k))
				if !ok {
					continue
				}
				if s := e.series.Add(ctx, kl); s != nil {
					touch(s)
				}
			}
		}
	}
	if len(touched) > 0 {
		select {
		case e.kick <- struct{}{}:
		default: // a kick is already waiting
		}
	}
	var errs []error
	for _, s := range touched {
		if err := e.flush(ctx, s); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	e.status.Record(causeWrite, err, "Writing Kubernetes Events failed; the batch is retried")
	return err
}

// bucketKey names the series' per-pod bucket (per node for Node events).
func bucketKey(s *aggregate.Series) string {
	return s.Key.Namespace + "/" + s.Key.Pod + "/" + s.Key.Node
}

// flush writes the series' kills when the rate limit allows, else defers
// them to a later flush. Errors returned are retryable; everything else
// is settled (written, deferred, or dropped and counted).
func (e *eventsExporter) flush(ctx context.Context, s *aggregate.Series) error {
	if !s.Pending() {
		return nil
	}
	if !e.limiter.Allow(bucketKey(s), e.now()) {
		if !s.Deferred {
			s.Deferred = true
			e.tb.K8seventsRateLimited.Add(ctx, 1)
		}
		return nil
	}
	s.Deferred = false
	return e.writer.Write(ctx, s)
}
