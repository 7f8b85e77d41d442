package oomparse

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzAssembler feeds arbitrary bytes, one message per line, with boot and
// clock changes driven by the input. Nothing may panic, and every kill must
// come from a victim line of the input with consistent fields. A second
// assembler gets only the lines Relevant accepts, and Skip for the others,
// as the receiver does: it must find the same kills.
func FuzzAssembler(f *testing.F) {
	// Hand-written reports of every era, and what Debian's 6.1 and 6.12
	// printed for real cgroup v2 kills (the kernel lab's captures).
	files, _ := filepath.Glob(filepath.Join(kernelFixtures, "*.txt"))
	lab, _ := filepath.Glob(filepath.Join(kernelFixtures, "kernellab", "*", "*.txt"))
	mem, _ := filepath.Glob(filepath.Join(kernelFixtures, "memory", "*.txt"))
	for _, p := range append(append(files, lab...), mem...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a := NewAssembler(Options{MaxLineBytes: 4096})
		skipping := NewAssembler(Options{MaxLineBytes: 4096})
		now := time.Unix(1_700_000_000, 0)
		boot := "a"
		kills := uint64(0)
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(line) > 0 && line[0] == '@' {
				boot += "x" // a reboot
			}
			if len(line) > 0 && line[0] == '~' {
				now = now.Add(time.Minute)
			}
			text := string(line)
			k, out := a.Feed(Message{Text: text, Time: now, BootID: boot})
			if skipping.Relevant(text) {
				if sk, sout := skipping.Feed(Message{Text: text, Time: now, BootID: boot}); sout != out || sk.PID != k.PID || sk.Attributed != k.Attributed {
					t.Fatalf("line %q: Feed gave %v %+v, after Skips %v %+v", text, out, k, sout, sk)
				}
			} else {
				if out != LineIgnored {
					t.Fatalf("Relevant said no to %q, Feed gave %v", text, out)
				}
				skipping.Skip()
			}
			if out != LineKill {
				continue
			}
			kills++
			if k.Line != strings.TrimRight(text, "\n ") || !strings.Contains(text, "Killed process ") {
				t.Fatalf("kill from a line that is not its victim line: %q", text)
			}
			if k.Attributed && k.TaskMemcg == "" {
				t.Fatalf("attributed kill without a cgroup: %+v", k)
			}
			if k.BootID != boot {
				t.Fatalf("kill carries boot %q, line was in %q", k.BootID, boot)
			}
			if !strings.Contains(text, "("+k.Comm+")") && !strings.Contains(text, "("+k.Comm+"),") {
				t.Fatalf("comm %q not delimited in %q", k.Comm, text)
			}
		}
		s, ss := a.Stats(), skipping.Stats()
		if s.Kills != kills {
			t.Fatalf("stats say %d kills, saw %d", s.Kills, kills)
		}
		// Expired and MissingVictims may differ: a skipped line does not
		// expire a report, the next relevant line does.
		s.Expired, ss.Expired = 0, 0
		s.MissingVictims, ss.MissingVictims = 0, 0
		if s != ss {
			t.Fatalf("stats differ: Feed %+v, with Skip %+v", s, ss)
		}
	})
}

// FuzzHostileComm gives a victim any name a process can choose (≤15 bytes,
// no NUL; the kernel's log escapes newlines) and checks that its pid, uid
// and cgroup come out unchanged.
func FuzzHostileComm(f *testing.F) {
	for _, s := range []string{"python3", "a,pid=1,uid=0", ") total-vm:1kB", "x,task=evil", ",task_memcg=/x", "Killed process"} {
		f.Add(s)
	}
	memcg := "/kubepods/burstable/pod" + podUID + "/" + ctrID
	f.Fuzz(func(t *testing.T, comm string) {
		if len(comm) > 15 || strings.ContainsAny(comm, "\x00\n") {
			return
		}
		kills, _ := feedAll(msgs(report61(comm, 4321, memcg)))
		if len(kills) != 1 {
			t.Fatalf("%d kills for comm %q", len(kills), comm)
		}
		k := kills[0]
		if k.PID != 4321 || k.Comm != strings.TrimRight(comm, " ") && k.Comm != comm || k.UID != (OptInt{0, true}) {
			t.Fatalf("comm %q changed the victim: %+v", comm, k)
		}
		if k.TaskMemcg != memcg || k.Cgroup.ContainerID != ctrID || !k.Attributed {
			t.Fatalf("comm %q changed the attribution: %+v", comm, k)
		}
	})
}

// FuzzTaskRow gives a task table row any name a process can choose and
// any column values: the row reads back the same pid, tgid, rss and name,
// and a report with it still counts its victim and its processes.
func FuzzTaskRow(f *testing.F) {
	for _, s := range []string{"python3", "php-fpm: pool w", " 1 2 3 4 5 6 7", "] 9 9", "a=b,c=d [x]", ""} {
		f.Add(s, int64(4242), int64(-2), int64(16313))
	}
	const header = "[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name"
	memcg := "/kubepods/burstable/pod" + podUID + "/" + ctrID
	f.Fuzz(func(t *testing.T, name string, pid, uid, rss int64) {
		if len(name) > 15 || strings.ContainsAny(name, "\x00\n") || pid < 0 || rss < 0 || rss > 1<<40 {
			return
		}
		row := fmt.Sprintf("[%7d] %5d %5d %8d %8d %8d %8d %9d %8d %8d         %5d %s", pid, uid, pid, 55342, rss, 0, 0, 0, 180224, 0, 0, name)
		var s memState
		s.tableHeader(header)
		gp, gt, gr, gn, ok := parseTaskRow(row, s.tableCols, s.rssCol)
		if !ok || gp != pid || gt != pid || gr != rss || gn != name {
			t.Fatalf("%q: got %v %d %d %d %q", row, ok, gp, gt, gr, gn)
		}
		r := report61("python3", 4321, memcg)
		lines := []string{
			r[0], "Tasks state (memory values in pages):", header, row,
			fmt.Sprintf("[%7d] %5d %5d %8d %8d %8d %8d %9d %8d %8d         %5d python3", 4321, 0, 4321, 55342, 100, 0, 0, 0, 180224, 0, 0),
		}
		kills, _ := feedAll(msgs(append(lines, r[1:]...)))
		if len(kills) != 1 || kills[0].PID != 4321 || kills[0].Memory == nil || kills[0].Memory.Tasks.Count != 2 {
			t.Fatalf("name %q changed the report: %+v", name, kills)
		}
		if l := kills[0].Memory.Tasks.Largest; rss > 100 && (l.PID != pid || l.Name != strings.TrimRight(name, " ")) {
			t.Fatalf("largest %+v, want pid %d %q", l, pid, name)
		}
	})
}
