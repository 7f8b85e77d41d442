//go:build linux && cgo

package journal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// watcher wakes Wait when the journal's directories change, and otherwise
// not at all. libsystemd's own wait cannot be interrupted: go-systemd holds
// the journal's lock while sd_journal_wait sleeps, and exposes neither
// sd_journal_get_fd nor sd_journal_process, so a reader waiting there has
// to wake up every so often to notice shutdown. The watcher is an inotify
// instance of the reader's own, read through Go's poller: Wait blocks on it
// until journald writes (after each write journald truncates the file to
// its size, which inotify reports as IN_MODIFY, for exactly this kind of
// reader), a file or machine-id directory appears or goes, or the context
// ends. It watches what libsystemd watches, or more; libsystemd keeps its
// own watches, which the reader lets it process after every wake-up.
type watcher struct {
	f *os.File
	// fd is f's descriptor, for adding watches: f.Fd() would take f out
	// of the poller.
	fd int
	// roots are the directories whose machine-id subdirectories are
	// watched too (journald's layout), including ones created later.
	roots map[string]bool
	// dirs is the directory of each watch descriptor.
	dirs map[int32]string
	buf  []byte
}

// dirMask is libsystemd's own mask for journal directories, plus
// IN_CLOSE_WRITE for writers that only append and close.
const dirMask = syscall.IN_CREATE | syscall.IN_DELETE | syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO |
	syscall.IN_MODIFY | syscall.IN_ATTRIB | syscall.IN_CLOSE_WRITE | syscall.IN_DELETE_SELF |
	syscall.IN_MOVE_SELF | syscall.IN_ONLYDIR

// newWatcher watches the directories libsystemd reads for loc: the
// directories holding loc.Files, or loc.Directory (else the default ones)
// and their machine-id subdirectories. Directories that do not exist are
// left out, as libsystemd leaves them out.
func newWatcher(loc Location) (*watcher, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	// Non-blocking, so os.File puts it in Go's poller: Read parks the
	// goroutine, not a thread, and a read deadline interrupts it.
	w := &watcher{
		f:     os.NewFile(uintptr(fd), "journal-inotify"),
		fd:    fd,
		roots: map[string]bool{},
		dirs:  map[int32]string{},
		buf:   make([]byte, 64*(syscall.SizeofInotifyEvent+syscall.NAME_MAX+1)),
	}
	if len(loc.Files) > 0 {
		for _, f := range loc.Files {
			w.add(filepath.Dir(f))
		}
	} else {
		roots := DefaultDirectories
		if loc.Directory != "" {
			roots = []string{loc.Directory}
		}
		for _, d := range roots {
			w.roots[d] = true
			w.addTree(d)
		}
	}
	if len(w.dirs) == 0 {
		_ = w.close()
		return nil, errors.New("no journal directory could be watched")
	}
	return w, nil
}

// addTree watches root and its machine-id subdirectories.
func (w *watcher) addTree(root string) {
	if !w.add(root) {
		return
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() && isJournalSubdir(e.Name()) {
			w.add(filepath.Join(root, e.Name()))
		}
	}
}

// add watches dir; a directory that is missing or may not be read is left
// out (libsystemd cannot read it either).
func (w *watcher) add(dir string) bool {
	wd, err := syscall.InotifyAddWatch(w.fd, dir, dirMask)
	if err != nil {
		return false
	}
	w.dirs[int32(wd)] = dir
	return true
}

// wait blocks until a watched directory changed or ctx is done.
func (w *watcher) wait(ctx context.Context) error {
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(interrupted)
		_ = w.f.SetReadDeadline(time.Unix(1, 0)) // in the past: Read returns now
	})
	n, readErr := w.f.Read(w.buf)
	if !stop() {
		<-interrupted
	}
	if err := w.f.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	switch {
	case errors.Is(readErr, os.ErrDeadlineExceeded):
		return nil
	case readErr != nil:
		return fmt.Errorf("reading journal directory changes: %w", readErr)
	}
	w.handle(w.buf[:n])
	return nil
}

// handle follows new machine-id directories in the roots: journald creates
// one when it first writes a machine's journal there.
func (w *watcher) handle(events []byte) {
	for len(events) >= syscall.SizeofInotifyEvent {
		wd := int32(binary.NativeEndian.Uint32(events[0:]))
		mask := binary.NativeEndian.Uint32(events[4:])
		nameLen := int(binary.NativeEndian.Uint32(events[12:]))
		end := min(syscall.SizeofInotifyEvent+nameLen, len(events))
		name := string(trimNUL(events[syscall.SizeofInotifyEvent:end]))
		events = events[end:]
		switch {
		case mask&syscall.IN_Q_OVERFLOW != 0:
			// Events were dropped, maybe a directory's creation.
			for root := range w.roots {
				w.addTree(root)
			}
		case mask&syscall.IN_IGNORED != 0:
			delete(w.dirs, wd)
		case mask&syscall.IN_ISDIR != 0 && mask&(syscall.IN_CREATE|syscall.IN_MOVED_TO) != 0:
			if dir, ok := w.dirs[wd]; ok && w.roots[dir] && isJournalSubdir(name) {
				w.add(filepath.Join(dir, name))
			}
		}
	}
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

func (w *watcher) close() error { return w.f.Close() }
