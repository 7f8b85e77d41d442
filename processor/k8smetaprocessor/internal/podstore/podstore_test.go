package podstore

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func pod(ids ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1"}}
	cs := corev1.ContainerStatus{Name: "app", ContainerID: "containerd://" + ids[0]}
	if len(ids) > 1 {
		cs.RestartCount = 1
		cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: "containerd://" + ids[1]}
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
	return p
}

// cid is the n-th container ID of a test.
func cid(n int) string { return fmt.Sprintf("%064x", n+1) }

// crashLooping is pod uid after its container's n-th restart: the kubelet's
// status holds attempt n (current) and n-1 (lastState) only.
func crashLooping(uid string, n int) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pod-" + uid, Namespace: "ns", UID: types.UID(uid)}}
	p.Spec.InitContainers = []corev1.Container{{Name: "oom-init", Image: "busybox:1", Resources: corev1.ResourceRequirements{
		Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("16Mi")},
	}}}
	cs := corev1.ContainerStatus{Name: "oom-init", ContainerID: "containerd://" + uid + cid(n)[len(uid):], RestartCount: int32(n)}
	if n > 0 {
		cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: "containerd://" + uid + cid(n - 1)[len(uid):]}
	}
	p.Status.InitContainerStatuses = []corev1.ContainerStatus{cs}
	return p
}

// loopID is the ID crashLooping gives attempt n of pod uid.
func loopID(uid string, n int) string { return uid + cid(n)[len(uid):] }

// clock is a settable time for the store.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)} }

func defaults(c *clock, grace time.Duration) Options {
	return Options{Grace: grace, MaxGonePerPod: 512, MaxGone: 4096, MaxGivenUp: 4096, Now: c.now}
}

// A container ID pushed out of the status by a second restart stays
// resolvable for the grace period, then is forgotten, and is not waited
// for again.
func TestContainerIDGrace(t *testing.T) {
	a, b, c := strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64)
	clk := newClock()
	s := New(defaults(clk, time.Minute))
	s.Upsert(pod(b, a)) // running b, previous a
	s.Upsert(pod(c, b)) // restarted again: a left the status
	for _, id := range []string{a, b, c} {
		_, ctr, ok := s.ByContainerID(id)
		require.True(t, ok, id)
		assert.Equal(t, "app", ctr.Name)
	}
	clk.advance(2 * time.Minute)
	s.Sweep(clk.now())
	_, _, ok := s.ByContainerID(a)
	assert.False(t, ok, "gone and not asked about for longer than the grace period")
	assert.True(t, s.GivenUp(a), "a forgotten ID is not waited for")
	_, _, ok = s.ByContainerID(c)
	assert.True(t, ok, "current IDs never expire")
	st := s.Stats()
	assert.Equal(t, 1, st.Pods)
	assert.Equal(t, 2, st.Containers)
	assert.Equal(t, uint64(1), st.Forgotten.Expired)
}

// Every lookup of a gone ID extends its life: a series re-sent every
// minute keeps its names as long as it is re-sent, and is forgotten a
// grace period after the last time.
func TestLookupsExtendLife(t *testing.T) {
	clk := newClock()
	s := New(defaults(clk, 5*time.Minute))
	for n := 0; n <= 2; n++ {
		s.Upsert(crashLooping("u1", n)) // attempt 0 leaves the status at n=2
	}
	first := loopID("u1", 0)
	_, want, ok := s.ByContainerID(first)
	require.True(t, ok)
	for minute := 1; minute <= 60; minute++ {
		clk.advance(time.Minute)
		s.Sweep(clk.now())
		_, got, found := s.ByContainerID(first)
		require.True(t, found, "minute %d: still asked about every minute", minute)
		require.Equal(t, want, got)
	}
	// Asked no more (checked without a lookup, which would count).
	clk.advance(5 * time.Minute)
	s.Sweep(clk.now())
	assert.Equal(t, 1, s.Stats().GoneContainers, "exactly the grace period after the last lookup: kept")
	clk.advance(time.Second)
	s.Sweep(clk.now())
	assert.Zero(t, s.Stats().GoneContainers, "forgotten a grace period after the last lookup")
	_, _, ok = s.ByContainerID(first)
	assert.False(t, ok)
}

// An ID's identity is what its pod said when the ID was first seen: a
// later change of the pod (image, limit, labels, owner) does not rename
// the series of an existing ID, only new IDs get the new names.
func TestIdentityIsFrozen(t *testing.T) {
	yes := true
	s := New(Options{Labels: []string{"app"}, Grace: time.Minute, MaxGonePerPod: 8, MaxGone: 8, MaxGivenUp: 8})
	p := pod(strings.Repeat("a", 64))
	p.Labels = map[string]string{"app": "v1"}
	p.OwnerReferences = []metav1.OwnerReference{{Kind: "StatefulSet", Name: "db", Controller: &yes}}
	p.Spec.Containers = []corev1.Container{{Name: "app", Image: "app:1", Resources: corev1.ResourceRequirements{
		Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
	}}}
	s.Upsert(p)
	p = p.DeepCopy()
	p.Labels["app"] = "v2"
	p.OwnerReferences = nil
	p.Spec.Containers[0].Image = "app:2"
	p.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory] = resource.MustParse("128Mi")
	p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: "other", ContainerID: "containerd://" + strings.Repeat("b", 64)})
	s.Upsert(p)

	pa, ca, ok := s.ByContainerID(strings.Repeat("a", 64))
	require.True(t, ok)
	assert.Equal(t, Container{Name: "app", Kind: KindApp, ImageName: "app", ImageTag: "1", MemoryLimit: 64 << 20}, ca)
	assert.Equal(t, map[string]string{"app": "v1"}, pa.Labels)
	assert.Equal(t, map[string]string{"k8s.statefulset.name": "db"}, pa.Workload)

	pb, _, ok := s.ByContainerID(strings.Repeat("b", 64))
	require.True(t, ok)
	assert.Equal(t, map[string]string{"app": "v2"}, pb.Labels)
	assert.Nil(t, pb.Workload)
	now, ok := s.ByPodUID("uid-1")
	require.True(t, ok)
	assert.Equal(t, map[string]string{"app": "v2"}, now.Labels, "the pod itself is as it is now")
}

// restart_count identifies one run of a container: the current ID has the
// status's restartCount, the previous one one less, and neither changes.
func TestRestartCountPerID(t *testing.T) {
	s := New(defaults(newClock(), time.Minute))
	for n := 0; n <= 3; n++ {
		s.Upsert(crashLooping("u1", n))
	}
	for n := 0; n <= 3; n++ {
		_, c, ok := s.ByContainerID(loopID("u1", n))
		require.True(t, ok)
		assert.Equal(t, int64(n), c.RestartCount, "attempt %d", n)
	}
	// First seen only as lastState (an update the watch did not deliver).
	s2 := New(defaults(newClock(), time.Minute))
	s2.Upsert(crashLooping("u1", 5))
	_, c, ok := s2.ByContainerID(loopID("u1", 4))
	require.True(t, ok)
	assert.Equal(t, int64(4), c.RestartCount)
}

// In a crash loop's back-off the kubelet's status names the last ID twice
// (containerID and lastState): one identity, attempt n.
func TestBackOffStatus(t *testing.T) {
	s := New(defaults(newClock(), time.Minute))
	p := crashLooping("u1", 3)
	p.Status.InitContainerStatuses[0].LastTerminationState.Terminated.ContainerID = p.Status.InitContainerStatuses[0].ContainerID
	s.Upsert(p)
	_, c, ok := s.ByContainerID(loopID("u1", 3))
	require.True(t, ok)
	assert.Equal(t, int64(3), c.RestartCount)
	assert.Equal(t, 1, s.Stats().Containers)
}

// Init and ephemeral containers are named with their kind, image and
// limits like app containers.
func TestContainerKinds(t *testing.T) {
	p := pod(strings.Repeat("a", 64))
	mem := func(q string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(q)}}
	}
	p.Spec.Containers = []corev1.Container{{Name: "app", Image: "app:1", Resources: mem("64Mi")}}
	p.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "migrate:2", Resources: mem("32Mi")}}
	ec := corev1.EphemeralContainer{}
	ec.Name, ec.Image = "debugger", "busybox:1"
	p.Spec.EphemeralContainers = []corev1.EphemeralContainer{ec}
	p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "migrate", ContainerID: "cri-o://" + strings.Repeat("b", 64)}}
	p.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{{Name: "debugger", ContainerID: "containerd://" + strings.Repeat("c", 64)}}
	s := New(defaults(newClock(), time.Minute))
	s.Upsert(p)
	for id, want := range map[string]Container{
		strings.Repeat("a", 64): {Name: "app", Kind: KindApp, ImageName: "app", ImageTag: "1", MemoryLimit: 64 << 20},
		strings.Repeat("b", 64): {Name: "migrate", Kind: KindInit, ImageName: "migrate", ImageTag: "2", MemoryLimit: 32 << 20},
		strings.Repeat("c", 64): {Name: "debugger", Kind: KindEphemeral, ImageName: "busybox", ImageTag: "1"},
	} {
		_, got, ok := s.ByContainerID(id)
		require.True(t, ok, want.Name)
		assert.Equal(t, want, got)
	}
}

// A pod's gone IDs are capped: the one asked about longest ago goes first,
// counted, and is given up (not waited for).
func TestPerPodCap(t *testing.T) {
	clk := newClock()
	s := New(Options{Grace: time.Hour, MaxGonePerPod: 3, MaxGone: 100, MaxGivenUp: 100, Now: clk.now})
	s.Upsert(crashLooping("u1", 0))
	for n := 1; n <= 10; n++ {
		clk.advance(time.Minute)
		// Attempt 0 is asked about every minute (its series is exported);
		// the others are not.
		_, _, ok := s.ByContainerID(loopID("u1", 0))
		require.True(t, ok, "restart %d: the ID in use survives the cap", n)
		s.Upsert(crashLooping("u1", n))
	}
	// Status: 10 and 9. Gone: 0..8, of which 3 are kept: 0 (in use), 8, 7.
	st := s.Stats()
	assert.Equal(t, 3, st.GoneContainers)
	assert.Equal(t, uint64(6), st.Forgotten.PodCap)
	assert.Equal(t, "ns/pod-u1", st.Forgotten.LastEvictedPod)
	for n, kept := range map[int]bool{0: true, 1: false, 6: false, 7: true, 8: true, 9: true, 10: true} {
		_, _, ok := s.ByContainerID(loopID("u1", n))
		assert.Equal(t, kept, ok, "attempt %d", n)
		assert.Equal(t, !kept, s.GivenUp(loopID("u1", n)), "attempt %d given up", n)
	}
}

// The gone IDs of all pods are capped too.
func TestOverallCap(t *testing.T) {
	s := New(Options{Grace: time.Hour, MaxGonePerPod: 10, MaxGone: 4, MaxGivenUp: 100})
	for i := range 3 {
		uid := fmt.Sprintf("u%d", i)
		for n := 0; n <= 3; n++ { // two gone IDs per pod
			s.Upsert(crashLooping(uid, n))
		}
	}
	st := s.Stats()
	assert.Equal(t, 4, st.GoneContainers)
	assert.Equal(t, uint64(2), st.Forgotten.Cap)
	assert.Equal(t, 3*2+4, st.Containers, "current and previous of each pod, and 4 gone")
	_, _, ok := s.ByContainerID(loopID("u0", 0))
	assert.False(t, ok, "the oldest gone")
	_, _, ok = s.ByContainerID(loopID("u2", 1))
	assert.True(t, ok)
}

// A deleted pod and its IDs stay resolvable while asked about, then go
// when nobody asked for the grace period: the receiver exports a deleted
// pod's series for its retention.
func TestDeletedPodKeptWhileAsked(t *testing.T) {
	clk := newClock()
	s := New(defaults(clk, 5*time.Minute))
	for n := 0; n <= 4; n++ {
		s.Upsert(crashLooping("u1", n))
	}
	s.Delete("u1")
	for minute := 1; minute <= 60; minute++ {
		clk.advance(time.Minute)
		s.Sweep(clk.now())
		for n := 0; n <= 4; n++ {
			pod, c, ok := s.ByContainerID(loopID("u1", n))
			require.True(t, ok, "minute %d attempt %d", minute, n)
			require.Equal(t, "pod-u1", pod.Name)
			require.Equal(t, "oom-init", c.Name)
		}
	}
	clk.advance(5*time.Minute + time.Second)
	s.Sweep(clk.now())
	st := s.Stats()
	assert.Zero(t, st.Pods+st.Containers+st.GoneContainers, "%+v", st)
	assert.Equal(t, uint64(5), st.Forgotten.Expired)
	_, ok := s.ByPodUID("u1")
	assert.False(t, ok)
}

// A deleted pod nobody asks about is forgotten after the grace period.
func TestDeletedPodGrace(t *testing.T) {
	a := strings.Repeat("a", 64)
	clk := newClock()
	s := New(defaults(clk, time.Minute))
	s.Upsert(pod(a))
	s.Delete("uid-1")
	clk.advance(30 * time.Second)
	s.Sweep(clk.now())
	_, ok := s.ByPodUID("uid-1")
	assert.True(t, ok, "within grace")
	clk.advance(2 * time.Minute)
	s.Sweep(clk.now())
	_, _, ok = s.ByContainerID(a)
	assert.False(t, ok)
	_, ok = s.ByPodUID("uid-1")
	assert.False(t, ok)
	st := s.Stats()
	assert.Zero(t, st.Pods+st.Containers)
}

// A day of a crash loop (the kubelet's 5-minute back-off: 288 restarts)
// with the shipped defaults and a receiver that re-sends every series
// every minute for its retention: every series keeps its names, nothing is
// evicted, and memory stays at what the retention needs. With a retention
// of a day, every ID of the day fits too.
func TestCrashLoopOfADayFitsTheDefaults(t *testing.T) {
	for _, retention := range []time.Duration{time.Hour, 24 * time.Hour} {
		t.Run(retention.String(), func(t *testing.T) {
			clk := newClock()
			s := New(defaults(clk, 5*time.Minute))
			killedAt := map[int]time.Time{}
			want := map[int]Container{}
			restarts := 0
			s.Upsert(crashLooping("u1", 0))
			for minute := 1; minute <= 24*60; minute++ {
				clk.advance(time.Minute)
				if minute%5 == 0 { // killed, restarted
					killedAt[restarts] = clk.now()
					restarts++
					s.Upsert(crashLooping("u1", restarts))
				}
				for n, at := range killedAt { // the receiver's refresh
					if clk.now().Sub(at) > retention {
						delete(killedAt, n)
						continue
					}
					_, c, ok := s.ByContainerID(loopID("u1", n))
					require.True(t, ok, "minute %d: attempt %d still exported", minute, n)
					if w, seen := want[n]; seen {
						require.Equal(t, w, c)
					}
					want[n] = c
				}
				s.Sweep(clk.now())
			}
			st := s.Stats()
			assert.Equal(t, 288, restarts)
			assert.Zero(t, st.Forgotten.PodCap+st.Forgotten.Cap, "no eviction")
			// Remembered: the series still exported plus a grace period's worth.
			assert.LessOrEqual(t, st.GoneContainers, int(retention/(5*time.Minute))+2, "%+v", st)
		})
	}
}

func TestGivenUpIsBounded(t *testing.T) {
	s := New(Options{Grace: time.Minute, MaxGonePerPod: 1, MaxGone: 1, MaxGivenUp: 3})
	for n := range 5 {
		s.GiveUp(cid(n))
	}
	assert.Equal(t, 3, s.Stats().GivenUp)
	assert.False(t, s.GivenUp(cid(0)), "the oldest made room")
	assert.True(t, s.GivenUp("containerd://"+cid(4)), "runtime prefix accepted")
	// An ID given up that shows up after all is not given up any more.
	s.Upsert(pod(cid(3)))
	assert.False(t, s.GivenUp(cid(3)))
	_, _, ok := s.ByContainerID(cid(3))
	assert.True(t, ok)
	s.GiveUp(cid(3))
	assert.False(t, s.GivenUp(cid(3)), "a known ID is never given up")
}

func TestChangedFires(t *testing.T) {
	s := New(Options{Grace: time.Minute})
	ch := s.Changed()
	s.Upsert(pod(strings.Repeat("a", 64)))
	select {
	case <-ch:
	default:
		t.Fatal("Changed did not fire on Upsert")
	}
}

func TestSplitImage(t *testing.T) {
	for in, want := range map[string][2]string{
		"nginx":                         {"nginx", "latest"},
		"nginx:1.27":                    {"nginx", "1.27"},
		"registry:5000/team/app:2.0":    {"registry:5000/team/app", "2.0"},
		"registry:5000/team/app":        {"registry:5000/team/app", "latest"},
		"app@sha256:abcd":               {"app", ""},
		"ghcr.io/x/app:1.0@sha256:abcd": {"ghcr.io/x/app", "1.0"},
	} {
		name, tag := splitImage(in)
		assert.Equal(t, want, [2]string{name, tag}, in)
	}
}

// A restarted collector restores what the last one remembered: every ID
// keeps its identity, also those that left their pod's status or whose pod
// was deleted, and the watch makes those still in a status current again.
func TestSnapshotRestore(t *testing.T) {
	clk := newClock()
	s := New(Options{Labels: []string{"app"}, Grace: 5 * time.Minute, MaxGonePerPod: 512, MaxGone: 4096, MaxGivenUp: 4096, Now: clk.now})
	for n := 0; n <= 4; n++ {
		p := crashLooping("u1", n)
		p.Labels = map[string]string{"app": fmt.Sprintf("v%d", n)} // each attempt saw other labels
		s.Upsert(p)
	}
	other := crashLooping("u2", 1)
	s.Upsert(other)
	s.Delete("u2")
	data, changes, err := s.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, s.Changes(), changes)

	clk.advance(time.Hour)
	r := New(Options{Labels: []string{"app"}, Grace: 5 * time.Minute, MaxGonePerPod: 512, MaxGone: 4096, MaxGivenUp: 4096, Now: clk.now})
	added, err := r.Restore(data)
	require.NoError(t, err)
	assert.Equal(t, 7, added)
	for _, id := range []string{loopID("u1", 0), loopID("u1", 3), loopID("u1", 4), loopID("u2", 0), loopID("u2", 1)} {
		wp, wc, ok := s.ByContainerID(id)
		require.True(t, ok)
		gp, gc, ok := r.ByContainerID(id)
		require.True(t, ok, "restored %s", id[:8])
		assert.Equal(t, wp, gp)
		assert.Equal(t, wc, gc)
	}
	// The watch lists u1 (u2 is gone): its IDs in the status are current.
	p := crashLooping("u1", 4)
	p.Labels = map[string]string{"app": "v9"}
	r.Upsert(p)
	st := r.Stats()
	assert.Equal(t, 5, st.GoneContainers, "u1's 0..2 and u2's two")
	gp, _, _ := r.ByContainerID(loopID("u1", 4))
	assert.Equal(t, map[string]string{"app": "v4"}, gp.Labels, "the identity it had, not the pod as it is now")

	// Nobody asks: the restored gone IDs and the deleted pod go after the grace period.
	clk.advance(6 * time.Minute)
	r.Sweep(clk.now())
	st = r.Stats()
	assert.Equal(t, 1, st.Pods)
	assert.Equal(t, 2, st.Containers)
}

func TestRestoreRespectsCaps(t *testing.T) {
	s := New(defaults(newClock(), time.Hour))
	for n := 0; n <= 20; n++ {
		s.Upsert(crashLooping("u1", n))
	}
	data, _, err := s.Snapshot()
	require.NoError(t, err)
	r := New(Options{Grace: time.Hour, MaxGonePerPod: 5, MaxGone: 5, MaxGivenUp: 100})
	added, err := r.Restore(data)
	require.NoError(t, err)
	assert.Equal(t, 21, added)
	st := r.Stats()
	assert.Equal(t, 5, st.GoneContainers)
	assert.Equal(t, uint64(16), st.Forgotten.PodCap)
}

func TestRestoreRejectsBrokenSnapshots(t *testing.T) {
	for name, data := range map[string]string{
		"not json":        `{"version":1,"pods":[`,
		"other version":   `{"version":2,"pods":[],"ids":[]}`,
		"no such pod":     `{"version":1,"pods":[{"uid":"u1","name":"p","namespace":"ns"}],"ids":[{"id":"abc","pod":3}]}`,
		"pod without uid": `{"version":1,"pods":[{"name":"p"}],"ids":[{"id":"abc","pod":0}]}`,
	} {
		s := New(defaults(newClock(), time.Hour))
		_, err := s.Restore([]byte(data))
		assert.Error(t, err, name)
	}
}

// Gone fires when something starts its grace period, and NextExpiry says
// when the first grace period ends, so a sweep need not poll.
func TestGoneAndNextExpiry(t *testing.T) {
	a, b, c := strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64)
	s := New(Options{Grace: time.Minute})
	s.Upsert(pod(b, a))
	_, ok := s.NextExpiry()
	assert.False(t, ok, "nothing gone")
	select {
	case <-s.Gone():
		t.Fatal("nothing gone yet")
	default:
	}

	before := time.Now()
	s.Upsert(pod(c, b)) // a left the status
	<-s.Gone()
	at, ok := s.NextExpiry()
	require.True(t, ok)
	assert.WithinRange(t, at, before.Add(time.Minute), time.Now().Add(time.Minute))

	s.Delete("uid-1")
	<-s.Gone()
	at2, _ := s.NextExpiry()
	assert.Equal(t, at, at2, "the first to expire is still a")
	s.Sweep(at.Add(time.Nanosecond))
	at3, ok := s.NextExpiry()
	require.True(t, ok)
	assert.True(t, at3.After(at), "a forgotten; the pod's grace ends later")
	s.Sweep(at3.Add(time.Second))
	_, ok = s.NextExpiry()
	assert.False(t, ok)
	pods, ctrs := s.Sizes()
	assert.Zero(t, pods+ctrs)
}

// A lookup of a gone ID pushes its expiry, and so the next sweep.
func TestNextExpiryFollowsLookups(t *testing.T) {
	clk := newClock()
	s := New(defaults(clk, 5*time.Minute))
	for n := 0; n <= 2; n++ {
		s.Upsert(crashLooping("u1", n)) // attempt 0 leaves the status
	}
	at, ok := s.NextExpiry()
	require.True(t, ok)
	assert.Equal(t, clk.now().Add(5*time.Minute), at)
	clk.advance(3 * time.Minute)
	_, _, ok = s.ByContainerID(loopID("u1", 0))
	require.True(t, ok)
	at, _ = s.NextExpiry()
	assert.Equal(t, clk.now().Add(5*time.Minute), at)
	s.Sweep(clk.now().Add(4 * time.Minute))
	assert.Equal(t, 1, s.Stats().GoneContainers, "not expired: asked about 4 minutes ago")
}
