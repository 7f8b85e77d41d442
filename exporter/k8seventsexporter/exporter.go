package k8seventsexporter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/aggregate"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/event"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/kill"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/metadata"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/ratelimit"
)

// forbiddenGrace is how long Forbidden is retried before a series is
// given up: long enough for a restarted API server, short enough that
// a missing RBAC rule does not mean writes for ever.
const forbiddenGrace = 2 * time.Minute

type eventsExporter struct {
	cfg       *Config
	logger    *zap.Logger
	tb        *metadata.TelemetryBuilder
	newClient func(*Config) (kubernetes.Interface, error)
	client    kubernetes.Interface
	host      component.Host
	builder   event.Builder
	now       func() time.Time

	mu           sync.Mutex
	series       *aggregate.Table
	limiter      *ratelimit.Limiter
	podCheckOff  bool
	statusFailed bool

	stop chan struct{}
	done chan struct{}
}

func newExporter(cfg *Config, set exporter.Settings, newClient func(*Config) (kubernetes.Interface, error)) (*eventsExporter, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	hn, _ := os.Hostname()
	e := &eventsExporter{
		cfg: cfg, logger: set.Logger, tb: tb, newClient: newClient, now: time.Now,
		builder: event.Builder{Controller: cfg.ReportingController, Instance: cfg.ReportingInstance, Hostname: hn},
		series: aggregate.New(aggregate.Options{
			Window: cfg.Aggregation.Window, MaxSeries: cfg.Aggregation.MaxSeries, MaxKillIDs: cfg.Aggregation.MaxKillIDs, NodeEvents: cfg.NodeEvents,
		}, tb, set.Logger),
		limiter: ratelimit.New(ratelimit.Bucket(cfg.RateLimit.PerPod), ratelimit.Bucket(cfg.RateLimit.Total), cfg.RateLimit.MaxPods),
	}
	return e, nil
}

func (e *eventsExporter) start(_ context.Context, host component.Host) error {
	c, err := e.newClient(e.cfg)
	if err != nil {
		return err
	}
	e.client, e.host = c, host
	e.stop, e.done = make(chan struct{}), make(chan struct{})
	go e.flushLoop() //nolint:gosec // G118: Start's context ends with Start; the loop runs until Shutdown
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

// flushLoop writes series updates the rate limit deferred and forgets
// series that ended.
func (e *eventsExporter) flushLoop() {
	defer close(e.done)
	t := time.NewTicker(e.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeout)
			e.mu.Lock()
			e.flushPending(ctx)
			e.series.Sweep(e.now())
			e.mu.Unlock()
			cancel()
		}
	}
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
	var errs []error
	for _, s := range touched {
		if err := e.flush(ctx, s); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	e.reportStatus(err)
	return err
}

// bucketKey names the series' per-pod bucket (per node for Node events).
func bucketKey(s *aggregate.Series) string {
	return s.Key.Namespace + "/" + s.Key.Pod + "/" + s.Key.Node
}

// flush brings the series' event up to date: create it, or patch its
// series count. Errors returned are retryable; everything else is
// settled here (written, deferred, or dropped and counted).
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
	if s.Written == 0 {
		return e.create(ctx, s)
	}
	return e.patch(ctx, s)
}

func (e *eventsExporter) create(ctx context.Context, s *aggregate.Series) error {
	if e.cfg.VerifyPod && !e.podCheckOff && !s.Verified && s.Key.Node == "" {
		pod, err := e.client.CoreV1().Pods(s.Key.Namespace).Get(ctx, s.Key.Pod, metav1.GetOptions{})
		e.request(ctx, "get_pod", err)
		switch {
		case err == nil:
			if s.Key.PodUID != "" && string(pod.UID) != s.Key.PodUID {
				e.series.Abandon(ctx, s, aggregate.DropPodDeleted, fmt.Errorf("pod %s/%s was replaced (UID %s, the kill's %s)", s.Key.Namespace, s.Key.Pod, pod.UID, s.Key.PodUID))
				return nil
			}
		case apierrors.IsNotFound(err):
			e.series.Abandon(ctx, s, aggregate.DropPodDeleted, err)
			return nil
		case apierrors.IsForbidden(err):
			e.podCheckOff = true
			e.logger.Warn("verify_pod: reading pods is forbidden; writing events without checking the pod (grant get on pods, or set verify_pod: false)", zap.Error(err))
		default:
			return e.retryable(err)
		}
		s.Verified = true
	}
	_, err := e.client.EventsV1().Events(s.Key.Namespace).Create(ctx, e.builder.Build(s.Event()), metav1.CreateOptions{})
	e.request(ctx, "create", err)
	switch {
	case err == nil:
		s.Written = s.Count
		e.tb.K8seventsEventsCreated.Add(ctx, 1)
		return nil
	case apierrors.IsAlreadyExists(err):
		// Our name for this series' first kill: a create whose answer was
		// lost, or a restart. Bring its count up to ours.
		s.Written = 1
		if s.Count > 1 {
			return e.patch(ctx, s)
		}
		return nil
	}
	return e.settle(ctx, s, err)
}

func (e *eventsExporter) patch(ctx context.Context, s *aggregate.Series) error {
	body, err := event.SeriesPatch(s.Count, s.Latest.Time)
	if err != nil {
		return consumererror.NewPermanent(err)
	}
	_, err = e.client.EventsV1().Events(s.Key.Namespace).Patch(ctx, s.Name, types.MergePatchType, body, metav1.PatchOptions{})
	e.request(ctx, "patch", err)
	switch {
	case err == nil:
		s.Written = s.Count
		e.tb.K8seventsEventsUpdated.Add(ctx, 1)
		return nil
	case apierrors.IsNotFound(err):
		// The event expired (the API server keeps events 1h) or was
		// deleted: the kills not yet written start a new one.
		s.Restart()
		return e.create(ctx, s)
	}
	return e.settle(ctx, s, err)
}

// settle sorts a failed write: gone namespaces and rejected events are
// dropped for good, anything else is retried by the exporter helper.
func (e *eventsExporter) settle(ctx context.Context, s *aggregate.Series, err error) error {
	switch {
	case apierrors.IsNotFound(err), apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		e.series.Abandon(ctx, s, aggregate.DropNamespaceGone, err)
		return nil
	case apierrors.IsForbidden(err):
		now := e.now()
		if s.ForbiddenSince.IsZero() {
			s.ForbiddenSince = now
		}
		if now.Sub(s.ForbiddenSince) < forbiddenGrace {
			e.logger.Warn("The API server forbids writing events; retrying (an API server that just started may refuse until its RBAC caches are filled)", zap.Error(err))
			return e.retryable(err)
		}
		e.logger.Error("The API server forbids writing events: grant create and patch on events.k8s.io events (examples/kubernetes/01-rbac.yaml)", zap.Error(err))
		e.series.Abandon(ctx, s, aggregate.DropRejected, err)
		return nil
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsMethodNotSupported(err):
		e.series.Abandon(ctx, s, aggregate.DropRejected, err)
		return nil
	}
	return e.retryable(err)
}

func (e *eventsExporter) retryable(err error) error {
	return fmt.Errorf("kubernetes API: %w", err)
}

func (e *eventsExporter) request(ctx context.Context, verb string, err error) {
	outcome := "ok"
	if err != nil {
		outcome = strings.ToLower(string(apierrors.ReasonForError(err)))
		if outcome == "" {
			outcome = "error"
		}
	}
	e.tb.K8seventsAPIRequests.Add(ctx, 1, metric.WithAttributes(attribute.String("request", verb), attribute.String("outcome", outcome)))
}

func (e *eventsExporter) reportStatus(err error) {
	if e.host == nil {
		return
	}
	switch {
	case err != nil && !e.statusFailed:
		e.statusFailed = true
		componentstatus.ReportStatus(e.host, componentstatus.NewRecoverableErrorEvent(err))
	case err == nil && e.statusFailed:
		e.statusFailed = false
		componentstatus.ReportStatus(e.host, componentstatus.NewEvent(componentstatus.StatusOK))
	}
}
