//go:build linux

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/realoom"
)

// kubeletHierarchies are the v1 hierarchies the test puts a container in,
// as runc does: memory for the limit, pids for the namespace-independent
// process count the outcome is read from.
var kubeletHierarchies = []string{"memory", "pids"}

// TestContainerOutcomeOnThisKernel: real OOM kills on this machine's
// kernel (memory controller on cgroup v1), recorded by a real journald and
// read by the receiver, which looks at each victim's cgroup after the kill:
//   - a worker killed under a master that lives on: survived;
//   - a container's only process: exited;
//   - a kill read from history after its cgroup was removed: unknown.
func TestContainerOutcomeOnThisKernel(t *testing.T) {
	requireRealKernel(t)
	realoom.LockKills(t) // real kills: one test at a time makes them
	ensureJournald(t)

	// The history kill happens before the receiver starts; its cgroup is
	// removed, and it is older than outcome.max_age when read.
	history := kubeletCgroup(t, "history")
	historyPID := killOnly(t, history, "old-job")
	removeCgroup(history)
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

	worker := kubeletCgroup(t, "worker")
	workerPID, master := killWorker(t, worker, "php-fpm: pool")
	only := kubeletCgroup(t, "main")
	onlyPID := killOnly(t, only, "java")

	want := map[int]string{historyPID: "unknown", workerPID: "survived", onlyPID: "exited"}
	got := map[int]string{}
	require.Eventually(t, func() bool {
		for _, lr := range allRecords(logs) {
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

// kubeletCgroup makes /kubepods/burstable/pod<uid>/<64-hex id> in the
// memory and pids hierarchies with a 64 MiB limit; removed at the end.
func kubeletCgroup(t *testing.T, tag string) string {
	t.Helper()
	now := time.Now().UnixNano()
	path := fmt.Sprintf("/kubepods/burstable/pod%08x-0000-4000-8000-%012x/%s%056x", now&0xffffffff, now&0xffffffffffff, strings.Repeat("a", 8), now)
	for _, h := range kubeletHierarchies {
		require.NoError(t, os.MkdirAll(filepath.Join("/sys/fs/cgroup", h, path), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(memcgRoot, path, "memory.limit_in_bytes"), []byte(strconv.Itoa(64<<20)), 0o644))
	t.Cleanup(func() { removeCgroup(path) })
	t.Logf("%s: %s", tag, path)
	return path
}

// removeCgroup removes the container's cgroup and the pod's, innermost
// first, in every hierarchy (a runtime removes the container's).
func removeCgroup(path string) {
	for _, h := range kubeletHierarchies {
		_ = os.Remove(filepath.Join("/sys/fs/cgroup", h, path))
		_ = os.Remove(filepath.Join("/sys/fs/cgroup", h, filepath.Dir(path)))
	}
}

func joinScript(path string) string {
	var b strings.Builder
	for _, h := range kubeletHierarchies {
		fmt.Fprintf(&b, "echo $$ > %s/cgroup.procs; ", filepath.Join("/sys/fs/cgroup", h, path))
	}
	return b.String()
}

func allocScript(name string) string {
	return fmt.Sprintf(`python3 -c 'import os; open("/proc/self/comm","w").write(%q); print(os.getpid(), flush=True); b = bytearray(200 << 20)'`, name)
}

// killOnly: the cgroup's only process outgrows the limit and is killed.
func killOnly(t *testing.T, path, name string) int {
	t.Helper()
	out, err := exec.Command("bash", "-c", joinScript(path)+"exec "+allocScript(name)).Output()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "the process must be killed")
	require.Equal(t, syscall.SIGKILL, ee.Sys().(syscall.WaitStatus).Signal())
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	require.NoError(t, err)
	return pid
}

// killWorker: a master forks a worker that outgrows the limit; the master
// lives on (until the test ends) in the same cgroup.
func killWorker(t *testing.T, path, name string) (int, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command("bash", "-c", joinScript(path)+allocScript(name)+" & wait $!; echo status=$?; exec sleep 300")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	require.True(t, sc.Scan(), "worker printed its pid")
	pid, err := strconv.Atoi(sc.Text())
	require.NoError(t, err)
	require.True(t, sc.Scan())
	require.Equal(t, "status=137", sc.Text(), "worker killed by SIGKILL")
	return pid, cmd
}

func allRecords(sink *consumertest.LogsSink) []plog.LogRecord {
	var out []plog.LogRecord
	for _, ld := range sink.AllLogs() {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			for j := 0; j < ld.ResourceLogs().At(i).ScopeLogs().Len(); j++ {
				lrs := ld.ResourceLogs().At(i).ScopeLogs().At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					out = append(out, lrs.At(k))
				}
			}
		}
	}
	return out
}
