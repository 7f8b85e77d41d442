// Package apiwriter is the only code of the exporter that talks to the
// Kubernetes API. It brings a series' Event up to date: reads the pod
// before the first Event (verify_pod), creates the Event, patches its
// count, sorts a failed write into "retry" or "give up", and counts every
// request by outcome.
package apiwriter

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/collector/consumer/consumererror"
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
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/metadata"
)

// ForbiddenGrace is how long Forbidden is retried before a series is
// given up: long enough for a restarted API server, short enough that a
// missing RBAC rule does not mean writes for ever.
const ForbiddenGrace = 2 * time.Minute

// The requests counted in k8sevents_api_requests (the request attribute,
// declared in metadata.yaml).
const (
	RequestGetPod = "get_pod"
	RequestCreate = "create"
	RequestPatch  = "patch"
)

// Options are the writer's settings.
type Options struct {
	// VerifyPod reads the pod before a series' first Event.
	VerifyPod bool
	Builder   event.Builder
	Now       func() time.Time
}

// Writer writes series' Events. Not safe for concurrent use.
type Writer struct {
	client kubernetes.Interface
	table  *aggregate.Table // where series that cannot be written are given up
	opts   Options
	tb     *metadata.TelemetryBuilder
	logger *zap.Logger
	// podCheckOff: reading pods is forbidden; Events are written unchecked.
	podCheckOff bool
}

// New returns a writer that talks to the API through client.
func New(client kubernetes.Interface, table *aggregate.Table, opts Options, tb *metadata.TelemetryBuilder, logger *zap.Logger) *Writer {
	return &Writer{client: client, table: table, opts: opts, tb: tb, logger: logger}
}

// Write brings the series' Event up to date: creates it, or patches its
// series count. Errors returned are retryable; everything else is
// settled here (written, or given up and counted).
func (w *Writer) Write(ctx context.Context, s *aggregate.Series) error {
	if s.Written == 0 {
		return w.create(ctx, s)
	}
	return w.patch(ctx, s)
}

func (w *Writer) create(ctx context.Context, s *aggregate.Series) error {
	if w.opts.VerifyPod && !w.podCheckOff && !s.Verified && s.Key.Node == "" {
		pod, err := w.client.CoreV1().Pods(s.Key.Namespace).Get(ctx, s.Key.Pod, metav1.GetOptions{})
		w.request(ctx, RequestGetPod, err)
		switch {
		case err == nil:
			if s.Key.PodUID != "" && string(pod.UID) != s.Key.PodUID {
				w.table.Abandon(ctx, s, aggregate.DropPodDeleted, fmt.Errorf("pod %s/%s was replaced (UID %s, the kill's %s)", s.Key.Namespace, s.Key.Pod, pod.UID, s.Key.PodUID))
				return nil
			}
		case apierrors.IsNotFound(err):
			w.table.Abandon(ctx, s, aggregate.DropPodDeleted, err)
			return nil
		case apierrors.IsForbidden(err):
			w.podCheckOff = true
			w.logger.Warn("verify_pod: reading pods is forbidden; writing events without checking the pod (grant get on pods, or set verify_pod: false)", zap.Error(err))
		default:
			return retryable(err)
		}
		s.Verified = true
	}
	_, err := w.client.EventsV1().Events(s.Key.Namespace).Create(ctx, w.opts.Builder.Build(s.Event()), metav1.CreateOptions{})
	w.request(ctx, RequestCreate, err)
	switch {
	case err == nil:
		s.Written = s.Count
		w.tb.K8seventsEventsCreated.Add(ctx, 1)
		return nil
	case apierrors.IsAlreadyExists(err):
		// Our name for this series' first kill: a create whose answer was
		// lost, or a restart. Bring its count up to ours.
		s.Written = 1
		if s.Count > 1 {
			return w.patch(ctx, s)
		}
		return nil
	}
	return w.settle(ctx, s, err)
}

func (w *Writer) patch(ctx context.Context, s *aggregate.Series) error {
	body, err := event.SeriesPatch(s.Count, s.Latest.Time)
	if err != nil {
		return consumererror.NewPermanent(err)
	}
	_, err = w.client.EventsV1().Events(s.Key.Namespace).Patch(ctx, s.Name, types.MergePatchType, body, metav1.PatchOptions{})
	w.request(ctx, RequestPatch, err)
	switch {
	case err == nil:
		s.Written = s.Count
		w.tb.K8seventsEventsUpdated.Add(ctx, 1)
		return nil
	case apierrors.IsNotFound(err):
		// The event expired (the API server keeps events 1h) or was
		// deleted: the kills not yet written start a new one.
		s.Restart()
		return w.create(ctx, s)
	}
	return w.settle(ctx, s, err)
}

// settle sorts a failed write: gone namespaces and rejected events are
// dropped for good, anything else is retried by the exporter helper.
func (w *Writer) settle(ctx context.Context, s *aggregate.Series, err error) error {
	switch {
	case apierrors.IsNotFound(err), apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		w.table.Abandon(ctx, s, aggregate.DropNamespaceGone, err)
		return nil
	case apierrors.IsForbidden(err):
		now := w.opts.Now()
		if s.ForbiddenSince.IsZero() {
			s.ForbiddenSince = now
		}
		if now.Sub(s.ForbiddenSince) < ForbiddenGrace {
			// Said once per failing spell by the exporter's status, not per retry.
			return retryable(fmt.Errorf("the API server forbids writing events; retried for %v (an API server that just started may refuse until its RBAC caches are filled): %w", ForbiddenGrace, err))
		}
		w.logger.Error("The API server forbids writing events: grant create and patch on events.k8s.io events (examples/kubernetes/01-rbac.yaml)", zap.Error(err))
		w.table.Abandon(ctx, s, aggregate.DropRejected, err)
		return nil
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsMethodNotSupported(err):
		w.table.Abandon(ctx, s, aggregate.DropRejected, err)
		return nil
	}
	return retryable(err)
}

func retryable(err error) error {
	return fmt.Errorf("kubernetes API: %w", err)
}

// request counts one API request by its outcome: "ok", or the API's
// reason for the error in lower case ("notfound", "forbidden", ...), or
// "error" when there is none (connection refused, timeouts).
func (w *Writer) request(ctx context.Context, request string, err error) {
	outcome := "ok"
	if err != nil {
		outcome = strings.ToLower(string(apierrors.ReasonForError(err)))
		if outcome == "" {
			outcome = "error"
		}
	}
	w.tb.K8seventsAPIRequests.Add(ctx, 1, metric.WithAttributes(attribute.String("request", request), attribute.String("outcome", outcome)))
}
