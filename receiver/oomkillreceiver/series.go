package oomkillreceiver

import (
	"cmp"
	"slices"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/oomparse"
)

// resourceKey is what tells one emitted resource from another.
type resourceKey struct {
	PodUID      string `json:"k8s.pod.uid,omitempty"`
	ContainerID string `json:"container.id,omitempty"`
	HostName    string `json:"host.name,omitempty"`
	CgroupPath  string `json:"oom.cgroup.path,omitempty"`
}

// seriesKey is one counter series: a resource and the data point attributes.
type seriesKey struct {
	resourceKey
	Constraint string `json:"oom.constraint"`
	Executable string `json:"process.executable.name"`
}

// seriesCount is a series and its cumulative count, as checkpointed.
type seriesCount struct {
	seriesKey
	Count int64 `json:"count"`
}

// totals are the cumulative kill counts behind container.oom_kill.count.
// They only grow; restoring them from the checkpoint is what keeps the
// counter from resetting across restarts.
type totals map[seriesKey]int64

func keyOf(k oomparse.Kill, host string) seriesKey {
	return seriesKey{
		resourceKey: resourceKey{
			PodUID:      k.Cgroup.PodUID,
			ContainerID: k.Cgroup.ContainerID,
			HostName:    host,
			CgroupPath:  k.TaskMemcg,
		},
		Constraint: string(k.Constraint),
		Executable: k.Comm,
	}
}

// sorted lists the series grouped by resource, in a stable order.
func (t totals) sorted() []seriesCount {
	out := make([]seriesCount, 0, len(t))
	for k, n := range t {
		out = append(out, seriesCount{seriesKey: k, Count: n})
	}
	slices.SortFunc(out, func(a, b seriesCount) int {
		return cmp.Or(
			cmp.Compare(a.PodUID, b.PodUID), cmp.Compare(a.ContainerID, b.ContainerID),
			cmp.Compare(a.HostName, b.HostName), cmp.Compare(a.CgroupPath, b.CgroupPath),
			cmp.Compare(a.Constraint, b.Constraint), cmp.Compare(a.Executable, b.Executable))
	})
	return out
}
