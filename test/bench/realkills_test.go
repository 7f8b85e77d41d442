//go:build sidebyside

package bench

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
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

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// Real kills for the follow latency with the shipped outcome settings:
// the kernel kills a process in a kubelet-shaped cgroup of this machine
// (memory, pids and the unified hierarchy, as runc makes them on a
// cgroup v1 host), a real systemd-journald records it, the built collector
// follows the journal, and the harness polls the Prometheus exporter for
// the kill's container with the outcome it expects. Latency runs from
// journald's receipt of the victim line (its __REALTIME_TIMESTAMP) to the
// poll that saw the kill.
var (
	realKills     = envInt("BENCH_REAL_KILLS", 20)
	realKillPause = 300 * time.Millisecond
	cgroupRoot    = testutil.CgroupV1Root
	hierarchies   = []string{"memory", "pids", "unified"}
)

// killCase is one kind of kill and the outcome it must get.
type killCase struct {
	name    string
	outcome string
	// kill makes one kill and returns the victim's pid and the ID of the
	// container it was in.
	kill func(t *testing.T) (pid int, containerID string)
	// stop ends the case's master; nil: every kill is a container of its
	// own.
	stop func()
}

type realKillRow struct {
	name, outcome string
	lat           []time.Duration
	seen          int
	// floor: when `journalctl --follow` printed each victim line, the
	// same way from journald's receipt: what any journal reader waits.
	floor []time.Duration
}

func TestRealKillFollow(t *testing.T) {
	report := &results{}
	defer report.write(t)
	report.addRealKills(t, testutil.CollectorBinary(t))
}

// addRealKills measures the cases with the collector as shipped and with
// the victims' processes out of its sight (a pod without the host's /proc),
// and adds the table.
func (r *results) addRealKills(t *testing.T, bin string) {
	if os.Geteuid() != 0 {
		t.Fatal("real kills need root (cgroups, journald)")
	}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "memory", "memory.oom_control")); err != nil {
		t.Skipf("the real-kill follow needs the memory controller on cgroup v1 at %s/memory (this machine: %v); cgroup v2 kills are measured in the kernel lab", cgroupRoot, err)
	}
	testutil.Journald(t)
	r.addf("\n## Follow latency of real kills\n\nThe kernel OOM-kills a process in a kubelet-shaped cgroup of this machine (memory, pids and unified hierarchies, as runc makes them), a real systemd-journald records it, the collector follows the journal with the shipped outcome settings. From journald's receipt of the victim line to the kill at the exporter with its outcome, polled every %v; %d kills per case, one at a time.\n\n", pollEvery, realKills)
	r.addf("| case | outcome | victims' processes | p50 | p99 | max | kills seen | `journalctl --follow` p50 / p99 |\n|---|---|---|---|---|---|---|---|\n")
	for _, procRoot := range []string{"/proc", ""} {
		sight := "seen (`outcome.proc_root: /proc`)"
		if procRoot == "" {
			sight = "not seen (`outcome.proc_root: \"\"`)"
		}
		for _, row := range measureRealKills(t, bin, procRoot) {
			r.addf("| %s | %s | %s | %s | %s | %s | %d / %d | %s / %s |\n", row.name, row.outcome, sight,
				ms(percentile(row.lat, 50)), ms(percentile(row.lat, 99)), ms(percentile(row.lat, 100)), row.seen, realKills,
				ms(percentile(row.floor, 50)), ms(percentile(row.floor, 99)))
		}
	}
}

func measureRealKills(t *testing.T, bin, procRoot string) []realKillRow {
	exp := testutil.FreePort(t)
	in := testutil.StartProcess(t, "otelcol-oomkill-live", bin, []string{"--config", testutil.RepoPath(t, "test/bench/configs/oomkill-live.yaml")},
		testutil.ProcessOptions{Env: []string{"STATE_DIR=" + t.TempDir(), fmt.Sprintf("EXPORTER_PORT=%d", exp), "PROC_ROOT=" + procRoot}})
	defer in.Stop()
	floor := followJournal(t)
	time.Sleep(3 * time.Second) // started and at the journal's end

	top := testutil.NewCgroups(t, hierarchies...)
	cases := []killCase{
		workerCase(t, top, "a worker under a living master", false),
		workerCase(t, top, "a worker under a master that forks a new one at once", true),
		onlyCase(top),
	}
	var rows []realKillRow
	for _, c := range cases {
		row := realKillRow{name: c.name, outcome: c.outcome}
		seenAt := map[int]time.Time{}
		for i := 0; i < realKills; i++ {
			pid, id := c.kill(t)
			ctr := counter{
				url: fmt.Sprintf("http://127.0.0.1:%d/metrics", exp), metric: "container_oom_kill_count_total",
				labels: map[string]string{"container_id": id, "oom_container_outcome": c.outcome},
			}
			want := float64(i + 1) // the master's container: every kill so far
			if c.stop == nil {
				want = 1 // a container per kill
			}
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				if n, err := ctr.read(); err == nil && n >= want {
					seenAt[pid] = time.Now()
					break
				}
				time.Sleep(pollEvery)
			}
			if _, ok := seenAt[pid]; !ok {
				t.Errorf("%s: kill of pid %d in %s not seen as %s within 10 s; collector log:\n%s", c.name, pid, id, c.outcome, in.LogTail(4000))
			}
			time.Sleep(realKillPause)
		}
		if c.stop != nil {
			c.stop()
		}
		received := victimReceipts(t)
		for pid, at := range seenAt {
			rt, ok := received[pid]
			if !ok {
				t.Errorf("%s: the journal has no victim line of pid %d", c.name, pid)
				continue
			}
			row.lat = append(row.lat, at.Sub(rt))
			row.seen++
			if ft, ok := floor.at(pid); ok {
				row.floor = append(row.floor, ft.Sub(rt))
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// workerCase: a master in the container forks a worker that outgrows the
// limit, once per kill, and lives on; with respawn it also forks an idle
// worker right after each kill, as php-fpm does.
func workerCase(t *testing.T, top *testutil.Cgroups, name string, respawn bool) killCase {
	path := kubeletCgroup(t, top)
	script := joinScript(path) + `idle=; while read -r _; do ` + hogScript() + ` & wait $!; echo "status=$?"; `
	if respawn {
		script += `[ -n "$idle" ] && kill $idle; sleep 1000 & idle=$!; `
	}
	script += `done; [ -n "$idle" ] && kill $idle; exit 0`
	cmd := exec.Command("bash", "-c", script)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	return killCase{
		name: name, outcome: "survived",
		kill: func(t *testing.T) (int, string) {
			if _, err := io.WriteString(stdin, "kill\n"); err != nil {
				t.Fatal(err)
			}
			if !sc.Scan() {
				t.Fatal("the worker printed no pid")
			}
			pid, err := strconv.Atoi(sc.Text())
			if err != nil {
				t.Fatal(err)
			}
			if !sc.Scan() || sc.Text() != "status=137" {
				t.Fatalf("the worker was not killed: %q", sc.Text())
			}
			return pid, filepath.Base(path)
		},
		stop: func() { _ = stdin.Close(); _ = cmd.Wait() },
	}
}

// onlyCase: the container's only process outgrows the limit; every kill
// is a container of its own, as a restarted container is.
func onlyCase(top *testutil.Cgroups) killCase {
	return killCase{
		name: "a container's only process", outcome: "exited",
		kill: func(t *testing.T) (int, string) {
			path := kubeletCgroup(t, top)
			out, err := exec.Command("bash", "-c", joinScript(path)+"exec "+hogScript()).Output()
			var ee *exec.ExitError
			if !errorsAs(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("the process was not killed: %v", err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
			if err != nil {
				t.Fatal(err)
			}
			return pid, filepath.Base(path)
		},
	}
}

func errorsAs(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError) //nolint:errorlint // exec returns it unwrapped
	*ee = e
	return ok
}

// kubeletCgroup makes <prefix>/kubepods/burstable/pod<uid>/<64-hex id>
// with a 64 MiB limit in every hierarchy.
func kubeletCgroup(t *testing.T, top *testutil.Cgroups) string {
	uid := randomHex(t, 16)
	rel := fmt.Sprintf("/kubepods/burstable/pod%s-%s-%s-%s-%s/%s", uid[:8], uid[8:12], uid[12:16], uid[16:20], uid[20:32], randomHex(t, 32))
	return top.Make(t, top.Path(rel), 64<<20).Path
}

func joinScript(path string) string {
	var b strings.Builder
	for _, h := range hierarchies {
		fmt.Fprintf(&b, "echo $$ > %s/cgroup.procs; ", filepath.Join(cgroupRoot, h, path))
	}
	return b.String()
}

func hogScript() string {
	return `python3 -c 'import os; print(os.getpid(), flush=True); b = bytearray(200 << 20)'`
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// victimReceipts maps each victim pid in the kernel's journal of the last
// ten minutes to journald's receipt of its victim line.
func victimReceipts(t *testing.T) map[int]time.Time {
	out, err := exec.Command("journalctl", "-k", "-o", "json", "--no-pager", "--since", "-10min", "--output-fields", "MESSAGE,__REALTIME_TIMESTAMP").Output()
	if err != nil {
		t.Fatalf("journalctl: %v", err)
	}
	got := map[int]time.Time{}
	for _, line := range strings.Split(string(out), "\n") {
		var e struct {
			Message  string `json:"MESSAGE"`
			Realtime string `json:"__REALTIME_TIMESTAMP"`
		}
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		m := victimPID.FindStringSubmatch(e.Message)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		us, err := strconv.ParseInt(e.Realtime, 10, 64)
		if err == nil {
			got[pid] = time.UnixMicro(us)
		}
	}
	return got
}

var victimPID = regexp.MustCompile(`Killed process ([0-9]+) \(`)

// journalFollower records when `journalctl --follow` printed each victim
// line: the floor for any reader of the journal.
type journalFollower struct {
	mu   sync.Mutex
	seen map[int]time.Time
}

func followJournal(t *testing.T) *journalFollower {
	f := &journalFollower{seen: map[int]time.Time{}}
	cmd := exec.Command("journalctl", "-k", "--follow", "--lines=0", "-o", "cat", "--no-pager")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := victimPID.FindStringSubmatch(sc.Text()); m != nil {
				pid, _ := strconv.Atoi(m[1])
				f.mu.Lock()
				f.seen[pid] = time.Now()
				f.mu.Unlock()
			}
		}
	}()
	return f
}

func (f *journalFollower) at(pid int) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.seen[pid]
	return t, ok
}
