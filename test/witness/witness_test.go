//go:build linux

// Package witness runs the built collector against real OOM kills on this
// machine's kernel (cgroup v1 memory controller) and checks the second
// witness: the kernel's own OOM-kill counters. Where the log really is
// missing (the collector reads a journal directory of its own that receives
// nothing), every kill is counted once from the counters, on its pod and
// container; where the log is there, nothing is counted twice and the kills
// whose reports the kernel rate-limited are put on their container.
//
// Every test here holds the machine-wide kill lock (testutil.NewCgroups), so
// the node's counter moves only by its own kills and the sum over all series
// can be compared with it exactly.
package witness

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

const limit = 64 << 20

// TestKillsMissingFromTheLog: the collector reads a journal directory that
// receives nothing; real kills in kubelet-shaped cgroups are each counted
// once from the kernel's counters, on the right pod and container.
func TestKillsMissingFromTheLog(t *testing.T) {
	cg := testutil.NewCgroups(t, "memory", "pids")
	before := testutil.NodeOOMKills(t)
	col := startCollector(t, collectorConfig{journalDir: t.TempDir(), state: t.TempDir()})

	type ctr struct {
		g     *testutil.Cgroup
		uid   string
		id    string
		kills int
	}
	uidA, uidB, uidC, uidD := testutil.RandomPodUID(), testutil.RandomPodUID(), testutil.RandomPodUID(), testutil.RandomPodUID()
	ids := []string{testutil.RandomHex(32), testutil.RandomHex(32), testutil.RandomHex(32), testutil.RandomHex(32)}
	a := &ctr{g: cg.Make(t, cg.Path("/kubepods/burstable/pod"+uidA+"/"+ids[0]), limit), uid: uidA, id: ids[0]}
	b := &ctr{g: cg.Make(t, cg.Path("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"+strings.ReplaceAll(uidB, "-", "_")+".slice/cri-containerd-"+ids[1]+".scope"), limit), uid: uidB, id: ids[1]}
	c := &ctr{g: cg.Make(t, cg.Path("/kubepods/pod"+uidC+"/"+ids[2]), limit), uid: uidC, id: ids[2]}
	d := cg.Make(t, cg.Path("/kubepods/burstable/pod"+uidD+"/"+ids[3]), limit)

	a.kills += len(a.g.KillWorkers(t, "php-fpm: pool", 3)) // workers under a living master
	b.kills += len(b.g.KillWorkers(t, "celery", 2))
	c.g.KillOnly(t, "java") // the container's main process
	c.kills++
	// d: killed and its cgroup removed right away, as the runtime does when
	// the main process dies. On cgroup v1 its counter goes with it; unless the
	// collector read it in between, only the node's counter keeps the kill.
	d.KillOnly(t, "python3")
	d.Remove(t)
	const total = 7

	var got map[seriesKey]float64
	eventually(t, "all kills counted", func() bool { got = col.scrape(t); return sum(got) >= total })
	time.Sleep(4 * time.Second) // a grace more: nothing may be added
	got = col.scrape(t)
	delta := testutil.NodeOOMKills(t) - before
	t.Logf("node oom_kill rose by %d; series: %v", delta, got)

	assert.Equal(t, float64(delta), sum(got), "sum over all series equals the node's oom_kill delta")
	for _, x := range []*ctr{a, b, c} {
		assert.Equal(t, float64(x.kills), got[seriesKey{pod: x.uid, container: x.id, source: "kernel_counter"}], "kills of container %s", x.id)
	}
	onD := got[seriesKey{pod: uidD, container: ids[3], source: "kernel_counter"}]
	atNode := got[seriesKey{source: "kernel_counter"}]
	assert.Equal(t, 1.0, onD+atNode, "d's kill counted once: on its container if it was read before its removal, else at node level")
	for k := range got {
		assert.Equal(t, "kernel_counter", k.source, "nothing came from the log: %+v", k)
	}

	recs := records(col.sink)
	assert.Len(t, recs, total, "one log record per kill")
	for _, r := range recs {
		assert.Equal(t, "kernel_counter", r.source)
		assert.Zero(t, r.pid, "no pid is invented")
		assert.Len(t, r.killID, 32)
	}
	assert.Equal(t, 1, strings.Count(col.Log(), "The kernel counted OOM kills its log did not show"), "logged once")
	assert.Equal(t, float64(total), col.telemetry(t, "otelcol_oomkill_receiver_counter_only_kills"))
}

// TestKillsWithTheLog: the normal case. 50 real kills read from a real
// journald, among them a burst whose reports the kernel rate-limits: no kill
// is counted twice, none from the counters, and the rate-limited ones are
// put on their container by the counters.
func TestKillsWithTheLog(t *testing.T) {
	cg := testutil.NewCgroups(t, "memory", "pids")
	journalDir := testutil.Journald(t).Dir
	before := testutil.NodeOOMKills(t)
	col := startCollector(t, collectorConfig{journalDir: journalDir, state: t.TempDir()})

	want := map[seriesKey]float64{}
	pidsOf := map[int]seriesKey{}
	newCtr := func(qos string) (*testutil.Cgroup, seriesKey) {
		uid, id := testutil.RandomPodUID(), testutil.RandomHex(32)
		path := "/kubepods/" + qos + "/pod" + uid + "/" + id
		if qos == "guaranteed" {
			path = "/kubepods/pod" + uid + "/" + id
		}
		return cg.Make(t, cg.Path(path), limit), seriesKey{pod: uid, container: id, source: "log"}
	}
	count := func(k seriesKey, pids ...int) {
		want[k] += float64(len(pids))
		for _, p := range pids {
			pidsOf[p] = k
		}
	}
	// 24 kills in 8 containers, paced below the kernel's report rate limit.
	for i := 0; i < 8; i++ {
		g, k := newCtr([]string{"burstable", "besteffort", "guaranteed"}[i%3])
		for j := 0; j < 3; j++ {
			count(k, g.KillWorkers(t, "worker", 1)...)
			time.Sleep(600 * time.Millisecond)
		}
	}
	time.Sleep(6 * time.Second) // the rate limit's window passes
	// The burst: ten containers lose one process each at once (ten full
	// reports), then one container loses sixteen: the kernel suppresses their
	// reports, only the victim lines come, without cgroup.
	for i := 0; i < 10; i++ {
		g, k := newCtr("burstable")
		count(k, g.KillOnly(t, "job"))
	}
	g, k := newCtr("burstable")
	count(k, g.KillWorkers(t, "php-fpm: pool", 16)...)
	const total = 50
	require.Len(t, pidsOf, total)

	var got map[seriesKey]float64
	eventually(t, "all kills counted", func() bool { got = col.scrape(t); return sum(got) >= total })
	time.Sleep(15 * time.Second) // past the grace: nothing is added from the counters
	got = col.scrape(t)
	delta := testutil.NodeOOMKills(t) - before
	assert.Equal(t, want, got, "every kill once, on its container, from the log")
	assert.Equal(t, float64(delta), sum(got), "sum over all series equals the node's oom_kill delta")

	perPid := map[int]int{}
	for _, r := range records(col.sink) {
		perPid[r.pid]++
		if k, ok := pidsOf[r.pid]; ok {
			assert.Equal(t, k.pod, r.pod, "pid %d's pod", r.pid)
			assert.Equal(t, k.container, r.container, "pid %d's container", r.pid)
			assert.True(t, r.attributed, "pid %d attributed", r.pid)
		}
	}
	for pid := range pidsOf {
		assert.Equal(t, 1, perPid[pid], "pid %d: one log record", pid)
	}
	attributed := col.telemetry(t, "otelcol_oomkill_receiver_counter_attributed_kills")
	t.Logf("kills whose report the kernel rate-limited, put on their container by the counters: %v", attributed)
	assert.Positive(t, attributed, "the burst's reports were rate-limited")
	assert.Zero(t, col.telemetry(t, "otelcol_oomkill_receiver_counter_only_kills"))
}

// TestRestartsWhileKillsLand: the log is missing, kills keep landing, and the
// collector is killed with SIGKILL and restarted several times: the totals
// are exact, from the counters' last values kept in the checkpoint.
func TestRestartsWhileKillsLand(t *testing.T) {
	cg := testutil.NewCgroups(t, "memory", "pids")
	before := testutil.NodeOOMKills(t)
	cfg := collectorConfig{journalDir: t.TempDir(), state: t.TempDir()}
	sink := testutil.StartOTLPSink(t)
	cfg.sink = sink

	type ctr struct {
		g   *testutil.Cgroup
		key seriesKey
	}
	var ctrs []ctr
	for i := 0; i < 3; i++ {
		uid, id := testutil.RandomPodUID(), testutil.RandomHex(32)
		ctrs = append(ctrs, ctr{cg.Make(t, cg.Path("/kubepods/burstable/pod"+uid+"/"+id), limit), seriesKey{pod: uid, container: id, source: "kernel_counter"}})
	}
	want := map[seriesKey]float64{}
	var mu sync.Mutex
	done := make(chan struct{})
	go func() { // the kernel, killing on its own schedule
		defer close(done)
		for i := 0; i < 24; i++ {
			c := ctrs[rand.IntN(len(ctrs))]
			c.g.KillWorkers(t, "worker", 1)
			mu.Lock()
			want[c.key]++
			mu.Unlock()
			time.Sleep(time.Duration(200+rand.IntN(600)) * time.Millisecond)
		}
	}()
	for i := 0; i < 4; i++ {
		col := startCollector(t, cfg)
		time.Sleep(time.Duration(1500+rand.IntN(3000)) * time.Millisecond)
		col.kill(t)
	}
	<-done
	col := startCollector(t, cfg)
	var got map[seriesKey]float64
	eventually(t, "all kills counted", func() bool { got = col.scrape(t); return sum(got) >= 24 })
	time.Sleep(4 * time.Second)
	got = col.scrape(t)
	assert.Equal(t, want, got, "exact totals per container after SIGKILL restarts")
	assert.Equal(t, float64(testutil.NodeOOMKills(t)-before), sum(got))
	ids := map[string]int{}
	for _, r := range records(sink) {
		ids[r.killID]++
	}
	assert.Len(t, ids, 24, "distinct kills in the log records (a record sent before a SIGKILL is sent again with the same oom.kill.id)")
}

// collectorConfig is what a test's collector reads and where it writes.
type collectorConfig struct {
	journalDir, state string
	sink              *testutil.OTLPSink // nil: one of its own
}

// collector is the built collector reading a journal directory, exporting
// its counters to Prometheus and its log records to an OTLP sink.
type collector struct {
	*testutil.Process
	promPort, self int
	sink           *testutil.OTLPSink
}

func startCollector(t *testing.T, c collectorConfig) *collector {
	t.Helper()
	if c.sink == nil {
		c.sink = testutil.StartOTLPSink(t)
	}
	col := &collector{promPort: testutil.FreePort(t), self: testutil.FreePort(t), sink: c.sink}
	cfg := testutil.WriteConfig(t, fmt.Sprintf(`
extensions:
  file_storage:
    directory: %s
receivers:
  oomkill:
    journal:
      directory: %s
    storage: file_storage
    node_name: node-witness
    outcome:
      delay: 500ms
    witness:
      poll_interval: 500ms
      grace: 3s
exporters:
  prometheus:
    endpoint: 127.0.0.1:%d
    resource_to_telemetry_conversion:
      enabled: true
  otlp_grpc:
    endpoint: %s
    tls:
      insecure: true
service:
  extensions: [file_storage]
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %d
  pipelines:
    logs:
      receivers: [oomkill]
      exporters: [otlp_grpc]
    metrics:
      receivers: [oomkill]
      exporters: [prometheus]
`, c.state, c.journalDir, col.promPort, c.sink.Addr(), col.self))
	col.Process = testutil.StartCollector(t, cfg, testutil.ProcessOptions{})
	col.WaitReady(t, 90*time.Second)
	return col
}

// kill stops the collector with SIGKILL: no shutdown, no last checkpoint.
func (c *collector) kill(t *testing.T) { c.SignalAndWait(t, syscall.SIGKILL) }

// seriesKey is what the tests tell container_oom_kill_count_total's series by.
type seriesKey struct{ pod, container, source string }

// scrape sums container_oom_kill_count_total by pod, container and source.
func (c *collector) scrape(t *testing.T) map[seriesKey]float64 {
	out := map[seriesKey]float64{}
	for _, s := range scrapeSamples(t, c.promPort, "container_oom_kill_count_total") {
		out[seriesKey{pod: s.Label("k8s_pod_uid"), container: s.Label("container_id"), source: s.Label("oom_source")}] += s.Value
	}
	return out
}

// telemetry is a self-telemetry counter (0 when not created yet).
func (c *collector) telemetry(t *testing.T, name string) float64 {
	return testutil.Sum(scrapeSamples(t, c.self, name))
}

func scrapeSamples(t *testing.T, port int, metric string) []testutil.Sample {
	samples, err := testutil.Scrape(fmt.Sprintf("http://127.0.0.1:%d/metrics", port), metric)
	if err != nil {
		t.Logf("scrape: %v", err)
	}
	return samples
}

func sum(m map[seriesKey]float64) float64 {
	s := 0.0
	for _, v := range m {
		s += v
	}
	return s
}

// record is what the tests keep of an oom_kill log record.
type record struct {
	pod, container, source, killID string
	pid                            int
	attributed                     bool
}

// records are the oom_kill log records the sink received.
func records(sink *testutil.OTLPSink) []record {
	var out []record
	for _, ld := range sink.Logs() {
		rls := ld.ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			res := rls.At(i).Resource().Attributes()
			pod, _ := res.Get("k8s.pod.uid")
			ctr, _ := res.Get("container.id")
			sls := rls.At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					a := lrs.At(k).Attributes()
					pid, _ := a.Get("process.pid")
					src, _ := a.Get("oom.source")
					id, _ := a.Get("oom.kill.id")
					at, _ := a.Get("oom.attributed")
					out = append(out, record{pod: pod.Str(), container: ctr.Str(), source: src.Str(), killID: id.Str(), pid: int(pid.Int()), attributed: at.Bool()})
				}
			}
		}
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 90*time.Second, 100*time.Millisecond, what)
}
