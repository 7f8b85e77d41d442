package kernellab

import (
	"context"
	"errors"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/kernellab"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// TestCollectorOnKmsgWithoutJournald runs the collector built without cgo
// (one static binary, no library) live in a guest that runs no journald,
// as on Talos or Alpine nodes: `source: auto` finds no journald and reads
// /dev/kmsg, and every process of a worker kill and of a group kill is
// counted on its pod and container, on Debian's 6.1 and 6.12 kernels.
func TestCollectorOnKmsgWithoutJournald(t *testing.T) {
	requireLab(t)
	bin := staticCollectorBinary(t)
	worker, group := strings.Repeat("7c", 32), strings.Repeat("8d", 32)
	const workerPod, groupPod = "4a0c6c57-6b0e-4c8e-9a51-0d1e2f3a4bcc", "4a0c6c57-6b0e-4c8e-9a51-0d1e2f3a4bdd"
	for _, k := range kernellab.Kernels() {
		t.Run(k.Release(), func(t *testing.T) {
			res, err := kernellab.Run(context.Background(), kernellab.Config{
				Kernel:     k,
				NoJournald: true,
				MemoryMB:   guestMemoryForCollector,
				Timeout:    5 * time.Minute,
				Files: []kernellab.File{
					{Path: "/usr/bin/otelcol-oomkill", Source: bin, Mode: 0o755},
					{Path: "/etc/otelcol-oomkill.yaml", Data: []byte(`
receivers:
  oomkill:
    source: auto
    start_at: end
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
`)},
				},
				Script: `set -e
. /lab/lib.sh
[ ! -e /run/systemd/journal/socket ] && ! pidof systemd-journald > /dev/null && echo "no journald" > $OUT/journald
otelcol-oomkill --config /etc/otelcol-oomkill.yaml > $OUT/collector.log 2>&1 &
col=$!
i=0
until grep -q 'Everything is ready' $OUT/collector.log; do
	i=$((i + 1)); [ $i -lt 1200 ] || { echo "collector not ready after 120 s" >&2; exit 1; }
	sleep 0.1
done
a=$(kl_mkcg "$(kl_cgpath systemd burstable ` + workerPod + ` ` + worker + `)")
echo 16M > $a/memory.max
echo 0 > $a/memory.oom.group
sh -c 'echo $$ > "$1/cgroup.procs"; dd if=/dev/zero of=/dev/null bs=256M count=1 2>/dev/null; echo "worker exit $?"' master $a > $OUT/worker.master
b=$(kl_mkcg "$(kl_cgpath cgroupfs guaranteed ` + groupPod + ` ` + group + `)")
echo 16M > $b/memory.max
echo 1 > $b/memory.oom.group
sh -c 'echo $$ > "$1/cgroup.procs"; sleep 600 & sleep 600 & dd if=/dev/zero of=/dev/null bs=256M count=1 2>/dev/null; echo unreachable' master $b > $OUT/group.master 2>&1 || true
kl_wait_empty $b
i=0
until [ "$(grep -c 'EventName: oom_kill' $OUT/collector.log)" -ge 5 ]; do
	i=$((i + 1)); [ $i -lt 1200 ] || { echo "fewer than 5 oom_kill records after 120 s" >&2; exit 1; }
	sleep 0.1
done
sleep 1
kill $col
wait $col || true
`,
			})
			var lerr *kernellab.Error
			if errors.As(err, &lerr) {
				t.Fatal(lerr)
			}
			require.NoError(t, err)
			log := string(res.Outputs["collector.log"])
			t.Logf("%s: guest ran %s", k, res.Boot.Round(100*time.Millisecond))
			require.Equal(t, "no journald\n", string(res.Outputs["journald"]), "the guest runs no journald")
			assert.Empty(t, res.JournalExport)
			require.Equal(t, "worker exit 137\n", string(res.Outputs["worker.master"]))
			assert.Contains(t, log, "source: auto reads /dev/kmsg: journald's socket /run/systemd/journal/socket is not there, and no systemd-journald process is visible")

			got := killsByContainer(log)
			assert.Equal(t, map[string][]string{
				workerPod + "/" + worker: {"dd"},
				groupPod + "/" + group:   {"dd", "sh", "sleep", "sleep"},
			}, got, "each killed process once, on its pod and container")
			if t.Failed() {
				t.Logf("collector log:\n%s", log[max(0, len(log)-4000):])
			}
		})
	}
}

// staticCollectorBinary is bin/otelcol-oomkill-nocgo, the distribution
// built with CGO_ENABLED=0 (make build-nocgo).
func staticCollectorBinary(t *testing.T) string {
	t.Helper()
	p := testutil.RepoPath(t, "bin/otelcol-oomkill-nocgo")
	if _, err := os.Stat(p); err != nil {
		testutil.SkipOrFail(t, p+" is missing: run `make build-nocgo` (make kernel-lab does)")
	}
	return p
}

var (
	podAttr  = regexp.MustCompile(`k8s\.pod\.uid: Str\(([0-9a-f-]{36})\)`)
	exeAttr  = regexp.MustCompile(`process\.executable\.name: Str\(([^)]*)\)`)
	ctrAttr  = regexp.MustCompile(`container\.id: Str\(([0-9a-f]{64})\)`)
	recStart = "LogRecord #"
)

// killsByContainer reads the debug exporter's detailed output: the process
// names of the kill records of each pod/container, sorted.
func killsByContainer(log string) map[string][]string {
	out := map[string][]string{}
	for _, block := range strings.Split(log, "ResourceLog #")[1:] {
		pod, ctr := podAttr.FindStringSubmatch(block), ctrAttr.FindStringSubmatch(block)
		if pod == nil || ctr == nil {
			continue
		}
		k := pod[1] + "/" + ctr[1]
		for _, rec := range strings.Split(block, recStart)[1:] {
			if m := exeAttr.FindStringSubmatch(rec); m != nil {
				out[k] = append(out[k], m[1])
			}
		}
		sort.Strings(out[k])
	}
	return out
}
