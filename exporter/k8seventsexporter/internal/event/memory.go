package event

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/kill"
)

// MaxMemorySentence bounds the sentence on the report's numbers; only the
// largest process's name is not a number, and it is cut to maxNameInNote.
const (
	MaxMemorySentence = 320
	maxNameInNote     = 32
)

// isLimit: a cgroup limit the kernel printed, not its "no limit" value
// (PAGE_COUNTER_MAX pages, 8 EiB).
func isLimit(b int64) bool { return b > 0 && b < 1<<60 }

// MemorySentence says, from the report's numbers only, where the memory
// was at the kill: "Usage 256Mi of 256Mi: anon 250Mi, file 2Mi, shmem 0,
// kernel 4Mi; 12 processes; the victim held 63Mi, the largest was
// "php-fpm: pool" (pid 4242) with 70Mi." Empty when the report was not
// printed (rate-limited).
func MemorySentence(k kill.Kill) string {
	m := k.Mem
	var parts []string
	var head strings.Builder
	switch {
	case m.Usage.OK && m.Limit.OK && isLimit(m.Limit.V):
		fmt.Fprintf(&head, "Usage %s of %s", size(m.Usage.V), bytesHuman(m.Limit.V))
	case m.Usage.OK:
		fmt.Fprintf(&head, "Usage %s", size(m.Usage.V))
	case m.SystemFree.OK && m.SystemRAM.OK:
		fmt.Fprintf(&head, "The node had %s free of %s", size(m.SystemFree.V), size(m.SystemRAM.V))
	}
	var kinds []string
	for _, c := range []struct {
		name string
		v    kill.Opt
	}{{"anon", m.Anon}, {"file", m.File}, {"shmem", m.Shmem}, {"kernel", m.Kernel}} {
		if c.v.OK {
			kinds = append(kinds, c.name+" "+size(c.v.V))
		}
	}
	if len(kinds) > 0 {
		if head.Len() == 0 {
			head.WriteString("Memory")
		}
		head.WriteString(": " + strings.Join(kinds, ", "))
	}
	if head.Len() > 0 {
		parts = append(parts, head.String())
	}
	if m.Tasks.OK {
		parts = append(parts, plural(m.Tasks.V, "process", "processes"))
	}
	if m.GroupSize.OK && m.GroupSize.V > 1 {
		parts = append(parts, plural(m.GroupSize.V, "process", "processes")+" killed together (memory.oom.group)")
	}
	var who []string
	if k.AnonRSSKB >= 0 && m.VictimFileKB.OK {
		held := (k.AnonRSSKB + m.VictimFileKB.V + m.VictimShmemKB.V) << 10
		who = append(who, "the victim held "+size(held))
	}
	if m.LargestPID.OK && m.Largest.OK {
		if m.LargestPID.V == k.PID {
			who = append(who, "it was the largest process")
		} else {
			name := m.LargestName
			if len(name) > maxNameInNote {
				name = strings.ToValidUTF8(name[:maxNameInNote], "")
			}
			who = append(who, fmt.Sprintf("the largest was %s (pid %d) with %s", strconv.Quote(name), m.LargestPID.V, size(m.Largest.V)))
		}
	}
	if len(who) > 0 {
		parts = append(parts, strings.Join(who, ", "))
	}
	if len(parts) == 0 {
		return ""
	}
	s := strings.Join(parts, "; ") + "."
	if len(s) > MaxMemorySentence {
		s = strings.ToValidUTF8(s[:MaxMemorySentence-3], "") + "..."
	}
	return s
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.FormatInt(n, 10) + " " + many
}

func size(n int64) string {
	if n == 0 {
		return "0"
	}
	return bytesHuman(n)
}
