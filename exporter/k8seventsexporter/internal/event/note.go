package event

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/kill"
)

// MaxNote is the Events API's limit on a note.
const MaxNote = 1024

// Note is the event message: which process in which container, which
// limit, and what became of the container.
func Note(k kill.Kill) string {
	var b strings.Builder
	proc := "a process"
	if k.Process != "" {
		proc = "process " + strconv.Quote(k.Process)
	}
	if k.PID >= 0 {
		proc += fmt.Sprintf(" (pid %d)", k.PID)
	}
	var where string
	switch {
	case k.Container != "":
		where = " in container " + strconv.Quote(k.Container)
	case k.HasPod():
		where = " in this pod"
	case k.PodUID != "":
		where = " in pod UID " + k.PodUID
	default:
		where = " outside any pod"
	}
	fmt.Fprintf(&b, "The kernel OOM killer killed %s%s: ", proc, where)
	// The kernel's own limit is the one that was hit; the container's from
	// the API stands in where the report was not printed.
	limit := int64(-1)
	if k.Mem.Limit.OK {
		limit = k.Mem.Limit.V
	}
	if !isLimit(limit) && k.Scope == kill.ScopeContainer {
		limit = k.LimitB
	}
	switch k.Scope {
	case kill.ScopeContainer:
		b.WriteString("the container's memory limit")
		if isLimit(limit) {
			b.WriteString(" (" + bytesHuman(limit) + ")")
		}
		b.WriteString(" was hit")
	case kill.ScopePod:
		b.WriteString("the pod's memory limit")
		if isLimit(limit) {
			// The kubelet sets it to the sum of the containers' limits.
			b.WriteString(" (" + bytesHuman(limit) + ", the sum of its containers' limits)")
		}
		b.WriteString(" was hit")
	case kill.ScopeMemcg:
		b.WriteString("a memory cgroup limit")
		if isLimit(limit) {
			b.WriteString(" (" + bytesHuman(limit) + ")")
		}
		b.WriteString(" was hit")
	case kill.ScopeNode:
		b.WriteString("the node ran out of memory")
	case kill.ScopeCpuset:
		b.WriteString("the memory of its cpuset ran out")
	case kill.ScopeMempolicy:
		b.WriteString("the memory its memory policy allows ran out")
	default:
		b.WriteString("the kernel did not say which limit was hit")
	}
	if k.AnonRSSKB >= 0 {
		fmt.Fprintf(&b, "; the process used %s of anonymous memory", bytesHuman(k.AnonRSSKB*1024))
	}
	b.WriteString(".")
	if m := MemorySentence(k); m != "" {
		b.WriteString(" " + m)
	}
	switch k.Outcome {
	case "survived":
		b.WriteString(" The container kept running: Kubernetes records no restart for this.")
	case "exited":
		b.WriteString(" The container exited: Kubernetes restarts it and reports OOMKilled.")
	}
	s := b.String()
	if len(s) > MaxNote {
		s = strings.ToValidUTF8(s[:MaxNote], "")
	}
	return s
}

// bytesHuman prints a size in the binary units Kubernetes uses (256Mi).
func bytesHuman(n int64) string {
	units := []string{"Ki", "Mi", "Gi", "Ti"}
	if n < 1024 {
		return strconv.FormatInt(n, 10) + "B"
	}
	v, u := float64(n)/1024, 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if v == float64(int64(v)) {
		return strconv.FormatInt(int64(v), 10) + units[u]
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + units[u]
}
