package kernellab

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/kernellab"
)

// TestContainerOutcomeLiveInGuest runs the collector live inside a cgroup v2
// guest (Debian's 6.12 kernel), next to the cgroups, with the shipped
// outcome settings: after each real kill it reads the victim's
// cgroup.events.
//   - memory.oom.group=0: a worker dies, its master lives on: survived;
//   - memory.oom.group=1: the kernel kills every member: exited, each one.
func TestContainerOutcomeLiveInGuest(t *testing.T) {
	requireLab(t)
	files := collectorInGuest(t, "end")
	survivor, group := strings.Repeat("5a", 32), strings.Repeat("6b", 32)
	res, err := kernellab.Run(context.Background(), kernellab.Config{
		Kernel:   kernellab.Debian612,
		Files:    files,
		MemoryMB: guestMemoryForCollector,
		Timeout:  5 * time.Minute,
		Script: `set -e
. /lab/lib.sh
otelcol-oomkill --config /etc/otelcol-oomkill.yaml > $OUT/collector.log 2>&1 &
col=$!
i=0
until grep -q 'Everything is ready' $OUT/collector.log; do
	i=$((i + 1)); [ $i -lt 1200 ] || { echo "collector not ready after 120 s" >&2; exit 1; }
	sleep 0.1
done
# memory.oom.group=0: the worker is killed, the master lives on (until the end).
a=$(kl_mkcg "$(kl_cgpath systemd burstable 4a0c6c57-6b0e-4c8e-9a51-0d1e2f3a4baa ` + survivor + `)")
echo 16M > $a/memory.max
echo 0 > $a/memory.oom.group
sh -c 'echo $$ > "$1/cgroup.procs"; dd if=/dev/zero of=/dev/null bs=256M count=1 2>/dev/null; echo "worker exit $?"; exec sleep 600' master $a > $OUT/survivor.master &
# memory.oom.group=1: master, two sleeping workers and the hog all die.
b=$(kl_mkcg "$(kl_cgpath cgroupfs burstable 4a0c6c57-6b0e-4c8e-9a51-0d1e2f3a4bbb ` + group + `)")
echo 16M > $b/memory.max
echo 1 > $b/memory.oom.group
sh -c 'echo $$ > "$1/cgroup.procs"; sleep 600 & sleep 600 & dd if=/dev/zero of=/dev/null bs=256M count=1 2>/dev/null; echo "unreachable"' master $b > $OUT/group.master 2>&1 || true
kl_wait_empty $b
i=0
until [ "$(grep -c 'oom.container.outcome: Str' $OUT/collector.log)" -ge 5 ]; do
	i=$((i + 1)); [ $i -lt 1200 ] || { echo "fewer than 5 oom_kill records after 120 s" >&2; exit 1; }
	sleep 0.1
done
grep populated $a/cgroup.events > $OUT/survivor.events
kill $col
wait $col || true
`,
	})
	var lerr *kernellab.Error
	if errors.As(err, &lerr) {
		t.Fatal(lerr)
	}
	require.NoError(t, err)
	t.Logf("guest ran %s", res.Boot.Round(100*time.Millisecond))
	require.Equal(t, "worker exit 137\n", string(res.Outputs["survivor.master"]), "the worker was OOM-killed, its master went on")
	require.Equal(t, "populated 1\n", string(res.Outputs["survivor.events"]), "the master was still in its cgroup at the end")

	outcomes := outcomesByContainer(string(res.Outputs["collector.log"]))
	assert.Equal(t, []string{"survived"}, outcomes[survivor], "the worker kill of a container that lived on")
	assert.Equal(t, []string{"exited", "exited", "exited", "exited"}, outcomes[group], "every member of the group kill: master, two workers, the hog")
	if t.Failed() {
		t.Logf("collector log:\n%s", res.Outputs["collector.log"])
	}
}

var (
	containerAttr = regexp.MustCompile(`container\.id: Str\(([0-9a-f]{64})\)`)
	outcomeAttr   = regexp.MustCompile(`oom\.container\.outcome: Str\((\w+)\)`)
)

// outcomesByContainer reads the debug exporter's detailed output: each
// "ResourceLog #" block names its container, then its records' outcomes.
func outcomesByContainer(log string) map[string][]string {
	out := map[string][]string{}
	for _, block := range strings.Split(log, "ResourceLog #")[1:] {
		c := containerAttr.FindStringSubmatch(block)
		if c == nil {
			continue
		}
		for _, m := range outcomeAttr.FindAllStringSubmatch(block, -1) {
			out[c[1]] = append(out[c[1]], m[1])
		}
	}
	return out
}
