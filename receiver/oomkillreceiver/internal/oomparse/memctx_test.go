package oomparse

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func opt(v int64) OptInt { return OptInt{Value: v, Valid: true} }

const unlimitedBytes = 9007199254740988 << 10 // PAGE_COUNTER_MAX in kB, as printed

// TestMemoryContextFixtures checks every value of the memory context for
// reports written from the kernels' format strings (testdata/kernel/memory)
// and for real captures.
func TestMemoryContextFixtures(t *testing.T) {
	const ctr = "94fa0437bf378ced2c1cd2f9cb3eccb62ae833f896541a9407e69ebe3c03ec57"
	for _, tt := range []struct {
		file   string
		victim int64
		want   MemoryContext
		share  float64 // 0: none
	}{{
		file: "memory/v3.10-memcg-pod-limit.txt", victim: 4523,
		want: MemoryContext{
			Memory:  Counter{opt(131072 << 10), opt(131072 << 10), opt(412)},
			MemSwap: Counter{opt(131072 << 10), opt(9007199254740991 << 10), opt(0)},
			Kmem:    Counter{opt(0), opt(9007199254740991 << 10), opt(0)},
			// The per-cgroup lines of the pod, its pause and its app container, summed.
			Stats: MemcgStats{Path: "/kubepods/burstable/pod1f6a2c3e-8b4d-4e5f-9a0b-123456789abc", Anon: opt(130000 << 10), File: opt(1024 << 10)},
			Tasks: TaskTable{
				Printed: true, Count: 3, PIDs: []int64{4400, 4501, 4523}, PIDsComplete: true,
				Largest: Task{Valid: true, PID: 4523, Name: "php-fpm: pool", RSSBytes: 29000 * 4096},
			},
		},
		share: 116000.0 / 131072,
	}, {
		file: "memory/rhel7-memcg-systemd.txt", victim: 7001,
		want: MemoryContext{
			Memory:  Counter{opt(262144 << 10), opt(262144 << 10), opt(77)},
			MemSwap: Counter{opt(262144 << 10), opt(unlimitedBytes), opt(0)},
			Kmem:    Counter{opt(0), opt(unlimitedBytes), opt(0)},
			Stats: MemcgStats{
				Path: "/kubepods.slice/kubepods-pod1f6a2c3e_8b4d_4e5f_9a0b_123456789abc.slice/cri-containerd-" + ctr + ".scope",
				Anon: opt(260096 << 10), File: opt(2048 << 10),
			},
			Tasks: TaskTable{
				Printed: true, Count: 2, PIDs: []int64{7000, 7001}, PIDsComplete: true,
				Largest: Task{Valid: true, PID: 7001, Name: "celery", RSSBytes: 56000 * 4096},
			},
		},
		share: 224000.0 / 262144,
	}, {
		file: "memory/v4.4-memcg-cgroupfs.txt", victim: 3301,
		want: MemoryContext{
			Memory:  Counter{opt(131072 << 10), opt(131072 << 10), opt(88)},
			MemSwap: Counter{opt(131072 << 10), opt(unlimitedBytes), opt(0)},
			Kmem:    Counter{opt(0), opt(unlimitedBytes), opt(0)},
			Stats: MemcgStats{
				Path: "/kubepods/besteffort/pod1f6a2c3e-8b4d-4e5f-9a0b-123456789abc/" + ctr,
				Anon: opt(126976 << 10), File: opt(4096 << 10),
			},
			Tasks: TaskTable{
				Printed: true, Count: 2, PIDs: []int64{3300, 3301}, PIDsComplete: true,
				Largest: Task{Valid: true, PID: 3300, Name: "gunicorn", RSSBytes: 20000 * 4096},
			},
		},
		share: 48000.0 / 131072,
	}, {
		file: "memory/v4.19-memcg-pod-limit.txt", victim: 8123,
		want: MemoryContext{
			Memory:  Counter{opt(524288 << 10), opt(524288 << 10), opt(1093)},
			MemSwap: Counter{opt(524288 << 10), opt(unlimitedBytes), opt(0)},
			Kmem:    Counter{opt(6144 << 10), opt(unlimitedBytes), opt(0)},
			Stats: MemcgStats{
				Path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1f6a2c3e_8b4d_4e5f_9a0b_123456789abc.slice",
				Anon: opt((430080 + 59392) << 10), File: opt((20480 + 8192) << 10), Shmem: opt(16384 << 10),
			},
			Tasks: TaskTable{
				Printed: true, Count: 5, PIDs: []int64{8100, 8123, 8124, 8125, 8200}, PIDsComplete: true,
				Largest: Task{Valid: true, PID: 8123, Name: "java", RSSBytes: 108000 * 4096},
			},
		},
		share: 432000.0 / 524288,
	}, {
		file: "memory/v5.4-memcg-v1.txt", victim: 2962,
		want: MemoryContext{
			Memory:  Counter{opt(65536 << 10), opt(65536 << 10), opt(215)},
			MemSwap: Counter{opt(65536 << 10), opt(unlimitedBytes), opt(0)},
			Kmem:    Counter{opt(1232 << 10), opt(unlimitedBytes), opt(0)},
			Stats: MemcgStats{
				Path: "/kubepods/burstable/pod1f6a2c3e-8b4d-4e5f-9a0b-123456789abc/" + ctr,
				Anon: opt(65634304), File: opt(1466368), Shmem: opt(0), KernelStack: opt(98304), Slab: opt(774144), Sock: opt(0),
			},
			Tasks: TaskTable{
				Printed: true, Count: 2, PIDs: []int64{2961, 2962}, PIDsComplete: true,
				Largest: Task{Valid: true, PID: 2962, Name: "python3", RSSBytes: 16313 * 4096},
			},
		},
		share: 65252.0 / 65536,
	}, {
		file: "memory/v5.4-memcg-v2.txt", victim: 5001,
		want: MemoryContext{
			Memory: Counter{opt(262144 << 10), opt(262144 << 10), opt(0)},
			Swap:   Counter{opt(4096 << 10), opt(unlimitedBytes), opt(0)},
			Stats: MemcgStats{
				Path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1f6a2c3e_8b4d_4e5f_9a0b_123456789abc.slice/cri-containerd-" + ctr + ".scope",
				Anon: opt(188743680), File: opt(75497472), Shmem: opt(67108864), KernelStack: opt(147456), Slab: opt(1949696), Sock: opt(262144),
			},
			Tasks: TaskTable{
				Printed: true, Count: 2, PIDs: []int64{5000, 5001}, PIDsComplete: true,
				Largest: Task{Valid: true, PID: 5001, Name: "uwsgi", RSSBytes: 47000 * 4096},
			},
		},
		share: 188000.0 / 262144,
	}, {
		file: "memory/v6.1-memcg-v1.txt", victim: 20702,
		want: MemoryContext{
			Memory:  Counter{opt(65536 << 10), opt(65536 << 10), opt(1185)},
			MemSwap: Counter{opt(65536 << 10), opt(unlimitedBytes), opt(0)},
			Kmem:    Counter{opt(712 << 10), opt(unlimitedBytes), opt(0)},
			Stats: MemcgStats{
				Path: "/kubepods/burstable/pod1f6a2c3e-8b4d-4e5f-9a0b-123456789abc/" + ctr,
				Anon: opt(65912832), File: opt(397312), Shmem: opt(0), Kernel: opt(729088), KernelStack: opt(49152), Pagetables: opt(196608), Sock: opt(0),
			},
			Tasks: TaskTable{
				Printed: true, Count: 2, PIDs: []int64{20701, 20702}, PIDsComplete: true,
				Largest: Task{Valid: true, PID: 20702, Name: "python3", RSSBytes: 16580 * 4096},
			},
		},
		share: 66320.0 / 65536,
	}, {
		file: "memory/v6.12-memcg-v1.txt", victim: 20702,
		want: MemoryContext{
			Memory:  Counter{opt(65536 << 10), opt(65536 << 10), opt(1185)},
			MemSwap: Counter{opt(65536 << 10), opt(unlimitedBytes), opt(0)},
			Kmem:    Counter{opt(252 << 10), opt(unlimitedBytes), opt(0)},
			// total_*, not the pod cgroup's own (all 0).
			Stats: MemcgStats{Path: "/kubepods/burstable/pod121bc481-6186-4d27-ac69-1c26ae2abfed", Anon: opt(65552384), File: opt(1286144), Shmem: opt(1048576)},
			Tasks: TaskTable{
				Printed: true, Count: 3, PIDs: []int64{20690, 20701, 20702}, PIDsComplete: true,
				Largest: Task{Valid: true, PID: 20702, Name: "python3", RSSBytes: 17087 * 4096},
			},
		},
		share: 68348.0 / 65536,
	}, {
		file: "memory/v6.1-global-meminfo.txt", victim: 61234,
		want: MemoryContext{
			Tasks: TaskTable{
				Printed: true, Count: 2, PIDs: []int64{412, 61234}, PIDsComplete: true,
				Largest: Task{Valid: true, PID: 61234, Name: "java", RSSBytes: 1800000 * 4096},
			},
			System: SystemMemory{FreeBytes: opt(12709 * 4096), RAMBytes: opt(2097018 * 4096), SwapFreeBytes: opt(0), SwapTotalBytes: opt(0)},
		},
	}, {
		file: "memory/v3.10-global-meminfo.txt", victim: 8123,
		want: MemoryContext{
			Tasks: TaskTable{
				Printed: true, Count: 1, PIDs: []int64{8123}, PIDsComplete: true,
				Largest: Task{Valid: true, PID: 8123, Name: "java", RSSBytes: 1800000 * 4096},
			},
			System: SystemMemory{FreeBytes: opt(21000 * 4096), RAMBytes: opt(2097018 * 4096), SwapFreeBytes: opt(1024 << 10), SwapTotalBytes: opt(2097148 << 10)},
		},
	}, {
		// Real: this machine's 6.18, cgroup v1, a pod-level limit.
		file: "captured/pod_limit.txt", victim: 20702,
		want: MemoryContext{
			Memory:  Counter{opt(65536 << 10), opt(65536 << 10), opt(1185)},
			MemSwap: Counter{opt(65536 << 10), opt(unlimitedBytes), opt(0)},
			Kmem:    Counter{opt(252 << 10), opt(unlimitedBytes), opt(0)},
			Stats:   MemcgStats{Path: "/kubepods/burstable/pod121bc481-6186-4d27-ac69-1c26ae2abfed", Anon: opt(66846720), File: opt(4096), Shmem: opt(0)},
			Tasks: TaskTable{
				Printed: true, Count: 2, PIDs: []int64{20701, 20702}, PIDsComplete: true,
				Largest: Task{Valid: true, PID: 20702, Name: "python3", RSSBytes: 17087 * 4096},
			},
		},
		share: 68348.0 / 65536,
	}, {
		// Real: this machine's 6.18, cgroup v1, anon, shmem and page cache.
		file: "captured/memory_context.txt", victim: 29032,
		want: MemoryContext{
			Memory:  Counter{opt(65536 << 10), opt(65536 << 10), opt(636)},
			MemSwap: Counter{opt(65536 << 10), opt(unlimitedBytes), opt(0)},
			Kmem:    Counter{opt(248 << 10), opt(unlimitedBytes), opt(0)},
			Stats: MemcgStats{
				Path: "/h23memctx29020/kubepods/burstable/pod5e1f0c2a-7b3d-4c8e-9f10-23456789abcd/6d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4",
				Anon: opt(50077696), File: opt(16777216), Shmem: opt(16777216),
			},
			Tasks: TaskTable{
				Printed: true, Count: 2, PIDs: []int64{29023, 29032}, PIDsComplete: true,
				Largest: Task{Valid: true, PID: 29032, Name: "python3", RSSBytes: 13307 * 4096},
			},
		},
		share: (48768.0 + 4460) / 65536,
	}, {
		// Real: Debian's 6.1, cgroup v2, in the kernel lab.
		file: "kernellab/6.1.0-57-cloud-amd64/systemd_burstable_worker.txt", victim: 111,
		want: MemoryContext{
			Memory: Counter{opt(8192 << 10), opt(8192 << 10), opt(33)},
			Swap:   Counter{opt(0), opt(unlimitedBytes), opt(0)},
			Stats: MemcgStats{
				Path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod4a0c6c57_6b0e_4c8e_9a51_0d1e2f3a4b01.slice/cri-containerd-1b2bcd0f6d6b4f3f8f2e1a9c8b7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c01.scope",
				Anon: opt(8208384), File: opt(0), Shmem: opt(0), Kernel: opt(180224), KernelStack: opt(32768), Pagetables: opt(61440), Slab: opt(36968), Sock: opt(0),
			},
			Tasks: TaskTable{
				Printed: true, Count: 3, PIDs: []int64{108, 110, 111}, PIDsComplete: true,
				Largest: Task{Valid: true, PID: 111, Name: "dd", RSSBytes: 2214 * 4096},
			},
		},
		share: 8856.0 / 8192,
	}} {
		t.Run(tt.file, func(t *testing.T) {
			kills, stats := feedAll(loadFixture(t, fixturePath(tt.file)))
			require.Len(t, kills, 1)
			assert.Zero(t, stats.Unrecognized)
			k := kills[0]
			require.Equal(t, tt.victim, k.PID)
			require.NotNil(t, k.Memory)
			assert.Equal(t, tt.want, *k.Memory)
			share, ok := k.VictimShare()
			assert.Equal(t, tt.share != 0, ok)
			assert.InDelta(t, tt.share, share, 1e-9)
		})
	}
}

// Kernel memory: memory.stat's "kernel" where printed, else cgroup v1's
// kmem counter; nothing where neither was printed.
func TestKernelBytes(t *testing.T) {
	for file, want := range map[string]OptInt{
		"memory/v6.1-memcg-v1.txt":       opt(729088),
		"memory/v5.4-memcg-v1.txt":       opt(1232 << 10),
		"memory/v5.4-memcg-v2.txt":       {},
		"memory/v6.1-global-meminfo.txt": {},
	} {
		kills, _ := feedAll(loadFixture(t, fixturePath(file)))
		require.Len(t, kills, 1, file)
		if !want.Valid && kills[0].Memory == nil {
			continue
		}
		assert.Equal(t, want, kills[0].Memory.KernelBytes(), file)
	}
}

// Every real capture: an attributed kill carries what its report printed
// (counters, statistics, the table), a kill whose report the kernel
// rate-limited carries nothing and costs no error.
func TestMemoryContextCaptured(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(kernelFixtures, "captured", "*.txt"))
	require.NoError(t, err)
	lab, err := filepath.Glob(filepath.Join(kernelFixtures, "kernellab", "*", "*.txt"))
	require.NoError(t, err)
	bare, full := 0, 0
	for _, p := range append(files, lab...) {
		if filepath.Base(p) == "results.txt" {
			continue
		}
		msgs := loadFixture(t, p)
		kills, stats := feedAll(msgs)
		assert.Zero(t, stats.Unrecognized, p)
		for _, k := range kills {
			if k.OOMMemcg == "" {
				// No report: the kernel rate-limited it (a group kill's
				// members still have their group, not its report).
				bare++
				assert.Nil(t, k.Memory, "%s: a kill without its report has no memory context", p)
				continue
			}
			full++
			m := k.Memory
			require.NotNil(t, m, "%s pid %d", p, k.PID)
			assert.True(t, m.Memory.UsageBytes.Valid && m.Memory.LimitBytes.Valid && m.Memory.Failcnt.Valid, "%s pid %d: %+v", p, k.PID, m.Memory)
			assert.True(t, m.Stats.Anon.Valid && m.Stats.File.Valid && m.Stats.Shmem.Valid, "%s pid %d: %+v", p, k.PID, m.Stats)
			assert.Equal(t, k.OOMMemcg, m.Stats.Path, "%s: the stats are the OOM'd cgroup's", p)
			assert.True(t, m.Tasks.Printed && m.Tasks.Count >= 1 && m.Tasks.Largest.Valid, "%s pid %d: %+v", p, k.PID, m.Tasks)
			assert.Len(t, m.Tasks.PIDs, int(m.Tasks.Count))
			if k.GroupKill {
				assert.Contains(t, m.Tasks.PIDs, k.PID, "%s: a group member is in the table", p)
			}
			v1 := m.MemSwap.UsageBytes.Valid
			assert.Equal(t, v1, m.Kmem.UsageBytes.Valid, p)
			assert.Equal(t, !v1, m.Swap.UsageBytes.Valid, "%s: swap (v2) or memory+swap (v1)", p)
			assert.Equal(t, !v1, m.Stats.Kernel.Valid, "%s: 6.x cgroup v2 prints kernel", p)
		}
	}
	assert.NotZero(t, bare, "the captures hold rate-limited reports")
	assert.NotZero(t, full)
}

// The kernel lab's journal exports hold each message as journald stored
// it: on 6.1 the statistics are one message of many lines, on 6.12 one
// message per line. Read either way, each report gives the same context.
func TestMemoryContextJournalExports(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(kernelFixtures, "..", "journal", "kernellab", "*", "*.export"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	multiLine := 0
	for _, p := range files {
		txt := filepath.Join(kernelFixtures, "kernellab", filepath.Base(filepath.Dir(p)), strings.TrimSuffix(filepath.Base(p), ".export")+".txt")
		t.Run(filepath.Base(filepath.Dir(p))+"/"+filepath.Base(p), func(t *testing.T) {
			msgs := readExport(t, p)
			for _, m := range msgs {
				if strings.HasPrefix(m.Text, "anon ") && strings.Contains(m.Text, "\nfile ") {
					multiLine++
				}
			}
			fromExport, _ := feedAll(msgs)
			fromText, _ := feedAll(loadFixture(t, txt))
			require.Equal(t, len(fromText), len(fromExport))
			for i := range fromText {
				assert.Equal(t, fromText[i].PID, fromExport[i].PID)
				assert.Equal(t, fromText[i].Memory, fromExport[i].Memory, "pid %d", fromText[i].PID)
			}
		})
	}
	assert.NotZero(t, multiLine, "6.1 prints the statistics as one message")
}

// readExport reads the MESSAGE and _BOOT_ID of each entry of a journal
// export file (binary-safe fields: name, newline, little-endian length,
// data).
func readExport(t testing.TB, path string) []Message {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	br := bufio.NewReader(f)
	var out []Message
	var cur Message
	has := false
	for {
		line, err := br.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			break
		}
		require.NoError(t, err)
		line = bytes.TrimSuffix(line, []byte("\n"))
		if len(line) == 0 {
			if has {
				out = append(out, cur)
			}
			cur, has = Message{}, false
			continue
		}
		name, value, eq := bytes.Cut(line, []byte("="))
		if !eq {
			var n uint64
			require.NoError(t, binary.Read(br, binary.LittleEndian, &n))
			value = make([]byte, n+1)
			_, err := io.ReadFull(br, value)
			require.NoError(t, err)
			value = value[:n]
		}
		switch string(name) {
		case "MESSAGE":
			cur.Text, has = string(value), true
		case "_BOOT_ID":
			cur.BootID = string(value)
		case "__REALTIME_TIMESTAMP":
			us, err := strconv.ParseInt(string(value), 10, 64)
			require.NoError(t, err)
			cur.Time = time.UnixMicro(us)
		}
	}
	if has {
		out = append(out, cur)
	}
	return out
}

// A name can be anything a process chooses: the table row is read from
// fixed columns, so the name is whatever follows them, and the other
// columns come out right.
func TestTaskRowHostileNames(t *testing.T) {
	const header = "[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name"
	for _, name := range []string{"php-fpm: pool w", " 1 2 3 4 5 6 7", "] 9 9 9 9", "a=b,c=d [x]", "", " ", "9999999999", "x\\x0ay"} {
		var s memState
		s.tableHeader(header)
		row := fmt.Sprintf("[%7d] %5d %5d %8d %8d %8d %8d %9d %8d %8d         %5d %s", 4242, -2, 4240, 55342, 16313, 15900, 413, 0, 180224, 0, -998, name)
		pid, tgid, rss, got, ok := parseTaskRow(row, s.tableCols, s.rssCol)
		require.True(t, ok, "%q", row)
		assert.Equal(t, []any{int64(4242), int64(4240), int64(16313), name}, []any{pid, tgid, rss, got})
	}
	// A row of another layout than its header is not taken.
	var s memState
	s.tableHeader(header)
	_, _, _, _, ok := parseTaskRow("[   4242]     0  4242    55342    16313   180224        0           999 python3", s.tableCols, s.rssCol)
	assert.False(t, ok)
}

// Lines that only look like parts of a report change nothing; a block
// is read only where the kernel prints it.
func TestMemoryContextOutOfPlace(t *testing.T) {
	memcg := "/kubepods/burstable/pod" + podUID + "/" + ctrID
	r := report61("python3", 4321, memcg)
	lines := []string{
		// Before any report: not taken, not counted as drift.
		"memory: usage 1kB, limit 1kB, failcnt 1", "Memory cgroup stats for /x:", "anon 1", "Mem-Info:", "1 pages RAM",
		r[0],
		"memory: usage 2048kB, limit 4096kB, failcnt 3",
		"memory: usage x kB, limit 1kB, failcnt 1", // not the kernel's format: ignored
		"Memory cgroup stats for " + memcg + ":",
		"anon 1048576",
		"eth0: link up", // another message ends the block
		"file 7",
		r[1], r[2],
		// After the victim: nothing more joins that kill.
		"memory: usage 9kB, limit 9kB, failcnt 9",
	}
	kills, stats := feedAll(msgs(lines))
	require.Len(t, kills, 1)
	assert.Zero(t, stats.Unrecognized)
	m := kills[0].Memory
	assert.Equal(t, Counter{opt(2 << 20), opt(4 << 20), opt(3)}, m.Memory)
	assert.Equal(t, MemcgStats{Path: memcg, Anon: opt(1 << 20)}, m.Stats)
	assert.Equal(t, TaskTable{}, m.Tasks)
}

// The pid list is bounded; the count and the largest are not.
func TestTaskTableBounded(t *testing.T) {
	lines := bigTableReport(5000)
	a := NewAssembler(Options{MaxTaskPIDs: 100})
	var kills []Kill
	for _, m := range msgs(lines) {
		if k, out := a.Feed(m); out == LineKill {
			kills = append(kills, k)
		}
	}
	require.Len(t, kills, 1)
	tt := kills[0].Memory.Tasks
	assert.Equal(t, int64(5000), tt.Count)
	assert.Len(t, tt.PIDs, 100)
	assert.False(t, tt.PIDsComplete)
	assert.Equal(t, Task{Valid: true, PID: 14999, Name: "worker 4999: x", RSSBytes: (1000 + 4999) * 4096}, tt.Largest)
}

// bigTableReport is a 6.x memcg report whose task table lists n processes
// (the victim last, and the largest).
func bigTableReport(n int) []string {
	memcg := "/kubepods/burstable/pod" + podUID + "/" + ctrID
	r := report61(fmt.Sprintf("worker %d: x", n-1), 10000+n-1, memcg)
	lines := []string{
		r[0], "memory: usage 65536kB, limit 65536kB, failcnt 101", "swap: usage 0kB, limit 9007199254740988kB, failcnt 0",
		"Memory cgroup stats for " + memcg + ":", "anon 66584576", "file 0", "kernel 1204224", "shmem 0", "sock 0",
		"Tasks state (memory values in pages):",
		"[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name",
	}
	for i := range n {
		lines = append(lines, fmt.Sprintf("[%7d] %5d %5d %8d %8d %8d %8d %9d %8d %8d         %5d worker %d: x", 10000+i, 33, 10000+i, 55342, 1000+i, 900+i, 100, 0, 180224, 0, 0, i))
	}
	return append(lines, r[1:]...)
}

// BenchmarkTaskTable5000 measures a report whose task table has 5,000 rows:
// time and allocations per report stay flat in the rows beyond the
// bounded pid list.
func BenchmarkTaskTable5000(b *testing.B) {
	stream := msgs(bigTableReport(5000))
	b.ReportAllocs()
	for b.Loop() {
		a := NewAssembler(Options{})
		kills := 0
		for _, m := range stream {
			if _, out := a.Feed(m); out == LineKill {
				kills++
			}
		}
		if kills != 1 {
			b.Fatal(kills)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(stream)), "ns/line")
}

// Relevant says yes to every line a block is read from, as the receiver
// skips the others unread.
func TestRelevantInBlocks(t *testing.T) {
	a := NewAssembler(Options{})
	for _, l := range []string{"Mem-Info:", "Mem-Info: \n", "Mem-Info:  "} {
		assert.True(t, a.Relevant(l), "%q", l)
	}
	a.Feed(Message{Text: "x invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0", BootID: "b"})
	assert.False(t, a.Relevant("anon 1"))
	a.Feed(Message{Text: "Memory cgroup stats for /a:", BootID: "b"})
	assert.True(t, a.Relevant("anon 1"), "inside the stats block")
	a.Feed(Message{Text: "Tasks state (memory values in pages):", BootID: "b"})
	assert.False(t, a.Relevant("anon 1"), "the block ended")
}
