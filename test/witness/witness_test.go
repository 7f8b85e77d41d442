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
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

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

	recs := col.sink.records()
	assert.Len(t, recs, total, "one log record per kill")
	for _, r := range recs {
		assert.Equal(t, "kernel_counter", r.source)
		assert.Zero(t, r.pid, "no pid is invented")
		assert.Len(t, r.killID, 32)
	}
	assert.Equal(t, 1, strings.Count(col.log(), "The kernel counted OOM kills its log did not show"), "logged once")
	assert.Equal(t, float64(total), col.telemetry(t, "otelcol_oomkill_receiver_counter_only_kills"))
}

// TestKillsWithTheLog: the normal case. 50 real kills read from a real
// journald, among them a burst whose reports the kernel rate-limits: no kill
// is counted twice, none from the counters, and the rate-limited ones are
// put on their container by the counters.
func TestKillsWithTheLog(t *testing.T) {
	cg := testutil.NewCgroups(t, "memory", "pids")
	journalDir := ensureJournald(t)
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
	for _, r := range col.sink.records() {
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
	sink := startSink(t)
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
		col.kill()
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
	for _, r := range sink.records() {
		ids[r.killID]++
	}
	assert.Len(t, ids, 24, "distinct kills in the log records (a record sent before a SIGKILL is sent again with the same oom.kill.id)")
}

// collectorConfig is what a test's collector reads and where it writes.
type collectorConfig struct {
	journalDir, state string
	sink              *otlpSink // nil: one of its own
}

type collector struct {
	cmd            *exec.Cmd
	promPort, self int
	sink           *otlpSink
	logPath        string
	exited         chan struct{}
}

func startCollector(t *testing.T, c collectorConfig) *collector {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("..", "..", "bin", "otelcol-oomkill"))
	require.NoError(t, err)
	if _, serr := os.Stat(bin); serr != nil {
		testutil.SkipOrFail(t, bin+" is missing: run `make build` (make test does)")
	}
	if c.sink == nil {
		c.sink = startSink(t)
	}
	col := &collector{promPort: freePort(t), self: freePort(t), sink: c.sink, exited: make(chan struct{})}
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
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
  otlp_http:
    endpoint: http://%s
    compression: none
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
      exporters: [otlp_http]
    metrics:
      receivers: [oomkill]
      exporters: [prometheus]
`, c.state, c.journalDir, col.promPort, c.sink.addr, col.self)), 0o600))
	col.logPath = filepath.Join(t.TempDir(), "collector.log")
	logf, err := os.Create(col.logPath)
	require.NoError(t, err)
	col.cmd = exec.Command(bin, "--config", cfg)
	col.cmd.Stdout, col.cmd.Stderr = logf, logf
	col.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, col.cmd.Start())
	go func() { _ = col.cmd.Wait(); _ = logf.Close(); close(col.exited) }()
	t.Cleanup(func() {
		col.stop()
		if t.Failed() {
			t.Logf("collector log:\n%s", tail(col.log(), 8000))
		}
	})
	eventually(t, "collector ready", func() bool { return strings.Contains(col.log(), "Everything is ready") })
	return col
}

func (c *collector) log() string {
	b, _ := os.ReadFile(c.logPath)
	return string(b)
}

// kill stops the collector with SIGKILL: no shutdown, no last checkpoint.
func (c *collector) kill() {
	_ = c.cmd.Process.Kill()
	<-c.exited
}

func (c *collector) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(20 * time.Second):
		c.kill()
	}
}

// seriesKey is what the tests tell container_oom_kill_count_total's series by.
type seriesKey struct{ pod, container, source string }

var (
	seriesLine = regexp.MustCompile(`^(\w+)\{(.*)\} (\S+)$`)
	labelRE    = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)
)

// scrape sums container_oom_kill_count_total by pod, container and source.
func (c *collector) scrape(t *testing.T) map[seriesKey]float64 {
	out := map[seriesKey]float64{}
	for _, s := range scrapeText(t, c.promPort, "container_oom_kill_count_total") {
		out[seriesKey{pod: s.labels["k8s_pod_uid"], container: s.labels["container_id"], source: s.labels["oom_source"]}] += s.value
	}
	return out
}

// telemetry is a self-telemetry counter (0 when not created yet).
func (c *collector) telemetry(t *testing.T, name string) float64 {
	v := 0.0
	for _, s := range scrapeText(t, c.self, name) {
		v += s.value
	}
	return v
}

type sample struct {
	labels map[string]string
	value  float64
}

func scrapeText(t *testing.T, port int, metric string) []sample {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Logf("scrape: %v", err)
		return nil
	}
	defer resp.Body.Close()
	var out []sample
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var name, labels, value string
		if m := seriesLine.FindStringSubmatch(line); m != nil {
			name, labels, value = m[1], m[2], m[3]
		} else if f := strings.Fields(line); len(f) == 2 && !strings.HasPrefix(line, "#") {
			name, value = f[0], f[1]
		}
		if name != metric && name != metric+"_total" {
			continue
		}
		s := sample{labels: map[string]string{}}
		for _, l := range labelRE.FindAllStringSubmatch(labels, -1) {
			s.labels[l[1]] = l[2]
		}
		if s.value, err = strconv.ParseFloat(value, 64); err == nil {
			out = append(out, s)
		}
	}
	return out
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

// otlpSink receives the collector's OTLP/HTTP logs.
type otlpSink struct {
	addr string
	mu   sync.Mutex
	recs []record
}

func startSink(t *testing.T) *otlpSink {
	s := &otlpSink{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.addr = l.Addr().String()
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	req := plogotlp.NewExportRequest()
	if err == nil {
		err = req.UnmarshalProto(body)
	}
	if err != nil || r.URL.Path != "/v1/logs" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	rls := req.Logs().ResourceLogs()
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
				s.recs = append(s.recs, record{pod: pod.Str(), container: ctr.Str(), source: src.Str(), killID: id.Str(), pid: int(pid.Int()), attributed: at.Bool()})
			}
		}
	}
	s.mu.Unlock()
	out, _ := plogotlp.NewExportResponse().MarshalProto()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (s *otlpSink) records() []record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]record(nil), s.recs...)
}

// ensureJournald returns the directory of a journal that receives the
// kernel's messages: the running journald's, or one started for the test
// (stopped, and its journal removed, at the end).
func ensureJournald(t *testing.T) string {
	t.Helper()
	const dir = "/run/log/journal"
	if _, err := os.Stat("/lib/systemd/systemd-journald"); err != nil {
		testutil.SkipOrFail(t, "systemd-journald is missing: install the Debian package systemd (.ci/run does)")
	}
	if !journaldRunning() {
		_, statErr := os.Stat(dir)
		ours := os.IsNotExist(statErr)
		require.NoError(t, os.MkdirAll("/run/systemd/journal", 0o755))
		cmd := exec.Command("/lib/systemd/systemd-journald")
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
			if ours {
				_ = os.RemoveAll(dir)
			}
		})
	}
	// The marker says where the running journald writes (volatile, or
	// persistent once flushed).
	marker := fmt.Sprintf("otelcol-oomkill witness marker %d", time.Now().UnixNano())
	require.NoError(t, os.WriteFile("/dev/kmsg", []byte(marker+"\n"), 0))
	var found string
	eventually(t, "journald recorded the marker", func() bool {
		for _, d := range []string{dir, "/var/log/journal"} {
			out, _ := exec.Command("journalctl", "-D", d, "--no-pager", "-n", "20").CombinedOutput()
			if strings.Contains(string(out), marker) {
				found = d
				return true
			}
		}
		return false
	})
	return found
}

func journaldRunning() bool {
	exes, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, e := range exes {
		if p, err := os.Readlink(e); err == nil && strings.HasSuffix(p, "/systemd-journald") {
			return true
		}
	}
	return false
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 90*time.Second, 100*time.Millisecond, what)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
