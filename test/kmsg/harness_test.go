//go:build linux

package kmsg

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

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// requireMachine fails in CI and skips elsewhere when this machine cannot
// run the tests: they need root (cgroups, /dev/kmsg with
// kernel.dmesg_restrict=1, journald) and a memory controller.
func requireMachine(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (to create memory cgroups, read and write /dev/kmsg)")
	}
	if memcgRoot() == "" {
		missing = append(missing, "a memory controller at /sys/fs/cgroup/memory (v1) or /sys/fs/cgroup (v2)")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		missing = append(missing, "python3 (the memory hog)")
	}
	if len(missing) == 0 {
		return
	}
	testutil.SkipOrFail(t, "kmsg tests need "+strings.Join(missing, ", "))
}

// memcgRoot is where memory cgroups are made: the v1 memory hierarchy, or
// the unified one when it has the memory controller.
func memcgRoot() string {
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil {
		return "/sys/fs/cgroup/memory"
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && strings.Contains(string(b), "memory") {
		return "/sys/fs/cgroup"
	}
	return ""
}

// container is a kubelet-shaped memory cgroup under a prefix of the
// test's own, so nothing a kubelet owns is touched.
type container struct {
	podUID, id string
	dir        string // absolute
	path       string // as the kernel prints it
}

// cgroups makes kubelet-shaped cgroups under /<prefix>/ and removes them
// all, innermost first, when the test ends.
type cgroups struct {
	t      *testing.T
	root   string
	prefix string
	v2     bool
	made   []string
}

func newCgroups(t *testing.T) *cgroups {
	t.Helper()
	root := memcgRoot()
	c := &cgroups{t: t, root: root, prefix: testutil.CgroupPrefix + "kmsg-" + testutil.RandomHex(6), v2: root == "/sys/fs/cgroup"}
	t.Cleanup(c.removeAll)
	return c
}

// layouts are the kubelet's: cgroupfs and systemd drivers, containerd and
// CRI-O, the three QoS classes.
var layouts = []func(uid, id string) string{
	func(uid, id string) string { return "/kubepods/burstable/pod" + uid + "/" + id },
	func(uid, id string) string {
		u := strings.ReplaceAll(uid, "-", "_")
		return "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + u + ".slice/crio-" + id + ".scope"
	},
	func(uid, id string) string {
		return "/kubepods.slice/kubepods-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice/cri-containerd-" + id + ".scope"
	},
}

// container makes a container's cgroup with a 64 MiB limit.
func (c *cgroups) container(layout int) container {
	c.t.Helper()
	uid := fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rand.Uint32(), rand.IntN(1<<16), rand.IntN(1<<12), rand.IntN(1<<12), rand.Int64N(1<<48))
	id := fmt.Sprintf("%016x%016x%016x%016x", rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64())
	path := "/" + c.prefix + layouts[layout%len(layouts)](uid, id)
	dir := c.root + path
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	d := c.root
	for _, p := range parts {
		if c.v2 {
			// Every level below the root hands the memory controller down.
			_ = os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+memory"), 0o644)
		}
		d = filepath.Join(d, p)
		if _, err := os.Stat(d); os.IsNotExist(err) {
			require.NoError(c.t, os.Mkdir(d, 0o755))
			c.made = append(c.made, d)
		}
	}
	limit, file := strconv.Itoa(64<<20), "memory.limit_in_bytes"
	if c.v2 {
		file = "memory.max"
	}
	require.NoError(c.t, os.WriteFile(filepath.Join(dir, file), []byte(limit), 0o644))
	return container{podUID: uid, id: id, dir: dir, path: path}
}

func (c *cgroups) removeAll() {
	for i := len(c.made) - 1; i >= 0; i-- {
		d := c.made[i]
		// A cgroup can be removed once its last process is gone; a killed
		// hog takes a moment to exit.
		for try := 0; try < 50; try++ {
			if err := os.Remove(d); err == nil || os.IsNotExist(err) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := os.Stat(d); err == nil {
			c.t.Errorf("cgroup %s could not be removed", d)
		}
	}
}

// hogScript runs in the container: a parent that stays small forks n
// children one after another, each allocating past the limit, so the
// kernel OOM-kills each child and the parent lives on. It prints each
// child's pid and how it ended, gap seconds apart.
const hogScript = `
import os, sys, time
n, gap = int(sys.argv[1]), float(sys.argv[2])
for i in range(n):
    pid = os.fork()
    if pid == 0:
        b = bytearray(200 << 20)
        os._exit(0)
    _, st = os.waitpid(pid, 0)
    print(pid, os.WTERMSIG(st) if os.WIFSIGNALED(st) else -1, flush=True)
    time.sleep(gap)
`

// oomKills makes the kernel OOM-kill n processes in ctr, gap apart, and
// returns their pids once all are dead. Ten OOM reports per 5 s are the
// kernel's limit: a gap of 0.6 s keeps every report whole.
func oomKills(t *testing.T, ctr container, n int, gap time.Duration) []int {
	t.Helper()
	cmd := exec.Command("bash", "-c", `echo $$ > "$1/cgroup.procs" && exec python3 -c "$2" "$3" "$4"`, "hog",
		ctr.dir, hogScript, strconv.Itoa(n), strconv.FormatFloat(gap.Seconds(), 'f', 3, 64))
	out, err := cmd.Output()
	require.NoError(t, err, "hog in %s: %s", ctr.path, out)
	var pids []int
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		require.Len(t, f, 2, "hog output %q", out)
		require.Equal(t, "9", f[1], "the child was killed by SIGKILL: %q", l)
		pid, err := strconv.Atoi(f[0])
		require.NoError(t, err)
		pids = append(pids, pid)
	}
	require.Len(t, pids, n)
	return pids
}

// writeKmsg writes each line into /dev/kmsg as one record. The kernel
// rate-limits writes per open file (10 per 5 s unless printk_devkmsg=on),
// dropping the rest silently, so a fresh file is opened every 10 lines.
func writeKmsg(t *testing.T, lines ...string) {
	t.Helper()
	for len(lines) > 0 {
		n := min(len(lines), 10)
		f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
		require.NoError(t, err)
		for _, l := range lines[:n] {
			_, err := f.WriteString(l + "\n")
			require.NoError(t, err)
		}
		require.NoError(t, f.Close())
		lines = lines[n:]
	}
}

// kill is what the test keeps of an oom_kill log record.
type kill struct {
	pid           int64
	podUID, ctrID string
	killID, body  string
	attributed    bool
	time          time.Time
}

// otlpSink receives the collector's OTLP/HTTP logs.
type otlpSink struct {
	addr  string
	mu    sync.Mutex
	kills []kill
}

func startSink(t *testing.T) *otlpSink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &otlpSink{addr: l.Addr().String()}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil || r.URL.Path != "/v1/logs" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	req := plogotlp.NewExportRequest()
	if err := req.UnmarshalProto(body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
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
				lr := lrs.At(k)
				a := lr.Attributes()
				pid, _ := a.Get("process.pid")
				id, _ := a.Get("oom.kill.id")
				at, _ := a.Get("oom.attributed")
				s.kills = append(s.kills, kill{
					pid: pid.Int(), podUID: pod.Str(), ctrID: ctr.Str(), killID: id.Str(),
					body: lr.Body().Str(), attributed: at.Bool(), time: lr.Timestamp().AsTime(),
				})
			}
		}
	}
	s.mu.Unlock()
	out, _ := plogotlp.NewExportResponse().MarshalProto()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (s *otlpSink) received() []kill {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]kill(nil), s.kills...)
}

// collector is the built distribution run on this machine.
type collector struct {
	t                *testing.T
	bin, cfg, logf   string
	export, selfPort int
	cmd              *exec.Cmd
	exited           chan struct{}
}

// newCollector writes a config: the oomkill receiver with the given
// settings (YAML under receivers.oomkill), a file_storage checkpoint in
// state, logs over OTLP/HTTP to sink, metrics on a Prometheus exporter,
// the collector's own metrics on another port.
func newCollector(t *testing.T, receiver, state string, sink *otlpSink) *collector {
	t.Helper()
	c := &collector{t: t, bin: testutil.CollectorBinary(t), export: testutil.FreePort(t), selfPort: testutil.FreePort(t)}
	dir := t.TempDir()
	c.cfg, c.logf = filepath.Join(dir, "config.yaml"), filepath.Join(dir, "collector.log")
	require.NoError(t, os.WriteFile(c.cfg, []byte(fmt.Sprintf(`
extensions:
  file_storage:
    directory: %s
receivers:
  oomkill:
%s    storage: file_storage
    outcome:
      delay: 200ms
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
    logs:
      level: info
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %d
  pipelines:
    metrics:
      receivers: [oomkill]
      exporters: [prometheus]
    logs:
      receivers: [oomkill]
      exporters: [otlp_http]
`, state, indent(receiver, "    "), c.export, sink.addr, c.selfPort)), 0o600))
	t.Cleanup(func() {
		c.stop(syscall.SIGTERM)
		if t.Failed() {
			b, _ := os.ReadFile(c.logf)
			t.Logf("collector log:\n%s", tail(string(b), 8000))
		}
	})
	return c
}

func indent(s, by string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		b.WriteString(by + l + "\n")
	}
	return b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// start runs the collector (appending to its log) and waits until its
// pipelines run.
func (c *collector) start() {
	c.t.Helper()
	f, err := os.OpenFile(c.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(c.t, err)
	defer f.Close()
	before := strings.Count(c.log(), "Everything is ready")
	c.cmd = exec.Command(c.bin, "--config", c.cfg)
	c.cmd.Stdout, c.cmd.Stderr = f, f
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(c.t, c.cmd.Start())
	c.exited = make(chan struct{})
	cmd := c.cmd
	go func() { _ = cmd.Wait(); close(c.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for strings.Count(c.log(), "Everything is ready") == before {
		select {
		case <-c.exited:
			c.t.Fatalf("the collector exited at start:\n%s", tail(c.log(), 4000))
		default:
		}
		require.True(c.t, time.Now().Before(deadline), "the collector did not start:\n%s", tail(c.log(), 4000))
		time.Sleep(50 * time.Millisecond)
	}
}

// stop signals the collector and waits for it to exit.
func (c *collector) stop(sig syscall.Signal) {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(sig)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	c.cmd = nil
}

func (c *collector) log() string {
	b, _ := os.ReadFile(c.logf)
	return string(b)
}

// metric sums the samples of a metric on the collector's own telemetry
// (self) or its Prometheus exporter, with the labels given matching.
func (c *collector) metric(self bool, name string, labels map[string]string) float64 {
	port := c.export
	if self {
		port = c.selfPort
	}
	total, _ := scrape(fmt.Sprintf("http://127.0.0.1:%d/metrics", port), name, labels)
	return total
}

var (
	sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	labelRE  = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)
)

func scrape(url, name string, want map[string]string) (float64, bool) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := sampleRE.FindStringSubmatch(sc.Text())
		if m == nil || (m[1] != name && m[1] != name+"_total") {
			continue
		}
		labels := map[string]string{}
		for _, l := range labelRE.FindAllStringSubmatch(m[2], -1) {
			labels[l[1]] = l[2]
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if v, err := strconv.ParseFloat(m[3], 64); err == nil && match {
			total += v
		}
	}
	return total, resp.StatusCode == http.StatusOK
}

// eventually waits for cond, failing with what the collector logged.
func (c *collector) eventually(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: not after %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
