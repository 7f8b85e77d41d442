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
	"go.opentelemetry.io/otel/attribute"
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
	attrs     attributeSwitch
	// now is the clock of the store's grace periods (tests set it).
	now func() time.Time

	store   *podstore.Store
	watcher *kube.Watcher
	// id and keeper: the identities kept in the storage extension, if any.
	id     component.ID
	keeper *identityKeeper
	// waiting is a semaphore bounding batches held for unknown IDs.
	waiting chan struct{}

	// answered signals a list or watch the API server answered.
	answered chan struct{}
	stop     chan struct{}
	wg       sync.WaitGroup
	// sweeps counts the sweeps of gone pods (tests of idleness).
	sweeps atomic.Int64
	// reportMu guards what report keeps: the forgotten IDs last counted,
	// the evictions not logged yet, and when evictions were last logged.
	reportMu                    sync.Mutex
	reportedForgotten           podstore.Forgotten
	unloggedPodCap, unloggedCap uint64
	lastEvictionLog             time.Time
}

func newK8smeta(cfg *Config, set processor.Settings, newClient func(*Config) (kubernetes.Interface, error)) (*k8smeta, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	p := &k8smeta{
		cfg: cfg, logger: set.Logger, tb: tb, newClient: newClient, status: status.New(set.Logger),
		attrs: newAttributeSwitch(cfg.ResourceAttributes), now: time.Now, id: set.ID,
		waiting: make(chan struct{}, cfg.MaxWaitingBatches), answered: make(chan struct{}, 1),
	}
	store := podstore.New(podstore.Options{
		Labels: cfg.Extract.Labels, Annotations: cfg.Extract.Annotations, Grace: cfg.DeletedPodGrace,
		MaxGonePerPod: cfg.GoneContainers.MaxPerPod, MaxGone: cfg.GoneContainers.Max, MaxGivenUp: cfg.GoneContainers.MaxGivenUp,
		Now: func() time.Time { return p.now() },
	})
	p.store = store
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
	return p, nil
}

// Start begins watching pods. A bad client configuration fails startup; an
// API server that is slow or down does not: after sync_timeout the
// collector starts, records pass through unenriched, and the watch keeps
// retrying on its own.
func (p *k8smeta) Start(ctx context.Context, host component.Host) error {
	client, err := p.newClient(p.cfg)
	if err != nil {
		return err
	}
	if p.cfg.Storage != nil {
		// Before the watch: an ID keeps the identity it had before.
		if p.keeper, err = openIdentityKeeper(ctx, host, *p.cfg.Storage, p.id, p.logger); err != nil {
			return err
		}
		p.keeper.restore(ctx, p.store)
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

// sweepLoop forgets deleted pods and departed container IDs once nobody
// asked about them for deleted_pod_grace, which bounds memory; it counts
// (and logs) what was forgotten, and saves the identities (storage) a
// slack after they changed. It sleeps while nothing is gone; a sweep
// forgets everything whose grace ended within a slack after the first, so
// pods deleted together cost one wake-up.
func (p *k8smeta) sweepLoop() {
	slack := min(p.cfg.DeletedPodGrace/4, 30*time.Second)
	sweep, save := time.NewTimer(time.Hour), time.NewTimer(time.Hour)
	sweep.Stop()
	save.Stop()
	armed, saving := false, false
	scheduleSave := func() {
		if p.keeper != nil && !saving && p.keeper.pending(p.store) {
			save.Reset(slack)
			saving = true
		}
	}
	for {
		select {
		case <-p.stop:
			sweep.Stop()
			save.Stop()
			return
		case <-p.store.Gone():
			p.report()  // the caps evict when IDs go
			if !armed { // when armed, the timer is due before this one's grace ends
				sweep.Reset(p.cfg.DeletedPodGrace + slack)
				armed = true
			}
			scheduleSave()
		case <-sweep.C:
			armed = false
			p.sweep()
			// A lookup since pushes the expiry: the timer follows.
			if next, ok := p.store.NextExpiry(); ok {
				sweep.Reset(next.Sub(p.now()) + slack)
				armed = true
			}
			scheduleSave()
		case <-save.C:
			saving = false
			p.keeper.save(context.Background(), p.store)
		}
	}
}

// sweep forgets the gone pods and container IDs nobody asked about for the
// grace period, and counts them.
func (p *k8smeta) sweep() {
	p.sweeps.Add(1)
	p.store.Sweep(p.now())
	p.report()
}

// report counts the container IDs forgotten since it last ran, and logs
// evictions, at most once a minute (the counts add up meanwhile).
func (p *k8smeta) report() {
	p.reportMu.Lock()
	defer p.reportMu.Unlock()
	is := p.store.Stats().Forgotten
	was := p.reportedForgotten
	p.reportedForgotten = is
	ctx := context.Background()
	for _, f := range []struct {
		reason string
		n      uint64
	}{{"expired", is.Expired - was.Expired}, {"pod_cap", is.PodCap - was.PodCap}, {"cap", is.Cap - was.Cap}} {
		if f.n > 0 {
			p.tb.K8smetaContainersForgotten.Add(ctx, int64(f.n), metric.WithAttributes(attribute.String("reason", f.reason)))
		}
	}
	p.unloggedPodCap += is.PodCap - was.PodCap
	p.unloggedCap += is.Cap - was.Cap
	if p.unloggedPodCap+p.unloggedCap == 0 || time.Since(p.lastEvictionLog) < time.Minute {
		return
	}
	p.logger.Warn("Forgot container IDs still in use: records naming them now get only their pod's attributes, a new series; raise gone_containers.max_per_pod or gone_containers.max",
		zap.Uint64("by_max_per_pod", p.unloggedPodCap), zap.Uint64("by_max", p.unloggedCap),
		zap.Int("max_per_pod", p.cfg.GoneContainers.MaxPerPod), zap.Int("max", p.cfg.GoneContainers.Max),
		zap.String("last_pod", is.LastEvictedPod))
	p.unloggedPodCap, p.unloggedCap, p.lastEvictionLog = 0, 0, time.Now()
}

// Shutdown stops the watch and saves the identities.
func (p *k8smeta) Shutdown(ctx context.Context) error {
	var err error
	if p.stop != nil {
		close(p.stop)
		p.wg.Wait()
		p.watcher.Stop()
		p.stop = nil
	}
	if p.keeper != nil {
		p.keeper.save(ctx, p.store)
		err = p.keeper.close(ctx)
		p.keeper = nil
	}
	p.tb.Shutdown()
	return err
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
