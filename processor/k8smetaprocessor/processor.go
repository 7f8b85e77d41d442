package k8smetaprocessor

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/kube"
	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/metadata"
	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/podstore"
)

type k8smeta struct {
	cfg       *Config
	logger    *zap.Logger
	tb        *metadata.TelemetryBuilder
	newClient func(*Config) (kubernetes.Interface, error)
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

	stop, done chan struct{}
	// reportedPods and reportedContainers are the cache sizes last added
	// to the up-down counters; reportedForgotten what was last counted.
	reportedPods, reportedContainers int64
	reportedForgotten                podstore.Forgotten
}

func newK8smeta(cfg *Config, set processor.Settings, newClient func(*Config) (kubernetes.Interface, error)) (*k8smeta, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	p := &k8smeta{
		cfg: cfg, logger: set.Logger, tb: tb, newClient: newClient, attrs: newAttributeSwitch(cfg.ResourceAttributes),
		now:     time.Now,
		id:      set.ID,
		waiting: make(chan struct{}, cfg.MaxWaitingBatches),
	}
	p.store = podstore.New(podstore.Options{
		Labels: cfg.Extract.Labels, Annotations: cfg.Extract.Annotations, Grace: cfg.DeletedPodGrace,
		MaxGonePerPod: cfg.GoneContainers.MaxPerPod, MaxGone: cfg.GoneContainers.Max, MaxGivenUp: cfg.GoneContainers.MaxGivenUp,
		Now: func() time.Time { return p.now() },
	})
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
	p.watcher, err = kube.NewWatcher(client, p.cfg.NodeName, p.cfg.Extract.Labels, p.cfg.Extract.Annotations, p.store, p.logger)
	if err != nil {
		return err
	}
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	scope := "cluster-wide"
	if p.cfg.NodeName != "" {
		scope = "node " + p.cfg.NodeName
	}
	if err := p.watcher.Start(p.cfg.SyncTimeout); errors.Is(err, kube.ErrNotSynced) {
		p.logger.Warn("Kubernetes API not reachable yet: records pass through unenriched until the pod watch syncs",
			zap.Duration("waited", p.cfg.SyncTimeout), zap.String("scope", scope))
		componentstatus.ReportStatus(host, componentstatus.NewRecoverableErrorEvent(err))
	} else {
		p.logger.Info("Watching pods", zap.String("scope", scope))
	}
	go p.maintain(host) //nolint:gosec // Start's context is only for Start; the sweep lives until Shutdown
	return nil
}

// maintain sweeps expired pods, reports cache sizes, and reports OK once
// a late first sync happened.
func (p *k8smeta) maintain(host component.Host) {
	defer close(p.done)
	interval := min(p.cfg.DeletedPodGrace/4, 30*time.Second)
	t := time.NewTicker(interval)
	defer t.Stop()
	synced := p.watcher.HasSynced()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		if !synced && p.watcher.HasSynced() {
			synced = true
			p.logger.Info("Pod watch synced; enriching records")
			componentstatus.ReportStatus(host, componentstatus.NewEvent(componentstatus.StatusOK))
		}
		p.store.Sweep(p.now())
		p.report()
		if p.keeper != nil {
			p.keeper.save(context.Background(), p.store)
		}
	}
}

// report updates the cache sizes and counts (and logs) forgotten IDs.
func (p *k8smeta) report() {
	st := p.store.Stats()
	ctx := context.Background()
	p.tb.K8smetaCachedPods.Add(ctx, int64(st.Pods)-p.reportedPods)
	p.tb.K8smetaCachedContainers.Add(ctx, int64(st.Containers)-p.reportedContainers)
	p.reportedPods, p.reportedContainers = int64(st.Pods), int64(st.Containers)

	was, is := p.reportedForgotten, st.Forgotten
	p.reportedForgotten = is
	for _, f := range []struct {
		reason string
		n      uint64
	}{{"expired", is.Expired - was.Expired}, {"pod_cap", is.PodCap - was.PodCap}, {"cap", is.Cap - was.Cap}} {
		if f.n > 0 {
			p.tb.K8smetaContainersForgotten.Add(ctx, int64(f.n), metric.WithAttributes(attribute.String("reason", f.reason)))
		}
	}
	if evicted := is.PodCap - was.PodCap + is.Cap - was.Cap; evicted > 0 {
		p.logger.Warn("Forgot container IDs still in use: records naming them now get only their pod's attributes, a new series; raise gone_containers.max_per_pod or gone_containers.max",
			zap.Uint64("by_max_per_pod", is.PodCap-was.PodCap), zap.Uint64("by_max", is.Cap-was.Cap),
			zap.Int("max_per_pod", p.cfg.GoneContainers.MaxPerPod), zap.Int("max", p.cfg.GoneContainers.Max),
			zap.String("last_pod", is.LastEvictedPod))
	}
}

// Shutdown stops the watch and saves the identities.
func (p *k8smeta) Shutdown(ctx context.Context) error {
	var err error
	if p.stop != nil {
		close(p.stop)
		<-p.done
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

// enrich adds metadata to every resource it can resolve. When some are not
// known yet, the batch waits (bounded in time and in number of waiting
// batches; other batches are not blocked) for the watch to catch up; an
// ID waited for in vain once, or forgotten, is not waited for again.
func (p *k8smeta) enrich(ctx context.Context, res []pcommon.Resource) {
	var unknown, givenUp []pcommon.Resource
	for _, r := range res {
		switch p.resolve(r, false) {
		case resolved:
			p.tb.K8smetaLookupsHit.Add(ctx, 1)
		case unresolved:
			if p.store.GivenUp(lookupKey(r)) {
				givenUp = append(givenUp, r)
			} else {
				unknown = append(unknown, r)
			}
		}
	}
	if len(givenUp) > 0 {
		p.tb.K8smetaLookupsNotWaited.Add(ctx, int64(len(givenUp)))
	}
	if len(unknown) > 0 && p.cfg.WaitForUnknown > 0 {
		select {
		case p.waiting <- struct{}{}:
			p.tb.K8smetaLookupsHeld.Add(ctx, int64(len(unknown)))
			var timedOut bool
			unknown, timedOut = p.wait(ctx, unknown)
			<-p.waiting
			if timedOut {
				for _, r := range unknown {
					p.store.GiveUp(lookupKey(r))
				}
			}
		default:
			// Too many batches waiting already: pass this one on.
		}
	}
	unknown = append(unknown, givenUp...)
	for _, r := range unknown {
		p.resolve(r, true) // whatever is known (e.g. the pod without the container)
		p.tb.K8smetaLookupsMissed.Add(ctx, 1)
	}
	if len(unknown) > 0 {
		p.logger.Debug("Passing resources on without full Kubernetes metadata", zap.Int("resources", len(unknown)))
	}
}

// lookupKey is what an unresolved resource waits for: its container ID,
// else its pod UID.
func lookupKey(r pcommon.Resource) string {
	if cid, ok := r.Attributes().Get("container.id"); ok && cid.Str() != "" {
		return cid.Str()
	}
	uid, _ := r.Attributes().Get("k8s.pod.uid")
	return uid.Str()
}

// wait re-resolves unknown resources on every store change until all are
// resolved, the wait times out, or ctx ends; it returns those still
// unknown, and whether they were waited for the whole wait_for_unknown.
func (p *k8smeta) wait(ctx context.Context, unknown []pcommon.Resource) (still []pcommon.Resource, timedOut bool) {
	timer := time.NewTimer(p.cfg.WaitForUnknown)
	defer timer.Stop()
	for len(unknown) > 0 {
		changed := p.store.Changed()
		still := unknown[:0]
		for _, r := range unknown {
			if p.resolve(r, false) == resolved {
				p.tb.K8smetaLookupsHit.Add(ctx, 1)
				continue
			}
			still = append(still, r)
		}
		unknown = still
		if len(unknown) == 0 {
			break
		}
		select {
		case <-changed:
		case <-timer.C:
			return unknown, true
		case <-ctx.Done():
			return unknown, false
		}
	}
	return unknown, false
}

type resolution int

const (
	noIDs      resolution = iota // the resource names no pod or container
	resolved                     // everything named was found and applied
	unresolved                   // something named is not known (yet)
)

// resolve looks up the resource's container ID and pod UID. Attributes are
// written only when everything named was found, or when partial is set.
// Attributes already present are never overwritten.
func (p *k8smeta) resolve(r pcommon.Resource, partial bool) resolution {
	attrs := r.Attributes()
	uid, hasUID := attrs.Get("k8s.pod.uid")
	cid, hasCID := attrs.Get("container.id")
	if !hasUID && !hasCID {
		return noIDs
	}
	if hasCID && cid.Str() != "" {
		if pod, ctr, ok := p.store.ByContainerID(cid.Str()); ok {
			p.attrs.applyPod(attrs, pod)
			p.attrs.applyContainer(attrs, ctr)
			return resolved
		}
	}
	if hasUID && uid.Str() != "" {
		if pod, ok := p.store.ByPodUID(uid.Str()); ok {
			if !hasCID || partial {
				p.attrs.applyPod(attrs, pod)
			}
			if !hasCID {
				return resolved
			}
		}
	}
	return unresolved
}

// attributeSwitch says which attributes the configuration turned off.
type attributeSwitch map[string]bool

func newAttributeSwitch(c metadata.ResourceAttributesConfig) attributeSwitch {
	off := attributeSwitch{}
	for name, rc := range map[string]metadata.ResourceAttributeConfig{
		"container.image.name": c.ContainerImageName, "container.image.tags": c.ContainerImageTags,
		"k8s.container.memory.limit": c.K8sContainerMemoryLimit, "k8s.container.memory.request": c.K8sContainerMemoryRequest,
		"k8s.container.name": c.K8sContainerName, "k8s.container.restart_count": c.K8sContainerRestartCount,
		"k8s.cronjob.name": c.K8sCronjobName, "k8s.daemonset.name": c.K8sDaemonsetName, "k8s.deployment.name": c.K8sDeploymentName,
		"k8s.job.name": c.K8sJobName, "k8s.namespace.name": c.K8sNamespaceName, "k8s.node.name": c.K8sNodeName,
		"k8s.pod.name": c.K8sPodName, "k8s.pod.uid": c.K8sPodUID, "k8s.replicaset.name": c.K8sReplicasetName,
		"k8s.statefulset.name": c.K8sStatefulsetName, "oom.container.kind": c.OomContainerKind,
	} {
		if !rc.Enabled {
			off[name] = true
		}
	}
	return off
}

// writable: the attribute is on and not already on the resource (never
// overwritten).
func (off attributeSwitch) writable(attrs pcommon.Map, k string) bool {
	if off[k] {
		return false
	}
	_, present := attrs.Get(k)
	return !present
}

func (off attributeSwitch) putStr(attrs pcommon.Map, k, v string) {
	if v != "" && off.writable(attrs, k) {
		attrs.PutStr(k, v)
	}
}

func (off attributeSwitch) putInt(attrs pcommon.Map, k string, v int64) {
	if off.writable(attrs, k) {
		attrs.PutInt(k, v)
	}
}

func (off attributeSwitch) applyPod(attrs pcommon.Map, pod podstore.Pod) {
	off.putStr(attrs, "k8s.pod.uid", pod.UID)
	off.putStr(attrs, "k8s.pod.name", pod.Name)
	off.putStr(attrs, "k8s.namespace.name", pod.Namespace)
	off.putStr(attrs, "k8s.node.name", pod.NodeName)
	for k, v := range pod.Workload {
		off.putStr(attrs, k, v)
	}
	for k, v := range pod.Labels {
		off.putStr(attrs, "k8s.pod.label."+k, v)
	}
	for k, v := range pod.Annotations {
		off.putStr(attrs, "k8s.pod.annotation."+k, v)
	}
}

func (off attributeSwitch) applyContainer(attrs pcommon.Map, c podstore.Container) {
	off.putStr(attrs, "k8s.container.name", c.Name)
	off.putStr(attrs, "oom.container.kind", string(c.Kind))
	off.putStr(attrs, "container.image.name", c.ImageName)
	if c.ImageTag != "" && off.writable(attrs, "container.image.tags") {
		attrs.PutEmptySlice("container.image.tags").AppendEmpty().SetStr(c.ImageTag)
	}
	off.putInt(attrs, "k8s.container.restart_count", c.RestartCount)
	if c.MemoryLimit > 0 {
		off.putInt(attrs, "k8s.container.memory.limit", c.MemoryLimit)
	}
	if c.MemoryRequest > 0 {
		off.putInt(attrs, "k8s.container.memory.request", c.MemoryRequest)
	}
}
