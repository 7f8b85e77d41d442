package reconcile

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkObserveAndMatch: one reading of 2,000 cgroups (500 pods, 3
// containers each) in which one container rose, and its kill matched, as
// after a batch holding a kill.
func BenchmarkObserveAndMatch(b *testing.B) {
	var paths []string
	for p := 0; p < 500; p++ {
		pod := fmt.Sprintf("/kubepods/burstable/pod%08d-0000-4000-8000-000000000000", p)
		paths = append(paths, pod)
		for c := 0; c < 3; c++ {
			paths = append(paths, fmt.Sprintf("%s/%064d", pod, c))
		}
	}
	reading := func(sec float64, n uint64) Reading {
		r := Reading{Start: at(sec), End: at(sec + 0.01), Node: n}
		for i, p := range paths {
			k := uint64(0)
			if i == 1 {
				k = n
			}
			r.Cgroups = append(r.Cgroups, CgroupCount{Path: p, Count: Count{Kills: k}})
		}
		return r
	}
	rc := New(Config{Grace: 10 * time.Second})
	rc.Observe(reading(0, 0))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		rc.Observe(reading(float64(i), uint64(i)))
		if m := rc.Match([]Event{{Kind: Kill, Cgroup: paths[1], Time: at(float64(i) - 0.5)}}); !m[0].Confirmed {
			b.Fatal("not matched")
		}
		rc.Declare(at(float64(i)), at(float64(i)))
	}
}
