// Package sourcechoice decides which kernel log `source: auto` reads: the
// journal while a journald writes it, the kernel's own /dev/kmsg otherwise.
// Journal files alone prove nothing: a journald that stopped leaves them
// behind, and following them would report nothing, ever. What shows a
// journald at work is its socket accepting messages, or its process.
package sourcechoice

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// The sources.
const (
	Journal = "journal"
	Kmsg    = "kmsg"
)

// Journald is what could be seen of a journald.
type Journald int

const (
	// JournaldUnseen: neither its socket nor its process is visible here
	// (e.g. a container with only the journal files mounted).
	JournaldUnseen Journald = iota
	// JournaldRunning: its socket accepts messages, or its process runs.
	JournaldRunning
	// JournaldStopped: its socket is there and refuses messages: no
	// journald runs, and its files are not growing.
	JournaldStopped
)

// DefaultSocket is where journald takes native messages (a datagram
// socket); systemd or journald itself binds it.
const DefaultSocket = "/run/systemd/journal/socket"

// LookForJournald checks journald's socket, then /proc for its process.
// It says what it saw, for the log.
func LookForJournald(socket, procDir string) (Journald, string) {
	state, saw := probeSocket(socket)
	if state == JournaldRunning {
		return state, saw
	}
	if pid, ok := journaldProcess(procDir); ok {
		return JournaldRunning, fmt.Sprintf("a systemd-journald process runs (pid %s)", pid)
	}
	return state, saw
}

// probeSocket connects to the datagram socket, sending nothing: connect(2)
// on a Unix datagram socket fails with ECONNREFUSED when nothing is bound
// to the path, so a socket file a dead journald left behind is told from
// a live one. It works through a read-only mount.
func probeSocket(path string) (Journald, string) {
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return JournaldUnseen, fmt.Sprintf("journald's socket %s is not there", path)
	case st.Mode().Type() != os.ModeSocket:
		return JournaldUnseen, fmt.Sprintf("%s is not a socket", path)
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err == nil {
		_ = c.Close()
		return JournaldRunning, fmt.Sprintf("journald's socket %s accepts messages", path)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return JournaldStopped, fmt.Sprintf("journald's socket %s refuses messages: no journald runs", path)
	}
	return JournaldUnseen, fmt.Sprintf("journald's socket %s cannot be tried: %v", path, err)
}

// journaldProcess finds a systemd-journald by the program its command line
// names: its comm, "systemd-journal", is systemd-journal-remote's too, and
// a process's exe link is readable only with ptrace rights.
func journaldProcess(procDir string) (string, bool) {
	cmdlines, _ := filepath.Glob(filepath.Join(procDir, "[0-9]*", "cmdline"))
	for _, f := range cmdlines {
		b, err := os.ReadFile(f) //nolint:gosec // G304: /proc/<pid>/cmdline
		if err != nil || len(b) == 0 {
			continue
		}
		argv0, _, _ := strings.Cut(string(b), "\x00")
		if filepath.Base(argv0) == "systemd-journald" {
			return filepath.Base(filepath.Dir(f)), true
		}
	}
	return "", false
}

// Evidence is what the choice is made from.
type Evidence struct {
	Journald Journald
	// JournaldSeen says how Journald was found out, for the log.
	JournaldSeen string
	// JournalErr is why the journal files cannot be read (nil: they can).
	JournalErr error
	// KmsgErr is why /dev/kmsg cannot be opened (nil: it can).
	KmsgErr error
}

// Choice is the source to read, and why.
type Choice struct {
	Source string
	Reason string
	// Doubtful: the journal was chosen without seeing a journald write it;
	// the receiver warns.
	Doubtful bool
}

// Decide picks the journal when a journald is seen writing it (it keeps
// history across reboots and beyond the kernel's small ring buffer), and
// /dev/kmsg otherwise (it needs no daemon). When neither can be read, the
// error says what each needs.
func Decide(e Evidence) (Choice, error) {
	switch {
	case e.Journald == JournaldRunning && e.JournalErr == nil:
		return Choice{Source: Journal, Reason: e.JournaldSeen}, nil
	case e.Journald == JournaldRunning && e.KmsgErr == nil:
		return Choice{Source: Kmsg, Reason: fmt.Sprintf("%s, but the journal cannot be read (%v)", e.JournaldSeen, e.JournalErr)}, nil
	case e.KmsgErr == nil:
		why := e.JournaldSeen
		if e.Journald == JournaldUnseen {
			why += ", and no systemd-journald process is visible"
		}
		return Choice{Source: Kmsg, Reason: why}, nil
	case e.Journald != JournaldStopped && e.JournalErr == nil:
		return Choice{Source: Journal, Doubtful: true, Reason: fmt.Sprintf(
			"%s and /dev/kmsg cannot be read (%v); the journal files are read, but they grow only while a journald writes them", e.JournaldSeen, e.KmsgErr)}, nil
	}
	journal := "the journal: " + errString(e.JournalErr)
	if e.JournalErr == nil {
		journal = "the journal: " + e.JournaldSeen + ", so its files are stale"
	}
	return Choice{}, fmt.Errorf("source: auto found no kernel log to read. %s; /dev/kmsg: %w", journal, e.KmsgErr)
}

func errString(err error) string {
	if err == nil {
		return "readable"
	}
	return err.Error()
}
