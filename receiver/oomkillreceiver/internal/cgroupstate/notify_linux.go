//go:build linux

package cgroupstate

import (
	"os"
	"syscall"
)

// Notifier signals C when one of the watched cgroup.events files changes
// (the kernel notifies inotify of each change of the populated flag). It
// costs one inotify instance and a goroutine blocked on it: make one only
// while something is watched, and Close it after.
type Notifier struct {
	// C receives a value after changes; it holds one, so a burst of
	// changes is one wake-up.
	C chan struct{}
	f *os.File
}

// NewNotifier starts an inotify instance and its reader.
func NewNotifier() (*Notifier, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	// A non-blocking descriptor goes through the runtime's poller, so
	// Close wakes the pending Read.
	n := &Notifier{C: make(chan struct{}, 1), f: os.NewFile(uintptr(fd), "inotify")}
	go n.loop()
	return n, nil
}

// Watch adds a file; watching one again is harmless (one watch per inode).
func (n *Notifier) Watch(path string) error {
	rc, err := n.f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	if err := rc.Control(func(fd uintptr) {
		_, werr = syscall.InotifyAddWatch(int(fd), path, syscall.IN_MODIFY)
	}); err != nil {
		return err
	}
	if werr != nil {
		return &os.PathError{Op: "inotify_add_watch", Path: path, Err: werr}
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

// Close stops the notifier and removes its watches.
func (n *Notifier) Close() error { return n.f.Close() }
