// Package kill reads what an Event needs from one oom_kill log record: the
// process, the pod and container k8smeta named, the limit the kernel
// enforced and what became of the container. It reads pdata only; nothing
// here talks to the Kubernetes API.
package kill

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// EventName is the log record event name the oomkill receiver gives a kill.
const EventName = "oom_kill"

// Scope is which limit a kill hit, as the event message names it.
type Scope string

// The limits a kill can hit.
const (
	ScopeContainer Scope = "container"
	ScopePod       Scope = "pod"
	ScopeMemcg     Scope = "memcg" // a cgroup limit we cannot place
	ScopeNode      Scope = "node"
	ScopeCpuset    Scope = "cpuset"
	ScopeMempolicy Scope = "mempolicy"
	ScopeUnknown   Scope = "unknown"
)

// Kill is what an event needs from one oom_kill record.
type Kill struct {
	ID        string // oom.kill.id, or derived from boot ID, time and pid
	Time      time.Time
	PID       int64
	Process   string
	Scope     Scope
	AnonRSSKB int64 // -1: unknown
	LimitB    int64 // container memory limit in bytes, -1: unknown
	Outcome   string

	PodUID, PodName, Namespace, Container string
	Node                                  string // k8s.node.name, else host.name

	// ContainerKind is k8smeta's oom.container.kind: app, init or
	// ephemeral (empty: app); it places the container in the pod spec.
	ContainerKind string

	// Mem is what the kernel's report said about the memory that ran out.
	Mem Memory
}

// Memory holds the report's numbers the receiver puts under oom.; its zero
// value is a report that printed none (rate-limited).
type Memory struct {
	Usage, Limit              Opt // the OOM'd cgroup: oom.memory.usage_bytes, limit_bytes
	Anon, File, Shmem, Kernel Opt // its breakdown, bytes
	Tasks                     Opt // oom.tasks.count
	LargestName               string
	LargestPID, Largest       Opt
	VictimFileKB              Opt // with AnonRSSKB and VictimShmemKB, what the victim held
	VictimShmemKB             Opt
	SystemFree, SystemRAM     Opt
	GroupSize                 Opt // oom.group.size
}

// Opt is an attribute that may be absent.
type Opt struct {
	V  int64
	OK bool
}

func optAttr(m pcommon.Map, k string) Opt {
	if v := intAttr(m, k, -1); v >= 0 {
		return Opt{v, true}
	}
	return Opt{}
}

// HasPod reports whether the kill can be written on a Pod.
func (k *Kill) HasPod() bool { return k.PodName != "" && k.Namespace != "" }

// FromRecord reads a kill; ok is false for records that are not kills.
func FromRecord(res pcommon.Map, lr plog.LogRecord) (Kill, bool) {
	if lr.EventName() != EventName {
		return Kill{}, false
	}
	a := lr.Attributes()
	k := Kill{
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
	k.Mem = Memory{
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
func scopeOf(constraint, memcg, cgroupPath, containerID, podUID string) Scope {
	switch constraint {
	case "memcg":
	case "system":
		return ScopeNode
	case "cpuset":
		return ScopeCpuset
	case "mempolicy":
		return ScopeMempolicy
	default:
		return ScopeUnknown
	}
	switch {
	case memcg == "":
		return ScopeMemcg
	case memcg == cgroupPath, containerID != "" && strings.Contains(lastElem(memcg), containerID):
		return ScopeContainer
	case cgroupPath != "" && strings.HasPrefix(cgroupPath, strings.TrimSuffix(memcg, "/")+"/") && podUID != "" &&
		(strings.Contains(lastElem(memcg), podUID) || strings.Contains(lastElem(memcg), strings.ReplaceAll(podUID, "-", "_"))):
		return ScopePod
	}
	return ScopeMemcg
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
