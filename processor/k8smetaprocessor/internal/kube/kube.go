// Package kube is the only code that talks to the Kubernetes API: it builds
// a client and feeds a podstore.Store from a Pod informer.
package kube

import (
	"context"
	"errors"
	"io"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
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

// WatchOptions say which pods to watch, what to keep of them, and whom to
// tell how the watch fares.
type WatchOptions struct {
	// NodeName restricts the watch to one node's pods; empty: all pods.
	NodeName string
	// Labels and Annotations are the keys kept beside what the store reads.
	Labels, Annotations []string
	// Failed hears each failed list or watch, not the routine end of a
	// watch (expiry, a closed connection) that the informer renews.
	Failed func(error)
	// Works hears each list or watch the API server answered.
	Works func()
}

// NewWatcher watches pods into store. Only the fields the store uses, and
// the labels and annotations named, are kept in the informer's cache.
func NewWatcher(client kubernetes.Interface, opts WatchOptions, store *podstore.Store, logger *zap.Logger) (*Watcher, error) {
	tweak := func(*metav1.ListOptions) {}
	if opts.NodeName != "" {
		tweak = func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", opts.NodeName).String()
		}
	}
	// report tells Failed or Works how a call ended; a call ended by Stop
	// is neither.
	report := func(ctx context.Context, err error) {
		switch {
		case ctx.Err() != nil:
		case err != nil:
			opts.Failed(err)
		default:
			opts.Works()
		}
	}
	// The informer client-go's factory builds, with the calls reported.
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			tweak(&o)
			l, err := client.CoreV1().Pods("").List(ctx, o)
			report(ctx, err)
			return l, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			tweak(&o)
			wi, err := client.CoreV1().Pods("").Watch(ctx, o)
			report(ctx, err)
			return wi, err
		},
	}
	// Resync 0: relists happen on watch expiry anyway, and handlers are
	// idempotent.
	inf := cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, client), &corev1.Pod{},
		cache.SharedIndexInformerOptions{Indexers: cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}})
	// The Deployment name is read from the pod-template-hash label.
	keepLabels := append([]string{"pod-template-hash"}, opts.Labels...)
	if err := inf.SetTransform(func(obj any) (any, error) { return stripPod(obj, keepLabels, opts.Annotations) }); err != nil {
		return nil, err
	}
	w := &Watcher{informer: inf, store: store, logger: logger, stop: make(chan struct{}), done: make(chan struct{})}
	if err := inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		if routineWatchEnd(err) {
			logger.Debug("Kubernetes pod watch ended; renewing it", zap.Error(err))
			return
		}
		opts.Failed(err)
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

// routineWatchEnd reports a watch that ended as watches do (its resource
// version expired, the server closed it); client-go's own handler does not
// log these either.
func routineWatchEnd(err error) bool {
	return apierrors.IsResourceExpired(err) || apierrors.IsGone(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
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

// WaitForSync waits until the first list finished (true) or stop is
// closed (false).
func (w *Watcher) WaitForSync(stop <-chan struct{}) bool {
	return cache.WaitForCacheSync(stop, w.informer.HasSynced)
}

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
