package kernellab

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/kernellab"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// TestWitnessInGuest: real cgroup v2 OOM kills on Debian's 6.1 and 6.12
// kernels, seen by two collectors live in the guest, both checking kills
// against the kernel's own counters (memory.events, notified through
// inotify, and /proc/vmstat):
//   - "blind" reads a journal directory that receives nothing: every kill
//     is counted from the counters alone (oom.source=kernel_counter);
//   - "seeing" reads the guest's journald: every kill from the log, none
//     counted twice, the kills whose reports the kernel rate-limited put on
//     their container by the counters.
//
// The kills: a worker under a living master; a memory.oom.group=1 kill of 4
// processes (the kernel counts 5, its first victim twice); a container's
// only process, its cgroup removed right after (still counted through the
// pod's hierarchical counter); ten containers losing a process at once (ten
// full reports), then three workers of one more container (reports
// suppressed by the kernel's rate limit).
func TestWitnessInGuest(t *testing.T) {
	requireLab(t)
	for _, k := range kernellab.Kernels() {
		t.Run(k.Release(), func(t *testing.T) { witnessInGuest(t, k) })
	}
}

const (
	witnessPod = "5b1d7d68-7c1f-4d9f-8b62-1e2f3a4b5c"
	witnessCtr = "2c3dde1f7e7c5f4f9f3e2a1c9c8e7f6f5b4c3d2e1f0a9b8c7d6e5f4f3e2a1b"
)

func witnessInGuest(t *testing.T, k kernellab.Kernel) {
	files := collectorFiles(t)
	files = append(files,
		kernellab.File{Path: "/etc/blind.yaml", Data: []byte(guestConfig("/tmp/empty-journal"))},
		kernellab.File{Path: "/etc/seeing.yaml", Data: []byte(guestConfig(""))},
	)
	res, err := kernellab.Run(context.Background(), kernellab.Config{
		Kernel:   k,
		Files:    files,
		MemoryMB: 768,
		Timeout:  8 * time.Minute,
		Script: `set -e
. /lab/lib.sh
P=` + witnessPod + ` C=` + witnessCtr + `
mkdir -p /tmp/empty-journal
otelcol-oomkill --config /etc/blind.yaml > $OUT/blind.log 2>&1 &
blind=$!
otelcol-oomkill --config /etc/seeing.yaml > $OUT/seeing.log 2>&1 &
seeing=$!
i=0
until grep -q 'Everything is ready' $OUT/blind.log && grep -q 'Everything is ready' $OUT/seeing.log; do
	i=$((i + 1)); [ $i -lt 1800 ] || { echo "collectors not ready after 180 s" >&2; exit 1; }
	sleep 0.1
done
grep '^oom_kill ' /proc/vmstat > $OUT/vmstat.before
# A worker killed, its master lives on.
a=$(kl_mkcg "$(kl_cgpath systemd burstable ${P}01 ${C}01)")
echo 16M > $a/memory.max
echo 0 > $a/memory.oom.group
sh -c 'echo $$ > "$1/cgroup.procs"; dd if=/dev/zero of=/dev/null bs=256M count=1 2>/dev/null; echo "worker exit $?"; exec sleep 600' master $a > $OUT/a.master &
# memory.oom.group=1: master, two sleeping workers and the hog die.
b=$(kl_mkcg "$(kl_cgpath cgroupfs burstable ${P}02 ${C}02)")
echo 16M > $b/memory.max
echo 1 > $b/memory.oom.group
sh -c 'echo $$ > "$1/cgroup.procs"; sleep 600 & sleep 600 & dd if=/dev/zero of=/dev/null bs=256M count=1 2>/dev/null; echo unreachable' master $b > /dev/null 2>&1 || true
kl_wait_empty $b
echo "$(kl_event $b oom_kill) $(kl_event $b oom_group_kill)" > $OUT/b.events
# The container's only process killed; the runtime removes its cgroup.
c=$(kl_mkcg "$(kl_cgpath cgroupfs besteffort ${P}03 ${C}03)")
echo 16M > $c/memory.max
sh -c 'echo $$ > "$1/cgroup.procs"; exec dd if=/dev/zero of=/dev/null bs=256M count=1 2>/dev/null' victim $c || true
kl_wait_empty $c
rmdir $c
sleep 5.5
# Ten containers lose a process at once: ten full reports...
rm -f /tmp/go
pids=""
for n in 10 11 12 13 14 15 16 17 18 19; do
	d=$(kl_mkcg "$(kl_cgpath systemd besteffort ${P}$n ${C}$n)")
	echo 16M > $d/memory.max
	sh -c 'echo $$ > "$1/cgroup.procs"; while [ ! -e /tmp/go ]; do sleep 0.01; done; exec dd if=/dev/zero of=/dev/null bs=256M count=1 2>/dev/null' victim $d &
	pids="$pids $!"
done
touch /tmp/go
for p in $pids; do wait $p || true; done
# ...then three workers of one more container: their reports are suppressed.
x=$(kl_mkcg "$(kl_cgpath cgroupfs burstable ${P}20 ${C}20)")
echo 16M > $x/memory.max
sh -c 'echo $$ > "$1/cgroup.procs"; for i in 1 2 3; do dd if=/dev/zero of=/dev/null bs=256M count=1 2>/dev/null; echo "worker exit $?"; done' master $x > $OUT/x.master
grep '^oom_kill ' /proc/vmstat > $OUT/vmstat.after
# Past the collectors' grace, then their last word.
sleep 8
kill $blind $seeing
wait $blind || true
wait $seeing || true
`,
	})
	var lerr *kernellab.Error
	if errors.As(err, &lerr) {
		t.Fatal(lerr)
	}
	require.NoError(t, err)
	t.Logf("%s: guest ran %s", k, res.Boot.Round(100*time.Millisecond))
	require.Equal(t, "worker exit 137\n", string(res.Outputs["a.master"]))
	require.Equal(t, "worker exit 137\nworker exit 137\nworker exit 137\n", string(res.Outputs["x.master"]))
	require.Equal(t, "5 1\n", string(res.Outputs["b.events"]), "the group kill: 4 processes, the first victim counted twice")
	before, after := vmstat(t, res.Outputs["vmstat.before"]), vmstat(t, res.Outputs["vmstat.after"])
	t.Logf("guest /proc/vmstat oom_kill rose by %d for 19 processes (a group kill counts its first victim twice)", after-before)
	require.Equal(t, 20, after-before)

	ctr := func(n int) string { return fmt.Sprintf("%s%02d/%s%02d", witnessPod, n, witnessCtr, n) }
	burst := func(src string) map[string]int {
		m := map[string]int{}
		for n := 10; n <= 19; n++ {
			m[ctr(n)+"/"+src] = 1
		}
		return m
	}

	blind := guestOutput(string(res.Outputs["blind.log"]))
	want := burst("kernel_counter")
	want[ctr(1)+"/kernel_counter"] = 1
	want[ctr(2)+"/kernel_counter"] = 4
	want[ctr(20)+"/kernel_counter"] = 3
	// Container 03's cgroup is removed right after its kill: the kill is on
	// the container when the witness read its cgroup before the removal
	// (a memory.events notification wakes it at once), else on its pod,
	// through the pod's hierarchical counter. Once, either way.
	if _, read := blind.records[ctr(3)+"/kernel_counter"]; read {
		want[ctr(3)+"/kernel_counter"] = 1
		t.Logf("%s: container 03's kill counted on the container: its cgroup was read before its removal", k)
	} else {
		want[fmt.Sprintf("%s03//kernel_counter", witnessPod)] = 1
		t.Logf("%s: container 03's kill counted on its pod: its cgroup was gone when read", k)
	}
	assert.Equal(t, want, blind.records, "blind: log records per pod/container/source")
	assert.Equal(t, want, blind.metrics, "blind: container.oom_kill.count per pod/container/source")
	if t.Failed() {
		t.Logf("blind collector:\n%s", tail(string(res.Outputs["blind.log"])))
	}

	// The three workers' reports: the kernel suppressed some (rate limit),
	// so their victim lines name no cgroup; the counters put them on x.
	entries, err := kernellab.ParseExport(res.JournalExport)
	require.NoError(t, err)
	summaries := 0
	for _, e := range entries {
		if m := e.Message(); e.Kernel() && strings.HasPrefix(m, "oom-kill:") && strings.Contains(m, fmt.Sprintf("%s%02d,task=", witnessCtr, 20)) {
			summaries++
		}
	}
	t.Logf("%s: %d of the 3 workers' reports were rate-limited by the kernel", k, 3-summaries)
	assert.Less(t, summaries, 3, "the burst must have the kernel rate-limit reports")

	seeing := guestOutput(string(res.Outputs["seeing.log"]))
	want = burst("log")
	want[ctr(1)+"/log"] = 1
	want[ctr(2)+"/log"] = 4
	want[ctr(3)+"/log"] = 1
	want[ctr(20)+"/log"] = 3
	assert.Equal(t, want, seeing.records, "seeing: log records per pod/container/source")
	assert.Equal(t, want, seeing.metrics, "seeing: container.oom_kill.count per pod/container/source")
	assert.Zero(t, seeing.unattributed, "every kill attributed")
	assert.Contains(t, string(res.Outputs["seeing.log"]), "Checking OOM kills against the kernel's own counters")
	assert.Contains(t, string(res.Outputs["seeing.log"]), `"notified": true`, "memory.events changes wake the collector (inotify)")
	if t.Failed() {
		t.Logf("seeing collector:\n%s", tail(string(res.Outputs["seeing.log"])))
	}
}

// guestConfig: the oomkill receiver (journal: the guest's, or a directory
// that receives nothing) to the debug exporter, logs and metrics in detail.
func guestConfig(journalDir string) string {
	journal := ""
	if journalDir != "" {
		journal = "\n    journal:\n      directory: " + journalDir
	}
	return `
receivers:
  oomkill:` + journal + `
    start_at: end
    metrics_refresh_interval: 0s
    witness:
      poll_interval: 500ms
      grace: 3s
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
    metrics:
      receivers: [oomkill]
      exporters: [debug]
`
}

// collectorFiles is the built collector with the libraries it links and
// dlopens.
func collectorFiles(t *testing.T) []kernellab.File {
	t.Helper()
	files, err := kernellab.HostBinary(testutil.CollectorBinary(t), "/usr/bin/otelcol-oomkill", "libsystemd.so.0")
	require.NoError(t, err)
	return files
}

// seen is what a collector's debug output says: log records and the last
// counter value per "pod/container/source", and unattributed records.
type seen struct {
	records, metrics map[string]int
	unattributed     int
}

var (
	attr    = regexp.MustCompile(`-> ([\w.]+): \w+\((.*)\)`)
	valueRE = regexp.MustCompile(`(?m)^Value: (\d+)$`)
)

func guestOutput(log string) seen {
	s := seen{records: map[string]int{}, metrics: map[string]int{}}
	last := map[string]int{}
	for _, block := range strings.Split(log, "Resource SchemaURL")[1:] {
		res := map[string]string{}
		head, _, _ := strings.Cut(block, "ScopeLogs #")
		head, _, _ = strings.Cut(head, "ScopeMetrics #")
		for _, m := range attr.FindAllStringSubmatch(head, -1) {
			res[m[1]] = m[2]
		}
		where := res["k8s.pod.uid"] + "/" + res["container.id"]
		switch {
		case strings.Contains(block, "LogRecord #"):
			for _, rec := range strings.Split(block, "LogRecord #")[1:] {
				a := map[string]string{}
				for _, m := range attr.FindAllStringSubmatch(rec, -1) {
					a[m[1]] = m[2]
				}
				s.records[where+"/"+a["oom.source"]]++
				if a["oom.attributed"] != "true" {
					s.unattributed++
				}
			}
		case strings.Contains(block, "NumberDataPoints #"):
			for _, dp := range strings.Split(block, "NumberDataPoints #")[1:] {
				a := map[string]string{}
				for _, m := range attr.FindAllStringSubmatch(dp, -1) {
					a[m[1]] = m[2]
				}
				if v := valueRE.FindStringSubmatch(dp); v != nil {
					n, _ := strconv.Atoi(v[1])
					last[where+"/"+a["oom.source"]+"/"+a["process.executable.name"]+"/"+a["oom.container.outcome"]+"/"+a["oom.constraint"]] = n
				}
			}
		}
	}
	for k, v := range last {
		parts := strings.Split(k, "/")
		s.metrics[strings.Join(parts[:3], "/")] += v
	}
	return s
}

func vmstat(t *testing.T, b []byte) int {
	f := strings.Fields(string(b))
	require.Len(t, f, 2, "%q", b)
	n, err := strconv.Atoi(f[1])
	require.NoError(t, err)
	return n
}

// tail is the end of a guest collector's log, for a failure message.
func tail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}
