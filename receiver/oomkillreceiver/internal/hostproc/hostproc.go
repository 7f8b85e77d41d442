// Package hostproc tells what became of a process the kernel named by its
// pid in an OOM report: still there, exited but not yet reaped by its
// parent, or gone.
//
// The kernel prints victims' pids as the host's (initial) pid namespace
// numbers them, so they are looked up in a procfs of that namespace: the
// collector's own /proc when it runs in the host's pid namespace, or the
// host's /proc mounted read-only into a pod that does not share it (a
// pod's own /proc shows only its own processes). Nothing in the cgroup
// filesystem names the processes of another pid namespace: cgroup v2's
// cgroup.procs shows them as 0, cgroup v1's leaves them out.
package hostproc

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// Status is what a procfs shows of one process.
type Status int

const (
	// Unknown: the procfs could not say (unreadable, or the pid now names
	// a process with another name, which may as well be the victim seen
	// through a name the report did not print verbatim).
	Unknown Status = iota
	// Running: the process exists and has not exited. A killed process is
	// in this state until it runs its exit: with SIGKILL pending, in
	// uninterruptible sleep, or freeing its memory.
	Running
	// Exited: a zombie. It has left its cgroup's live tasks (cgroup v2's
	// populated flag no longer counts it; the pids controller still does
	// until its parent reaps it).
	Exited
	// Gone: no such process any more: its parent reaped it.
	Gone
)

func (s Status) String() string {
	switch s {
	case Running:
		return "running"
	case Exited:
		return "exited"
	case Gone:
		return "gone"
	default:
		return "unknown"
	}
}

// pfKthread is PF_KTHREAD in the flags field of /proc/<pid>/stat.
const pfKthread = 0x00200000

// Procfs reads processes of the host's pid namespace.
type Procfs struct {
	root string
}

// Open checks that root is a procfs of the initial pid namespace that
// shows other users' processes, and returns a reader of it. Kernel threads
// live only in the initial pid namespace, and pid 2 is always kthreadd
// there: another namespace's pid 2 is an ordinary process, and a procfs
// mounted with hidepid does not show it to an unprivileged reader.
func Open(root string) (*Procfs, error) {
	b, err := os.ReadFile(filepath.Join(root, "2", "stat")) //nolint:gosec // G304: the configured procfs root
	if err != nil {
		return nil, fmt.Errorf("%s does not show the host's processes (%w): it is not the host's procfs, or hides other users' processes", root, err)
	}
	f, ok := statFields(b)
	if !ok || len(f) < 7 {
		return nil, fmt.Errorf("%s/2/stat: unexpected format", root)
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	if err != nil || flags&pfKthread == 0 {
		return nil, fmt.Errorf("%s shows another pid namespace than the host's (its pid 2 is not a kernel thread)", root)
	}
	return &Procfs{root: root}, nil
}

// Root is the procfs read.
func (p *Procfs) Root() string { return p.root }

// Status says what became of pid, whose name (comm) the report printed.
// A pid reused by a process of another name is Unknown, never Gone: the
// caller then waits as if it could not see the process.
func (p *Procfs) Status(pid int64, comm string) (Status, error) {
	if pid <= 0 {
		return Unknown, fmt.Errorf("pid %d", pid)
	}
	// /proc/<tid> exists for threads too, so a victim the kernel named by
	// a thread's id is found as well.
	b, err := os.ReadFile(filepath.Join(p.root, strconv.FormatInt(pid, 10), "stat"))
	if err != nil {
		// ESRCH: the task went away between open and read.
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return Gone, nil
		}
		return Unknown, err
	}
	name, state, ok := nameAndState(b)
	if !ok {
		return Unknown, fmt.Errorf("%s/%d/stat: unexpected format", p.root, pid)
	}
	if name != comm {
		return Unknown, nil
	}
	switch state {
	case 'Z', 'X':
		return Exited, nil
	default:
		return Running, nil
	}
}

// nameAndState reads "pid (comm) S ...". The comm is whatever the process
// chose, parentheses and spaces included: it ends at the last ')'.
func nameAndState(b []byte) (string, byte, bool) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open || end+2 >= len(b) {
		return "", 0, false
	}
	return string(b[open+1 : end]), b[end+2], true
}

// statFields are the fields after the comm: state, ppid, pgrp, session,
// tty_nr, tpgid, flags, ...
func statFields(b []byte) ([]string, bool) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return nil, false
	}
	var out []string
	for _, f := range bytes.Fields(b[end+1:]) {
		out = append(out, string(f))
	}
	return out, true
}
