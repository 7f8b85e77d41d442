// Package cgroupstate tells whether a memory cgroup the kernel named in an
// OOM report still exists and still has processes in it, by reading the
// node's cgroup filesystem. It never asks the container runtime or the
// Kubernetes API: the kernel's own bookkeeping is the truth.
//
// The check has to work from a DaemonSet pod that does not share the host's
// pid namespace, so it uses counters that do not depend on which pids the
// reader can see:
//   - cgroup v2 (and the unified hierarchy of a hybrid v1 host):
//     `populated` in cgroup.events;
//   - cgroup v1: pids.current of the same path in the pids hierarchy
//     (kubelet and runc put every container in all v1 hierarchies);
//   - cgroup v1 without either: cgroup.procs, only when the reader is in
//     the host's pid namespace (otherwise it would list nothing and every
//     container would look empty).
package cgroupstate

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// State is what was seen of one cgroup.
type State int

const (
	// Unknown: the cgroup could not be observed truthfully (no cgroup
	// filesystem at the root, no namespace-independent population count).
	Unknown State = iota
	// Gone: the cgroup directory does not exist but its parent does (the
	// runtime removed the container's cgroup). A path whose parent is
	// missing too is Unknown: it may be a hierarchy this root does not show.
	Gone
	// Empty: the cgroup exists and no process is left in it.
	Empty
	// Populated: at least one process is still in the cgroup.
	Populated
)

func (s State) String() string {
	switch s {
	case Gone:
		return "gone"
	case Empty:
		return "empty"
	case Populated:
		return "populated"
	default:
		return "unknown"
	}
}

// Layout is how the cgroup filesystem under the root is organised.
type Layout int

const (
	// LayoutNone: nothing usable under the root.
	LayoutNone Layout = iota
	// LayoutUnified: cgroup v2 only, memory controller at the root.
	LayoutUnified
	// LayoutV1: cgroup v1 hierarchies (memory/, pids/, maybe unified/).
	LayoutV1
)

func (l Layout) String() string {
	switch l {
	case LayoutUnified:
		return "cgroup v2"
	case LayoutV1:
		return "cgroup v1"
	default:
		return "none"
	}
}

// Observer reads cgroup state under one root (normally /sys/fs/cgroup, or
// the host's cgroup filesystem mounted into a pod).
type Observer struct {
	root   string
	layout Layout
	// hostPIDNamespace: cgroup.procs lists every process, so it may be used
	// as the v1 fallback.
	hostPIDNamespace bool
}

// New inspects root once. It fails only when root cannot be read at all;
// a root with no cgroup filesystem gives an Observer whose answers are
// Unknown, and Layout says so.
func New(root string) (*Observer, error) {
	if _, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("cgroup root: %w", err)
	}
	o := &Observer{root: root, hostPIDNamespace: inInitialPIDNamespace()}
	switch {
	case exists(filepath.Join(root, "cgroup.controllers")):
		o.layout = LayoutUnified
	case exists(filepath.Join(root, "memory", "memory.limit_in_bytes")) || exists(filepath.Join(root, "memory", "cgroup.procs")):
		o.layout = LayoutV1
	}
	return o, nil
}

// Layout is what New found under the root.
func (o *Observer) Layout() Layout { return o.layout }

// Method says, for the logs, how population is read on this layout.
func (o *Observer) Method() string {
	switch o.layout {
	case LayoutUnified:
		return "cgroup.events populated"
	case LayoutV1:
		m := "unified/<path>/cgroup.events, else pids/<path>/pids.current"
		if o.hostPIDNamespace {
			m += ", else memory/<path>/cgroup.procs (host pid namespace)"
		}
		return m
	default:
		return "none"
	}
}

// Observation is one look at a cgroup.
type Observation struct {
	State State
	// CountsExited: the count read (the pids controller's pids.current)
	// still includes tasks that exited until their parent reaps them, so
	// Populated may mean only zombies are left. A populated flag or
	// cgroup.procs counts only tasks that have not exited.
	CountsExited bool
}

// Observe reports the state of the memory cgroup at path, as the kernel
// prints it (task_memcg, relative to the hierarchy's root, e.g.
// /kubepods/burstable/pod<uid>/<id>).
func (o *Observer) Observe(path string) (State, error) {
	ob, err := o.Look(path)
	return ob.State, err
}

// Look is Observe, also saying what the count read includes.
func (o *Observer) Look(path string) (Observation, error) {
	rel, err := clean(path)
	if err != nil {
		return Observation{}, err
	}
	if rel == "." {
		// The root cgroup always holds processes (init, kernel threads).
		return Observation{State: Populated}, nil
	}
	var ob Observation
	var hierarchy string
	switch o.layout {
	case LayoutUnified:
		hierarchy = o.root
		ob.State, err = populatedFlag(filepath.Join(o.root, rel))
	case LayoutV1:
		hierarchy = filepath.Join(o.root, "memory")
		ob, err = o.observeV1(rel)
	default:
		return Observation{}, nil
	}
	if ob.State == Gone {
		if ok, perr := dirExists(filepath.Join(hierarchy, filepath.Dir(rel))); perr != nil || !ok {
			return Observation{}, perr
		}
	}
	return ob, err
}

func (o *Observer) observeV1(rel string) (Observation, error) {
	memDir := filepath.Join(o.root, "memory", rel)
	if ok, err := dirExists(memDir); err != nil {
		return Observation{}, err
	} else if !ok {
		return Observation{State: Gone}, nil
	}
	// The unified hierarchy of a hybrid host, where runc mirrors the path.
	if dir := filepath.Join(o.root, "unified", rel); exists(filepath.Join(dir, "cgroup.events")) {
		s, err := populatedFlag(dir)
		return Observation{State: s}, err
	}
	if f := filepath.Join(o.root, "pids", rel, "pids.current"); exists(f) {
		n, err := readInt(f)
		if err != nil {
			return Observation{}, err
		}
		return Observation{State: populatedIf(n > 0), CountsExited: true}, nil
	}
	if o.hostPIDNamespace {
		b, err := os.ReadFile(filepath.Join(memDir, "cgroup.procs")) //nolint:gosec // G304: a cgroup file under the configured root; clean() keeps the path there
		if err != nil {
			s, gerr := goneIfNotExist(err)
			return Observation{State: s}, gerr
		}
		return Observation{State: populatedIf(len(bytes.TrimSpace(b)) > 0)}, nil
	}
	return Observation{}, nil
}

// EventsFile is the cgroup.events file whose populated flag Look reads
// for path, or "" when it reads another file. The kernel signals a change
// of the flag to inotify watchers (IN_MODIFY), at most every 10 ms.
func (o *Observer) EventsFile(path string) string {
	rel, err := clean(path)
	if err != nil || rel == "." {
		return ""
	}
	var f string
	switch o.layout {
	case LayoutUnified:
		f = filepath.Join(o.root, rel, "cgroup.events")
	case LayoutV1:
		f = filepath.Join(o.root, "unified", rel, "cgroup.events")
	default:
		return ""
	}
	if !exists(f) {
		return ""
	}
	return f
}

// GroupKill says whether the kernel kills every process of the victim's
// cgroup together (memory.oom.group, cgroup v2): set on path or on an
// ancestor up to the cgroup whose limit was hit (domain; "" for a system
// OOM, which looks up to the root), as mm/memcontrol.c's
// mem_cgroup_get_oom_group does. cgroup v1 has no group kills.
func (o *Observer) GroupKill(path, domain string) (bool, error) {
	if o.layout != LayoutUnified {
		return false, nil
	}
	rel, err := clean(path)
	if err != nil {
		return false, err
	}
	stop := "."
	if domain != "" {
		if stop, err = clean(domain); err != nil {
			return false, err
		}
	}
	for ; rel != "."; rel = filepath.Dir(rel) {
		b, err := os.ReadFile(filepath.Join(o.root, rel, "memory.oom.group")) //nolint:gosec // G304: a cgroup file under the configured root
		switch {
		case err == nil:
			if strings.TrimSpace(string(b)) == "1" {
				return true, nil
			}
		case errors.Is(err, fs.ErrNotExist):
			// No memory controller in this cgroup: nothing set here.
		default:
			return false, err
		}
		if rel == stop {
			break
		}
	}
	return false, nil
}

func populatedFlag(dir string) (State, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events")) //nolint:gosec // G304: as above
	if err != nil {
		return goneIfNotExist(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "populated "); ok {
			return populatedIf(strings.TrimSpace(v) == "1"), nil
		}
	}
	return Unknown, fmt.Errorf("%s/cgroup.events has no populated line", dir)
}

func populatedIf(b bool) State {
	if b {
		return Populated
	}
	return Empty
}

func goneIfNotExist(err error) (State, error) {
	// ENODEV: the cgroup was removed between stat and read.
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV) {
		return Gone, nil
	}
	return Unknown, err
}

// clean turns a kernel-printed cgroup path into a path relative to the
// root. Cleaning an absolute path never climbs above it, so whatever the
// text says ("/a/../../etc" is "/etc"), the reader stays under the root.
func clean(path string) (string, error) {
	if path == "" || path[0] != '/' {
		return "", fmt.Errorf("cgroup path %q is not absolute", path)
	}
	if rel := filepath.Clean(path)[1:]; rel != "" {
		return rel, nil
	}
	return ".", nil
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path) //nolint:gosec // G304: pids.current under the configured cgroup root
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func dirExists(path string) (bool, error) {
	fi, err := os.Stat(path)
	if err == nil {
		return fi.IsDir(), nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// inInitialPIDNamespace: /proc/self/status lists one NSpid per nested pid
// namespace; a single one means the host's.
func inInitialPIDNamespace() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
			return len(strings.Fields(v)) == 1
		}
	}
	return false
}
