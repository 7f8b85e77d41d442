package kill

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

const ctr64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestScopeOf(t *testing.T) {
	const uid = "6f0e4e8a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
	ctr := "/kubepods/burstable/pod" + uid + "/" + ctr64
	systemd := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f0e4e8a_1c2d_4e5f_8a9b_0c1d2e3f4a5b.slice"
	for _, tc := range []struct {
		constraint, memcg, cgroup string
		want                      Scope
	}{
		{"memcg", ctr, ctr, ScopeContainer},
		{"memcg", "/kubepods/burstable/pod" + uid, ctr, ScopePod},
		{"memcg", systemd, systemd + "/cri-containerd-" + ctr64 + ".scope", ScopePod},
		{"memcg", systemd + "/cri-containerd-" + ctr64 + ".scope", systemd + "/cri-containerd-" + ctr64 + ".scope", ScopeContainer},
		{"memcg", "/kubepods/burstable", ctr, ScopeMemcg},
		{"memcg", "", ctr, ScopeMemcg},
		{"system", "", ctr, ScopeNode},
		{"cpuset", "", ctr, ScopeCpuset},
		{"mempolicy", "", ctr, ScopeMempolicy},
		{"unknown", "", "", ScopeUnknown},
		{"", "", "", ScopeUnknown},
	} {
		assert.Equal(t, tc.want, scopeOf(tc.constraint, tc.memcg, tc.cgroup, ctr64, uid), "%s %s", tc.constraint, tc.memcg)
	}
}

// The report's numbers come from the receiver's oom.* attributes; a record
// without them (a rate-limited report) leaves Memory empty.
func TestFromRecordMemory(t *testing.T) {
	lr := plog.NewLogRecord()
	lr.SetEventName(EventName)
	require.NoError(t, lr.Attributes().FromRaw(map[string]any{
		"process.pid": int64(7), "oom.anon_rss_kb": int64(1), "oom.file_rss_kb": int64(2), "oom.shmem_rss_kb": int64(0),
		"oom.memory.usage_bytes": int64(100), "oom.memory.limit_bytes": int64(100), "oom.memory.anon_bytes": int64(90),
		"oom.memory.file_bytes": int64(0), "oom.memory.kernel_bytes": int64(10), "oom.tasks.count": int64(3),
		"oom.tasks.largest.name": "a b", "oom.tasks.largest.pid": int64(8), "oom.tasks.largest.rss_bytes": int64(80),
		"oom.system.free_bytes": int64(5), "oom.group.size": int64(2),
	}))
	k, ok := FromRecord(pcommon.NewMap(), lr)
	require.True(t, ok)
	on := func(v int64) Opt { return Opt{V: v, OK: true} }
	assert.Equal(t, Memory{
		Usage: on(100), Limit: on(100), Anon: on(90), File: on(0), Kernel: on(10), Tasks: on(3),
		LargestName: "a b", LargestPID: on(8), Largest: on(80), VictimFileKB: on(2), VictimShmemKB: on(0),
		SystemFree: on(5), GroupSize: on(2),
	}, k.Mem)

	bare := plog.NewLogRecord()
	bare.SetEventName(EventName)
	k, _ = FromRecord(pcommon.NewMap(), bare)
	assert.Equal(t, Memory{}, k.Mem)
}
