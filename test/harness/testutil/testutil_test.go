package testutil

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestFreePortListens(t *testing.T) {
	port := FreePort(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	require.NoError(t, err)
	require.NoError(t, l.Close())
}

func TestRepoRoot(t *testing.T) {
	root := RepoRoot(t)
	assert.FileExists(t, filepath.Join(root, "builder-config.yaml"))
	assert.Equal(t, filepath.Join(root, "examples", "local", "config.yaml"), RepoPath(t, "examples/local/config.yaml"))
}

const exposition = `# HELP container_oom_kill_count_total OOM kills.
# TYPE container_oom_kill_count_total counter
container_oom_kill_count_total{container_id="aa",k8s_pod_uid="p1",odd="a \"quoted\" }, brace\\"} 2
container_oom_kill_count_total{container_id="bb",k8s_pod_uid="p2"} 3 1700000000000
container_oom_kill_count_totals{container_id="cc"} 100
otelcol_oomkill_receiver_kills 5
`

func TestScrape(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(exposition)) }))
	defer srv.Close()

	kills, err := Scrape(srv.URL, "container_oom_kill_count_total")
	require.NoError(t, err)
	require.Len(t, kills, 2, "a metric sharing the name's prefix is another metric")
	assert.Equal(t, 5.0, Sum(kills))
	assert.Equal(t, "aa", kills[0].Label("container_id"))
	assert.Equal(t, "p1", kills[0].Label("k8s_pod_uid"))
	assert.Equal(t, `a "quoted" }, brace\`, kills[0].Label("odd"))
	assert.Empty(t, kills[0].Label("missing"))
	assert.True(t, kills[1].Labeled(map[string]string{"container_id": "bb", "k8s_pod_uid": "p2"}))
	assert.False(t, kills[1].Labeled(map[string]string{"container_id": "aa"}))
	assert.Equal(t, 3.0, kills[1].Value, "the value, not the timestamp after it")

	all, err := Scrape(srv.URL, "")
	require.NoError(t, err)
	assert.Len(t, all, 4)
	self, err := Scrape(srv.URL, "otelcol_oomkill_receiver_kills")
	require.NoError(t, err)
	assert.Equal(t, 5.0, Sum(self))

	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusServiceUnavailable) }))
	defer broken.Close()
	_, err = Scrape(broken.URL, "")
	assert.Error(t, err)
	_, err = Scrape(fmt.Sprintf("http://127.0.0.1:%d/metrics", FreePort(t)), "")
	assert.Error(t, err, "nothing listens")
}

// The sink as an OTLP exporter sees it: gRPC on a port that goes down and
// comes back.
func TestOTLPSink(t *testing.T) {
	sink := StartOTLPSink(t)
	conn, err := grpc.NewClient(sink.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	logs, metrics := plogotlp.NewGRPCClient(conn), pmetricotlp.NewGRPCClient(conn)
	ctx := context.Background()

	sendKills := func(container string, value int64) error {
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("container.id", container)
		m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("container.oom_kill.count")
		m.SetEmptySum().DataPoints().AppendEmpty().SetIntValue(value)
		_, serr := metrics.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md))
		return serr
	}
	ld := plog.NewLogs()
	ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("killed")
	_, err = logs.Export(ctx, plogotlp.NewExportRequestFromLogs(ld))
	require.NoError(t, err)
	require.NoError(t, sendKills("a", 1))
	require.NoError(t, sendKills("a", 2))
	require.NoError(t, sendKills("b", 1))
	assert.Equal(t, int64(3), sink.SumTotal("container.oom_kill.count"), "the highest value of each series")
	assert.Zero(t, sink.SumTotal("container.oom_kill"))
	require.Len(t, sink.LogRecords(), 1)
	assert.Equal(t, "killed", sink.LogRecords()[0].Body().Str())

	addr := sink.Addr()
	sink.Down()
	assert.Error(t, sendKills("b", 2), "down")
	sink.Up(t)
	assert.Equal(t, addr, sink.Addr(), "back on the same port")
	require.Eventually(t, func() bool { return sendKills("b", 2) == nil }, 10*time.Second, 100*time.Millisecond)
	assert.Equal(t, int64(4), sink.SumTotal("container.oom_kill.count"))
}

func TestProcess(t *testing.T) {
	shared := filepath.Join(t.TempDir(), "shared.log")
	first := StartProcess(t, "first", "sh", []string{"-c", "echo first run; echo Everything is ready; exec sleep 60"}, ProcessOptions{LogFile: shared})
	first.WaitReady(t, 10*time.Second)
	first.SignalAndWait(t, syscall.SIGKILL)
	assert.Error(t, first.Err(), "killed")

	second := StartProcess(t, "second", "sh", []string{"-c", `echo "$GREETING"; echo Everything is ready; exec sleep 60`},
		ProcessOptions{LogFile: shared, Env: []string{"GREETING=second run"}})
	second.WaitReady(t, 10*time.Second)
	assert.True(t, second.Logged("second run"))
	assert.False(t, second.Logged("first run"), "a shared log holds earlier runs, but a run sees its own part")
	second.Stop()
	<-second.Exited()
	b, err := os.ReadFile(shared)
	require.NoError(t, err)
	assert.Contains(t, string(b), "first run")
	assert.Contains(t, string(b), "second run")

	killed := StartProcess(t, "killed", "sleep", []string{"60"}, ProcessOptions{})
	killed.KillWithin(50 * time.Millisecond)
	killed.SignalAndWait(t, syscall.SIGTERM) // not sent: the SIGKILL is on its way
	assert.Equal(t, "signal: killed", killed.Err().Error())

	quits := StartProcess(t, "quits", "sh", []string{"-c", "echo bye"}, ProcessOptions{})
	<-quits.Exited()
	assert.NoError(t, quits.Err())
	assert.Equal(t, "bye\n", quits.Log())
}

// Cgroups leave nothing behind, also what a test's processes and a runtime
// made below the prefix. Needs root and cgroup v1 (skipped elsewhere but in CI).
func TestCgroupsLeaveNothing(t *testing.T) {
	var prefix string
	var left *exec.Cmd
	t.Run("cgroups", func(t *testing.T) {
		c := NewCgroups(t, "memory", "pids")
		prefix = c.Prefix
		uid, id := RandomPodUID(), RandomHex(32)
		g := c.Make(t, c.Path("/kubepods/burstable/pod"+uid+"/"+id), 64<<20)
		assert.Equal(t, c.Prefix+"/kubepods/burstable/pod"+uid+"/"+id, g.Path)
		limit, err := os.ReadFile(filepath.Join(g.Dir("memory"), "memory.limit_in_bytes"))
		require.NoError(t, err)
		assert.Equal(t, strconv.Itoa(64<<20)+"\n", string(limit))
		other := c.Make(t, c.Path("/kubepods/besteffort/pod"+RandomPodUID()+"/"+RandomHex(32)), 0)
		other.RemoveWithPod()
		assert.NoDirExists(t, filepath.Dir(other.Dir("pids")))
		assert.DirExists(t, filepath.Join(CgroupV1Root, "pids", c.Prefix, "kubepods", "besteffort"))
		// A process still inside at the end, and a cgroup a runtime made in
		// another hierarchy: the cleanup kills the one and removes the other.
		left = exec.Command("sh", "-c", "echo $$ > "+g.Dir("memory")+"/cgroup.procs; exec sleep 60")
		require.NoError(t, left.Start())
		require.Eventually(t, func() bool {
			procs, _ := os.ReadFile(filepath.Join(g.Dir("memory"), "cgroup.procs"))
			return string(procs) == strconv.Itoa(left.Process.Pid)+"\n"
		}, 5*time.Second, 10*time.Millisecond)
		require.NoError(t, os.MkdirAll(filepath.Join(CgroupV1Root, "cpu", c.Prefix, "libpod_parent"), 0o755))
	})
	if prefix == "" {
		return // skipped
	}
	for _, h := range []string{"memory", "pids", "cpu"} {
		assert.NoDirExists(t, filepath.Join(CgroupV1Root, h, prefix))
	}
	err := left.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, syscall.SIGKILL, ee.Sys().(syscall.WaitStatus).Signal(), "the process left in the cgroup was killed")
}
