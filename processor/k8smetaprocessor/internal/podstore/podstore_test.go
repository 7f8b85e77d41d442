package podstore

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func pod(ids ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1"}}
	cs := corev1.ContainerStatus{Name: "app", ContainerID: "containerd://" + ids[0]}
	if len(ids) > 1 {
		cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: "containerd://" + ids[1]}
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
	return p
}

// A container ID pushed out of the status by a second restart stays
// resolvable for the grace period, then is forgotten.
func TestContainerIDGrace(t *testing.T) {
	a, b, c := strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64)
	s := New(Options{Grace: time.Minute})
	s.Upsert(pod(b, a)) // running b, previous a
	s.Upsert(pod(c, b)) // restarted again: a left the status
	for _, id := range []string{a, b, c} {
		_, ctr, ok := s.ByContainerID(id)
		require.True(t, ok, id)
		assert.Equal(t, "app", ctr.Name)
	}
	s.Sweep(time.Now().Add(2 * time.Minute))
	_, _, ok := s.ByContainerID(a)
	assert.False(t, ok, "gone for longer than the grace period")
	_, _, ok = s.ByContainerID(c)
	assert.True(t, ok, "current IDs never expire")
	pods, ctrs := s.Sizes()
	assert.Equal(t, 1, pods)
	assert.Equal(t, 2, ctrs)
}

// A deleted pod is resolvable for the grace period; then it and its
// container IDs are forgotten, which bounds memory.
func TestDeletedPodGrace(t *testing.T) {
	a := strings.Repeat("a", 64)
	s := New(Options{Grace: time.Minute})
	s.Upsert(pod(a))
	s.Delete("uid-1")
	s.Sweep(time.Now().Add(30 * time.Second))
	_, _, ok := s.ByContainerID(a)
	assert.True(t, ok, "within grace")
	s.Sweep(time.Now().Add(2 * time.Minute))
	_, _, ok = s.ByContainerID(a)
	assert.False(t, ok)
	_, ok = s.ByPodUID("uid-1")
	assert.False(t, ok)
	pods, ctrs := s.Sizes()
	assert.Zero(t, pods+ctrs)
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

func BenchmarkByContainerID(b *testing.B) {
	s := New(Options{Grace: time.Minute})
	ids := make([]string, 110)
	for i := range ids {
		ids[i] = strings.Repeat(string(rune('a'+i%26)), 63) + string(rune('0'+i%10))
		p := pod(ids[i])
		p.UID = types.UID(fmt.Sprintf("uid-%d", i))
		s.Upsert(p)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, _, ok := s.ByContainerID(ids[i%len(ids)]); !ok {
			b.Fatal("miss")
		}
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
