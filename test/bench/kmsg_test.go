//go:build sidebyside

package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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

// TestKmsgSideBySide is BENCHMARKS.md's "/dev/kmsg": the same real OOM kills
// read three ways at once on this machine — otelcol-oomkill from
// /dev/kmsg (source: kmsg), otelcol-oomkill from the journal a real
// systemd-journald writes (source: journal), and node-problem-detector's
// kmsg monitor in its default configuration (NPD's own
// config/kernel-monitor.json, unchanged). Root; it makes OOM kills in
// memory cgroups under a prefix of its own and runs its own journald, so
// no journald may be running (make bench-kmsg, under the heavy lock).
// Results: BENCH_OUT (markdown).
func TestKmsgSideBySide(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the kmsg benchmark runs as root (memory cgroups, /dev/kmsg, journald)")
	}
	ours := testutil.CollectorBinary(t)
	npd := buildScript(t, "npd/build.sh")
	npdConfig := npdStockConfig(t)
	report := &results{}
	defer report.write(t)

	cg := newBenchCgroups(t)
	ctrs := []string{cg.container(), cg.container()}

	// Only this run's kills in the ring buffer: earlier ones are pushed out.
	size := floodRingBuffer(t)
	startJournald(t)

	catchUpKills := envInt("BENCH_KMSG_CATCHUP_KILLS", 10)
	for i := 0; i < catchUpKills; i++ {
		hog(t, ctrs[i%len(ctrs)], 1)
	}
	journalKills := countJournalKills(t)
	report.addf("Kernel %s, a %d KiB ring buffer, cgroup %s; journald %s.\n\n", kernelRelease(t), size>>10, cg.version(), journaldVersion(t))

	tools := []kmsgTool{
		{name: "otelcol-oomkill, source: kmsg", want: catchUpKills, start: func(t *testing.T, startAt string) *instance { return oursOn(t, ours, "kmsg", startAt) }},
		{name: "otelcol-oomkill, source: journal (journald)", want: journalKills, start: func(t *testing.T, startAt string) *instance { return oursOn(t, ours, "journal", startAt) }},
		{name: "node-problem-detector v0.8.20, kmsg monitor (default config)", want: catchUpKills, start: func(t *testing.T, _ string) *instance { return npdOnKmsg(t, npd, npdConfig) }},
	}

	// 1. Catch-up.
	report.addf("## Catch-up\n\n%d kills in the ring buffer (and in the journal: %d, with what journald read at its start), read from the beginning by each tool in turn: from process start until every kill is counted; median of %d runs, each run's numbers in brackets. `dmesg -r` reads the whole buffer: the floor for /dev/kmsg.\n\n", catchUpKills, journalKills, catchUpRuns)
	report.addf("| tool | wall | CPU | peak RSS | kills found |\n|---|---|---|---|---|\n")
	var floor []catchUp
	for i := 0; i < catchUpRuns; i++ {
		floor = append(floor, dmesgCatchUp(t))
	}
	floorWall := seconds(median(floor, func(c catchUp) float64 { return c.wall.Seconds() }))
	report.kmsgCatchUpRow("dmesg -r (util-linux)", floor, catchUpKills, floorWall)
	for _, tl := range tools {
		var runs []catchUp
		for i := 0; i < catchUpRuns; i++ {
			in := tl.start(t, "beginning")
			n, at := waitKills(t, in, tl.want, stallTimeout)
			runs = append(runs, catchUp{wall: at.Sub(in.Started), cpu: treeCPU(in.Pid()), peakRSS: treeStatus(in.Pid(), "VmHWM:"), kills: n})
			in.Stop()
		}
		report.kmsgCatchUpRow(tl.name, runs, tl.want, floorWall)
	}

	// 2. Follow: the three run at once; each kill's victim record is timed
	// when it becomes readable from /dev/kmsg, and again when each tool
	// counts it.
	followKills := envInt("BENCH_KMSG_FOLLOW_KILLS", 30)
	report.addf("\n## Follow latency\n\nThe three run at once while %d kills happen, about one every 0.7 s (the kernel prints at most 10 full OOM reports per 5 s). Latency runs from the victim line becoming readable in /dev/kmsg (the harness reads the device itself) to the kill counted at the tool's exporter, polled every %v.\n\n", followKills, pollEvery)
	report.addf("| tool | p50 | p99 | max | kills seen |\n|---|---|---|---|---|\n")
	watch := watchVictimLines(t)
	var running []*instance
	var base []int
	for _, tl := range tools {
		in := tl.start(t, "end")
		running = append(running, in)
		// NPD counts what its 5-minute lookback holds at start: count from there.
		n, _ := waitKills(t, in, 0, stallTimeout)
		time.Sleep(2 * time.Second)
		if v, err := in.kills.read(); err == nil {
			n = int(v)
		}
		base = append(base, n)
	}
	seen := make([][]time.Time, len(running))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, in := range running {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if v, err := in.kills.read(); err == nil {
					now := time.Now()
					for len(seen[i]) < int(v)-base[i] && len(seen[i]) < followKills {
						seen[i] = append(seen[i], now)
					}
				}
				time.Sleep(pollEvery)
			}
		}()
	}
	for i := 0; i < followKills; i++ {
		hog(t, ctrs[i%len(ctrs)], 1)
		time.Sleep(time.Duration(600+rand.IntN(200)) * time.Millisecond)
	}
	deadline := time.Now().Add(stallTimeout)
	for time.Now().Before(deadline) {
		done := true
		for i := range running {
			done = done && len(seen[i]) >= followKills
		}
		if done {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	arrived := watch.stop()
	if len(arrived) < followKills {
		t.Fatalf("the harness saw %d victim lines in /dev/kmsg, want %d", len(arrived), followKills)
	}
	for i, tl := range tools {
		var lat []time.Duration
		for k := 0; k < len(seen[i]); k++ {
			lat = append(lat, seen[i][k].Sub(arrived[k]))
		}
		report.addf("| %s | %s | %s | %s | %d / %d |\n", tl.name, ms(percentile(lat, 50)), ms(percentile(lat, 99)), ms(percentile(lat, 100)), len(seen[i]), followKills)
		running[i].Stop()
	}
}

type kmsgTool struct {
	name  string
	want  int
	start func(t *testing.T, startAt string) *instance
}

// oursOn runs the built collector on source (kmsg or journal), from
// start_at, with a fresh checkpoint, outcome observation off (its 2 s
// hold is by design, not reading).
func oursOn(t *testing.T, bin, source, startAt string) *instance {
	exp, self := testutil.FreePort(t), testutil.FreePort(t)
	env := []string{
		"STATE_DIR=" + t.TempDir(), "SOURCE=" + source, "START_AT=" + startAt,
		fmt.Sprintf("EXPORTER_PORT=%d", exp), fmt.Sprintf("METRICS_PORT=%d", self),
	}
	return &instance{
		Process: testutil.StartProcess(t, "otelcol-oomkill-"+source, bin, []string{"--config", "configs/oomkill-kmsg.yaml"}, testutil.ProcessOptions{Env: env}),
		kills:   counter{url: fmt.Sprintf("http://127.0.0.1:%d/metrics", exp), metric: "container_oom_kill_count_total"},
		selfURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", self),
	}
}

func npdOnKmsg(t *testing.T, bin, cfg string) *instance {
	port := testutil.FreePort(t)
	p := testutil.StartProcess(t, "node-problem-detector", bin, []string{
		"--enable-k8s-exporter=false", "--prometheus-address=127.0.0.1",
		fmt.Sprintf("--prometheus-port=%d", port), "--port=0", "--config.system-log-monitor=" + cfg, "--hostname-override=" + nodeName,
	}, testutil.ProcessOptions{})
	return &instance{Process: p, kills: counter{url: fmt.Sprintf("http://127.0.0.1:%d/metrics", port), metric: "problem_counter", labels: map[string]string{"reason": "OOMKilling"}}}
}

// npdStockConfig is NPD's own config/kernel-monitor.json at the version
// built, from the module the build used (read where it is, not copied
// into this repository).
func npdStockConfig(t *testing.T) string {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/node-problem-detector")
	cmd.Dir = "npd"
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GONOSUMDB=k8s.io/node-problem-detector")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list k8s.io/node-problem-detector: %v", err)
	}
	p := filepath.Join(strings.TrimSpace(string(out)), "config", "kernel-monitor.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"plugin": "kmsg"`)) || !bytes.Contains(b, []byte(`"reason": "OOMKilling"`)) {
		t.Fatalf("%s is not NPD's kmsg kernel monitor with the OOMKilling rule", p)
	}
	return p
}

func (r *results) kmsgCatchUpRow(name string, runs []catchUp, want int, floor time.Duration) {
	wall := seconds(median(runs, func(c catchUp) float64 { return c.wall.Seconds() }))
	cpu := seconds(median(runs, func(c catchUp) float64 { return c.cpu.Seconds() }))
	rss := median(runs, func(c catchUp) float64 { return float64(c.peakRSS) })
	var each []string
	kills := want
	for _, c := range runs {
		each = append(each, fmt.Sprintf("%.3f", c.wall.Seconds()))
		kills = min(kills, c.kills)
	}
	r.addf("| %s | %.3f s (%.1f× dmesg) [%s] | %.3f s | %s | %d / %d |\n", name, wall.Seconds(), wall.Seconds()/floor.Seconds(), strings.Join(each, ", "), cpu.Seconds(), mib(int64(rss)), kills, want)
}

// dmesgPrefix is dmesg -r's start of a kernel line (facility 0: <0>..<7>).
var dmesgPrefix = regexp.MustCompile(`^<[0-7]>\[[ 0-9.]+\] `)

// dmesgCatchUp reads the whole ring buffer with util-linux dmesg.
func dmesgCatchUp(t *testing.T) catchUp {
	start := time.Now()
	cmd := exec.Command("dmesg", "-r")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dmesg: %v", err)
	}
	st := cmd.ProcessState
	kills := 0
	for _, l := range strings.Split(string(out), "\n") {
		// "<3>[  123.456789] Memory cgroup out of memory: Killed process ..."
		if m := dmesgPrefix.FindStringIndex(l); m != nil && victimLine.MatchString(l[m[1]:]) {
			kills++
		}
	}
	return catchUp{wall: time.Since(start), cpu: st.UserTime() + st.SystemTime(), peakRSS: st.SysUsage().(*syscall.Rusage).Maxrss * 1024, kills: kills}
}

// benchCgroups are kubelet-shaped memory cgroups under a prefix of the
// run's own, removed at the end.
type benchCgroups struct {
	t          *testing.T
	root, base string
	v2         bool
	made       []string
}

func newBenchCgroups(t *testing.T) *benchCgroups {
	c := &benchCgroups{t: t}
	switch {
	case fileExists("/sys/fs/cgroup/memory/memory.limit_in_bytes"):
		c.root = "/sys/fs/cgroup/memory"
	case fileExists("/sys/fs/cgroup/cgroup.controllers"):
		c.root, c.v2 = "/sys/fs/cgroup", true
	default:
		t.Fatal("no memory controller at /sys/fs/cgroup/memory or /sys/fs/cgroup")
	}
	c.base = fmt.Sprintf("oomkill-bench-%d", os.Getpid())
	t.Cleanup(func() {
		for i := len(c.made) - 1; i >= 0; i-- {
			for try := 0; try < 50 && os.Remove(c.made[i]) != nil && fileExists(c.made[i]); try++ {
				time.Sleep(100 * time.Millisecond)
			}
		}
	})
	return c
}

func (c *benchCgroups) version() string {
	if c.v2 {
		return "v2"
	}
	return "v1"
}

// container makes /<prefix>/kubepods/burstable/pod<uid>/<id> with a 64 MiB
// limit and returns its directory.
func (c *benchCgroups) container() string {
	uid := fmt.Sprintf("%08x-0000-4000-8000-%012x", rand.Uint32(), rand.Int64N(1<<48))
	id := fmt.Sprintf("%016x%016x%016x%016x", rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64())
	d := c.root
	for _, p := range []string{c.base, "kubepods", "burstable", "pod" + uid, id} {
		if c.v2 {
			_ = os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+memory"), 0o644)
		}
		d = filepath.Join(d, p)
		if !fileExists(d) {
			if err := os.Mkdir(d, 0o755); err != nil {
				c.t.Fatal(err)
			}
			c.made = append(c.made, d)
		}
	}
	file := "memory.limit_in_bytes"
	if c.v2 {
		file = "memory.max"
	}
	if err := os.WriteFile(filepath.Join(d, file), []byte(strconv.Itoa(64<<20)), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return d
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// hog makes the kernel OOM-kill n children of a parent that stays small,
// in the cgroup dir.
func hog(t *testing.T, dir string, n int) {
	script := `import os, sys
for i in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:
        b = bytearray(200 << 20)
        os._exit(0)
    os.waitpid(pid, 0)
`
	out, err := exec.Command("bash", "-c", `echo $$ > "$1/cgroup.procs" && exec python3 -c "$2" "$3"`, "hog", dir, script, strconv.Itoa(n)).CombinedOutput()
	if err != nil {
		t.Fatalf("hog: %v: %s", err, out)
	}
}

// floodRingBuffer writes twice the kernel's log buffer into /dev/kmsg (a
// fresh file every 10 lines: the kernel drops more per file and 5 s) and
// returns the buffer's size.
func floodRingBuffer(t *testing.T) int {
	size, _, errno := syscall.Syscall(syscall.SYS_SYSLOG, 10, 0, 0) // SYSLOG_ACTION_SIZE_BUFFER
	if errno != 0 {
		t.Fatal(errno)
	}
	line := []byte("otelcol-oomkill bench: pushing older records out of the ring buffer " + strings.Repeat("x", 900) + "\n")
	for written := 0; written < 2*int(size); {
		f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			if _, err := f.Write(line); err != nil {
				t.Fatal(err)
			}
			written += len(line)
		}
		_ = f.Close()
	}
	return int(size)
}

// startJournald starts a systemd-journald of the run's own (none may run)
// and waits until it has read the ring buffer; it is stopped, and the
// journal it wrote removed, at the end.
func startJournald(t *testing.T) {
	exes, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, exe := range exes {
		if target, err := os.Readlink(exe); err == nil && filepath.Base(target) == "systemd-journald" {
			t.Fatalf("a systemd-journald runs (%s): the benchmark needs its own, reading only this run's kernel log", exe)
		}
	}
	if fileExists("/run/log/journal") {
		t.Fatal("/run/log/journal exists: a journal from an earlier journald would be read too; remove it first")
	}
	madeSocketDir := !fileExists("/run/systemd/journal")
	if err := os.MkdirAll("/run/systemd/journal", 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/lib/systemd/systemd-journald")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		_ = os.RemoveAll("/run/log/journal")
		if madeSocketDir {
			_ = os.RemoveAll("/run/systemd/journal")
		}
	})
	marker := fmt.Sprintf("otelcol-oomkill bench marker %d", time.Now().UnixNano())
	if err := os.WriteFile("/dev/kmsg", []byte(marker+"\n"), 0); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		out, _ := exec.Command("journalctl", "-D", "/run/log/journal", "-q", "-o", "cat", "-n", "20", "--no-pager").Output()
		if bytes.Contains(out, []byte(marker)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("journald did not record the marker")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// countJournalKills counts the kernel's victim lines in journald's journal,
// once it holds the last kill.
func countJournalKills(t *testing.T) int {
	marker := fmt.Sprintf("otelcol-oomkill bench marker %d", time.Now().UnixNano())
	if err := os.WriteFile("/dev/kmsg", []byte(marker+"\n"), 0); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		out, err := exec.Command("journalctl", "-D", "/run/log/journal", "_TRANSPORT=kernel", "SYSLOG_IDENTIFIER=kernel", "-o", "cat", "--no-pager").Output()
		if err != nil {
			t.Fatal(err)
		}
		all, _ := exec.Command("journalctl", "-D", "/run/log/journal", "-o", "cat", "-n", "5", "--no-pager").Output()
		if bytes.Contains(all, []byte(marker)) {
			n := 0
			for _, l := range strings.Split(string(out), "\n") {
				if victimLine.MatchString(l) {
					n++
				}
			}
			return n
		}
	}
	t.Fatal("journald did not record the marker")
	return 0
}

// victimWatch reads /dev/kmsg as the tools do and notes when each of the
// kernel's victim lines became readable.
type victimWatch struct {
	f    *os.File
	mu   sync.Mutex
	at   []time.Time
	done chan struct{}
}

var kmsgVictim = regexp.MustCompile(`^0*[0-7],[0-9]+,[0-9]+,[^;]*;(Memory cgroup out of memory: |Out of memory: )?Killed process [0-9]+ \(`)

func watchVictimLines(t *testing.T) *victimWatch {
	// Non-blocking, so Go's poller waits for it and Close ends a read.
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "/dev/kmsg")
	if _, err := f.Seek(0, io.SeekEnd); err != nil { // only what comes now
		t.Fatal(err)
	}
	w := &victimWatch{f: f, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		buf := make([]byte, 1<<16)
		for {
			n, err := f.Read(buf)
			now := time.Now()
			if errors.Is(err, syscall.EPIPE) {
				continue
			}
			if err != nil {
				return
			}
			if kmsgVictim.Match(buf[:n]) {
				w.mu.Lock()
				w.at = append(w.at, now)
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// stop ends the watch and returns the times.
func (w *victimWatch) stop() []time.Time {
	_ = w.f.Close()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Time(nil), w.at...)
}

func kernelRelease(t *testing.T) string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var b []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

func journaldVersion(t *testing.T) string {
	out, err := exec.Command("journalctl", "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitN(string(out), "\n", 2)[0]
}
