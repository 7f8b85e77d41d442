//go:build sidebyside

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// TestWitnessIdle measures what the kernel-counter witness costs on a node
// without OOM kills: 500 pods of 3 containers each (pause and two), in real
// kubelet-shaped cgroups (cgroup v1 memory and pids), watched by two built
// collectors side by side, one with the witness and one without; CPU over
// BENCH_IDLE_SECONDS, resident memory at the end. Then one real kill, which
// makes the witness walk and read every cgroup: the CPU that took.
// make bench-witness; results in BENCHMARKS.md ("The kernel-counter witness").
func TestWitnessIdle(t *testing.T) {
	const pods, perPod = 500, 3
	idle := time.Duration(envInt("BENCH_IDLE_SECONDS", 300)) * time.Second
	bin := testutil.CollectorBinary(t)
	cg := testutil.NewCgroups(t, "memory", "pids")
	var victim *testutil.Cgroup
	for p := 0; p < pods; p++ {
		pod := cg.Path("/kubepods/burstable/pod" + testutil.RandomPodUID())
		for c := 0; c < perPod; c++ {
			g := cg.Make(t, pod+"/"+testutil.RandomHex(32), 64<<20)
			if victim == nil {
				victim = g
			}
		}
	}
	t.Logf("%d pods, %d container cgroups under %s", pods, pods*perPod, cg.Prefix)

	run := func(name string, witness bool) *testutil.Process {
		cfg := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
receivers:
  oomkill:
    journal:
      directory: %s
    witness:
      enabled: %v
exporters:
  prometheus:
    endpoint: 127.0.0.1:%d
    resource_to_telemetry_conversion:
      enabled: true
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [oomkill]
      exporters: [prometheus]
`, t.TempDir(), witness, testutil.FreePort(t))), 0o600); err != nil {
			t.Fatal(err)
		}
		return testutil.StartProcess(t, name, bin, []string{"--config", cfg}, testutil.ProcessOptions{})
	}
	with, without := run("witness", true), run("no-witness", false)
	time.Sleep(15 * time.Second) // started, first reading taken
	cpu0 := map[*testutil.Process]time.Duration{with: treeCPU(with.Pid()), without: treeCPU(without.Pid())}
	kills0 := testutil.NodeOOMKills(t)
	time.Sleep(idle)
	var report string
	if n := testutil.NodeOOMKills(t) - kills0; n > 0 {
		// Kills elsewhere on the machine (a test not holding the kill lock)
		// make the witness read every cgroup: not an idle node.
		report += fmt.Sprintf("(%d OOM kills happened on the machine meanwhile: not an idle measurement)\n", n)
	}
	for _, p := range []*testutil.Process{with, without} {
		used := treeCPU(p.Pid()) - cpu0[p]
		report += fmt.Sprintf("| %s | %.3f %% of a core | %s | %s |\n", p.Name, 100*used.Seconds()/idle.Seconds(),
			mib(treeStatus(p.Pid(), "VmRSS:")), mib(treeStatus(p.Pid(), "RssAnon:")))
	}
	// One kill: the witness reads /proc/vmstat, sees it rose, walks the
	// tree and reads every cgroup's memory.oom_control.
	before := treeCPU(with.Pid())
	victim.KillOnly(t, "victim")
	time.Sleep(15 * time.Second) // the reading, the grace, the declaration
	report += fmt.Sprintf("\nCPU of the witnessing collector over the 15 s after one kill (one full reading of %d cgroups, then the kill declared): %v\n",
		pods*(perPod+1), treeCPU(with.Pid())-before)
	t.Logf("idle over %v, %d pods (%d cgroups):\n| collector | CPU | RSS | anonymous |\n|---|---|---|---|\n%s", idle, pods, pods*(perPod+1), report)
	if out != "" {
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			t.Error(err)
		}
	}
}
