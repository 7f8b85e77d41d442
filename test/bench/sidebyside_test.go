//go:build sidebyside

// Package bench is the side-by-side benchmark of BENCHMARKS.md: otelcol-oomkill
// against journalctl, node-problem-detector and contrib's journald receiver,
// on one generated busy-node journal, in one run. Run it with `make bench`.
// It runs as root (systemd-journal-remote writes journal files readable by
// root only) and writes nothing outside temporary directories but the build
// caches and BENCH_OUT. It needs the binaries of `make build` and `make
// k8s-binaries`; it runs test/bench/npd/build.sh and
// test/bench/journaldcol/build.sh itself (cached after the first time).
// About 10 minutes.
package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/bench/busyjournal"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/kubeapitest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// Knobs, overridable from the environment (BENCH_ENTRIES=200000 for a quick run).
var (
	entries      = envInt("BENCH_ENTRIES", 1_000_000)
	catchUpRuns  = envInt("BENCH_RUNS", 3)
	followKills  = envInt("BENCH_FOLLOW_KILLS", 100)
	idleFor      = time.Duration(envInt("BENCH_IDLE_SECONDS", 60)) * time.Second
	followEvery  = 200 * time.Millisecond
	followNoise  = 2000 // entries/s appended meanwhile, half kernel
	pollEvery    = 5 * time.Millisecond
	stallTimeout = 30 * time.Second
	nodeName     = busyjournal.Hostname
	podsOnNode   = 110
	out          = os.Getenv("BENCH_OUT") // results are also written here (markdown)
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestSideBySide(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the side-by-side benchmark runs as root (journal files, NPD's journal access)")
	}
	bins := binaries(t)
	report := &results{}
	defer report.write(t)

	// The API server first: the journal's captured pods get the UIDs of pods
	// that exist there, so k8smeta has names for them.
	cluster := kubeapitest.Start(t)
	captured, err := busyjournal.LoadReports(testutil.RepoPath(t, "testdata/kernel/captured"))
	if err != nil {
		t.Fatal(err)
	}
	reports := busyjournal.Rewrite(captured, createPods(t, cluster, captured))

	dir := filepath.Join(t.TempDir(), "journal")
	end := time.Now().Add(-time.Second)
	span := 30 * time.Minute
	if up := uptime(t); up-time.Minute < span {
		span = up - time.Minute // NPD reads nothing older than the boot
	}
	began := time.Now()
	gen, err := busyjournal.WriteFiles(dir, busyjournal.Spec{Entries: entries, Start: end.Add(-span), End: end, Reports: reports, KernelPerKill: 1000})
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.journal"))
	size := dirSize(t, dir)
	report.addf("Input: %d entries (%d kernel, %d kills in %d replayed reports), %d journal files, %.0f MiB, written by systemd-journal-remote in %.0f s.\n\n",
		gen.Entries, gen.KernelEntries, gen.Kills, gen.Reports, len(files), float64(size)/(1<<20), time.Since(began).Seconds())

	tools := []tool{oursTool(bins.ours, ""), npdTool(bins.npd), journaldTool(bins.journald)}

	// 1. Catch-up.
	report.addf("## Catch-up\n\nFrom process start until every kill is exported (journalctl: until it exits); median of %d runs, each run's numbers in brackets. CPU is user+system of the process tree; peak RSS is the sum of VmHWM over the tree.\n\n", catchUpRuns)
	report.addf("| tool | wall | CPU | peak RSS | kills found |\n|---|---|---|---|---|\n")
	var floor time.Duration
	var jc []catchUp
	for i := 0; i < catchUpRuns; i++ {
		jc = append(jc, journalctlCatchUp(t, dir))
	}
	floor = seconds(median(jc, func(c catchUp) float64 { return c.wall.Seconds() }))
	report.catchUpRow("journalctl _TRANSPORT=kernel -o cat", jc, gen.Kills, floor)
	for _, tl := range tools {
		var runs []catchUp
		for i := 0; i < catchUpRuns; i++ {
			runs = append(runs, measureCatchUp(t, tl, dir, gen.Kills))
		}
		report.catchUpRow(tl.name, runs, gen.Kills, floor)
	}

	// 2. Follow latency.
	report.addf("\n## Follow latency\n\nFrom the append of a victim line (flushed to systemd-journal-remote, %d entries/s of other traffic meanwhile) to the kill at the tool's exporter, polled every %v; %d kills, one every %v. The replayed reports name cgroups this machine does not have, so otelcol-oomkill decides each outcome at its first look (`unknown`; `exited` where the cgroup's parent exists).\n\n",
		followNoise, pollEvery, followKills, followEvery)
	report.addf("| tool | p50 | p99 | max | kills seen |\n|---|---|---|---|---|\n")
	single := singleKillReports(reports)
	for _, tl := range tools {
		lat, seen := measureFollow(t, tl, single)
		report.addf("| %s | %s | %s | %s | %d / %d |\n", tl.name, ms(percentile(lat, 50)), ms(percentile(lat, 99)), ms(percentile(lat, 100)), seen, followKills)
	}

	// 2b. Follow latency of real kills, per outcome.
	report.addRealKills(t, bins.ours)

	// 3. Idle cost and steady memory, all tools side by side on the caught-up journal.
	report.addf("\n## Idle\n\nAll three run at once on the input journal; once each has exported every kill and 5 s passed, CPU over %v with no new entries, then resident memory. otelcol-oomkill runs the DaemonSet pipeline (memory_limiter, k8smeta caching %d pods from a real kube-apiserver).\n\n", idleFor, podsOnNode)
	report.addf("| tool | CPU (%% of one core) | RSS | of which anonymous |\n|---|---|---|---|\n")
	idleTools := []tool{oursTool(bins.ours, cluster.Kubeconfig), npdTool(bins.npd), journaldTool(bins.journald)}
	var running []*instance
	for _, tl := range idleTools {
		in := tl.start(t, dir)
		running = append(running, in)
	}
	for i, in := range running {
		if n, _ := waitKills(t, in, gen.Kills, stallTimeout); n < gen.Kills {
			t.Logf("%s: %d of %d kills before the idle measurement", idleTools[i].name, n, gen.Kills)
		}
	}
	time.Sleep(5 * time.Second)
	cpu0 := make([]time.Duration, len(running))
	for i, in := range running {
		cpu0[i] = treeCPU(in.Pid())
	}
	time.Sleep(idleFor)
	for i, in := range running {
		used := treeCPU(in.Pid()) - cpu0[i]
		report.addf("| %s | %.2f %% | %s | %s |\n", idleTools[i].name, 100*used.Seconds()/idleFor.Seconds(), mib(treeStatus(in.Pid(), "VmRSS:")), mib(treeStatus(in.Pid(), "RssAnon:")))
	}
	if pods, err := (counter{url: running[0].selfURL, metric: "otelcol_k8smeta_cached_pods"}).read(); err != nil || int(pods) != podsOnNode {
		t.Errorf("k8smeta caches %v pods (%v), want %d", pods, err, podsOnNode)
	}
	for _, in := range running {
		in.Stop()
	}
}

// binaries are the programs compared; built by make (see package doc).
type bins struct{ ours, npd, journald string }

func binaries(t *testing.T) bins {
	b := bins{ours: testutil.CollectorBinary(t)}
	b.npd = buildScript(t, "npd/build.sh")
	b.journald = buildScript(t, "journaldcol/build.sh")
	for _, p := range []string{busyjournal.RemoteBinary, "/usr/bin/journalctl"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v: install systemd-journal-remote and systemd", err)
		}
	}
	return b
}

// buildScript runs a build script (cached: fast after the first run) and
// returns the binary path it prints last.
func buildScript(t *testing.T, script string) string {
	cmd := exec.Command("bash", script)
	cmd.Stderr = os.Stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(outb)), "\n")
	return lines[len(lines)-1]
}

// tool is one way to count OOM kills from a journal directory.
type tool struct {
	name  string
	start func(t *testing.T, journalDir string) *instance
}

// instance is a running tool and where it publishes its kill count.
type instance struct {
	*testutil.Process
	kills   counter
	selfURL string
}

func oursTool(bin, kubeconfig string) tool {
	cfg, name := "configs/oomkill.yaml", "otelcol-oomkill"
	if kubeconfig != "" {
		cfg, name = "configs/oomkill-k8smeta.yaml", "otelcol-oomkill (+k8smeta, 110 pods)"
	}
	return tool{name: name, start: func(t *testing.T, dir string) *instance {
		exp, self := testutil.FreePort(t), testutil.FreePort(t)
		env := []string{"STATE_DIR=" + t.TempDir(), "JOURNAL_DIR=" + dir, fmt.Sprintf("EXPORTER_PORT=%d", exp), fmt.Sprintf("METRICS_PORT=%d", self)}
		if kubeconfig != "" {
			env = append(env, "KUBECONFIG="+kubeconfig)
		}
		return &instance{
			Process: testutil.StartProcess(t, "otelcol-oomkill", bin, []string{"--config", cfg}, testutil.ProcessOptions{Env: env}),
			kills:   counter{url: fmt.Sprintf("http://127.0.0.1:%d/metrics", exp), metric: "container_oom_kill_count_total"},
			selfURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", self),
		}
	}}
}

func npdTool(bin string) tool {
	return tool{name: "node-problem-detector v0.8.20", start: func(t *testing.T, dir string) *instance {
		tmpl, err := os.ReadFile("npd/kernel-monitor.json.tmpl")
		if err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(t.TempDir(), "kernel-monitor.json")
		if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(string(tmpl), "{{JOURNAL_DIR}}", dir)), 0o600); err != nil {
			t.Fatal(err)
		}
		port := testutil.FreePort(t)
		p := testutil.StartProcess(t, "node-problem-detector", bin, []string{
			"--enable-k8s-exporter=false", "--prometheus-address=127.0.0.1",
			fmt.Sprintf("--prometheus-port=%d", port), "--port=0", "--config.system-log-monitor=" + cfg, "--hostname-override=" + nodeName,
		}, testutil.ProcessOptions{})
		return &instance{Process: p, kills: counter{url: fmt.Sprintf("http://127.0.0.1:%d/metrics", port), metric: "problem_counter", labels: map[string]string{"reason": "OOMKilling"}}}
	}}
}

func journaldTool(bin string) tool {
	return tool{name: "journald receiver + filter (contrib v0.160.0)", start: func(t *testing.T, dir string) *instance {
		port := testutil.FreePort(t)
		p := testutil.StartProcess(t, "otelcol-journald", bin, []string{"--config", "journaldcol/config.yaml"},
			testutil.ProcessOptions{Env: []string{"JOURNAL_DIR=" + dir, fmt.Sprintf("METRICS_PORT=%d", port)}})
		return &instance{Process: p, kills: counter{url: fmt.Sprintf("http://127.0.0.1:%d/metrics", port), metric: "otelcol_exporter_sent_log_records", labels: map[string]string{"exporter": "debug"}}}
	}}
}

// catchUp is one catch-up run.
type catchUp struct {
	wall, cpu time.Duration
	peakRSS   int64
	kills     int
}

// waitKills polls the tool's kill count until it reaches want, or stops
// changing for stall. It returns the last count and when it was first seen.
func waitKills(t *testing.T, in *instance, want int, stall time.Duration) (int, time.Time) {
	last, lastChange := -1, time.Now()
	var at time.Time
	for {
		n, err := in.kills.read()
		if err == nil || errors.Is(err, errNoSample) {
			if int(n) != last {
				last, lastChange, at = int(n), time.Now(), time.Now()
			}
			if last >= want {
				return last, at
			}
		}
		if time.Since(lastChange) > stall {
			t.Logf("%s: stuck at %d of %d kills (err %v); log tail:\n%s", in.Name, last, want, err, in.LogTail(4000))
			return max(last, 0), at
		}
		time.Sleep(pollEvery)
	}
}

func measureCatchUp(t *testing.T, tl tool, dir string, want int) catchUp {
	in := tl.start(t, dir)
	defer in.Stop()
	n, at := waitKills(t, in, want, stallTimeout)
	return catchUp{wall: at.Sub(in.Started), cpu: treeCPU(in.Pid()), peakRSS: treeStatus(in.Pid(), "VmHWM:"), kills: n}
}

// victimLine counts kills in journalctl's output the way the reports were
// counted (busyjournal).
var victimLine = regexp.MustCompile(`^(Memory cgroup out of memory: |Out of memory: )?Killed process [0-9]+ \(`)

func journalctlCatchUp(t *testing.T, dir string) catchUp {
	cmd := exec.Command("journalctl", "-D", dir, "_TRANSPORT=kernel", "-o", "cat", "--no-pager")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kills := 0
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if victimLine.Match(sc.Bytes()) {
			kills++
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("journalctl: %v", err)
	}
	st := cmd.ProcessState
	return catchUp{wall: time.Since(start), cpu: st.UserTime() + st.SystemTime(), peakRSS: st.SysUsage().(*syscall.Rusage).Maxrss * 1024, kills: kills}
}

// singleKillReports are the captured reports that kill one process, for
// the follow test (one kill per report keeps the bookkeeping plain).
func singleKillReports(all []busyjournal.Report) []busyjournal.Report {
	var out []busyjournal.Report
	for _, r := range all {
		if r.Kills == 1 {
			out = append(out, r)
		}
	}
	return out
}

// measureFollow appends followKills reports to a live journal while the
// tool follows it, and returns each kill's latency to the exporter.
func measureFollow(t *testing.T, tl tool, reports []busyjournal.Report) ([]time.Duration, int) {
	dir := t.TempDir()
	live, err := busyjournal.StartLive(filepath.Join(dir, "system.journal"), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := live.Close(); err != nil {
			t.Error(err)
		}
	}()
	live.Noise(time.Now(), 1000)
	if err := live.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the file exists before the tool starts
	in := tl.start(t, dir)
	defer in.Stop()
	if n, _ := waitKills(t, in, 0, stallTimeout); n != 0 {
		t.Fatalf("%s: %d kills before any was written", tl.name, n)
	}
	time.Sleep(2 * time.Second) // started and following

	// The poller notes when each count was first seen.
	seenAt := make([]time.Time, followKills)
	stop := make(chan struct{})
	polled := make(chan int)
	go func() {
		seen := 0
		for {
			select {
			case <-stop:
				polled <- seen
				return
			default:
			}
			if n, err := in.kills.read(); err == nil {
				now := time.Now()
				for ; seen < int(n) && seen < followKills; seen++ {
					seenAt[seen] = now
				}
			}
			time.Sleep(pollEvery)
		}
	}()

	written := make([]time.Time, followKills)
	noisePerTick := int(float64(followNoise) * followEvery.Seconds())
	next := time.Now()
	for i := 0; i < followKills; i++ {
		next = next.Add(followEvery)
		time.Sleep(time.Until(next))
		// Other traffic in small bursts through the interval, then the report.
		for b := 0; b < 4; b++ {
			live.Noise(time.Now(), noisePerTick/4)
			_ = live.Flush()
			time.Sleep(followEvery / 8)
		}
		r := reports[i%len(reports)]
		at := time.Now()
		for _, l := range r.Lines {
			live.Kernel(at, l)
		}
		if err := live.Flush(); err != nil {
			t.Fatal(err)
		}
		written[i] = time.Now()
	}
	deadline := time.Now().Add(stallTimeout)
	for time.Now().Before(deadline) {
		if n, err := in.kills.read(); err == nil && int(n) >= followKills {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	seen := <-polled
	var lat []time.Duration
	for i := 0; i < seen; i++ {
		lat = append(lat, seenAt[i].Sub(written[i]))
	}
	return lat, seen
}

// createPods creates podsOnNode running pods on the benchmark node: one
// per captured pod (its container IDs in the status), the rest filler. It
// returns the replacer that gives the captured cgroup paths the new UIDs.
func createPods(t *testing.T, c *kubeapitest.Cluster, reports []busyjournal.Report) *strings.Replacer {
	ctx := context.Background()
	podUID := regexp.MustCompile(`pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})`)
	ctrID := regexp.MustCompile(`[0-9a-f]{64}`)
	ctrsOf := map[string]map[string]bool{} // captured pod UID (dashes) -> container IDs
	var order []string
	for _, r := range reports {
		for _, l := range r.Lines {
			for _, m := range podUID.FindAllStringSubmatchIndex(l, -1) {
				uid := strings.ReplaceAll(l[m[2]:m[3]], "_", "-")
				if ctrsOf[uid] == nil {
					ctrsOf[uid] = map[string]bool{}
					order = append(order, uid)
				}
				if id := ctrID.FindString(l[m[1]:]); id != "" {
					ctrsOf[uid][id] = true
				}
			}
		}
	}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for i := 0; i < podsOnNode; i++ {
		var ids []string
		if i < len(order) {
			for id := range ctrsOf[order[i]] {
				ids = append(ids, id)
			}
			sort.Strings(ids)
		}
		if len(ids) == 0 {
			ids = []string{fmt.Sprintf("%064x", 0xb0000+i)}
		}
		uid := createPod(t, c, fmt.Sprintf("web-%d", i), ids)
		if i < len(order) {
			pairs = append(pairs, order[i], uid, strings.ReplaceAll(order[i], "-", "_"), strings.ReplaceAll(uid, "-", "_"))
		}
	}
	return strings.NewReplacer(pairs...)
}

func createPod(t *testing.T, c *kubeapitest.Cluster, name string, containerIDs []string) string {
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "bench", Labels: map[string]string{"app": "web"}}, Spec: corev1.PodSpec{NodeName: nodeName}}
	var statuses []corev1.ContainerStatus
	for i, id := range containerIDs {
		cn := fmt.Sprintf("c%d", i)
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: cn, Image: "registry.local/app:1.0"})
		statuses = append(statuses, corev1.ContainerStatus{
			Name: cn, Image: "registry.local/app:1.0", ContainerID: "containerd://" + id, Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
		})
	}
	created, err := c.Client.CoreV1().Pods("bench").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: statuses}
	if _, err := c.Client.CoreV1().Pods("bench").UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return string(created.UID)
}

func uptime(t *testing.T) time.Duration {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return time.Duration(s * float64(time.Second))
}

func dirSize(_ *testing.T, dir string) int64 {
	var n int64
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			n += st.Size()
		}
	}
	return n
}

// results collects the markdown tables.
type results struct{ b strings.Builder }

func (r *results) addf(format string, args ...any) { fmt.Fprintf(&r.b, format, args...) }

func (r *results) catchUpRow(name string, runs []catchUp, want int, floor time.Duration) {
	wall := seconds(median(runs, func(c catchUp) float64 { return c.wall.Seconds() }))
	cpu := seconds(median(runs, func(c catchUp) float64 { return c.cpu.Seconds() }))
	rss := median(runs, func(c catchUp) float64 { return float64(c.peakRSS) })
	var each []string
	kills := math.MaxInt
	for _, c := range runs {
		each = append(each, fmt.Sprintf("%.2f", c.wall.Seconds()))
		kills = min(kills, c.kills)
	}
	found := fmt.Sprintf("%d / %d", kills, want)
	if kills < want {
		found += fmt.Sprintf(" (missed %d)", want-kills)
	}
	r.addf("| %s | %.2f s (%.2f× journalctl) [%s] | %.2f s | %s | %s |\n", name, wall.Seconds(), wall.Seconds()/floor.Seconds(), strings.Join(each, ", "), cpu.Seconds(), mib(int64(rss)), found)
}

func (r *results) write(t *testing.T) {
	t.Logf("side-by-side results:\n%s", r.b.String())
	if out != "" {
		if err := os.WriteFile(out, []byte(r.b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// median of f over runs.
func median(runs []catchUp, f func(catchUp) float64) float64 {
	v := make([]float64, len(runs))
	for i, c := range runs {
		v[i] = f(c)
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(float64(p)/100*float64(len(s)))) - 1
	return s[max(i, 0)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
