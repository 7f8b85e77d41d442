// Package busyjournal writes the side-by-side benchmark's input: a busy
// Kubernetes node's journal, as real journal files made by Debian's
// systemd-journal-remote. Half of the entries are kernel messages; about one
// kernel message in a thousand ends an OOM kill. The kills are the real
// reports in testdata/kernel/captured (this machine's kernel, kubelet-shaped
// cgroups, hostile process names, a rate-limited burst), replayed in turn.
package busyjournal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

// RemoteBinary converts the journal export format to journal files.
const RemoteBinary = journaltest.RemoteBinary

// victimLine is the kernel's "Killed process <pid> (<comm>)" line, with the
// prefixes kernels put before it: one per kill, whatever else the report
// holds. Used only to count what the reports contain, never by a tool.
var victimLine = regexp.MustCompile(`^(Memory cgroup out of memory: |Out of memory: )?Killed process [0-9]+ \(`)

// Report is one captured kernel OOM report (or burst) and the kills in it.
type Report struct {
	Name  string
	Lines []string
	Kills int
}

// LoadReports reads every captured report in dir (testdata/kernel/captured).
func LoadReports(dir string) ([]Report, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var out []Report
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		r := Report{Name: strings.TrimSuffix(filepath.Base(p), ".txt")}
		for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
			if strings.HasPrefix(l, "# ") {
				continue
			}
			r.Lines = append(r.Lines, l)
			if victimLine.MatchString(l) {
				r.Kills++
			}
		}
		if r.Kills == 0 {
			return nil, fmt.Errorf("%s: no Killed process line", p)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no captured reports (*.txt) in %s", dir)
	}
	return out, nil
}

// Spec describes the journal to write.
type Spec struct {
	Entries int       // total entries, kernel and others
	Start   time.Time // first entry's time; the last is End
	End     time.Time
	Reports []Report
	// KernelPerKill is how many kernel messages there are per kill (1000:
	// 0.1% of kernel messages end a report).
	KernelPerKill int
}

// Rewrite returns reports with every line passed through r (a
// strings.Replacer giving the captured pods the UIDs of pods that exist).
func Rewrite(reports []Report, r *strings.Replacer) []Report {
	out := make([]Report, len(reports))
	for i, rep := range reports {
		out[i] = Report{Name: rep.Name, Kills: rep.Kills, Lines: make([]string, len(rep.Lines))}
		for j, l := range rep.Lines {
			out[i].Lines[j] = r.Replace(l)
		}
	}
	return out
}

// Identity of the node the entries come from.
const (
	BootID    = "5c4a1b0e9f3d4e27a8b6c1d2e3f40516"
	MachineID = "0b8e3c4d5f6a47b8990a1b2c3d4e5f60"
	Hostname  = "bench-node-1"
)

// Result says what was written.
type Result struct {
	Entries, KernelEntries, Kills, Reports int
}

// Write streams the export of spec into w.
func Write(w io.Writer, spec Spec) (Result, error) {
	if spec.Entries <= 0 || spec.KernelPerKill <= 0 || len(spec.Reports) == 0 || !spec.End.After(spec.Start) {
		return Result{}, errors.New("busyjournal: incomplete spec")
	}
	st := NewStream(w, spec.Start.Add(-time.Hour))
	step := spec.End.Sub(spec.Start) / time.Duration(spec.Entries)
	var res Result
	next := 0 // next report to replay
	var pending []string
	for res.Entries < spec.Entries {
		at := spec.Start.Add(time.Duration(res.Entries) * step)
		// Every other entry is the kernel's; a report starts whenever the
		// kernel messages so far call for more kills than written.
		if res.Entries%2 == 0 {
			if len(pending) == 0 && (res.KernelEntries+1)/spec.KernelPerKill > res.Kills {
				r := spec.Reports[next%len(spec.Reports)]
				next++
				pending = r.Lines
				res.Kills += r.Kills
				res.Reports++
			}
			msg := noiseKernel(res.KernelEntries)
			if len(pending) > 0 {
				msg, pending = pending[0], pending[1:]
			}
			st.Kernel(at, msg)
			res.KernelEntries++
		} else {
			st.Service(at, res.Entries)
		}
		res.Entries++
	}
	for _, msg := range pending { // finish the last report
		st.Kernel(spec.End, msg)
		res.KernelEntries++
		res.Entries++
	}
	return res, st.Flush()
}

// WriteFiles writes spec as journal files into dir (systemd-journal-remote
// rotates them as journald would, so there are several).
func WriteFiles(dir string, spec Spec) (Result, error) {
	if _, err := os.Stat(RemoteBinary); err != nil {
		return Result{}, fmt.Errorf("%s is missing: apt-get install systemd-journal-remote", RemoteBinary)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, err
	}
	cmd := exec.Command(RemoteBinary, "-o", filepath.Join(dir, "system.journal"), "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return Result{}, err
	}
	if err := cmd.Start(); err != nil {
		return Result{}, err
	}
	res, werr := Write(in, spec)
	cerr := in.Close()
	if err := cmd.Wait(); err != nil {
		return res, fmt.Errorf("systemd-journal-remote: %w: %s", err, stderr.String())
	}
	return res, errors.Join(werr, cerr)
}

// Stream renders entries in the journal export format.
type Stream struct {
	w      *bufio.Writer // keeps the first write error for Flush
	bootAt time.Time
	n      int
}

// NewStream writes entries of a boot that began at bootAt to w. Entries
// must come in time order.
func NewStream(w io.Writer, bootAt time.Time) *Stream {
	return &Stream{w: bufio.NewWriterSize(w, 1<<20), bootAt: bootAt}
}

// Flush writes what is buffered; the entries are then appended once
// systemd-journal-remote has read them.
func (s *Stream) Flush() error { return s.w.Flush() }

// Noise writes n ordinary entries at time at, half of them kernel messages.
func (s *Stream) Noise(at time.Time, n int) {
	for i := 0; i < n; i++ {
		if s.n%2 == 0 {
			s.Kernel(at, noiseKernel(s.n/2))
		} else {
			s.Service(at, s.n)
		}
	}
}

func (s *Stream) header(at time.Time) {
	s.n++
	fmt.Fprintf(s.w, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=%s\n_MACHINE_ID=%s\n_HOSTNAME=%s\n",
		at.UnixMicro(), at.Sub(s.bootAt).Microseconds(), BootID, MachineID, Hostname)
}

// Kernel writes a kernel message with the fields journald gives one.
func (s *Stream) Kernel(at time.Time, msg string) {
	s.header(at)
	fmt.Fprintf(s.w, "_TRANSPORT=kernel\nSYSLOG_IDENTIFIER=kernel\nSYSLOG_FACILITY=0\nPRIORITY=6\n_SOURCE_MONOTONIC_TIMESTAMP=%d\n",
		at.Sub(s.bootAt).Microseconds()-150)
	s.message(msg)
}

// Service writes a kubelet or containerd log line, as most of a node's
// journal is.
func (s *Stream) Service(at time.Time, n int) {
	s.header(at)
	unit, pid, msg := "kubelet", 1234, fmt.Sprintf(`I%s    1234 prober.go:107] "Probe succeeded" probeType="Readiness" pod="team-%d/web-%d" podUID="%08x-1f2e-4d3c-8b9a-0123456789ab" containerName="app"`,
		at.UTC().Format("0102 15:04:05.000000"), n%40, n%110, n%110)
	if n%3 == 0 {
		unit, pid, msg = "containerd", 987, fmt.Sprintf(`time="%s" level=info msg="ExecSync for \"%064x\" returns with exit code 0"`,
			at.UTC().Format(time.RFC3339Nano), n%110)
	}
	fmt.Fprintf(s.w, "_TRANSPORT=stdout\nSYSLOG_IDENTIFIER=%s\nSYSLOG_FACILITY=3\nPRIORITY=6\n_PID=%d\n_UID=0\n_GID=0\n_COMM=%s\n_EXE=/usr/bin/%s\n_SYSTEMD_UNIT=%s.service\n_SYSTEMD_CGROUP=/system.slice/%s.service\n_SYSTEMD_SLICE=system.slice\n_STREAM_ID=4f1c2b3a4d5e6f708192a3b4c5d6e7f8\n",
		unit, pid, unit, unit, unit, unit)
	s.message(msg)
}

// message writes MESSAGE and ends the entry.
func (s *Stream) message(msg string) {
	journaltest.WriteField(s.w, "MESSAGE", msg)
	_ = s.w.WriteByte('\n') // bufio keeps the error for Flush
}

// noiseKernel is an ordinary kernel message of a busy node: pod network
// interfaces coming and going, AppArmor audits.
func noiseKernel(n int) string {
	switch n % 4 {
	case 0:
		return fmt.Sprintf("cni0: port %d(veth%08x) entered forwarding state", n%64+1, n)
	case 1:
		return fmt.Sprintf("IPv6: ADDRCONF(NETDEV_CHANGE): veth%08x: link becomes ready", n)
	case 2:
		return fmt.Sprintf("eth0: renamed from tmp%05d", n%100000)
	default:
		return fmt.Sprintf(`audit: type=1400 audit(%d.%03d:%d): apparmor="DENIED" operation="open" profile="cri-containerd.apparmor.d" name="/proc/sys/kernel/core_pattern" pid=%d comm="runc" requested_mask="r" denied_mask="r" fsuid=0 ouid=0`,
			1764300000+n/100, n%1000, n, 4000+n%30000)
	}
}

// Live is a journal file being appended to by a running
// systemd-journal-remote, as journald appends to a node's journal.
type Live struct {
	*Stream
	cmd    *exec.Cmd
	in     io.WriteCloser
	stderr bytes.Buffer
}

// StartLive starts appending to the journal file at path.
func StartLive(path string, bootAt time.Time) (*Live, error) {
	l := &Live{cmd: exec.Command(RemoteBinary, "-o", path, "-")}
	l.cmd.Stderr = &l.stderr
	in, err := l.cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := l.cmd.Start(); err != nil {
		return nil, err
	}
	l.in, l.Stream = in, NewStream(in, bootAt)
	return l, nil
}

// Close flushes and waits for systemd-journal-remote to finish the file.
func (l *Live) Close() error {
	ferr := l.Flush()
	cerr := l.in.Close()
	if err := l.cmd.Wait(); err != nil {
		return fmt.Errorf("systemd-journal-remote: %w: %s", err, l.stderr.String())
	}
	return errors.Join(ferr, cerr)
}
