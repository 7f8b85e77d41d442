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

	// ContainerKind is k8smeta's oom.container.kind: app, init or
	// ephemeral (empty: app); it places the container in the pod spec.
	ContainerKind string
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
	k.ContainerKind = strAttr(res, "oom.container.kind")
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

// containerFieldPath names the container inside its pod as Kubernetes
// does in object references (the kubelet's own events say the same).
func containerFieldPath(kind, name string) string {
	switch kind {
	case "init":
		return "spec.initContainers{" + name + "}"
	case "ephemeral":
		return "spec.ephemeralContainers{" + name + "}"
	}
	return "spec.containers{" + name + "}"
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
	switch k.Scope {
	case scopeContainer:
		b.WriteString("the container's memory limit")
		if k.LimitB > 0 {
			b.WriteString(" (" + bytesHuman(k.LimitB) + ")")
		}
		b.WriteString(" was hit")
	case scopePod:
		b.WriteString("the pod's memory limit was hit")
	case scopeMemcg:
		b.WriteString("a memory cgroup limit was hit")
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
