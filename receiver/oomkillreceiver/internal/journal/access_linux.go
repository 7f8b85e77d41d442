//go:build linux && cgo

package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// AccessError is a journal directory or file this process may not read.
// Its message names the group that would let it read: journald's files
// are root:systemd-journal (gid distribution-specific), and a non-root
// collector reads them only as a member of that group.
type AccessError struct {
	Path string
	Dir  bool
	Err  error
	// Mode (permission bits as chmod takes them), UID and GID of Path;
	// HaveOwner is false when Path could not even be stat'ed.
	Mode      fs.FileMode
	UID, GID  uint32
	HaveOwner bool
}

func newAccessError(path string, dir bool, err error) *AccessError {
	e := &AccessError{Path: path, Dir: dir, Err: err}
	var st syscall.Stat_t
	if syscall.Stat(path, &st) == nil {
		e.HaveOwner = true
		e.UID, e.GID, e.Mode = st.Uid, st.Gid, fs.FileMode(st.Mode&0o7777)
	}
	return e
}

func (e *AccessError) Unwrap() error { return e.Err }

func (e *AccessError) Error() string {
	what := "journal file"
	if e.Dir {
		what = "journal directory"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "cannot read %s %s", what, e.Path)
	if e.HaveOwner {
		fmt.Fprintf(&b, " (mode %04o, owner uid %d, group %s)", uint32(e.Mode), e.UID, groupName(e.GID))
	}
	cause := e.Err
	var pe *fs.PathError
	if errors.As(cause, &pe) {
		cause = pe.Err
	}
	fmt.Fprintf(&b, ": %v; this process runs as uid %d with groups %s", cause, os.Getuid(), processGroups())
	if !e.HaveOwner {
		return b.String()
	}
	// Directories need r and x for their group, files r.
	need := fs.FileMode(0o040)
	if e.Dir {
		need = 0o050
	}
	if e.Mode&need == need {
		fmt.Fprintf(&b, ": add gid %d to the collector's groups (Kubernetes: the pod's securityContext.supplementalGroups; docker/podman: --group-add %d)", e.GID, e.GID)
	} else {
		fmt.Fprintf(&b, ": its group may not read it either; run the collector as uid %d or grant read access to a group it is in", e.UID)
	}
	return b.String()
}

// groupName is "gid N" or "gid N (name)" when this system knows the name;
// inside a container it usually does not, and the node's name may differ.
func groupName(gid uint32) string {
	s := "gid " + strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		s += " (" + g.Name + ")"
	}
	return s
}

func processGroups() string {
	ids := []int{os.Getgid()}
	if gs, err := os.Getgroups(); err == nil {
		for _, g := range gs {
			if g != ids[0] {
				ids = append(ids, g)
			}
		}
	}
	s := make([]string, len(ids))
	for i, g := range ids {
		s[i] = strconv.Itoa(g)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// scanDir lists the journal files libsystemd would read under dir: files
// in dir itself and in its machine-id subdirectories (journald's layout:
// /var/log/journal/<machine-id>/system.journal). Directories and files it
// may not read are returned as AccessErrors rather than skipped: a Glob
// would hide an unlistable machine-id directory, and the journal would
// look empty for ever.
func scanDir(dir string) (files []string, denied []*AccessError, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, []*AccessError{newAccessError(dir, true, err)}, nil
		}
		return nil, nil, fmt.Errorf("reading journal directory: %w", err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch {
		case isJournalFile(e.Name()) && !e.IsDir():
			files = append(files, p)
		case e.IsDir() && isJournalSubdir(e.Name()):
			sub, err := os.ReadDir(p)
			if err != nil {
				if errors.Is(err, fs.ErrPermission) {
					denied = append(denied, newAccessError(p, true, err))
					continue
				}
				return nil, nil, fmt.Errorf("reading journal directory: %w", err)
			}
			for _, f := range sub {
				if isJournalFile(f.Name()) && !f.IsDir() {
					files = append(files, filepath.Join(p, f.Name()))
				}
			}
		}
	}
	return files, denied, nil
}

func isJournalFile(name string) bool {
	return strings.HasSuffix(name, ".journal") || strings.HasSuffix(name, ".journal~")
}

// isJournalSubdir: a machine ID (32 hex digits), optionally followed by
// ".<namespace>", as libsystemd recognises them. Other directories
// (e.g. journal-remote's "remote") are not the local journal.
func isJournalSubdir(name string) bool {
	id, _, _ := strings.Cut(name, ".")
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
