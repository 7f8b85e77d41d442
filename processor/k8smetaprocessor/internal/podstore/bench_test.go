package podstore

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// BenchmarkByContainerID: a lookup of a current ID on a node of 110 pods.
func BenchmarkByContainerID(b *testing.B) {
	s := New(Options{Grace: time.Minute, MaxGonePerPod: 512, MaxGone: 4096, MaxGivenUp: 4096})
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

// fillAtCaps crash-loops pods (512 restarts each beyond the first two) until
// the store holds MaxGone gone IDs, then as many again, so that evictions
// also fill the given-up set to its cap.
func fillAtCaps(maxGone int) *Store {
	s := New(Options{Labels: []string{"app"}, Grace: time.Hour, MaxGonePerPod: 512, MaxGone: maxGone, MaxGivenUp: maxGone})
	for i := 0; i < 2*maxGone/512; i++ {
		uid := fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
		p := crashLooping(uid, 0)
		p.Name, p.Namespace = "worker-7d4b9c8f6d-"+uid[:5], "team-"+uid[6:8]
		p.Labels = map[string]string{"app": "worker", "pod-template-hash": "7d4b9c8f6d"}
		yes := true
		p.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "worker-7d4b9c8f6d", Controller: &yes}}
		for n := 0; n <= 513; n++ {
			p.Status = crashLooping(uid, n).Status
			s.Upsert(p)
		}
	}
	return s
}

// BenchmarkMemoryAtCaps: the heap of a store whose gone IDs and given-up
// set are at their caps, per remembered ID (gone or given up): the
// defaults and 10x; PODSTORE_BENCH_SCALES=1,10,100 adds 100x (about a
// minute of CPU to fill).
func BenchmarkMemoryAtCaps(b *testing.B) {
	scales := []int{1, 10}
	if env := os.Getenv("PODSTORE_BENCH_SCALES"); env != "" {
		scales = nil
		for _, f := range strings.Split(env, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				b.Fatalf("PODSTORE_BENCH_SCALES: %v", err)
			}
			scales = append(scales, n)
		}
	}
	for _, scale := range scales {
		b.Run(fmt.Sprintf("max_gone=%d", 4096*scale), func(b *testing.B) {
			var heap uint64
			var st Stats
			for b.Loop() {
				before := heapInUse()
				s := fillAtCaps(4096 * scale)
				heap = heapInUse() - before
				st = s.Stats()
				runtime.KeepAlive(s)
			}
			if st.GoneContainers != 4096*scale || st.GivenUp != 4096*scale {
				b.Fatalf("not at the caps: %+v", st)
			}
			b.ReportMetric(float64(heap)/(1<<20), "MiB")
			b.ReportMetric(float64(heap)/float64(st.GoneContainers+st.GivenUp), "B/ID")
		})
	}
}

// BenchmarkByContainerIDGone: a lookup of a gone ID (it moves to the front
// of the eviction order) in a store at the default caps.
func BenchmarkByContainerIDGone(b *testing.B) {
	s := fillAtCaps(4096)
	var ids []string
	for id, idn := range s.ids {
		if idn.goneEl != nil {
			ids = append(ids, id)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, _, ok := s.ByContainerID(ids[i%len(ids)]); !ok {
			b.Fatal("miss")
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkSnapshotAtCaps: encoding every identity of a store at the
// default caps (what k8smeta writes to its storage extension when the
// identities changed, at most once a sweep), and its size.
func BenchmarkSnapshotAtCaps(b *testing.B) {
	s := fillAtCaps(4096)
	var size int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		data, _, err := s.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		size = len(data)
	}
	b.ReportMetric(float64(size)/(1<<10), "KiB")
}
