package oomparse

import (
	"bytes"
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
	for _, p := range append(files, lab...) {
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
				if out != OutcomeIgnored {
					t.Fatalf("Relevant said no to %q, Feed gave %v", text, out)
				}
				skipping.Skip()
			}
			if out != OutcomeKill {
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
