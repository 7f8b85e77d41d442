package k8smetaprocessor

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/podstore"
)

// enrich adds metadata to every resource it can resolve. When some are not
// known yet, the batch waits (bounded in time and in number of waiting
// batches; other batches are not blocked) for the watch to catch up.
func (p *k8smeta) enrich(ctx context.Context, res []pcommon.Resource) {
	var unknown []pcommon.Resource
	for _, r := range res {
		switch p.resolve(r, false) {
		case resolved:
			p.tb.K8smetaLookupsHit.Add(ctx, 1)
		case unresolved:
			unknown = append(unknown, r)
		}
	}
	if len(unknown) == 0 {
		return
	}
	if p.cfg.WaitForUnknown > 0 {
		select {
		case p.waiting <- struct{}{}:
			p.tb.K8smetaLookupsHeld.Add(ctx, int64(len(unknown)))
			unknown = p.wait(ctx, unknown)
			<-p.waiting
		default:
			// Too many batches waiting already: pass this one on.
		}
	}
	for _, r := range unknown {
		p.resolve(r, true) // whatever is known (e.g. the pod without the container)
		p.tb.K8smetaLookupsMissed.Add(ctx, 1)
	}
	if len(unknown) > 0 {
		p.logger.Debug("Passing resources on without full Kubernetes metadata", zap.Int("resources", len(unknown)))
	}
}

// wait re-resolves unknown resources on every store change until all are
// resolved, the wait times out, or ctx ends; it returns those still unknown.
func (p *k8smeta) wait(ctx context.Context, unknown []pcommon.Resource) []pcommon.Resource {
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
			return unknown
		case <-ctx.Done():
			return unknown
		}
	}
	return unknown
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
			applyPod(attrs, pod)
			applyContainer(attrs, ctr)
			return resolved
		}
	}
	if hasUID && uid.Str() != "" {
		if pod, ok := p.store.ByPodUID(uid.Str()); ok {
			if !hasCID || partial {
				applyPod(attrs, pod)
			}
			if !hasCID {
				return resolved
			}
		}
	}
	return unresolved
}

func putStr(attrs pcommon.Map, k, v string) {
	if v == "" {
		return
	}
	if _, ok := attrs.Get(k); !ok {
		attrs.PutStr(k, v)
	}
}

func putInt(attrs pcommon.Map, k string, v int64) {
	if _, ok := attrs.Get(k); !ok {
		attrs.PutInt(k, v)
	}
}

func applyPod(attrs pcommon.Map, pod podstore.Pod) {
	putStr(attrs, "k8s.pod.uid", pod.UID)
	putStr(attrs, "k8s.pod.name", pod.Name)
	putStr(attrs, "k8s.namespace.name", pod.Namespace)
	putStr(attrs, "k8s.node.name", pod.NodeName)
	for k, v := range pod.Workload {
		putStr(attrs, k, v)
	}
	for k, v := range pod.Labels {
		putStr(attrs, "k8s.pod.label."+k, v)
	}
	for k, v := range pod.Annotations {
		putStr(attrs, "k8s.pod.annotation."+k, v)
	}
}

func applyContainer(attrs pcommon.Map, c podstore.Container) {
	putStr(attrs, "k8s.container.name", c.Name)
	putStr(attrs, "container.image.name", c.ImageName)
	if _, ok := attrs.Get("container.image.tags"); !ok && c.ImageTag != "" {
		attrs.PutEmptySlice("container.image.tags").AppendEmpty().SetStr(c.ImageTag)
	}
	putInt(attrs, "k8s.container.restart_count", c.RestartCount)
	if c.MemoryLimit > 0 {
		putInt(attrs, "k8s.container.memory.limit", c.MemoryLimit)
	}
	if c.MemoryRequest > 0 {
		putInt(attrs, "k8s.container.memory.request", c.MemoryRequest)
	}
}
