//go:build sidebyside

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/bench/busyjournal"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// boundedCase is one journal of the bounded-state benchmark.
type boundedCase struct {
	name                    string
	kernelEntries           int
	kills, containers       int
	maxSeries               int
	steadyFor, refreshEvery time.Duration // idle measurement after the catch-up
}

// TestBoundedState is BENCHMARKS.md's "Bounded state": catch-up time, peak
// and idle RSS and checkpoint size of the built collector (defaults but
// for max_series where said) on journals whose kills are spread over many
// containers, against the same-size journal with 500 kills, in one run.
// Run it with `make bench-bounded`.
func TestBoundedState(t *testing.T) {
	bin := testutil.CollectorBinary(t)
	cases := []boundedCase{
		{name: "200k kernel entries, 500 kills in 500 containers", kernelEntries: 200_000, kills: 500, containers: 500, maxSeries: 1000},
		{name: "200k kernel entries, 20,000 kills in 20,000 containers", kernelEntries: 200_000, kills: 20_000, containers: 20_000, maxSeries: 1000},
		{name: "400k kernel entries, 100,000 kills over 50,000 containers", kernelEntries: 400_000, kills: 100_000, containers: 50_000, maxSeries: 1000},
		{
			name: "10,000 live series (max_series 10000), steady state", kernelEntries: 60_000, kills: 10_000, containers: 10_000, maxSeries: 10_000,
			steadyFor: 60 * time.Second, refreshEvery: 10 * time.Second,
		},
	}
	// BENCH_CASES=0,1 runs only those cases (and BENCH_SKIP_1M=1 skips the 1M-entry run).
	if sel := os.Getenv("BENCH_CASES"); sel != "" {
		var picked []boundedCase
		for _, f := range strings.Split(sel, ",") {
			if i, err := strconv.Atoi(f); err == nil && i >= 0 && i < len(cases) {
				picked = append(picked, cases[i])
			}
		}
		cases = picked
	}
	var res results
	res.addf("| journal | catch-up wall | CPU | peak RSS | idle RSS | checkpoint on disk | kills counted | series exported |\n|---|---|---|---|---|---|---|---|\n")
	var base time.Duration
	for i, c := range cases {
		dir := filepath.Join(t.TempDir(), "journal")
		spec := busyjournal.Spec{
			Entries: 2 * c.kernelEntries, Start: time.Now().Add(-2 * time.Hour), End: time.Now().Add(-time.Hour),
			Reports: syntheticReports(c.kills, c.containers), KernelPerKill: c.kernelEntries / c.kills,
		}
		// One report per kill: the reports are replayed in order, each once.
		wrote, err := busyjournal.WriteFiles(dir, spec)
		if err != nil {
			t.Fatal(err)
		}
		state := t.TempDir()
		exp, self := testutil.FreePort(t), testutil.FreePort(t)
		refresh := c.refreshEvery
		if refresh == 0 {
			refresh = time.Minute
		}
		p := testutil.StartProcess(t, "otelcol-oomkill", bin, []string{"--config", "configs/oomkill-bounded.yaml"}, testutil.ProcessOptions{Env: []string{
			"STATE_DIR=" + state, "JOURNAL_DIR=" + dir, fmt.Sprintf("EXPORTER_PORT=%d", exp), fmt.Sprintf("METRICS_PORT=%d", self),
			fmt.Sprintf("MAX_SERIES=%d", c.maxSeries), "REFRESH=" + refresh.String(),
		}})
		in := &instance{Process: p, kills: counter{url: fmt.Sprintf("http://127.0.0.1:%d/metrics", exp), metric: "container_oom_kill_count_total"}}
		n, at := waitKills(t, in, wrote.Kills, stallTimeout)
		wall, cpu, peak := at.Sub(p.Started), treeCPU(p.Pid()), treeStatus(p.Pid(), "VmHWM:")
		series := countSeries(t, in.kills.url)
		idleWait := 15 * time.Second
		time.Sleep(idleWait) // the receiver reopens the journal on reaching its end
		idle := treeStatus(p.Pid(), "VmRSS:")
		steady := ""
		if c.steadyFor > 0 {
			before := treeCPU(p.Pid())
			time.Sleep(c.steadyFor)
			per := (treeCPU(p.Pid()) - before) / (c.steadyFor / c.refreshEvery)
			steady = fmt.Sprintf("; steady state: %v CPU per %v refresh of %d series (%.2f%% of a core), RSS %s",
				per.Round(time.Millisecond), c.refreshEvery, series, 100*float64(per)/float64(c.refreshEvery), mib(treeStatus(p.Pid(), "VmRSS:")))
		}
		p.Stop()
		if i == 0 {
			base = wall
		}
		ratio := ""
		if i > 0 && i < 3 && base > 0 {
			ratio = fmt.Sprintf(" (%.2fx the 500-kill journal)", float64(wall)/float64(base))
		}
		res.addf("| %s (%d entries, %d kills) | %s%s | %s | %s | %s | %s | %d | %d%s |\n", c.name, wrote.Entries, wrote.Kills,
			ms(wall), ratio, ms(cpu), mib(peak), mib(idle), kib(dirSize(t, state)), n, series, steady)
		t.Logf("%s: %d of %d kills in %v, peak %s, idle %s, %d series%s", c.name, n, wrote.Kills, wall, mib(peak), mib(idle), series, steady)
		if n != wrote.Kills {
			t.Errorf("%s: counted %d of %d kills", c.name, n, wrote.Kills)
		}
	}
	// The 1M-entry journal of the side-by-side run, ours from process start
	// against journalctl.
	if os.Getenv("BENCH_SKIP_1M") != "" {
		res.write(t)
		return
	}
	dir := filepath.Join(t.TempDir(), "journal")
	reports, err := busyjournal.LoadReports(testutil.RepoPath(t, "testdata/kernel/captured"))
	if err != nil {
		t.Fatal(err)
	}
	wrote, err := busyjournal.WriteFiles(dir, busyjournal.Spec{Entries: entries, Start: time.Now().Add(-2 * time.Hour), End: time.Now().Add(-time.Hour), Reports: reports, KernelPerKill: 1000})
	if err != nil {
		t.Fatal(err)
	}
	jc := journalctlCatchUp(t, dir)
	ours := measureCatchUp(t, oursTool(bin, ""), dir, wrote.Kills)
	res.addf("\n1M-entry side-by-side journal (%d kills), from process start: journalctl %s, otelcol-oomkill %s (%.2fx), peak RSS %s\n",
		wrote.Kills, ms(jc.wall), ms(ours.wall), float64(ours.wall)/float64(jc.wall), mib(ours.peakRSS))
	res.write(t)
}

// syntheticReports: kills reports spread round-robin over containers, each
// a 6.x memcg report in a Burstable pod of its own.
func syntheticReports(kills, containers int) []busyjournal.Report {
	out := make([]busyjournal.Report, kills)
	for i := range out {
		c := i % containers
		memcg := fmt.Sprintf("/kubepods/burstable/pod%08x-0000-4000-8000-%012x/%064x", c, c, c+1)
		pid := 1000 + i
		out[i] = busyjournal.Report{Name: fmt.Sprint(i), Kills: 1, Lines: []string{
			"php-fpm invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
			fmt.Sprintf("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=%s,task_memcg=%s,task=php-fpm,pid=%d,uid=33", memcg, memcg, pid),
			fmt.Sprintf("Memory cgroup out of memory: Killed process %d (php-fpm) total-vm:221368kB, anon-rss:65024kB, file-rss:1628kB, shmem-rss:0kB, UID:33 pgtables:184kB oom_score_adj:0", pid),
		}}
	}
	return out
}

func kib(b int64) string { return fmt.Sprintf("%.0f KiB", float64(b)/1024) }

// countSeries counts the container_oom_kill_count_total series the
// Prometheus exporter serves.
func countSeries(t *testing.T, url string) int {
	t.Helper()
	kills, err := testutil.Scrape(url, "container_oom_kill_count_total")
	if err != nil {
		t.Fatal(err)
	}
	return len(kills)
}
