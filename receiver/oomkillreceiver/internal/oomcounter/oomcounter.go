// Package oomcounter reads the kernel's own counts of OOM kills, which need
// no log text: the node's (/proc/vmstat oom_kill, 4.13+) and those of the
// kubelet's pod and container memory cgroups (cgroup v2 memory.events
// oom_kill and oom_group_kill; cgroup v1 memory.oom_control oom_kill,
// 4.13+). It only reads files: /proc/vmstat, which is not namespaced, and
// the cgroup filesystem the DaemonSet already mounts read-only.
//
// What each can tell:
//   - /proc/vmstat counts every process the OOM killer killed on the node
//     since boot, in any cgroup;
//   - cgroup v2 counters are hierarchical: a pod's memory.events keeps the
//     kills of its containers after their cgroups are removed;
//     oom_group_kill counts memory.oom.group kills (5.17+);
//   - cgroup v1 counts on the victim's own cgroup only, and a counter goes
//     with its cgroup: a container removed right after its kill leaves only
//     the node's count.
package oomcounter

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kubecgroup"
)

// ErrNoCounters: the kernel predates the OOM-kill counters (before 4.13,
// e.g. RHEL 7's 3.10).
var ErrNoCounters = errors.New("/proc/vmstat has no oom_kill line (kernel before 4.13)")

// Layout is how the memory controller is mounted under the cgroup root.
type Layout int

const (
	// LayoutNone: no memory cgroup counters; the node's count only.
	LayoutNone Layout = iota
	// LayoutV1: cgroup v1 memory hierarchy (memory.oom_control).
	LayoutV1
	// LayoutV2: cgroup v2 (memory.events).
	LayoutV2
)

func (l Layout) String() string {
	switch l {
	case LayoutV1:
		return "cgroup v1"
	case LayoutV2:
		return "cgroup v2"
	default:
		return "none"
	}
}

// Cgroup is one cgroup's counters.
type Cgroup struct {
	// Path as the kernel prints it (task_memcg): /kubepods/burstable/pod…/….
	Path string
	// Kills is oom_kill.
	Kills uint64
	// GroupKills is oom_group_kill (v2, 5.17+; 0 otherwise).
	GroupKills uint64
}

// Snapshot is one reading of every watched counter.
type Snapshot struct {
	Node uint64
	// Cgroups, children before their parents (the order they were read).
	Cgroups []Cgroup
	// Truncated: more kubelet cgroups exist than MaxCgroups.
	Truncated bool
}

// Reader reads the counters under one cgroup root.
type Reader struct {
	vmstat  string
	memRoot string
	layout  Layout
	max     int
	buf     []byte
}

// Open checks that the kernel has the counters and finds the memory
// hierarchy under cgroupRoot (normally /sys/fs/cgroup). vmstat is the path
// of /proc/vmstat. A root without a memory hierarchy gives a Reader that
// reads the node's count only (Layout None); so does maxCgroups 0.
func Open(cgroupRoot, vmstat string, maxCgroups int) (*Reader, error) {
	r := &Reader{vmstat: vmstat, max: maxCgroups, buf: make([]byte, 0, 8<<10)}
	if _, err := r.Node(); err != nil {
		return nil, err
	}
	switch {
	case cgroupRoot == "":
	case hasMemoryController(cgroupRoot):
		r.layout, r.memRoot = LayoutV2, cgroupRoot
	case hasOOMKill(filepath.Join(cgroupRoot, "memory", "memory.oom_control")):
		r.layout, r.memRoot = LayoutV1, filepath.Join(cgroupRoot, "memory")
	}
	return r, nil
}

func hasMemoryController(root string) bool {
	b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers")) //nolint:gosec // G304: the configured cgroup root
	return err == nil && slices.Contains(strings.Fields(string(b)), "memory")
}

// hasOOMKill: a v1 memory hierarchy whose memory.oom_control counts kills
// (4.13+).
func hasOOMKill(path string) bool {
	b, err := os.ReadFile(path) //nolint:gosec // G304: a file under the configured cgroup root
	if err != nil {
		return false
	}
	_, ok := field(b, "oom_kill")
	return ok
}

// Layout is what Open found.
func (r *Reader) Layout() Layout { return r.layout }

// Hierarchical says whether a cgroup's counters include its descendants.
func (r *Reader) Hierarchical() bool { return r.layout == LayoutV2 }

// Node reads oom_kill from /proc/vmstat.
func (r *Reader) Node() (uint64, error) {
	b, err := r.read(r.vmstat)
	if err != nil {
		return 0, err
	}
	v, ok := field(b, "oom_kill")
	if !ok {
		return 0, ErrNoCounters
	}
	return v, nil
}

// KubepodsRoots are the memory.events files of the kubelet's top cgroups
// (v2): one of them changes whenever a kill happens in any pod.
func (r *Reader) KubepodsRoots() []string {
	if r.layout != LayoutV2 {
		return nil
	}
	var out []string
	for _, p := range r.kubepodsRoots() {
		out = append(out, filepath.Join(r.memRoot, p, "memory.events"))
	}
	return out
}

// Read reads the node's counter, then every watched cgroup's, children
// before parents: a kill that lands during the reading is then in a
// parent's count or in the next reading's node count, never counted on a
// child it has not reached yet.
func (r *Reader) Read() (Snapshot, error) {
	node, err := r.Node()
	if err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{Node: node}
	if r.layout == LayoutNone {
		return s, nil
	}
	paths, truncated := r.discover()
	s.Truncated = truncated
	for i := len(paths) - 1; i >= 0; i-- {
		c, err := r.readCgroup(paths[i])
		switch {
		case err == nil:
			s.Cgroups = append(s.Cgroups, c)
		case gone(err):
			// Removed since it was listed: it is not in this reading.
		default:
			return Snapshot{}, err
		}
	}
	return s, nil
}

func (r *Reader) readCgroup(path string) (Cgroup, error) {
	dir := filepath.Join(r.memRoot, path)
	c := Cgroup{Path: path}
	if r.layout == LayoutV2 {
		b, err := r.read(filepath.Join(dir, "memory.events"))
		if err != nil {
			return c, err
		}
		c.Kills, _ = field(b, "oom_kill")
		c.GroupKills, _ = field(b, "oom_group_kill")
		return c, nil
	}
	b, err := r.read(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return c, err
	}
	c.Kills, _ = field(b, "oom_kill")
	return c, nil
}

// discover lists the kubelet's cgroups to watch, parents before children
// (roots, QoS levels, pods, containers), at most max: when there are more,
// containers go first, since a v2 pod's counter still holds their kills.
func (r *Reader) discover() ([]string, bool) {
	var levels [4][]string
	for _, root := range r.kubepodsRoots() {
		if r.layout == LayoutV2 {
			levels[0] = append(levels[0], root)
		}
		for _, d := range r.subdirs(root) {
			p := root + "/" + d
			ref := kubecgroup.Parse(p)
			switch {
			case ref.Kind == kubecgroup.KindPod:
				levels[2] = append(levels[2], p)
			case ref.Kind == kubecgroup.KindOther && isQoS(d):
				if r.layout == LayoutV2 {
					levels[1] = append(levels[1], p)
				}
				for _, pd := range r.subdirs(p) {
					if pp := p + "/" + pd; kubecgroup.Parse(pp).Kind == kubecgroup.KindPod {
						levels[2] = append(levels[2], pp)
					}
				}
			}
		}
	}
	for _, pod := range levels[2] {
		for _, d := range r.subdirs(pod) {
			levels[3] = append(levels[3], pod+"/"+d)
		}
	}
	var out []string
	for _, l := range levels {
		out = append(out, l...)
	}
	if len(out) > r.max {
		return out[:r.max], true
	}
	return out, false
}

func isQoS(name string) bool {
	return name == "burstable" || name == "besteffort" || strings.HasSuffix(name, "-burstable.slice") || strings.HasSuffix(name, "-besteffort.slice")
}

// kubepodsRoots finds the kubelet's top cgroups (kubepods, kubepods.slice,
// <prefix>-kubepods.slice) at most three levels below the hierarchy's root
// (a --cgroup-root, a kind node's container), as paths like "/kubepods".
func (r *Reader) kubepodsRoots() []string {
	var out []string
	var walk func(rel string, depth int)
	walk = func(rel string, depth int) {
		for _, d := range r.subdirs(rel) {
			p := rel + "/" + d
			if d == "kubepods" || d == "kubepods.slice" || strings.HasSuffix(d, "-kubepods.slice") {
				out = append(out, p)
				continue
			}
			if depth < 2 {
				walk(p, depth+1)
			}
		}
	}
	walk("", 0)
	return out
}

// subdirs lists the child cgroups of rel, sorted; none when it is gone.
func (r *Reader) subdirs(rel string) []string {
	ents, err := os.ReadDir(filepath.Join(r.memRoot, rel))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// read reads a small kernel file into the reader's buffer (valid until
// the next read).
func (r *Reader) read(path string) ([]byte, error) {
	f, err := os.Open(path) //nolint:gosec // G304: /proc/vmstat or a cgroup file under the configured root
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := r.buf[:0]
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, 4<<10)
		}
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			r.buf = b[:0]
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// field returns the value of a "name value" line.
func field(b []byte, name string) (uint64, bool) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		k, v, ok := bytes.Cut(line, []byte{' '})
		if ok && string(k) == name {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// gone: the cgroup was removed (ENODEV when removed between open and read).
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV)
}

// Describe says, for the logs, what is read.
func (r *Reader) Describe() string {
	switch r.layout {
	case LayoutV2:
		return fmt.Sprintf("/proc/vmstat oom_kill; memory.events oom_kill and oom_group_kill of the kubelet's cgroups under %s (hierarchical)", r.memRoot)
	case LayoutV1:
		return fmt.Sprintf("/proc/vmstat oom_kill; memory.oom_control oom_kill of the kubelet's pod and container cgroups under %s", r.memRoot)
	default:
		return "/proc/vmstat oom_kill only (no memory cgroup counters under the cgroup root)"
	}
}
