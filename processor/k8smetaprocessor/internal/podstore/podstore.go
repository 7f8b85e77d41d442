// Package podstore keeps what the processor knows about pods and their
// container IDs, indexed by pod UID and by container ID, including pods and
// containers that are already gone: an OOM-killed container is often
// replaced (or its pod deleted) before its record arrives, and its series
// is exported for long after.
//
// A container ID's identity (its pod's names and its container's) is taken
// when the ID is first seen in its pod's status and never changes after:
// every later record naming that ID gets the same attributes, however the
// pod changes. The kubelet's status keeps only a container's current and
// previous ID, so an ID that left it is remembered for as long as it is
// asked about: until nobody asked for Grace, within caps per pod and
// overall (the least recently asked-about goes first, counted).
//
// It holds no client: the kube package feeds it from informer events.
package podstore

import (
	"container/list"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Pod is the part of a Pod the processor joins onto records.
type Pod struct {
	UID       string `json:"uid"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	NodeName  string `json:"node,omitempty"`
	// Workload names the owners: "k8s.deployment.name" → "web", …
	Workload    map[string]string `json:"workload,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`      // only the configured keys
	Annotations map[string]string `json:"annotations,omitempty"` // only the configured keys
}

// Container is one container of a pod, as it was when one of its IDs was
// first seen.
type Container struct {
	Name string `json:"name"`
	Kind Kind   `json:"kind"`
	// ImageName and ImageTag are the spec's image, split.
	ImageName string `json:"image,omitempty"`
	ImageTag  string `json:"tag,omitempty"`
	// RestartCount is the attempt the ID belongs to: 0 for the first run.
	RestartCount int64 `json:"restart_count"`
	// MemoryLimit and MemoryRequest are in bytes; 0 when not set.
	MemoryLimit   int64 `json:"memory_limit,omitempty"`
	MemoryRequest int64 `json:"memory_request,omitempty"`
}

// Options say which labels and annotations to keep and how much is
// remembered of what is gone.
type Options struct {
	Labels      []string
	Annotations []string
	// Grace is how long a deleted pod, or a container ID no longer in its
	// pod's status, stays resolvable after it left or was last asked
	// about, whichever is later.
	Grace time.Duration
	// MaxGonePerPod and MaxGone cap the container IDs remembered after
	// they left their pod's status, per pod and in all.
	MaxGonePerPod, MaxGone int
	// MaxGivenUp caps the keys remembered as never to be learned.
	MaxGivenUp int
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

// Forgotten counts container IDs forgotten, by reason, since the start.
type Forgotten struct {
	// Expired: nobody asked about them for Grace.
	Expired uint64
	// PodCap and Cap: evicted by MaxGonePerPod and MaxGone.
	PodCap, Cap uint64
	// LastEvictedPod is "namespace/name" of the last eviction's pod.
	LastEvictedPod string
}

// Stats are the store's sizes and counters.
type Stats struct {
	Pods, Containers, GoneContainers, GivenUp int
	Forgotten                                 Forgotten
}

// Store is safe for concurrent use.
type Store struct {
	opts Options

	mu        sync.Mutex
	pods      map[string]*podEntry // by pod UID
	ids       map[string]*identity // by bare container ID
	gone      list.List            // of *identity that left their pod's status, most recently used first
	givenUp   *givenUp
	forgotten Forgotten
	changes   uint64 // identities added, gone, back or forgotten (Snapshot)
	changed   chan struct{}
	// goneSignal holds a signal while a pod or container ID went since
	// the signal was last taken.
	goneSignal chan struct{}
}

type podEntry struct {
	meta     *Pod
	goneAt   time.Time // zero while the pod exists
	lastUsed time.Time // last lookup after goneAt
	ids      map[string]*identity
	gone     list.List // this pod's part of Store.gone, same order
}

type identity struct {
	id   string
	pod  *podEntry
	meta *Pod // the pod as it was when the ID was first seen
	ctr  Container
	// lastUsed is when the ID left its pod's status or was last asked
	// about after that. goneEl and podGoneEl are its places in the gone
	// lists; nil while the ID is in its pod's status.
	lastUsed          time.Time
	goneEl, podGoneEl *list.Element
}

// New returns an empty store.
func New(opts Options) *Store {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{
		opts: opts, pods: map[string]*podEntry{}, ids: map[string]*identity{},
		givenUp: newGivenUp(opts.MaxGivenUp), changed: make(chan struct{}), goneSignal: make(chan struct{}, 1),
	}
}

// Gone signals that a pod was deleted or a container ID left its pod's
// status: something Sweep may forget once nobody asked about it for the
// grace period, and a change worth saving (Snapshot).
func (s *Store) Gone() <-chan struct{} { return s.goneSignal }

func (s *Store) signalGone() {
	select {
	case s.goneSignal <- struct{}{}:
	default: // a signal is already waiting
	}
}

// Changed returns a channel closed at the next change of the store; call
// it again after it fires.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// notify wakes waiters; the caller holds mu.
func (s *Store) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Upsert records a pod as it is now. Container IDs seen for the first time
// take their identity from it; IDs that left its status are remembered as
// gone.
func (s *Store) Upsert(p *corev1.Pod) {
	meta, seen := s.convert(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	e := s.pods[meta.UID]
	if e == nil {
		e = &podEntry{ids: map[string]*identity{}}
		s.pods[meta.UID] = e
	}
	if e.meta == nil || !sameMeta(e.meta, meta) {
		e.meta = meta
	}
	e.goneAt = time.Time{}
	inStatus := make(map[string]bool, len(seen))
	for _, c := range seen {
		inStatus[c.id] = true
		if idn := s.ids[c.id]; idn != nil {
			if idn.pod == e && idn.goneEl != nil {
				s.unlinkGone(idn) // back in the status (not seen from a kubelet, but harmless)
			}
			continue
		}
		idn := &identity{id: c.id, pod: e, meta: e.meta, ctr: c.ctr}
		s.ids[c.id] = idn
		e.ids[c.id] = idn
		s.givenUp.remove(c.id)
		s.changes++
	}
	for id, idn := range e.ids {
		if !inStatus[id] && idn.goneEl == nil {
			s.markGone(idn, now)
		}
	}
	s.enforceCaps(e)
	s.notify()
}

// Delete marks a pod gone: it and its container IDs stay resolvable while
// they are asked about.
func (s *Store) Delete(uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.pods[uid]
	if e == nil {
		return
	}
	now := s.opts.Now()
	e.goneAt, e.lastUsed = now, now
	s.signalGone()
	for _, idn := range e.ids {
		if idn.goneEl == nil {
			s.markGone(idn, now)
		}
	}
	s.enforceCaps(e)
	s.notify()
}

func (s *Store) markGone(idn *identity, now time.Time) {
	s.signalGone()
	s.changes++
	idn.lastUsed = now
	idn.goneEl = s.gone.PushFront(idn)
	idn.podGoneEl = idn.pod.gone.PushFront(idn)
}

func (s *Store) unlinkGone(idn *identity) {
	s.changes++
	s.gone.Remove(idn.goneEl)
	idn.pod.gone.Remove(idn.podGoneEl)
	idn.goneEl, idn.podGoneEl = nil, nil
}

// enforceCaps evicts the gone IDs asked about longest ago beyond the caps.
func (s *Store) enforceCaps(e *podEntry) {
	for s.opts.MaxGonePerPod > 0 && e.gone.Len() > s.opts.MaxGonePerPod {
		s.forget(e.gone.Back().Value.(*identity))
		s.forgotten.PodCap++
		s.forgotten.LastEvictedPod = e.meta.Namespace + "/" + e.meta.Name
	}
	for s.opts.MaxGone > 0 && s.gone.Len() > s.opts.MaxGone {
		idn := s.gone.Back().Value.(*identity)
		s.forget(idn)
		s.forgotten.Cap++
		s.forgotten.LastEvictedPod = idn.pod.meta.Namespace + "/" + idn.pod.meta.Name
	}
}

// forget drops an identity for good: it can never be learned again (its
// ID left the API), so nobody should wait for it.
func (s *Store) forget(idn *identity) {
	if idn.goneEl != nil {
		s.unlinkGone(idn)
	}
	delete(s.ids, idn.id)
	delete(idn.pod.ids, idn.id)
	s.givenUp.add(idn.id)
	s.changes++
}

// Sweep forgets container IDs and deleted pods nobody asked about for the
// grace period. Call it periodically; with the caps, it bounds memory.
func (s *Store) Sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for el := s.gone.Back(); el != nil; {
		idn := el.Value.(*identity)
		if now.Sub(idn.lastUsed) <= s.opts.Grace {
			break // the rest were used later
		}
		el = el.Prev()
		s.forget(idn)
		s.forgotten.Expired++
	}
	for uid, e := range s.pods {
		if e.goneAt.IsZero() || now.Sub(e.lastUsed) <= s.opts.Grace {
			continue
		}
		// A lookup of one of its IDs also counts for the pod, so those
		// are expired by now.
		for _, idn := range e.ids {
			s.forget(idn)
			s.forgotten.Expired++
		}
		delete(s.pods, uid)
	}
}

// NextExpiry is when the first gone container ID or deleted pod can be
// forgotten, if nobody asks about it before; Sweep forgets it at any later
// time. ok is false when nothing is gone.
func (s *Store) NextExpiry() (at time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el := s.gone.Back(); el != nil { // the one asked about longest ago
		at, ok = el.Value.(*identity).lastUsed, true
	}
	for _, e := range s.pods {
		if !e.goneAt.IsZero() && (!ok || e.lastUsed.Before(at)) {
			at, ok = e.lastUsed, true
		}
	}
	if ok {
		at = at.Add(s.opts.Grace)
	}
	return at, ok
}

// Sizes returns how many pods and container IDs are resolvable.
func (s *Store) Sizes() (pods, containers int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pods), len(s.ids)
}

// Stats returns the store's sizes and what it forgot.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Pods: len(s.pods), Containers: len(s.ids), GoneContainers: s.gone.Len(), GivenUp: s.givenUp.len(), Forgotten: s.forgotten}
}

// ByPodUID returns the pod with uid as it is now (or was when deleted).
// Asking keeps a deleted pod.
func (s *Store) ByPodUID(uid string) (Pod, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.pods[uid]
	if e == nil {
		return Pod{}, false
	}
	if !e.goneAt.IsZero() {
		e.lastUsed = s.opts.Now()
	}
	return *e.meta, true
}

// ByContainerID returns a container ID's identity: its pod and container
// as they were when the ID was first seen. id may carry a runtime prefix
// ("containerd://…"). Asking keeps a gone ID and its pod.
func (s *Store) ByContainerID(id string) (Pod, Container, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idn := s.ids[BareContainerID(id)]
	if idn == nil {
		return Pod{}, Container{}, false
	}
	if idn.goneEl != nil {
		now := s.opts.Now()
		idn.lastUsed = now
		s.gone.MoveToFront(idn.goneEl)
		idn.pod.gone.MoveToFront(idn.podGoneEl)
		if !idn.pod.goneAt.IsZero() {
			idn.pod.lastUsed = now
		}
	}
	return *idn.meta, idn.ctr, true
}

// GiveUp records that key (a container ID or pod UID) was waited for in
// vain: records naming it pass on at once from now on.
func (s *Store) GiveUp(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, known := s.ids[BareContainerID(key)]; !known {
		s.givenUp.add(BareContainerID(key))
	}
}

// GivenUp reports whether waiting for key is pointless: it was waited for
// in vain before, or it was forgotten.
func (s *Store) GivenUp(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.givenUp.has(BareContainerID(key))
}
