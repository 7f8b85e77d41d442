package oomkillreceiver

import (
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/oomparse"
)

// putMemoryContext writes what the kill's report printed about the memory
// that ran out (oomparse.MemoryContext): only values the kernel printed,
// so a kill whose report was rate-limited gets none of these attributes.
// They go on the log record only: the counter's series never change.
func putMemoryContext(a pcommon.Map, k *oomparse.Kill) {
	m := k.Memory
	if m == nil {
		return
	}
	putOpt(a, "oom.memory.usage_bytes", m.Memory.UsageBytes)
	putOpt(a, "oom.memory.limit_bytes", m.Memory.LimitBytes)
	putOpt(a, "oom.memory.failcnt", m.Memory.Failcnt)
	putOpt(a, "oom.memory.swap.usage_bytes", m.Swap.UsageBytes)
	putOpt(a, "oom.memory.swap.limit_bytes", m.Swap.LimitBytes)
	putOpt(a, "oom.memory.memsw.usage_bytes", m.MemSwap.UsageBytes)
	putOpt(a, "oom.memory.memsw.limit_bytes", m.MemSwap.LimitBytes)
	putOpt(a, "oom.memory.kmem.usage_bytes", m.Kmem.UsageBytes)

	st := &m.Stats
	putOpt(a, "oom.memory.anon_bytes", st.Anon)
	putOpt(a, "oom.memory.file_bytes", st.File)
	putOpt(a, "oom.memory.shmem_bytes", st.Shmem)
	putOpt(a, "oom.memory.kernel_bytes", m.KernelBytes())
	putOpt(a, "oom.memory.kernel_stack_bytes", st.KernelStack)
	putOpt(a, "oom.memory.pagetables_bytes", st.Pagetables)
	putOpt(a, "oom.memory.slab_bytes", st.Slab)
	putOpt(a, "oom.memory.sock_bytes", st.Sock)

	if m.Tasks.Printed {
		a.PutInt("oom.tasks.count", m.Tasks.Count)
	}
	if l := m.Tasks.Largest; l.Valid {
		a.PutStr("oom.tasks.largest.name", l.Name)
		a.PutInt("oom.tasks.largest.pid", l.PID)
		a.PutInt("oom.tasks.largest.rss_bytes", l.RSSBytes)
	}
	if share, ok := k.VictimShare(); ok {
		a.PutDouble("oom.victim.rss_share", share)
	}

	sys := &m.System
	putOpt(a, "oom.system.free_bytes", sys.FreeBytes)
	putOpt(a, "oom.system.ram_bytes", sys.RAMBytes)
	putOpt(a, "oom.system.swap.free_bytes", sys.SwapFreeBytes)
	putOpt(a, "oom.system.swap.total_bytes", sys.SwapTotalBytes)
}
