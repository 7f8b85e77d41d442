package oomparse

import (
	"fmt"
	"testing"
	"time"
)

// benchStream is a busy node's kernel log: ordinary kernel chatter with one
// full 6.x OOM report (about 20 lines) per 1000 messages.
func benchStream() []Message {
	chatter := []string{
		"IPv6: ADDRCONF(NETDEV_CHANGE): veth1a2b3c4d: link becomes ready",
		"cni0: port 3(veth1a2b3c4d) entered forwarding state",
		"audit: type=1400 audit(1700000000.123:456): apparmor=\"DENIED\" operation=\"open\" profile=\"cri-containerd.apparmor.d\" name=\"/proc/sys/kernel/random/boot_id\" pid=12345 comm=\"node\"",
		"EXT4-fs (sda1): mounted filesystem with ordered data mode. Quota mode: none.",
		"TCP: request_sock_TCP: Possible SYN flooding on port 8080. Sending cookies.",
		"nf_conntrack: nf_conntrack: table full, dropping packet",
		"overlayfs: upper fs does not support RENAME_WHITEOUT.",
		"eth0: renamed from vethf00ba12",
	}
	memcg := "/kubepods/burstable/pod" + podUID + "/" + ctrID
	var lines []string
	for i := 0; len(lines) < 100_000; i++ {
		if i%1000 == 999 {
			lines = append(lines, report61("python3", 1000+i, memcg)[0], "CPU: 1 PID: 2962 Comm: python3 Not tainted 6.18.0 #1",
				"Call Trace:", " <TASK>", " dump_stack_lvl+0x5d/0x80", " dump_header+0x43/0x1a0", " oom_kill_process+0x10d/0x1c0",
				" out_of_memory+0x2c5/0x5b0", " </TASK>", "memory: usage 65536kB, limit 65536kB, failcnt 101",
				"Memory cgroup stats for "+memcg+":", "anon 66584576", "file 0",
				"Tasks state (memory values in pages):",
				"[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name",
				fmt.Sprintf("[   %d]     0  %d    55342    16313    15900      413         0   180224        0           999 python3", 1000+i, 1000+i))
			lines = append(lines, report61("python3", 1000+i, memcg)[1:]...)
			continue
		}
		lines = append(lines, chatter[i%len(chatter)])
	}
	out := make([]Message, len(lines))
	now := time.Unix(1_700_000_000, 0)
	for i, l := range lines {
		out[i] = Message{Text: l, Time: now.Add(time.Duration(i) * time.Millisecond), BootID: "b"}
	}
	return out
}

// BenchmarkAssembler reports messages/s and allocations per message over a
// realistic mix; run with `make bench`.
func BenchmarkAssembler(b *testing.B) {
	stream := benchStream()
	b.ReportAllocs()
	b.ResetTimer()
	kills := 0
	for b.Loop() {
		a := NewAssembler(Options{})
		for _, m := range stream {
			if _, out := a.Feed(m); out == LineKill {
				kills++
			}
		}
	}
	b.StopTimer()
	if kills == 0 {
		b.Fatal("no kills found")
	}
	n := float64(b.N) * float64(len(stream))
	b.ReportMetric(n/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(testing.AllocsPerRun(1, func() {
		a := NewAssembler(Options{})
		for _, m := range stream {
			a.Feed(m)
		}
	}))/float64(len(stream)), "allocs/msg")
}
