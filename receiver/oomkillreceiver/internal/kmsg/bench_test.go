package kmsg

import (
	"testing"
)

// A victim line and a multi-line "Memory cgroup stats" record as a 6.x
// kernel writes them into /dev/kmsg.
var (
	benchVictim = []byte("3,2908,1355564,-;Memory cgroup out of memory: Killed process 2962 (python3) total-vm:221368kB, anon-rss:65024kB, file-rss:1628kB, shmem-rss:0kB, UID:0 pgtables:184kB oom_score_adj:0\n")
	benchStats  = []byte(`6,2899,1355400,-;anon 8208384\x0afile 0\x0akernel 180224\x0akernel_stack 32768\x0apagetables 65536\x0asec_pagetables 0\x0apercpu 0\x0asock 0\x0avmalloc 0\x0ashmem 0\x0afile_mapped 0\x0afile_dirty 0\x0afile_writeback 0\x0aswapcached 0\x0aanon_thp 0\x0afile_thp 0\x0ashmem_thp 0\x0ainactive_anon 8187904\x0aactive_anon 4096` + "\n SUBSYSTEM=memory\n")
)

func BenchmarkParseLine(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchVictim)))
	for b.Loop() {
		if _, err := Parse(benchVictim); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseEscapedRecord(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchStats)))
	for b.Loop() {
		if _, err := Parse(benchStats); err != nil {
			b.Fatal(err)
		}
	}
}
