package oomcounter

import (
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkReadV1 reads 500 pods of 3 containers (2,000 cgroups) laid out
// as plain files: the walk and the parsing, not the cgroup filesystem's own
// cost (test/bench's TestWitnessIdle measures that on real cgroups).
func BenchmarkReadV1(b *testing.B) {
	root := b.TempDir()
	writeFile(b, filepath.Join(root, "memory", "memory.oom_control"), "oom_kill 0\n")
	for p := 0; p < 500; p++ {
		pod := "/kubepods/burstable/pod" + uid[:30] + strconv.Itoa(100000+p)
		v1Cgroup(b, root, pod, 0)
		for c := 0; c < 3; c++ {
			v1Cgroup(b, root, pod+"/"+id[:60]+strconv.Itoa(1000+c), 0)
		}
	}
	r, err := Open(root, vmstat(b, "3"), 4000)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := r.Read()
		if err != nil || len(s.Cgroups) != 2000 {
			b.Fatal(err, len(s.Cgroups))
		}
	}
}

// BenchmarkNode is what a node without OOM kills pays per poll.
func BenchmarkNode(b *testing.B) {
	r, err := Open("", "/proc/vmstat", 0)
	if err != nil {
		b.Skip("this kernel has no OOM-kill counters:", err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := r.Node(); err != nil {
			b.Fatal(err)
		}
	}
}
