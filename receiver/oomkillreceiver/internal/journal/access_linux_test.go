//go:build linux && cgo

package journal

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

// The access tests build journal layouts with real owners and modes and
// check them from a child process (this test binary, re-executed) that runs
// as an unprivileged uid with chosen groups, as the DaemonSet's collector does.

const (
	childEnv     = "OOMKILL_JOURNAL_ACCESS_CHILD"
	journalGID   = 4242 // the layout's "systemd-journal"
	otherGID     = 4    // a group that is not the journal's (adm)
	collectorUID = 10001
	machineID    = "3d1219c7c4c5404aaa1f6d2a48adfda4"
)

// childRequest is what the child checks; childResult what it saw.
type childRequest struct {
	Dirs  []string // checkDirs, as for the default directories
	Dir   string   // or Location.Directory
	Files []string // or Location.Files
}

type childResult struct {
	Found   int
	Err     string
	Entries int // kernel entries libsystemd read from Dir (when set)
}

// TestAccessChild is the child's side; it does nothing in a normal run.
func TestAccessChild(t *testing.T) {
	spec := os.Getenv(childEnv)
	if spec == "" {
		t.Skip("runs only as the child of TestCheckReadableUnprivileged")
	}
	var req childRequest
	if err := json.Unmarshal([]byte(spec), &req); err != nil {
		t.Fatal(err)
	}
	var res childResult
	var err error
	if len(req.Dirs) > 0 {
		res.Found, err = checkDirs(req.Dirs)
	} else {
		res.Found, err = CheckReadable(Location{Directory: req.Dir, Files: req.Files})
	}
	if err != nil {
		res.Err = err.Error()
	}
	if req.Dir != "" {
		// What libsystemd itself makes of it: without the check, an
		// unreadable journal reads as an empty one.
		r, err := Open(Location{Directory: req.Dir}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for {
			ok, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			res.Entries++
		}
		r.Close()
	}
	out, _ := json.Marshal(res)
	fmt.Println("RESULT " + string(out))
}

func TestCheckReadableUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		msg := "needs root: it creates files owned by other users and runs a child as uid 10001"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	journaltest.Require(t, journaltest.RemoteBinary, "systemd-journal-remote")

	// A tree the unprivileged child can traverse: t.TempDir and its parent are 0700.
	root := t.TempDir()
	must(t, os.Chmod(filepath.Dir(root), 0o755))
	must(t, os.Chmod(root, 0o755))
	bin := filepath.Join(root, "journal.test")
	copyExecutable(t, bin)

	// One real journal file holding two kernel entries, copied into every
	// layout with journald's owners and modes.
	src := filepath.Join(root, "src.journal")
	journaltest.Write(t, src, journaltest.Entries([]string{"first kernel line", "second kernel line"},
		time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), "0123456789abcdef0123456789abcdef", "node"))

	// layout makes <base>/<dir> (journald: 2755 root:journal) holding, in
	// a machine-id subdirectory of subMode (journald: 2750) or in the dir
	// itself when subMode is 0, system.journal with fileMode (0640).
	layout := func(name string, subMode, fileMode os.FileMode) (dir, file string) {
		dir = filepath.Join(root, name)
		mkdir(t, dir, 0o755|os.ModeSetgid, journalGID)
		where := dir
		if subMode != 0 {
			where = filepath.Join(dir, machineID)
			mkdir(t, where, subMode|os.ModeSetgid, journalGID)
		}
		file = filepath.Join(where, "system.journal")
		copyFile(t, src, file, fileMode, journalGID)
		return dir, file
	}

	persistent, _ := layout("var-log-journal", 0o750, 0o640)
	volatile, _ := layout("run-log-journal", 0o750, 0o640)
	flat, flatFile := layout("flat", 0, 0o640)
	groupless, _ := layout("groupless", 0o700, 0o600)
	missing := filepath.Join(root, "missing")
	emptyDir := filepath.Join(root, "empty")
	mkdir(t, emptyDir, 0o755|os.ModeSetgid, journalGID)
	// journal-remote's own directory, unlistable to us and not the local
	// journal: ignored.
	withRemote, _ := layout("with-remote", 0o750, 0o640)
	mkdir(t, filepath.Join(withRemote, "remote"), 0o700, 0)

	wantGroup := fmt.Sprintf("add gid %d", journalGID)
	cases := []struct {
		name    string
		groups  []uint32
		req     childRequest
		found   int
		errHas  []string
		entries int
	}{
		// The case: only adm, the 0750 machine-id directory hides everything.
		{
			name: "persistent, wrong group", groups: []uint32{otherGID},
			req:    childRequest{Dirs: []string{persistent, missing}},
			errHas: []string{wantGroup, filepath.Join(persistent, machineID), "journal directory", "uid 10001"},
		},
		{
			name: "persistent, journal group", groups: []uint32{otherGID, journalGID},
			req: childRequest{Dirs: []string{persistent, missing}}, found: 1,
		},
		{
			name: "volatile, wrong group", groups: []uint32{otherGID},
			req:    childRequest{Dirs: []string{missing, volatile}},
			errHas: []string{wantGroup, filepath.Join(volatile, machineID)},
		},
		{
			name: "volatile, journal group", groups: []uint32{journalGID},
			req: childRequest{Dirs: []string{missing, volatile}}, found: 1,
		},
		// Both mounted (the DaemonSet), one empty and readable: still an error.
		{
			name: "both, wrong group", groups: []uint32{otherGID},
			req:    childRequest{Dirs: []string{persistent, emptyDir}},
			errHas: []string{wantGroup},
		},
		{
			name: "machine-id directory, wrong group", groups: []uint32{otherGID},
			req:    childRequest{Dir: persistent},
			errHas: []string{wantGroup, filepath.Join(persistent, machineID)},
		},
		{
			name: "machine-id directory, journal group", groups: []uint32{journalGID},
			req: childRequest{Dir: persistent}, found: 1, entries: 2,
		},
		{
			name: "flat directory, wrong group", groups: []uint32{otherGID},
			req:    childRequest{Dir: flat},
			errHas: []string{wantGroup, flatFile, "journal file"},
		},
		{
			name: "flat directory, journal group", groups: []uint32{journalGID},
			req: childRequest{Dir: flat}, found: 1, entries: 2,
		},
		{
			name: "files, wrong group", groups: []uint32{otherGID},
			req:    childRequest{Files: []string{flatFile}},
			errHas: []string{wantGroup, flatFile},
		},
		{
			name: "files, journal group", groups: []uint32{journalGID},
			req: childRequest{Files: []string{flatFile}}, found: 1,
		},
		// No group can help: say whose it is.
		{
			name: "owner only", groups: []uint32{journalGID},
			req:    childRequest{Dir: groupless},
			errHas: []string{"run the collector as uid 0"},
		},
		{
			name: "empty journal directory", groups: []uint32{otherGID},
			req: childRequest{Dir: emptyDir}, found: 0,
		},
		{
			name: "unrelated unlistable subdirectory", groups: []uint32{journalGID},
			req: childRequest{Dir: withRemote}, found: 1, entries: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := runChild(t, bin, tc.groups, tc.req)
			t.Logf("found=%d entries=%d err=%s", res.Found, res.Entries, res.Err)
			if len(tc.errHas) == 0 {
				if res.Err != "" || res.Found != tc.found {
					t.Fatalf("got found=%d err=%q, want found=%d and no error", res.Found, res.Err, tc.found)
				}
			} else {
				if res.Err == "" {
					t.Fatalf("got found=%d and no error, want an error", res.Found)
				}
				for _, s := range tc.errHas {
					if !strings.Contains(res.Err, s) {
						t.Errorf("error %q lacks %q", res.Err, s)
					}
				}
			}
			if tc.req.Dir != "" && res.Entries != tc.entries {
				t.Errorf("libsystemd read %d entries, want %d", res.Entries, tc.entries)
			}
		})
	}
}

func runChild(t *testing.T, bin string, groups []uint32, req childRequest) childResult {
	t.Helper()
	spec, _ := json.Marshal(req)
	cmd := exec.Command(bin, "-test.run=^TestAccessChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec), "GOCOVERDIR=")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: collectorUID, Gid: collectorUID, Groups: groups}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if s, ok := strings.CutPrefix(l, "RESULT "); ok {
			var res childResult
			if err := json.Unmarshal([]byte(s), &res); err != nil {
				t.Fatal(err)
			}
			return res
		}
	}
	t.Fatalf("child printed no result:\n%s", out)
	return childResult{}
}

func mkdir(t *testing.T, dir string, mode os.FileMode, gid int) {
	t.Helper()
	must(t, os.Mkdir(dir, 0o700))
	must(t, os.Chown(dir, 0, gid))
	must(t, os.Chmod(dir, mode)) // after chown, which clears setgid
}

func copyFile(t *testing.T, from, to string, mode os.FileMode, gid int) {
	t.Helper()
	b, err := os.ReadFile(from)
	must(t, err)
	must(t, os.WriteFile(to, b, 0o600))
	must(t, os.Chown(to, 0, gid))
	must(t, os.Chmod(to, mode))
}

func copyExecutable(t *testing.T, to string) {
	t.Helper()
	self, err := os.Executable()
	must(t, err)
	in, err := os.Open(self)
	must(t, err)
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	must(t, err)
	_, err = io.Copy(out, in)
	must(t, err)
	must(t, out.Close())
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
