// Package kernellab runs real cgroup v2 OOM kills on Debian's 6.1 and 6.12
// kernels in a qemu guest (test/harness/kernellab), then has the built
// collector read the guest's journal and checks every kill is counted
// once, on its pod and container. With KERNELLAB_UPDATE=1 it also rewrites
// the fixtures under testdata/ (make kernel-lab-fixtures).
package kernellab

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/kernellab"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

//go:embed scenarios.sh
var scenarios string

// requireLab fails in CI and skips elsewhere when the lab cannot run here.
func requireLab(t *testing.T) {
	t.Helper()
	if err := kernellab.Check(); err != nil {
		testutil.SkipOrFail(t, err.Error())
	}
}

// container is one line of the guest's $OUT/results.
type container struct {
	scenario, podUID, containerID string
	group, procs                  int
	leafOOMKill, leafGroupKill    int
	masters                       string
}

func parseResults(t *testing.T, b []byte) []container {
	t.Helper()
	var out []container
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		require.Len(t, f, 9, "results line %q", line)
		kv := map[string]string{}
		for _, x := range f[3:] {
			k, v, _ := strings.Cut(x, "=")
			kv[k] = v
		}
		atoi := func(k string) int {
			n, err := strconv.Atoi(kv[k])
			require.NoError(t, err, "%s in %q", k, line)
			return n
		}
		out = append(out, container{
			scenario: f[0], podUID: f[1], containerID: f[2],
			group: atoi("oom_group"), procs: atoi("procs"),
			leafOOMKill: atoi("leaf_oom_kill"), leafGroupKill: atoi("leaf_group_kill"), masters: kv["master"],
		})
	}
	return out
}

// TestKernelLab boots each kernel once and runs every scenario there.
func TestKernelLab(t *testing.T) {
	requireLab(t)
	testutil.CollectorBinary(t)
	for _, k := range kernellab.Kernels() {
		t.Run(k.Release(), func(t *testing.T) {
			// About 1-2 min on a busy 2-core machine; far more means a hang.
			res, err := kernellab.Run(context.Background(), kernellab.Config{Kernel: k, Script: scenarios, Timeout: 6 * time.Minute})
			require.NoError(t, err)
			t.Logf("%s: guest ran %s; guest uptime at each step: %s", k, res.Boot.Round(100*time.Millisecond), progress(res.Console))
			entries, err := kernellab.ParseExport(res.JournalExport)
			require.NoError(t, err)
			ctrs := parseResults(t, res.Outputs["results"])
			require.Len(t, ctrs, 19, "containers in the results")

			// What the kernel itself counted (memory.events) and who
			// survived: group kills take the whole container, the first
			// victim counted twice.
			for _, c := range ctrs {
				if c.group == 1 {
					assert.Equal(t, c.procs+1, c.leafOOMKill, "%s %s: memory.events oom_kill", c.scenario, c.containerID)
					assert.Equal(t, 1, c.leafGroupKill, "%s %s: oom_group_kill", c.scenario, c.containerID)
					assert.Equal(t, "137", c.masters, "%s: the master is killed with its group", c.scenario)
				} else {
					assert.Equal(t, 1, c.leafOOMKill, "%s %s: memory.events oom_kill", c.scenario, c.containerID)
					assert.Equal(t, "0", c.masters, "%s: the master outlives its worker", c.scenario)
				}
			}

			want := expect(t, entries, ctrs)
			if os.Getenv("KERNELLAB_UPDATE") != "" {
				writeFixtures(t, k, entries, ctrs, res.Outputs["results"])
			}
			checkCollector(t, res.JournalExport, want)
		})
	}
}

// expectation is what the collector must report for one guest run.
type expectation struct {
	// perContainer: kills counted on each pod/container; groupFlagged:
	// how many of them carry oom.group_kill=true.
	perContainer map[string]int
	groupFlagged map[string]int
	unattributed int
	total        int
}

func key(pod, ctr string) string { return pod + "/" + ctr }

// expect derives the counts from the scenarios and from which reports the
// kernel rate-limited (a report's "oom-kill:" summary names the container).
// The collector counts every process once; a kill whose report was
// suppressed cannot be attributed, except group members, which the
// "Tasks in … memory.oom.group" line names. The first victim of a
// rate-limited group kill comes before that line, so it stays unattributed.
func expect(t *testing.T, entries []kernellab.Entry, ctrs []container) expectation {
	t.Helper()
	summaries := map[string]int{}
	for _, e := range entries {
		if m := e.Message(); e.Kernel() && strings.HasPrefix(m, "oom-kill:") {
			for _, c := range ctrs {
				if strings.Contains(m, c.containerID+",task=") || strings.Contains(m, c.containerID+".scope,task=") {
					summaries[key(c.podUID, c.containerID)]++
				}
			}
		}
	}
	ex := expectation{perContainer: map[string]int{}, groupFlagged: map[string]int{}}
	suppressed := 0
	for _, c := range ctrs {
		k := key(c.podUID, c.containerID)
		full := summaries[k] == 1
		require.LessOrEqual(t, summaries[k], 1, "%s: one report per container", k)
		if c.scenario != "rate_limited_burst" {
			require.True(t, full, "%s: a scenario alone is never rate-limited", c.scenario)
		}
		kills := 1
		if c.group == 1 {
			kills = c.procs
		}
		ex.total += kills
		switch {
		case full && c.group == 1:
			ex.perContainer[k], ex.groupFlagged[k] = kills, kills-1
		case full:
			ex.perContainer[k] = 1
		case c.group == 1:
			suppressed++
			ex.perContainer[k], ex.groupFlagged[k] = kills-1, kills-1
			ex.unattributed++
		default:
			suppressed++
			ex.unattributed++
		}
	}
	t.Logf("%d of 13 reports of the burst were rate-limited by the kernel", suppressed)
	return ex
}

// logRecord is what the test keeps of an oom_kill log record.
type logRecord struct {
	pod, ctr   string
	pid        int64
	group      bool
	attributed bool
}

// records are the oom_kill log records the sink received.
func records(sink *testutil.OTLPSink) []logRecord {
	var out []logRecord
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
					g, _ := a.Get("oom.group_kill")
					at, _ := a.Get("oom.attributed")
					out = append(out, logRecord{pod: pod.Str(), ctr: ctr.Str(), pid: pid.Int(), group: g.Bool(), attributed: at.Bool()})
				}
			}
		}
	}
	return out
}

// scrape sums container_oom_kill_count_total per pod/container.
func scrape(url string) (map[string]float64, bool) {
	kills, err := testutil.Scrape(url, "container_oom_kill_count_total")
	out := map[string]float64{}
	for _, s := range kills {
		out[key(s.Label("k8s_pod_uid"), s.Label("container_id"))] += s.Value
	}
	return out, err == nil
}

// checkCollector turns the guest's journal into real journal files and has
// the built collector read them from the beginning.
func checkCollector(t *testing.T, export []byte, want expectation) {
	t.Helper()
	dir := t.TempDir()
	journaltest.WriteExport(t, filepath.Join(dir, "guest.journal"), export)

	sink := testutil.StartOTLPSink(t)
	promPort := testutil.FreePort(t)
	cfg := testutil.WriteConfig(t, fmt.Sprintf(`
receivers:
  oomkill:
    journal:
      directory: %s
    start_at: beginning
exporters:
  prometheus:
    endpoint: 127.0.0.1:%d
    resource_constant_labels:
      included: ["*"]
  otlp_grpc:
    endpoint: %s
    tls:
      insecure: true
    retry_on_failure:
      enabled: false
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [oomkill]
      exporters: [prometheus]
    logs:
      receivers: [oomkill]
      exporters: [otlp_grpc]
`, dir, promPort, sink.Addr()))
	c := testutil.StartCollector(t, cfg, testutil.ProcessOptions{})

	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort)
	deadline := time.Now().Add(90 * time.Second)
	for {
		got, _ := scrape(url)
		sum := 0.0
		for _, v := range got {
			sum += v
		}
		if int(sum) >= want.total && len(records(sink)) >= want.total {
			break
		}
		select {
		case <-c.Exited():
			t.Fatalf("the collector exited: %v\n%s", c.Err(), c.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90 s the collector counted %v kills and sent %d log records, want %d\n%s", sum, len(records(sink)), want.total, c.LogTail(4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // nothing more may come
	got, ok := scrape(url)
	require.True(t, ok)

	wantSeries := map[string]float64{}
	for k, n := range want.perContainer {
		wantSeries[k] = float64(n)
	}
	if want.unattributed > 0 {
		wantSeries[key("", "")] = float64(want.unattributed)
	}
	assert.Equal(t, wantSeries, got, "container_oom_kill_count_total per pod/container")

	recs := records(sink)
	require.Len(t, recs, want.total, "oom_kill log records")
	perCtr, flagged := map[string]int{}, map[string]int{}
	pids := map[int64]int{}
	for _, r := range recs {
		pids[r.pid]++
		k := key(r.pod, r.ctr)
		if !r.attributed {
			assert.Equal(t, key("", ""), k, "an unattributed kill names no pod: %+v", r)
			continue
		}
		perCtr[k]++
		if r.group {
			flagged[k]++
		}
	}
	for pid, n := range pids {
		assert.Equal(t, 1, n, "pid %d counted %d times", pid, n)
	}
	assert.Equal(t, want.perContainer, perCtr, "attributed log records per pod/container")
	assert.Equal(t, want.groupFlagged, flagged, "log records with oom.group_kill=true per pod/container")
}

// progress picks the lab's "kernellab: [uptime] step" lines off the console.
func progress(console []byte) string {
	var steps []string
	for _, l := range strings.Split(string(console), "\n") {
		if i := strings.Index(l, "kernellab: ["); i >= 0 {
			steps = append(steps, strings.TrimSpace(l[i+len("kernellab: "):]))
		}
	}
	return strings.Join(steps, ", ")
}

// Fixtures: testdata/journal/kernellab/<release>/<scenario>.export holds
// the kernel's entries between the scenario's markers, byte for byte;
// testdata/kernel/kernellab/<release>/<scenario>.txt the same messages, one
// per line, after "# " lines saying what happened.
func writeFixtures(t *testing.T, k kernellab.Kernel, entries []kernellab.Entry, ctrs []container, results []byte) {
	t.Helper()
	jdir := testutil.RepoPath(t, "testdata/journal/kernellab/"+k.Release())
	kdir := testutil.RepoPath(t, "testdata/kernel/kernellab/"+k.Release())
	for _, d := range []string{jdir, kdir} {
		require.NoError(t, os.RemoveAll(d))
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	byScenario := map[string][]container{}
	var names []string
	for _, c := range ctrs {
		if byScenario[c.scenario] == nil {
			names = append(names, c.scenario)
		}
		byScenario[c.scenario] = append(byScenario[c.scenario], c)
	}
	sort.Strings(names)
	for _, name := range names {
		es, err := kernellab.Between(entries, "KERNELLAB begin "+name, "KERNELLAB end "+name)
		require.NoError(t, err)
		var exp []byte
		var txt strings.Builder
		fmt.Fprintf(&txt, "# scenario: %s (test/kernellab/scenarios.sh), cgroup v2, real OOM kills in a qemu guest\n", name)
		fmt.Fprintf(&txt, "# kernel: %s (Debian package %s)\n", k.Release(), k.Package)
		for _, c := range byScenario[name] {
			fmt.Fprintf(&txt, "# container: pod %s container %s memory.oom.group=%d processes=%d memory.events oom_kill=%d oom_group_kill=%d master exit=%s\n",
				c.podUID, c.containerID, c.group, c.procs, c.leafOOMKill, c.leafGroupKill, c.masters)
		}
		txt.WriteString("# kernel messages follow, one per line (multi-line messages split); made by make kernel-lab-fixtures\n")
		for _, e := range es {
			exp = append(exp, e.Raw...)
			for _, l := range strings.Split(strings.TrimRight(e.Message(), "\n"), "\n") {
				txt.WriteString(l + "\n")
			}
		}
		require.NoError(t, os.WriteFile(filepath.Join(jdir, name+".export"), exp, 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(kdir, name+".txt"), []byte(txt.String()), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(kdir, "results.txt"), results, 0o644))
	t.Logf("wrote fixtures for %s into %s and %s", k, jdir, kdir)
}

// TestCollectorInGuest runs the built collector inside the guest, with
// the libraries it links and dlopens, live next to the cgroups: it reads
// the guest's journal while a container's worker is OOM-killed, and its
// debug exporter prints the kill's log record with the pod and container.
// (busybox-static's wget cannot scrape: its static resolver crashes.)
func TestCollectorInGuest(t *testing.T) {
	requireLab(t)
	files := collectorInGuest(t, "beginning")
	ctr := strings.Repeat("99", 32)
	res, err := kernellab.Run(context.Background(), kernellab.Config{
		Kernel:   kernellab.Debian612,
		Files:    files,
		MemoryMB: guestMemoryForCollector,
		Timeout:  5 * time.Minute,
		Script: `set -e
. /lab/lib.sh
otelcol-oomkill --version > $OUT/version
otelcol-oomkill components > $OUT/components
otelcol-oomkill --config /etc/otelcol-oomkill.yaml > $OUT/collector.log 2>&1 &
col=$!
leaf=$(kl_mkcg "$(kl_cgpath systemd burstable 4a0c6c57-6b0e-4c8e-9a51-0d1e2f3a4b99 ` + ctr + `)")
echo 16M > $leaf/memory.max
sh -c 'echo $$ > "$1/cgroup.procs"; dd if=/dev/zero of=/dev/null bs=256M count=1 2>/dev/null; echo "worker exit $?"' master $leaf > $OUT/master
i=0
until grep -q 'container.id: Str(` + ctr + `)' $OUT/collector.log; do
	i=$((i + 1)); [ $i -lt 1200 ] || { echo "no oom_kill record after 120 s" >&2; exit 1; }
	sleep 0.1
done
grep -E 'VmHWM|VmRSS' /proc/$col/status > $OUT/collector_memory
free -m > $OUT/free
kill $col
wait $col || true
`,
	})
	var lerr *kernellab.Error
	if errors.As(err, &lerr) {
		t.Fatal(lerr)
	}
	require.NoError(t, err)
	t.Logf("guest ran %s; collector in the guest: %s; guest memory:\n%s", res.Boot.Round(100*time.Millisecond),
		strings.Join(strings.Fields(string(res.Outputs["collector_memory"])), " "), res.Outputs["free"])
	assert.Contains(t, string(res.Outputs["version"]), "otelcol-oomkill version")
	assert.Contains(t, string(res.Outputs["components"]), "oomkill")
	assert.Contains(t, string(res.Outputs["components"]), "k8smeta")
	assert.Equal(t, "worker exit 137\n", string(res.Outputs["master"]))
	log := string(res.Outputs["collector.log"])
	assert.Contains(t, log, "k8s.pod.uid: Str(4a0c6c57-6b0e-4c8e-9a51-0d1e2f3a4b99)")
	assert.Equal(t, 1, strings.Count(log, "container.id: Str("+ctr+")"), "one kill:\n%s", log)
}

// collectorInGuest is the built collector with its libraries, and a config
// at /etc/otelcol-oomkill.yaml: oomkill (start_at as given) to the debug
// exporter, every record in detail.
func collectorInGuest(t *testing.T, startAt string) []kernellab.File {
	t.Helper()
	// The journal reader dlopens libsystemd (go-systemd's sdjournal).
	files, err := kernellab.HostBinary(testutil.CollectorBinary(t), "/usr/bin/otelcol-oomkill", "libsystemd.so.0")
	require.NoError(t, err)
	return append(files, kernellab.File{Path: "/etc/otelcol-oomkill.yaml", Data: []byte(`
receivers:
  oomkill:
    start_at: ` + startAt + `
exporters:
  debug:
    verbosity: detailed
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [oomkill]
      exporters: [debug]
`)})
}

// guestMemoryForCollector: the initramfs stays in the guest's memory (with
// the collector and its libraries about 102 MiB of tmpfs) next to the
// running collector (VmHWM 55 MiB measured); 317 MiB were left at the end.
const guestMemoryForCollector = 512
