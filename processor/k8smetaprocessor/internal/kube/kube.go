// Package kube is the only code that talks to the Kubernetes API: it builds
// a client and feeds a podstore.Store from a Pod informer.
package kube

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/otelcol-oomkill/otelcol-oomkill/internal/kubeclient"
	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/podstore"
)

// Auth types.
const (
	AuthServiceAccount = kubeclient.AuthServiceAccount
	AuthKubeConfig     = kubeclient.AuthKubeConfig
)

// NewClient builds a clientset: in-cluster from the pod's service account,
// or from the standard kubeconfig resolution ($KUBECONFIG, ~/.kube/config)
// with an optional context.
func NewClient(authType, kubeContext string) (kubernetes.Interface, error) {
	return kubeclient.New(kubeclient.Options{AuthType: authType, Context: kubeContext, UserAgent: "otelcol-oomkill/k8smeta"})
}

// Watcher runs a Pod informer into a store.
type Watcher struct {
	informer cache.SharedIndexInformer
	store    *podstore.Store
	logger   *zap.Logger
	stop     chan struct{}
	done     chan struct{}
}

// NewWatcher watches pods on nodeName (all pods when empty) into store.
// Only the fields the store uses, and the labels and annotations named, are
// kept in the informer's cache.
func NewWatcher(client kubernetes.Interface, nodeName string, labels, annotations []string, store *podstore.Store, logger *zap.Logger) (*Watcher, error) {
	opts := []informers.SharedInformerOption{}
	if nodeName != "" {
		opts = append(opts, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", nodeName).String()
		}))
	}
	// Resync 0: relists happen on watch expiry anyway, and handlers are
	// idempotent.
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, opts...)
	inf := factory.Core().V1().Pods().Informer()
	// The Deployment name is read from the pod-template-hash label.
	keepLabels := append([]string{"pod-template-hash"}, labels...)
	if err := inf.SetTransform(func(obj any) (any, error) { return stripPod(obj, keepLabels, annotations) }); err != nil {
		return nil, err
	}
	w := &Watcher{informer: inf, store: store, logger: logger, stop: make(chan struct{}), done: make(chan struct{})}
	if err := inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		logger.Warn("Kubernetes pod watch failed; retrying (records pass through unenriched meanwhile)", zap.Error(err))
	}); err != nil {
		return nil, err
	}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.upsert(obj) },
		UpdateFunc: func(_, obj any) { w.upsert(obj) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				store.Delete(string(p.UID))
			}
		},
	})
	return w, err
}

func (w *Watcher) upsert(obj any) {
	if p, ok := obj.(*corev1.Pod); ok {
		w.store.Upsert(p)
	}
}

// Start runs the informer and waits up to timeout for its first list. A
// slow or unreachable API server is not fatal: the informer keeps trying
// in the background, and ErrNotSynced says so.
func (w *Watcher) Start(timeout time.Duration) error {
	go func() {
		defer close(w.done)
		w.informer.Run(w.stop)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), w.informer.HasSynced) {
		return ErrNotSynced
	}
	return nil
}

// ErrNotSynced reports that the first pod list did not finish in time.
var ErrNotSynced = errors.New("pod informer has not synced yet")

// HasSynced reports whether the first list finished.
func (w *Watcher) HasSynced() bool { return w.informer.HasSynced() }

// Stop ends the informer.
func (w *Watcher) Stop() {
	close(w.stop)
	<-w.done
}

// stripPod keeps only what podstore reads, so a node's or a cluster's pods
// cost little memory in the informer cache.
func stripPod(obj any, labels, annotations []string) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
			Labels: keep(p.Labels, labels), Annotations: keep(p.Annotations, annotations), OwnerReferences: p.OwnerReferences,
			DeletionTimestamp: p.DeletionTimestamp,
		},
		Spec: corev1.PodSpec{NodeName: p.Spec.NodeName},
		Status: corev1.PodStatus{
			ContainerStatuses:          stripStatuses(p.Status.ContainerStatuses),
			InitContainerStatuses:      stripStatuses(p.Status.InitContainerStatuses),
			EphemeralContainerStatuses: stripStatuses(p.Status.EphemeralContainerStatuses),
		},
	}
	for _, c := range p.Spec.Containers {
		out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name, Image: c.Image, Resources: c.Resources})
	}
	for _, c := range p.Spec.InitContainers {
		out.Spec.InitContainers = append(out.Spec.InitContainers, corev1.Container{Name: c.Name, Image: c.Image, Resources: c.Resources})
	}
	for _, c := range p.Spec.EphemeralContainers {
		ec := corev1.EphemeralContainer{}
		ec.Name, ec.Image, ec.Resources = c.Name, c.Image, c.Resources
		out.Spec.EphemeralContainers = append(out.Spec.EphemeralContainers, ec)
	}
	return out, nil
}

func stripStatuses(in []corev1.ContainerStatus) []corev1.ContainerStatus {
	if len(in) == 0 {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(in))
	for i, cs := range in {
		out[i] = corev1.ContainerStatus{Name: cs.Name, ContainerID: cs.ContainerID, RestartCount: cs.RestartCount}
		if t := cs.LastTerminationState.Terminated; t != nil {
			out[i].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: t.ContainerID, ExitCode: t.ExitCode, Reason: t.Reason}
		}
	}
	return out
}

func keep(m map[string]string, keys []string) map[string]string {
	var out map[string]string
	for _, k := range keys {
		if v, ok := m[k]; ok {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}
