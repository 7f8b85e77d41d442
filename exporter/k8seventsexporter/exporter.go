package k8seventsexporter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/lru"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/metadata"
)

const (
	eventReason = "OOMKilling" // node-problem-detector's reason for the same kernel event
	eventAction = "OOMKill"
	// maxReportingInstance is the Events API's limit.
	maxReportingInstance = 128
	// nodeEventNamespace is where Node events go, as the kubelet posts them.
	nodeEventNamespace = "default"
	// forbiddenGrace is how long Forbidden is retried before a series is
	// given up: long enough for a restarted API server, short enough that
	// a missing RBAC rule does not mean writes for ever.
	forbiddenGrace = 2 * time.Minute
)

// Reasons a kill is written to no event (the kills_dropped reason attribute).
const (
	dropNoPod         = "no_pod"
	dropPodDeleted    = "pod_deleted"
	dropNamespaceGone = "namespace_gone"
	dropRejected      = "rejected"
	dropEvicted       = "evicted"
	dropQueueFull     = "queue_full"
)

// seriesKey groups kills into one event: same pod (or node), container,
// process name, limit and outcome. The note, immutable in events.k8s.io/v1,
// is then true of every kill in the series but the pid and sizes.
type seriesKey struct {
	Namespace, Pod, PodUID, Container string
	Node                              string // set for Node events only
	Process, Outcome                  string
	Scope                             limitScope
}

// series is one event and the kills it counts.
type series struct {
	key      seriesKey
	name     string
	first    kill // the kill the note describes; its time is the eventTime
	latest   kill
	count    int // kills observed
	written  int // kills the API's event holds; 0: not created yet
	dead     string
	verified bool
	deferred bool
	// forbiddenSince is the first Forbidden answer: an API server that
	// just started refuses until its RBAC caches are filled.
	forbiddenSince time.Time
}

func (s *series) pending() bool { return s.dead == "" && s.count > s.written }

type eventsExporter struct {
	cfg       *Config
	logger    *zap.Logger
	tb        *metadata.TelemetryBuilder
	newClient func(*Config) (kubernetes.Interface, error)
	client    kubernetes.Interface
	host      component.Host
	hostname  string
	now       func() time.Time

	mu           sync.Mutex
	series       *lru.Cache[seriesKey, *series]
	seen         *lru.Cache[string, seriesKey]
	pods         *lru.Cache[string, *rate.Limiter]
	total        *rate.Limiter
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
		cfg: cfg, logger: set.Logger, tb: tb, newClient: newClient, hostname: hn, now: time.Now,
		seen:  lru.New[string, seriesKey](cfg.Aggregation.MaxKillIDs, nil),
		pods:  lru.New[string, *rate.Limiter](cfg.RateLimit.MaxPods, nil),
		total: rate.NewLimiter(rate.Limit(cfg.RateLimit.Total.QPS), cfg.RateLimit.Total.Burst),
	}
	e.series = lru.New[seriesKey, *series](cfg.Aggregation.MaxSeries, func(_ seriesKey, s *series) {
		if s.pending() {
			e.drop(context.Background(), s.count-s.written, dropEvicted)
			e.logger.Warn("Event series forgotten (aggregation.max_series) before its kills were written",
				zap.String("namespace", s.key.Namespace), zap.String("pod", s.key.Pod), zap.Int("kills", s.count-s.written))
		}
	})
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
		lost := 0
		e.series.Each(func(_ seriesKey, s *series) {
			if s.pending() {
				lost += s.count - s.written
			}
		})
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
			e.sweep()
			e.mu.Unlock()
			cancel()
		}
	}
}

func (e *eventsExporter) flushPending(ctx context.Context) {
	var todo []*series
	e.series.Each(func(_ seriesKey, s *series) {
		if s.pending() {
			todo = append(todo, s)
		}
	})
	for _, s := range todo {
		if err := e.flush(ctx, s); err != nil {
			e.logger.Debug("Deferred event write failed; will retry", zap.Error(err))
		}
	}
}

// sweep forgets written series whose window has passed.
func (e *eventsExporter) sweep() {
	cutoff := e.now().Add(-e.cfg.Aggregation.Window)
	var old []seriesKey
	e.series.Each(func(k seriesKey, s *series) {
		if !s.pending() && s.latest.Time.Before(cutoff) {
			old = append(old, k)
		}
	})
	for _, k := range old {
		e.series.Remove(k)
	}
}

// push is the exporter helper's callback. A retryable error makes the
// queue deliver the batch again; kill IDs already counted are then only
// flushed, not counted again.
func (e *eventsExporter) push(ctx context.Context, ld plog.Logs) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var touched []*series
	touch := func(s *series) {
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
				kl, ok := killFromRecord(rl.Resource().Attributes(), lrs.At(k))
				if !ok {
					continue
				}
				if s := e.add(ctx, kl); s != nil {
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

// add counts a kill into its series (once per kill ID) and returns the
// series to write, or nil.
func (e *eventsExporter) add(ctx context.Context, k kill) *series {
	if key, ok := e.seen.Get(k.ID); ok {
		e.tb.K8seventsDedupHits.Add(ctx, 1)
		if s, ok := e.series.Get(key); ok && key != (seriesKey{}) {
			return s
		}
		return nil
	}
	key, ok := e.keyOf(k)
	if !ok {
		e.seen.Put(k.ID, seriesKey{})
		e.drop(ctx, 1, dropNoPod)
		return nil
	}
	e.seen.Put(k.ID, key)
	s, ok := e.series.Get(key)
	switch {
	case ok && (s.written == 0 || k.Time.Sub(s.latest.Time) <= e.cfg.Aggregation.Window):
		s.count++
		if !k.Time.Before(s.latest.Time) {
			s.latest = k
		}
		if s.dead != "" {
			e.drop(ctx, 1, s.dead)
			return nil
		}
		e.tb.K8seventsKillsAggregated.Add(ctx, 1)
	default:
		if ok && s.pending() {
			e.drop(ctx, s.count-s.written, dropEvicted)
		}
		s = &series{key: key, first: k, latest: k, count: 1}
		s.name = eventObjectName(s)
		e.series.Put(key, s)
	}
	return s
}

func (e *eventsExporter) keyOf(k kill) (seriesKey, bool) {
	key := seriesKey{Process: k.Process, Outcome: k.Outcome, Scope: k.Scope}
	switch {
	case k.hasPod():
		key.Namespace, key.Pod, key.PodUID, key.Container = k.Namespace, k.PodName, k.PodUID, k.Container
	case e.cfg.NodeEvents && k.PodUID == "" && k.Node != "":
		key.Namespace, key.Node = nodeEventNamespace, k.Node
	default:
		return seriesKey{}, false
	}
	return key, true
}

func (e *eventsExporter) drop(ctx context.Context, n int, reason string) {
	e.tb.K8seventsKillsDropped.Add(ctx, int64(n), metric.WithAttributes(attribute.String("reason", reason)))
}

// abandon marks a series as never to be written: its kills, and later kills
// of the same key within the window, are dropped and counted.
func (e *eventsExporter) abandon(ctx context.Context, s *series, reason string, err error) {
	s.dead = reason
	e.drop(ctx, s.count-s.written, reason)
	e.logger.Info("Kill not written to a Kubernetes Event", zap.String("reason", reason),
		zap.String("namespace", s.key.Namespace), zap.String("pod", s.key.Pod), zap.String("node", s.key.Node),
		zap.Int("kills", s.count-s.written), zap.Error(err))
}

// allow takes one token from the series' pod bucket and the overall
// bucket, or none when either is empty.
func (e *eventsExporter) allow(s *series) bool {
	now := e.now()
	bk := s.key.Namespace + "/" + s.key.Pod + "/" + s.key.Node
	pl, ok := e.pods.Get(bk)
	if !ok {
		pl = rate.NewLimiter(rate.Limit(e.cfg.RateLimit.PerPod.QPS), e.cfg.RateLimit.PerPod.Burst)
		e.pods.Put(bk, pl)
	}
	if pl.TokensAt(now) < 1 || e.total.TokensAt(now) < 1 {
		return false
	}
	pl.AllowN(now, 1)
	e.total.AllowN(now, 1)
	return true
}

// flush brings the series' event up to date: create it, or patch its
// series count. Errors returned are retryable; everything else is
// settled here (written, deferred, or dropped and counted).
func (e *eventsExporter) flush(ctx context.Context, s *series) error {
	if !s.pending() {
		return nil
	}
	if !e.allow(s) {
		if !s.deferred {
			s.deferred = true
			e.tb.K8seventsRateLimited.Add(ctx, 1)
		}
		return nil
	}
	s.deferred = false
	if s.written == 0 {
		return e.create(ctx, s)
	}
	return e.patch(ctx, s)
}

func (e *eventsExporter) create(ctx context.Context, s *series) error {
	if e.cfg.VerifyPod && !e.podCheckOff && !s.verified && s.key.Node == "" {
		pod, err := e.client.CoreV1().Pods(s.key.Namespace).Get(ctx, s.key.Pod, metav1.GetOptions{})
		e.request(ctx, "get_pod", err)
		switch {
		case err == nil:
			if s.key.PodUID != "" && string(pod.UID) != s.key.PodUID {
				e.abandon(ctx, s, dropPodDeleted, fmt.Errorf("pod %s/%s was replaced (UID %s, the kill's %s)", s.key.Namespace, s.key.Pod, pod.UID, s.key.PodUID))
				return nil
			}
		case apierrors.IsNotFound(err):
			e.abandon(ctx, s, dropPodDeleted, err)
			return nil
		case apierrors.IsForbidden(err):
			e.podCheckOff = true
			e.logger.Warn("verify_pod: reading pods is forbidden; writing events without checking the pod (grant get on pods, or set verify_pod: false)", zap.Error(err))
		default:
			return e.retryable(err)
		}
		s.verified = true
	}
	_, err := e.client.EventsV1().Events(s.key.Namespace).Create(ctx, e.event(s), metav1.CreateOptions{})
	e.request(ctx, "create", err)
	switch {
	case err == nil:
		s.written = s.count
		e.tb.K8seventsEventsCreated.Add(ctx, 1)
		return nil
	case apierrors.IsAlreadyExists(err):
		// Our name for this series' first kill: a create whose answer was
		// lost, or a restart. Bring its count up to ours.
		s.written = 1
		if s.count > 1 {
			return e.patch(ctx, s)
		}
		return nil
	}
	return e.settle(ctx, s, err)
}

func (e *eventsExporter) patch(ctx context.Context, s *series) error {
	body, err := json.Marshal(map[string]any{"series": eventsv1.EventSeries{Count: int32(min(s.count, 1<<31-1)), LastObservedTime: metav1.NewMicroTime(s.latest.Time)}})
	if err != nil {
		return consumererror.NewPermanent(err)
	}
	_, err = e.client.EventsV1().Events(s.key.Namespace).Patch(ctx, s.name, types.MergePatchType, body, metav1.PatchOptions{})
	e.request(ctx, "patch", err)
	switch {
	case err == nil:
		s.written = s.count
		e.tb.K8seventsEventsUpdated.Add(ctx, 1)
		return nil
	case apierrors.IsNotFound(err):
		// The event expired (the API server keeps events 1h) or was
		// deleted: the kills not yet written start a new one.
		s.count -= s.written
		s.written = 0
		s.first = s.latest
		s.name = eventObjectName(s)
		return e.create(ctx, s)
	}
	return e.settle(ctx, s, err)
}

// settle sorts a failed write: gone namespaces and rejected events are
// dropped for good, anything else is retried by the exporter helper.
func (e *eventsExporter) settle(ctx context.Context, s *series, err error) error {
	switch {
	case apierrors.IsNotFound(err), apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		e.abandon(ctx, s, dropNamespaceGone, err)
		return nil
	case apierrors.IsForbidden(err):
		now := e.now()
		if s.forbiddenSince.IsZero() {
			s.forbiddenSince = now
		}
		if now.Sub(s.forbiddenSince) < forbiddenGrace {
			e.logger.Warn("The API server forbids writing events; retrying (an API server that just started may refuse until its RBAC caches are filled)", zap.Error(err))
			return e.retryable(err)
		}
		e.logger.Error("The API server forbids writing events: grant create and patch on events.k8s.io events (examples/kubernetes/01-rbac.yaml)", zap.Error(err))
		e.abandon(ctx, s, dropRejected, err)
		return nil
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsMethodNotSupported(err):
		e.abandon(ctx, s, dropRejected, err)
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

// event is the Event for a series' first write.
func (e *eventsExporter) event(s *series) *eventsv1.Event {
	k := s.first
	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: s.name, Namespace: s.key.Namespace},
		EventTime:           metav1.NewMicroTime(k.Time),
		ReportingController: e.cfg.ReportingController,
		ReportingInstance:   e.instance(k),
		Action:              eventAction,
		Reason:              eventReason,
		Type:                corev1.EventTypeWarning,
		Note:                note(k),
	}
	if s.key.Node != "" {
		ev.Regarding = corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: s.key.Node, UID: types.UID(s.key.Node)}
	} else {
		ev.Regarding = corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: s.key.Namespace, Name: s.key.Pod, UID: types.UID(s.key.PodUID)}
		if s.key.Container != "" {
			ev.Regarding.FieldPath = containerFieldPath(s.first.ContainerKind, s.key.Container)
		}
	}
	if s.count > 1 {
		ev.Series = &eventsv1.EventSeries{Count: int32(min(s.count, 1<<31-1)), LastObservedTime: metav1.NewMicroTime(s.latest.Time)}
	}
	return ev
}

func (e *eventsExporter) instance(k kill) string {
	if e.cfg.ReportingInstance != "" {
		return e.cfg.ReportingInstance
	}
	node := k.Node
	if node == "" {
		node = e.hostname
	}
	in := "otelcol-oomkill-" + node
	if len(in) > maxReportingInstance {
		in = in[:maxReportingInstance]
	}
	return in
}

// eventObjectName is stable for a series' first kill, so a create repeated
// after a lost answer or a restart finds the event it made.
func eventObjectName(s *series) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%+v\x00%s", s.key, s.first.ID)))
	base := s.key.Pod
	if s.key.Node != "" {
		base = s.key.Node
	}
	const suffix = 1 + 4 + 16 // ".oom-" + 16 hex
	if len(base) > 253-suffix {
		base = base[:253-suffix]
	}
	base = strings.TrimRight(base, "-.")
	if base == "" {
		base = "oomkill"
	}
	return base + ".oom-" + hex.EncodeToString(h[:8])
}
