package testutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// JournaldBinary is the systemd-journald the tests start (Debian: systemd).
const JournaldBinary = "/lib/systemd/systemd-journald"

// The volatile journal, and the directory of journald's sockets.
const (
	runtimeJournal = "/run/log/journal"
	journalSockets = "/run/systemd/journal"
)

// JournaldRunning says whether a systemd-journald process runs. It reads
// each process's executable, not its name: systemd-journal-remote, which
// the tests run to write journal files, has the same 15-byte comm
// ("systemd-journal") that `pgrep -x` would match.
func JournaldRunning() bool {
	exes, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, exe := range exes {
		if target, err := os.Readlink(exe); err == nil && filepath.Base(target) == "systemd-journald" {
			return true
		}
	}
	return false
}

// HostJournal is the machine's journal, written by a real systemd-journald
// from /dev/kmsg.
type HostJournal struct {
	Dir string // the machine's journal directory, /run/log/journal/<machine-id>
	GID int    // the group its files belong to, which may read them
}

// Journald makes sure a real systemd-journald writes this machine's journal
// and that the journal holds a line the kernel logged after this call
// began (journald replays the kernel's ring buffer when it starts).
//
// A systemd-journald that runs is used and left alone, whatever its
// layout. Otherwise one is started, its journal laid out as
// systemd-tmpfiles lays out a node's (tmpfiles.d/systemd.conf):
// /run/log/journal 2755 and its machine-id directory 2750, both
// root:systemd-journal, and whatever a journald wrote there before
// (e.g. one started by hand, whose files are root:root) relabelled the same
// way, so that journald's files are 0640 root:systemd-journal as on a node.
// When the test ends that journald is stopped and the journal is as it was:
// removed if there was none, else with its owners and modes restored.
func Journald(t testing.TB) HostJournal {
	t.Helper()
	mid, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		t.Fatalf("the host's /etc/machine-id: %v", err)
	}
	dir := filepath.Join(runtimeJournal, strings.TrimSpace(string(mid)))
	if JournaldRunning() {
		return runningJournal(t, dir)
	}
	if _, err = os.Stat(JournaldBinary); err != nil {
		SkipOrFail(t, JournaldBinary+" is missing: install the Debian package systemd (.ci/run does)")
	}
	g, err := user.LookupGroup("systemd-journal")
	if err != nil {
		t.Fatalf("the systemd-journal group (Debian package systemd): %v", err)
	}
	gid, _ := strconv.Atoi(g.Gid)

	before, err := snapshot(runtimeJournal)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if rerr := before.restore(); rerr != nil {
			t.Errorf("restoring %s: %v", runtimeJournal, rerr)
		}
	})
	if err = layOutAsNode(runtimeJournal, dir, gid); err != nil {
		t.Fatalf("laying out %s as on a node: %v", runtimeJournal, err)
	}
	made, err := mkdirAllMade(journalSockets)
	if err != nil {
		t.Fatal(err)
	}
	if made != "" {
		t.Cleanup(func() { _ = os.RemoveAll(made) })
	}

	cmd := exec.Command(JournaldBinary)
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("OOM lines in the journal:\n%s", oomLines())
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	waitForMarker(t)

	var st syscall.Stat_t
	file := filepath.Join(dir, "system.journal")
	if err := syscall.Stat(file, &st); err != nil {
		t.Fatalf("journald started but wrote no %s: %v", file, err)
	}
	if st.Uid != 0 || st.Gid != uint32(gid) || st.Mode&0o7777 != 0o640 {
		t.Fatalf("journald's file %s is %d:%d mode %#o; on a node it is 0:%d (root:systemd-journal) mode 0640, "+
			"inherited from its directory: see `ls -ln %s`", file, st.Uid, st.Gid, st.Mode&0o7777, gid, dir)
	}
	t.Logf("started systemd-journald (pid %d) on %s, laid out as on a node (group %d)", cmd.Process.Pid, dir, gid)
	return HostJournal{Dir: dir, GID: gid}
}

// runningJournal describes the journal of a systemd-journald that runs.
func runningJournal(t testing.TB, dir string) HostJournal {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatalf("a systemd-journald runs, but its journal %s: %v", dir, err)
	}
	t.Logf("using the systemd-journald already running (%s, group %d)", dir, st.Gid)
	waitForMarker(t)
	return HostJournal{Dir: dir, GID: int(st.Gid)}
}

// waitForMarker writes a line to the kernel's log and waits until the
// journal holds it: kills after this point are after the journal's end
// that a collector starting now (start_at: end) sees.
func waitForMarker(t testing.TB) {
	t.Helper()
	marker := "otelcol-oomkill test marker " + RandomHex(8)
	if err := os.WriteFile("/dev/kmsg", []byte(marker+"\n"), 0); err != nil { // one record per line
		t.Fatal(err)
	}
	var out []byte
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		out, _ = exec.Command("journalctl", "-D", runtimeJournal, "--no-pager", "-n", "20").CombinedOutput()
		if strings.Contains(string(out), marker) {
			return
		}
	}
	t.Fatalf("journald did not record the marker within 20 s; journal tail:\n%s", out)
}

// oomLines are the kernel's OOM report lines of the last 5 minutes.
func oomLines() string {
	out, _ := exec.Command("journalctl", "-D", runtimeJournal, "-k", "--no-pager", "-o", "short-monotonic", "--since", "-5min").CombinedOutput()
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "invoked oom-killer") || strings.Contains(l, "oom-kill:") || strings.Contains(l, "Killed process") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// layOutAsNode does what systemd-tmpfiles does for the runtime journal at
// boot (`z /run/log/journal 2755 root systemd-journal`, `Z
// /run/log/journal/%m ~2750 root systemd-journal`) to top and its machine's
// directory dir: directories setgid so that new files inherit the group,
// existing files relabelled.
func layOutAsNode(top, dir string, gid int) error {
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{top, 0o755}, {dir, 0o750}} {
		if err := os.MkdirAll(d.path, 0o700); err != nil {
			return err
		}
		if err := os.Chown(d.path, 0, gid); err != nil {
			return err
		}
		if err := os.Chmod(d.path, d.mode|os.ModeSetgid); err != nil {
			return err
		}
	}
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		if err := os.Lchown(p, 0, gid); err != nil {
			return err
		}
		if e.IsDir() {
			return os.Chmod(p, 0o750|os.ModeSetgid)
		}
		if e.Type().IsRegular() {
			info, err := e.Info()
			if err != nil {
				return err
			}
			return os.Chmod(p, info.Mode().Perm()&0o750) // ~2750: keep no more than it had
		}
		return nil
	})
}

// journalState is a journal directory tree's owners and modes, to put back.
type journalState struct {
	root    string
	existed bool
	entries map[string]entryState
}

type entryState struct {
	uid, gid int
	mode     os.FileMode
}

func snapshot(root string) (*journalState, error) {
	s := &journalState{root: root, entries: map[string]entryState{}}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		s.entries[p] = entryState{uid: int(st.Uid), gid: int(st.Gid), mode: fs.FileMode(st.Mode & 0o7777)}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	s.existed = err == nil
	return s, err
}

// restore removes a tree that did not exist, or gives every entry its
// owner and mode back. A file journald added since takes the owner its
// directory had, as if that journald had written it there.
func (s *journalState) restore() error {
	if !s.existed {
		return os.RemoveAll(s.root)
	}
	var errs []error
	_ = filepath.WalkDir(s.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		st, ok := s.entries[p]
		if !ok {
			parent, had := s.entries[filepath.Dir(p)]
			if !had {
				return nil
			}
			st = entryState{uid: parent.uid, gid: parent.gid, mode: 0o640}
			if e.IsDir() {
				st.mode = parent.mode
			}
		}
		if err := os.Lchown(p, st.uid, st.gid); err != nil {
			errs = append(errs, err)
		}
		if e.Type()&fs.ModeSymlink == 0 {
			if err := os.Chmod(p, toFileMode(st.mode)); err != nil {
				errs = append(errs, err)
			}
		}
		return nil
	})
	return errors.Join(errs...)
}

// toFileMode turns stat's permission and setgid/setuid/sticky bits into
// an os.FileMode for Chmod.
func toFileMode(m fs.FileMode) fs.FileMode {
	out := m & 0o777
	if m&syscall.S_ISGID != 0 {
		out |= os.ModeSetgid
	}
	if m&syscall.S_ISUID != 0 {
		out |= os.ModeSetuid
	}
	if m&syscall.S_ISVTX != 0 {
		out |= os.ModeSticky
	}
	return out
}

// mkdirAllMade is os.MkdirAll that returns the outermost directory it
// created ("" when path existed), for the cleanup to remove.
func mkdirAllMade(path string) (string, error) {
	made := ""
	for d := path; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		made = d
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return "", fmt.Errorf("mkdir %s: %w", path, err)
	}
	return made, nil
}
