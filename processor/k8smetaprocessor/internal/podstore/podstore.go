// Package podstore keeps what the processor needs to know about pods,
// indexed by pod UID and by container ID, including pods and containers
// that are already gone, for a grace period: an OOM-killed container is
// often replaced (or its pod deleted) before its record arrives.
//
// It holds no client: the kube package feeds it from informer events.
package podstore

import (
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Pod is the part of a Pod the processor joins onto records.
type Pod struct {
	UID, Name, Namespace, NodeName string
	// Workload names the owners: "k8s.deployment.name" → "web", …
	Workload    map[string]string
	Labels      map[string]string // only the configured keys
	Annotations map[string]string // only the configured keys
	Containers  map[string]Container
}

// Container is one container of a pod.
type Container struct {
	Name         string
	ImageName    string
	ImageTag     string
	RestartCount int64
	// MemoryLimit and MemoryRequest are in bytes; 0 when not set.
	MemoryLimit, MemoryRequest int64
}

// Options say which labels and annotations to keep and for how long gone
// pods and container IDs stay resolvable.
type Options struct {
	Labels      []string
	Annotations []string
	// Grace is how long a deleted pod, or a container ID no longer in its
	// pod's status, stays resolvable.
	Grace time.Duration
}

// Store is safe for concurrent use.
type Store struct {
	opts Options

	mu         sync.RWMutex
	pods       map[string]*entry     // by pod UID
	containers map[string]*container // by bare container ID
	changed    chan struct{}
	// gone holds a signal while a pod or container ID went since the
	// signal was last taken.
	gone chan struct{}
}

type entry struct {
	pod     Pod
	goneAt  time.Time // zero while the pod exists
	current map[string]bool
}

type container struct {
	podUID string
	name   string
	goneAt time.Time // zero while the ID is in the pod's status
}

// New returns an empty store.
func New(opts Options) *Store {
	return &Store{
		opts: opts, pods: map[string]*entry{}, containers: map[string]*container{},
		changed: make(chan struct{}), gone: make(chan struct{}, 1),
	}
}

// Gone signals that a pod was deleted or a container ID left its pod's
// status: something Sweep will have to forget after the grace period.
func (s *Store) Gone() <-chan struct{} { return s.gone }

func (s *Store) signalGone() {
	select {
	case s.gone <- struct{}{}:
	default: // a signal is already waiting
	}
}

// Changed returns a channel closed at the next change of the store; call
// it again after it fires.
func (s *Store) Changed() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

// notify wakes waiters; the caller holds mu.
func (s *Store) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Upsert records a pod as it is now.
func (s *Store) Upsert(p *corev1.Pod) {
	pod := s.convert(p)
	ids := containerIDs(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.pods[pod.UID]
	if e == nil {
		e = &entry{}
		s.pods[pod.UID] = e
	}
	e.pod, e.goneAt = pod, time.Time{}
	now := time.Now()
	// IDs that left the status (a second restart pushes the first ID out
	// of lastState) stay resolvable for the grace period.
	for id := range e.current {
		if _, still := ids[id]; !still {
			if c := s.containers[id]; c != nil && c.podUID == pod.UID {
				c.goneAt = now
				s.signalGone()
			}
		}
	}
	e.current = make(map[string]bool, len(ids))
	for id, name := range ids {
		e.current[id] = true
		s.containers[id] = &container{podUID: pod.UID, name: name}
	}
	s.notify()
}

// Delete marks a pod gone; it stays resolvable for the grace period.
func (s *Store) Delete(uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.pods[uid]
	if e == nil {
		return
	}
	now := time.Now()
	e.goneAt = now
	for id := range e.current {
		if c := s.containers[id]; c != nil && c.podUID == uid && c.goneAt.IsZero() {
			c.goneAt = now
		}
	}
	s.signalGone()
	s.notify()
}

// Sweep forgets pods and container IDs gone for longer than the grace
// period; it bounds memory. Call it after NextExpiry.
func (s *Store) Sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range s.containers {
		if !c.goneAt.IsZero() && now.Sub(c.goneAt) > s.opts.Grace {
			delete(s.containers, id)
		}
	}
	for uid, e := range s.pods {
		if !e.goneAt.IsZero() && now.Sub(e.goneAt) > s.opts.Grace {
			delete(s.pods, uid)
			for id, c := range s.containers {
				if c.podUID == uid {
					delete(s.containers, id)
				}
			}
		}
	}
}

// NextExpiry is when the grace period of the first gone pod or container
// ID ends; Sweep forgets it at any later time. ok is false when nothing is
// gone.
func (s *Store) NextExpiry() (at time.Time, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	earliest := func(gone time.Time) {
		if !gone.IsZero() && (!ok || gone.Before(at)) {
			at, ok = gone, true
		}
	}
	for _, c := range s.containers {
		earliest(c.goneAt)
	}
	for _, e := range s.pods {
		earliest(e.goneAt)
	}
	if ok {
		at = at.Add(s.opts.Grace)
	}
	return at, ok
}

// Sizes returns how many pods and container IDs are resolvable.
func (s *Store) Sizes() (pods, containers int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.pods), len(s.containers)
}

// ByPodUID returns the pod with uid.
func (s *Store) ByPodUID(uid string) (Pod, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.pods[uid]
	if e == nil {
		return Pod{}, false
	}
	return e.pod, true
}

// ByContainerID returns the pod and container a container ID belongs to.
// id may carry a runtime prefix ("containerd://…").
func (s *Store) ByContainerID(id string) (Pod, Container, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.containers[BareContainerID(id)]
	if c == nil {
		return Pod{}, Container{}, false
	}
	e := s.pods[c.podUID]
	if e == nil {
		return Pod{}, Container{}, false
	}
	ctr, ok := e.pod.Containers[c.name]
	if !ok {
		ctr = Container{Name: c.name}
	}
	return e.pod, ctr, true
}

// BareContainerID strips a runtime prefix: "containerd://<id>",
// "cri-o://<id>", "docker://<id>" → "<id>".
func BareContainerID(id string) string {
	if i := strings.Index(id, "://"); i >= 0 {
		return id[i+3:]
	}
	return id
}

// containerIDs lists every container ID a pod's status knows, current and
// previous (lastState.terminated), for app, init and ephemeral containers.
func containerIDs(p *corev1.Pod) map[string]string {
	ids := map[string]string{}
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses, p.Status.EphemeralContainerStatuses} {
		for _, cs := range list {
			if cs.ContainerID != "" {
				ids[BareContainerID(cs.ContainerID)] = cs.Name
			}
			if t := cs.LastTerminationState.Terminated; t != nil && t.ContainerID != "" {
				ids[BareContainerID(t.ContainerID)] = cs.Name
			}
		}
	}
	return ids
}

func (s *Store) convert(p *corev1.Pod) Pod {
	pod := Pod{
		UID: string(p.UID), Name: p.Name, Namespace: p.Namespace, NodeName: p.Spec.NodeName,
		Workload:   workload(p),
		Containers: map[string]Container{},
	}
	pod.Labels = pick(p.Labels, s.opts.Labels)
	pod.Annotations = pick(p.Annotations, s.opts.Annotations)
	addSpec := func(name, image string, res corev1.ResourceRequirements) {
		c := Container{Name: name}
		c.ImageName, c.ImageTag = splitImage(image)
		if q, ok := res.Limits[corev1.ResourceMemory]; ok {
			c.MemoryLimit = q.Value()
		}
		if q, ok := res.Requests[corev1.ResourceMemory]; ok {
			c.MemoryRequest = q.Value()
		}
		pod.Containers[name] = c
	}
	for _, c := range p.Spec.InitContainers {
		addSpec(c.Name, c.Image, c.Resources)
	}
	for _, c := range p.Spec.Containers {
		addSpec(c.Name, c.Image, c.Resources)
	}
	for _, c := range p.Spec.EphemeralContainers {
		addSpec(c.Name, c.Image, c.Resources)
	}
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses, p.Status.EphemeralContainerStatuses} {
		for _, cs := range list {
			c := pod.Containers[cs.Name]
			c.Name = cs.Name
			c.RestartCount = int64(cs.RestartCount)
			pod.Containers[cs.Name] = c
		}
	}
	return pod
}

func pick(m map[string]string, keys []string) map[string]string {
	if len(keys) == 0 || len(m) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, k := range keys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}

// splitImage splits "registry:5000/repo/app:1.2@sha256:…" into
// "registry:5000/repo/app" and "1.2" (no tag: "latest" only when neither a
// tag nor a digest is given, as the runtime would pull).
func splitImage(image string) (name, tag string) {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
		if !strings.Contains(image[strings.LastIndexByte(image, '/')+1:], ":") {
			return image, ""
		}
	}
	slash := strings.LastIndexByte(image, '/')
	if colon := strings.LastIndexByte(image, ':'); colon > slash {
		return image[:colon], image[colon+1:]
	}
	return image, "latest"
}
