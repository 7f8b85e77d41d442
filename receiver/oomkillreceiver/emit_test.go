package oomkillreceiver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kubecgroup"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/oomparse"
)

// Every attribute a log record can carry is documented in metadata.yaml
// (and so in documentation.md), and every attribute documented as always
// present is.
func TestLogRecordAttributesAreDocumented(t *testing.T) {
	md, err := confmaptest.LoadConf("metadata.yaml")
	require.NoError(t, err)
	documented := map[string]bool{} // name → conditionally required
	for _, a := range md.Get("events::oom_kill::attributes").([]any) {
		level, _ := md.Get("attributes::" + a.(string) + "::requirement_level").(string)
		documented[a.(string)] = level == "conditionally_required"
	}
	some := oomparse.OptInt{Value: 1, Valid: true}
	full := killRecord{Host: "h", ID: "00112233445566778899aabbccddeeff", Kill: oomparse.Kill{
		Time: time.Now(), BootID: "b", Line: "Killed process 1 (x)", PID: 1, Comm: "x", UID: some,
		TotalVMKB: some, AnonRSSKB: some, FileRSSKB: some, ShmemRSSKB: some, PgtablesKB: some, OOMScoreAdj: some,
		Attributed: true, GroupKill: true, Constraint: oomparse.ConstraintMemcg, OOMMemcg: "/a", TaskMemcg: "/a/b",
		Cpuset: "c", Nodemask: "n", MemsAllowed: "0",
		Invoker: oomparse.Invoker{Valid: true, Comm: "i", GFPMask: "0xcc0", Order: some, OOMScoreAdj: some},
		Cgroup:  kubecgroup.Ref{Kind: kubecgroup.KindContainer, PodUID: "p", ContainerID: "c", Runtime: "containerd", QoSClass: "burstable"},
		// Every value any kernel prints (no one report has them all).
		Memory: &oomparse.MemoryContext{
			Memory: oomparse.Counter{UsageBytes: some, LimitBytes: some, Failcnt: some}, Swap: oomparse.Counter{UsageBytes: some, LimitBytes: some},
			MemSwap: oomparse.Counter{UsageBytes: some, LimitBytes: some}, Kmem: oomparse.Counter{UsageBytes: some},
			Stats:  oomparse.MemcgStats{Anon: some, File: some, Shmem: some, Kernel: some, KernelStack: some, Pagetables: some, Slab: some, Sock: some},
			Tasks:  oomparse.TaskTable{Printed: true, Count: 1, Largest: oomparse.Task{Valid: true, PID: 1, Name: "x", RSSBytes: 4096}},
			System: oomparse.SystemMemory{FreeBytes: some, RAMBytes: some, SwapFreeBytes: some, SwapTotalBytes: some},
		},
	}, GroupID: "0123456789abcdef0123456789abcdef", GroupSize: 2}
	bare := killRecord{ID: "ffeeddccbbaa99887766554433221100", Kill: oomparse.Kill{Time: time.Now(), Line: "Killed process 2 (y)", PID: 2, Comm: "y", Constraint: oomparse.ConstraintUnknown}}

	for name, k := range map[string]killRecord{"full": full, "bare": bare} {
		lr := plog.NewLogRecord()
		fillLogRecord(lr, k, time.Now())
		assert.Equal(t, EventName, lr.EventName())
		for key := range lr.Attributes().All() {
			_, ok := documented[key]
			assert.True(t, ok, "%s record: attribute %q is not documented in metadata.yaml", name, key)
		}
		for key, conditional := range documented {
			_, present := lr.Attributes().Get(key)
			if !conditional {
				assert.True(t, present, "%s record: always-present attribute %q missing", name, key)
			}
			if name == "full" {
				assert.True(t, present, "full record: documented attribute %q is never emitted", key)
			}
		}
	}
}
