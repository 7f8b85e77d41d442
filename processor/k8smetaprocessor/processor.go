package k8smetaprocessor

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-oomkill/otelcol-oomkill/internal/status"
	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/kube"
	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/metadata"
	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/podstore"
)

// Causes of a failing status (internal/status): the component is OK again
// once none of them fails.
const (
	// causeSync: the first pod list has not finished; records pass
	// through unenriched.
	causeSync = "pod_sync"
	// causeWatch: the last pod list or watch failed; the informer retries
	// and records are enriched from the pods already seen.
	causeWatch = "pod_watch"
)

type k8smeta struct {
	cfg       *Config
	logger    *zap.Logger
	tb        *metadata.TelemetryBuilder
	newClient func(*Config) (kubernetes.Interface, error)
	status    *status.Reporter

	store   *podstore.Store
	watcher *kube.Watcher
	// waiting is a semaphore bounding batches held for unknown IDs.
	waiting chan struct{}

	// answered signals a list or watch the API server answered.
	answered chan struct{}
	stop     chan struct{}
	wg       sync.WaitGroup
	// sweeps counts the sweeps of gone pods (tests of idleness).
	sweeps atomic.Int64
}

func newK8smeta(cfg *Config, set processor.Settings, newClient func(*Config) (kubernetes.Interface, error)) (*k8smeta, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	store := podstore.New(podstore.Options{
		Labels: cfg.Extract.Labels, Annotations: cfg.Extract.Annotations, Grace: cfg.DeletedPodGrace,
	})
	// The cache sizes are read when the metrics are collected.
	err = errors.Join(
		tb.RegisterK8smetaCachedPodsCallback(func(_ context.Context, o metric.Int64Observer) error {
			pods, _ := store.Sizes()
			o.Observe(int64(pods))
			return nil
		}),
		tb.RegisterK8smetaCachedContainersCallback(func(_ context.Context, o metric.Int64Observer) error {
			_, containers := store.Sizes()
			o.Observe(int64(containers))
			return nil
		}),
	)
	if err != nil {
		return nil, err
	}
	return &k8smeta{
		cfg: cfg, logger: set.Logger, tb: tb, newClient: newClient, store: store, status: status.New(set.Logger),
		waiting: make(chan struct{}, cfg.MaxWaitingBatches), answered: make(chan struct{}, 1),
	}, nil
}

// Start begins watching pods. A bad client configuration fails startup; an
// API server that is slow or down does not: after sync_timeout the
// collector starts, records pass through unenriched, and the watch keeps
// retrying on its own.
func (p *k8smeta) Start(_ context.Context, host component.Host) error {
	client, err := p.newClient(p.cfg)
	if err != nil {
		return err
	}
	p.status.SetHost(host)
	p.watcher, err = kube.NewWatcher(client, kube.WatchOptions{
		NodeName: p.cfg.NodeName, Labels: p.cfg.Extract.Labels, Annotations: p.cfg.Extract.Annotations,
		Failed: func(err error) {
			p.status.Fail(causeWatch, err, "Kubernetes pod watch failed; retrying (records are enriched from the pods already seen)")
		},
		Works: func() {
			p.status.Clear(causeWatch)
			select {
			case p.answered <- struct{}{}:
			default: // a signal is already waiting
			}
		},
	}, p.store, p.logger)
	if err != nil {
		return err
	}
	p.stop = make(chan struct{})
	scope := "cluster-wide"
	if p.cfg.NodeName != "" {
		scope = "node " + p.cfg.NodeName
	}
	if err := p.watcher.Start(p.cfg.SyncTimeout); errors.Is(err, kube.ErrNotSynced) {
		p.status.Fail(causeSync, err, "Kubernetes API not reachable yet: records pass through unenriched until the pod watch syncs",
			zap.Duration("waited", p.cfg.SyncTimeout), zap.String("scope", scope))
		p.wg.Go(func() {
			// The sync follows the first list the API server answers:
			// wait for that rather than poll all through an outage.
			select {
			case <-p.stop:
				return
			case <-p.answered:
			}
			if p.watcher.WaitForSync(p.stop) {
				p.logger.Info("Pod watch synced; enriching records")
				p.status.Clear(causeSync)
			}
		})
	} else {
		p.logger.Info("Watching pods", zap.String("scope", scope))
	}
	p.wg.Go(p.sweepLoop)
	return nil
}

// sweepLoop forgets deleted pods and departed container IDs once their
// deleted_pod_grace has passed, which bounds memory. It sleeps while
// nothing is gone; a sweep forgets everything whose grace ended within a
// slack after the first, so pods deleted together cost one wake-up.
func (p *k8smeta) sweepLoop() {
	slack := min(p.cfg.DeletedPodGrace/4, 30*time.Second)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	for {
		select {
		case <-p.stop:
			timer.Stop()
			return
		case <-p.store.Gone():
			if !armed { // when armed, the timer is due before this one's grace ends
				timer.Reset(p.cfg.DeletedPodGrace + slack)
				armed = true
			}
		case <-timer.C:
			armed = false
			p.sweeps.Add(1)
			p.store.Sweep(time.Now())
			if next, ok := p.store.NextExpiry(); ok {
				timer.Reset(time.Until(next) + slack)
				armed = true
			}
		}
	}
}

// Shutdown stops the watch.
func (p *k8smeta) Shutdown(context.Context) error {
	if p.stop != nil {
		close(p.stop)
		p.wg.Wait()
		p.watcher.Stop()
		p.stop = nil
	}
	p.tb.Shutdown()
	return nil
}

func (p *k8smeta) processLogs(ctx context.Context, ld plog.Logs) (plog.Logs, error) {
	rls := ld.ResourceLogs()
	res := make([]pcommon.Resource, rls.Len())
	for i := range res {
		res[i] = rls.At(i).Resource()
	}
	p.enrich(ctx, res)
	return ld, nil
}

func (p *k8smeta) processMetrics(ctx context.Context, md pmetric.Metrics) (pmetric.Metrics, error) {
	rms := md.ResourceMetrics()
	res := make([]pcommon.Resource, rms.Len())
	for i := range res {
		res[i] = rms.At(i).Resource()
	}
	p.enrich(ctx, res)
	return md, nil
}

func (p *k8smeta) processTraces(ctx context.Context, td ptrace.Traces) (ptrace.Traces, error) {
	rss := td.ResourceSpans()
	res := make([]pcommon.Resource, rss.Len())
	for i := range res {
		res[i] = rss.At(i).Resource()
	}
	p.enrich(ctx, res)
	return td, nil
}
