//go:build sidebyside

package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat
// (100 on every Linux architecture Go supports).
const clockTicks = 100

// tree is pid and its descendants. The kernel lists a child under the
// thread that forked it, and a Go program forks from any of its threads, so
// every thread's list is read.
func tree(pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		lists, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", out[i]))
		for _, l := range lists {
			b, err := os.ReadFile(l)
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// treeStatus sums a memory line of /proc/<pid>/status ("VmRSS:" resident,
// "VmHWM:" peak resident, "RssAnon:" heap and stacks) over the tree, in bytes.
func treeStatus(pid int, key string) int64 {
	var sum int64
	for _, p := range tree(pid) {
		sum += statusKB(p, key) * 1024
	}
	return sum
}

func statusKB(pid int, key string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// treeCPU is the CPU time (user+system) the tree has used so far.
func treeCPU(pid int) time.Duration {
	var ticks int64
	for _, p := range tree(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// Fields after the parenthesised comm: state is field 3, utime 14, stime 15.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// counter reads one number from a Prometheus text endpoint: the sum of the
// samples of metric that carry every one of labels.
type counter struct {
	url    string
	metric string
	labels map[string]string
}

func (c counter) read() (float64, error) {
	samples, err := testutil.Scrape(c.url, c.metric)
	if err != nil {
		return 0, err
	}
	sum, found := 0.0, false
	for _, s := range samples {
		if s.Labeled(c.labels) {
			sum, found = sum+s.Value, true
		}
	}
	if !found {
		return 0, errNoSample
	}
	return sum, nil
}

var errNoSample = fmt.Errorf("no sample yet")
