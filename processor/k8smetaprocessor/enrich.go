package k8smetaprocessor

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/internal/resend"
	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/metadata"
	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/podstore"
)

// enrich adds metadata to every resource it can resolve. When some are not
// known yet, the batch waits (bounded in time and in number of waiting
// batches; other batches are not blocked) for the watch to catch up; an
// ID waited for in vain once, or forgotten, is not waited for again, nor
// is anything in a delivery marked as sent before (a receiver's refresh).
func (p *k8smeta) enrich(ctx context.Context, res []pcommon.Resource) {
	var unknown, notWaited []pcommon.Resource
	resent := resend.FromContext(ctx)
	for _, r := range res {
		switch p.resolve(r, false) {
		case resolved:
			p.tb.K8smetaLookupsHit.Add(ctx, 1)
		case unresolved:
			if resent || p.store.GivenUp(lookupKey(r)) {
				notWaited = append(notWaited, r)
			} else {
				unknown = append(unknown, r)
			}
		}
	}
	if len(notWaited) > 0 {
		p.tb.K8smetaLookupsNotWaited.Add(ctx, int64(len(notWaited)))
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
	unknown = append(unknown, notWaited...)
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
