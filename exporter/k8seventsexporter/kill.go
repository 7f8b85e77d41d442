package k8seventsexporter

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// eventName is the log record event name the oomkill receiver gives a kill.
const eventName = "oom_kill"

// limitScope is which limit a kill hit, as the event message names it.
type limitScope string

const (
	scopeContainer limitScope = "container"
	scopePod       limitScope = "pod"
	scopeMemcg     limitScope = "memcg" // a cgroup limit we cannot place
	scopeNode      limitScope = "node"
	scopeCpuset    limitScope = "cpuset"
	scopeMempolicy limitScope = "mempolicy"
	scopeUnknown   limitScope = "unknown"
)

// kill is what an event needs from one oom_kill record.
type kill struct {
	ID        string // oom.kill.id, or derived from boot ID, time and pid
	Time      time.Time
	PID       int64
	Process   string
	Scope     limitScope
	AnonRSSKB int64 // -1: unknown
	LimitB    int64 // container memory limit in bytes, -1: unknown
	Outcome   string

	PodUID, PodName, Namespace, Container string
	Node                                  string // k8s.node.name, else host.name

	// Mem is what the kernel's report said about the memory that ran out.
	Mem memoryContext
}

// memoryContext holds the report's numbers the receiver puts under oom.;
// its zero value is a report that printed none (rate-limited).
type memoryContext struct {
	Usage, Limit                optInt // the OOM'd cgroup: oom.memory.usage_bytes, limit_bytes
	Anon, File, Shmem, Kernel   optInt // its breakdown, bytes
	Tasks                       optInt // oom.tasks.count
	LargestName                 string
	LargestPID, Largest         optInt
	VictimFileKB, VictimShmemKB optInt // with AnonRSSKB, what the victim held
	SystemFree, SystemRAM       optInt
	GroupSize                   optInt // oom.group.size
}

// optInt is an attribute that may be absent.
type optInt struct {
	V  int64
	OK bool
}

func optAttr(m pcommon.Map, k string) optInt {
	if v := intAttr(m, k, -1); v >= 0 {
		return optInt{v, true}
	}
	return optInt{}
}

// hasPod reports whether the kill can be written on a Pod.
func (k *kill) hasPod() bool { return k.PodName != "" && k.Namespace != "" }

// killFromRecord reads a kill; ok is false for records that are not kills.
func killFromRecord(res pcommon.Map, lr plog.LogRecord) (kill, bool) {
	if lr.EventName() != eventName {
		return kill{}, false
	}
	a := lr.Attributes()
	k := kill{
		Time:      lr.Timestamp().AsTime(),
		PID:       intAttr(a, "process.pid", -1),
		Process:   strAttr(a, "process.executable.name"),
		AnonRSSKB: intAttr(a, "oom.anon_rss_kb", -1),
		LimitB:    intAttr(res, "k8s.container.memory.limit", -1),
		Outcome:   strAttr(a, "oom.container.outcome"),
		PodUID:    strAttr(res, "k8s.pod.uid"),
		PodName:   strAttr(res, "k8s.pod.name"),
		Namespace: strAttr(res, "k8s.namespace.name"),
		Container: strAttr(res, "k8s.container.name"),
		Node:      strAttr(res, "k8s.node.name"),
	}
	k.Mem = memoryContext{
		Usage: optAttr(a, "oom.memory.usage_bytes"), Limit: optAttr(a, "oom.memory.limit_bytes"),
		Anon: optAttr(a, "oom.memory.anon_bytes"), File: optAttr(a, "oom.memory.file_bytes"),
		Shmem: optAttr(a, "oom.memory.shmem_bytes"), Kernel: optAttr(a, "oom.memory.kernel_bytes"),
		Tasks: optAttr(a, "oom.tasks.count"), LargestName: strAttr(a, "oom.tasks.largest.name"),
		LargestPID: optAttr(a, "oom.tasks.largest.pid"), Largest: optAttr(a, "oom.tasks.largest.rss_bytes"),
		VictimFileKB: optAttr(a, "oom.file_rss_kb"), VictimShmemKB: optAttr(a, "oom.shmem_rss_kb"),
		SystemFree: optAttr(a, "oom.system.free_bytes"), SystemRAM: optAttr(a, "oom.system.ram_bytes"),
		GroupSize: optAttr(a, "oom.group.size"),
	}
	if lr.Timestamp() == 0 {
		k.Time = lr.ObservedTimestamp().AsTime()
	}
	if k.Node == "" {
		k.Node = strAttr(res, "host.name")
	}
	k.Scope = scopeOf(strAttr(a, "oom.constraint"), strAttr(a, "oom.memcg"), strAttr(res, "oom.cgroup.path"), strAttr(res, "container.id"), k.PodUID)
	k.ID = strAttr(a, "oom.kill.id")
	if k.ID == "" {
		// Same inputs as the receiver's oom.kill.id: stable across re-reads.
		h := sha256.Sum256([]byte(strAttr(a, "oom.boot_id") + "\x00" + strconv.FormatInt(lr.Timestamp().AsTime().UnixNano(), 10) + "\x00" + strconv.FormatInt(k.PID, 10)))
		k.ID = "derived:" + hex.EncodeToString(h[:16])
	}
	return k, true
}

// scopeOf places a memcg OOM: the container's own cgroup, or an ancestor
// holding the pod's UID (a pod-level limit).
func scopeOf(constraint, memcg, cgroupPath, containerID, podUID string) limitScope {
	switch constraint {
	case "memcg":
	case "system":
		return scopeNode
	case "cpuset":
		return scopeCpuset
	case "mempolicy":
		return scopeMempolicy
	default:
		return scopeUnknown
	}
	switch {
	case memcg == "":
		return scopeMemcg
	case memcg == cgroupPath, containerID != "" && strings.Contains(lastElem(memcg), containerID):
		return scopeContainer
	case cgroupPath != "" && strings.HasPrefix(cgroupPath, strings.TrimSuffix(memcg, "/")+"/") && podUID != "" &&
		(strings.Contains(lastElem(memcg), podUID) || strings.Contains(lastElem(memcg), strings.ReplaceAll(podUID, "-", "_"))):
		return scopePod
	}
	return scopeMemcg
}

func lastElem(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

func strAttr(m pcommon.Map, k string) string {
	if v, ok := m.Get(k); ok {
		return v.AsString()
	}
	return ""
}

func intAttr(m pcommon.Map, k string, def int64) int64 {
	v, ok := m.Get(k)
	if !ok {
		return def
	}
	switch v.Type() {
	case pcommon.ValueTypeInt:
		return v.Int()
	case pcommon.ValueTypeDouble:
		return int64(v.Double())
	case pcommon.ValueTypeStr:
		if n, err := strconv.ParseInt(v.Str(), 10, 64); err == nil {
			return n
		}
	}
	return def
}

// maxNote is the Events API's limit on a note.
const maxNote = 1024

// note is the event message: which process in which container, which
// limit, and what became of the container.
func note(k kill) string {
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
	case k.hasPod():
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
	if !isLimit(limit) && k.Scope == scopeContainer {
		limit = k.LimitB
	}
	switch k.Scope {
	case scopeContainer:
		b.WriteString("the container's memory limit")
		if isLimit(limit) {
			b.WriteString(" (" + bytesHuman(limit) + ")")
		}
		b.WriteString(" was hit")
	case scopePod:
		b.WriteString("the pod's memory limit")
		if isLimit(limit) {
			// The kubelet sets it to the sum of the containers' limits.
			b.WriteString(" (" + bytesHuman(limit) + ", the sum of its containers' limits)")
		}
		b.WriteString(" was hit")
	case scopeMemcg:
		b.WriteString("a memory cgroup limit")
		if isLimit(limit) {
			b.WriteString(" (" + bytesHuman(limit) + ")")
		}
		b.WriteString(" was hit")
	case scopeNode:
		b.WriteString("the node ran out of memory")
	case scopeCpuset:
		b.WriteString("the memory of its cpuset ran out")
	case scopeMempolicy:
		b.WriteString("the memory its memory policy allows ran out")
	default:
		b.WriteString("the kernel did not say which limit was hit")
	}
	if k.AnonRSSKB >= 0 {
		fmt.Fprintf(&b, "; the process used %s of anonymous memory", bytesHuman(k.AnonRSSKB*1024))
	}
	b.WriteString(".")
	if m := memorySentence(k); m != "" {
		b.WriteString(" " + m)
	}
	switch k.Outcome {
	case "survived":
		b.WriteString(" The container kept running: Kubernetes records no restart for this.")
	case "exited":
		b.WriteString(" The container exited: Kubernetes restarts it and reports OOMKilled.")
	}
	s := b.String()
	if len(s) > maxNote {
		s = strings.ToValidUTF8(s[:maxNote], "")
	}
	return s
}

// isLimit: a cgroup limit the kernel printed, not its "no limit" value
// (PAGE_COUNTER_MAX pages, 8 EiB).
func isLimit(b int64) bool { return b > 0 && b < 1<<60 }

// maxMemorySentence bounds the sentence on the report's numbers; only the
// largest process's name is not a number, and it is cut to maxNameInNote.
const (
	maxMemorySentence = 320
	maxNameInNote     = 32
)

// memorySentence says, from the report's numbers only, where the memory
// was at the kill: "Usage 256Mi of 256Mi: anon 250Mi, file 2Mi, shmem 0,
// kernel 4Mi; 12 processes; the victim held 63Mi, the largest was
// "php-fpm: pool" (pid 4242) with 70Mi." Empty when the report was not
// printed (rate-limited).
func memorySentence(k kill) string {
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
		v    optInt
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
	if len(s) > maxMemorySentence {
		s = strings.ToValidUTF8(s[:maxMemorySentence-3], "") + "..."
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
