//go:build sidebyside

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/realoom"
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
	bin, err := filepath.Abs(repo("bin/otelcol-oomkill"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		realoom.SkipOrFail(t, bin+" is missing: run `make build`")
	}
	cg := realoom.NewCgroups(t, "memory", "pids")
	var victim *realoom.Cgroup
	for p := 0; p < pods; p++ {
		pod := cg.Path("/kubepods/burstable/pod" + realoom.RandomPodUID())
		for c := 0; c < perPod; c++ {
			g := cg.Make(t, pod+"/"+realoom.RandomHex(32), 64<<20)
			if victim == nil {
				victim = g
			}
		}
	}
	t.Logf("%d pods, %d container cgroups under %s", pods, pods*perPod, cg.Prefix)

	run := func(name string, witness bool) *proc {
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
`, t.TempDir(), witness, freePort(t))), 0o600); err != nil {
			t.Fatal(err)
		}
		return startProc(t, name, nil, bin, "--config", cfg)
	}
	with, without := run("witness", true), run("no-witness", false)
	time.Sleep(15 * time.Second) // started, first reading taken
	cpu0 := map[*proc]time.Duration{with: treeCPU(with.pid()), without: treeCPU(without.pid())}
	kills0 := realoom.NodeOOMKills(t)
	time.Sleep(idle)
	var report string
	if n := realoom.NodeOOMKills(t) - kills0; n > 0 {
		// Kills elsewhere on the machine (a test not holding the kill lock)
		// make the witness read every cgroup: not an idle node.
		report += fmt.Sprintf("(%d OOM kills happened on the machine meanwhile: not an idle measurement)\n", n)
	}
	for _, p := range []*proc{with, without} {
		used := treeCPU(p.pid()) - cpu0[p]
		report += fmt.Sprintf("| %s | %.3f %% of a core | %s | %s |\n", p.name, 100*used.Seconds()/idle.Seconds(),
			mib(treeStatus(p.pid(), "VmRSS:")), mib(treeStatus(p.pid(), "RssAnon:")))
	}
	// One kill: the witness reads /proc/vmstat, sees it rose, walks the
	// tree and reads every cgroup's memory.oom_control.
	before := treeCPU(with.pid())
	victim.KillOnly(t, "victim")
	time.Sleep(15 * time.Second) // the reading, the grace, the declaration
	report += fmt.Sprintf("\nCPU of the witnessing collector over the 15 s after one kill (one full reading of %d cgroups, then the kill declared): %v\n",
		pods*(perPod+1), treeCPU(with.pid())-before)
	t.Logf("idle over %v, %d pods (%d cgroups):\n| collector | CPU | RSS | anonymous |\n|---|---|---|---|\n%s", idle, pods, pods*(perPod+1), report)
	if out != "" {
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			t.Error(err)
		}
	}
}
