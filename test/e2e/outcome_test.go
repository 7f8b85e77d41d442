//go:build linux

package e2e

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// TestContainerOutcomeOnThisKernel: real OOM kills on this machine's
// kernel (memory controller on cgroup v1), recorded by a real journald and
// read by the receiver, which looks at each victim's cgroup after the kill:
//   - a worker killed under a master that lives on: survived;
//   - a container's only process: exited;
//   - a kill read from history after its cgroup was removed: unknown.
func TestContainerOutcomeOnThisKernel(t *testing.T) {
	requireRealKernel(t)
	// The v1 hierarchies the test puts a container in, as runc does: memory
	// for the limit, pids for the namespace-independent process count the
	// outcome is read from.
	cgroups := testutil.NewCgroups(t, "memory", "pids")
	testutil.Journald(t)

	// The history kill happens before the receiver starts; its cgroup is
	// removed, and it is older than outcome.max_age when read.
	history := kubeletCgroup(t, cgroups, "history")
	historyPID := history.KillOnly(t, "old-job")
	history.RemoveWithPod() // as the runtime and then the kubelet do
	time.Sleep(3 * time.Second)

	cfg := oomkillreceiver.NewFactory().CreateDefaultConfig().(*oomkillreceiver.Config)
	cfg.StartAt = oomkillreceiver.StartAtBeginning // this test's journald, or the machine's: pids tell ours apart
	cfg.Outcome.Delay = time.Second
	cfg.Outcome.MaxAge = 2 * time.Second
	logs := &consumertest.LogsSink{}
	set := receivertest.NewNopSettings(oomkillreceiver.NewFactory().Type())
	rcv, err := oomkillreceiver.NewFactory().CreateLogs(context.Background(), set, cfg, logs)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, rcv.Shutdown(context.Background())) })

	worker := kubeletCgroup(t, cgroups, "worker")
	workerPID, master := worker.KillWorker(t, "php-fpm: pool")
	only := kubeletCgroup(t, cgroups, "main")
	onlyPID := only.KillOnly(t, "java")

	want := map[int]string{historyPID: "unknown", workerPID: "survived", onlyPID: "exited"}
	got := map[int]string{}
	require.Eventually(t, func() bool {
		for _, lr := range testutil.LogRecords(logs.AllLogs()) {
			pid, _ := lr.Attributes().Get("process.pid")
			if _, ok := want[int(pid.Int())]; ok {
				o, _ := lr.Attributes().Get("oom.container.outcome")
				got[int(pid.Int())] = o.Str()
			}
		}
		return len(got) == len(want)
	}, 60*time.Second, 100*time.Millisecond, "log records of the three kills")
	assert.Equal(t, want, got)
	require.NoError(t, master.Process.Signal(syscall.Signal(0)), "the master outlived its worker")
}

// kubeletCgroup makes <prefix>/kubepods/burstable/pod<uid>/<64-hex id> in
// the test's hierarchies with a 64 MiB limit.
func kubeletCgroup(t *testing.T, cgroups *testutil.Cgroups, tag string) *testutil.Cgroup {
	t.Helper()
	cg := cgroups.Make(t, cgroups.Path("/kubepods/burstable/pod"+testutil.RandomPodUID()+"/"+testutil.RandomHex(32)), 64<<20)
	t.Logf("%s: %s", tag, cg.Path)
	return cg
}
