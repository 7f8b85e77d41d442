//go:build linux

package oomcounter

import (
	"os"
	"syscall"
)

// Notifier signals C whenever one of the watched files is modified. The
// kernel notifies a change of a cgroup v2 memory.events file (a kill among
// the events) through inotify, rate-limited to one per 20 ms per file.
type Notifier struct {
	// C receives a value after changes; it holds one, so a burst of
	// changes is one wake-up.
	C  chan struct{}
	fd int
	f  *os.File
}

// NewNotifier starts an inotify instance and its reader.
func NewNotifier() (*Notifier, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	// A non-blocking descriptor goes through the runtime's poller, so
	// Close wakes a pending Read.
	n := &Notifier{C: make(chan struct{}, 1), fd: fd, f: os.NewFile(uintptr(fd), "inotify")}
	go n.loop()
	return n, nil
}

// Watch adds a file (watching it again is harmless: the kernel keeps one
// watch per inode).
func (n *Notifier) Watch(path string) error {
	if _, err := syscall.InotifyAddWatch(n.fd, path, syscall.IN_MODIFY); err != nil {
		return &os.PathError{Op: "inotify_add_watch", Path: path, Err: err}
	}
	return nil
}

func (n *Notifier) loop() {
	buf := make([]byte, 4096)
	for {
		if _, err := n.f.Read(buf); err != nil {
			return // closed
		}
		select {
		case n.C <- struct{}{}:
		default:
		}
	}
}

// Close stops the notifier.
func (n *Notifier) Close() error { return n.f.Close() }
