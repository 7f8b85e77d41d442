package testutil

import (
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a program a test started, its output (stdout and stderr) in a
// log file. It is stopped when the test ends, if the test did not stop it.
type Process struct {
	Name    string
	Cmd     *exec.Cmd
	Started time.Time
	// LogPath is the log file; a shared one (ProcessOptions.LogFile) holds
	// earlier runs too, and Log reads only this run's part.
	LogPath string

	logFrom  int64
	exited   chan struct{}
	waitErr  error
	stopOnce sync.Once

	mu     sync.Mutex
	killed bool // KillWithin sent or will send the SIGKILL
}

// ProcessOptions say how to start a process; the zero value runs it with
// the test's environment and a log file of its own.
type ProcessOptions struct {
	Env []string // added to the test's environment
	// LogFile, when set, is appended to (e.g. one log across restarts);
	// otherwise the log is <name>.log in a temporary directory, and its tail
	// is printed when the test fails.
	LogFile string
}

// StartProcess starts bin with args. Where the platform allows, the process
// is killed if the test binary dies, so a crashed test leaves none behind.
func StartProcess(t testing.TB, name, bin string, args []string, o ProcessOptions) *Process {
	t.Helper()
	p := &Process{Name: name, Cmd: exec.Command(bin, args...), LogPath: o.LogFile, exited: make(chan struct{})}
	own := p.LogPath == ""
	if own {
		p.LogPath = filepath.Join(t.TempDir(), name+".log")
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	if st, err := logf.Stat(); err == nil {
		p.logFrom = st.Size()
	}
	p.Cmd.Env = append(os.Environ(), o.Env...)
	p.Cmd.Stdout, p.Cmd.Stderr = logf, logf
	dieWithParent(p.Cmd)
	p.Started = time.Now()
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() { p.waitErr = p.Cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.Stop()
		if own && t.Failed() {
			t.Logf("%s log (tail):\n%s", name, p.LogTail(20000))
		}
	})
	return p
}

// StartCollector starts the built collector (CollectorBinary) with the
// configuration file config.
func StartCollector(t testing.TB, config string, o ProcessOptions) *Process {
	t.Helper()
	return StartProcess(t, "otelcol-oomkill", CollectorBinary(t), []string{"--config", config}, o)
}

// WriteConfig writes a configuration into a temporary directory and returns
// its path.
func WriteConfig(t testing.TB, config string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ready is what the collector logs once every component started.
const ready = "Everything is ready"

// WaitReady waits until the collector logged that every component started
// (receivers start last: data before that is not read from its start). It
// fails the test when the process exits first or takes longer than within.
func (p *Process) WaitReady(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !p.Logged(ready) {
		select {
		case <-p.exited:
			t.Fatalf("%s exited before it was ready (%v); log:\n%s", p.Name, p.waitErr, p.LogTail(20000))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not ready within %v; log:\n%s", p.Name, within, p.LogTail(20000))
		}
	}
}

// Pid is the process's ID.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Exited is closed once the process exited; Err then says how.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is what waiting for the process returned (nil before it exited).
func (p *Process) Err() error {
	select {
	case <-p.exited:
		return p.waitErr
	default:
		return nil
	}
}

// Log returns this run's output so far.
func (p *Process) Log() string {
	f, err := os.Open(p.LogPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(p.logFrom, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// LogTail returns the last n bytes of this run's output.
func (p *Process) LogTail(n int) string {
	s := p.Log()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// Logged reports whether this run's output contains s.
func (p *Process) Logged(s string) bool { return strings.Contains(p.Log(), s) }

// SignalAndWait sends sig, unless KillWithin already killed the process
// or will, and waits until it exited.
func (p *Process) SignalAndWait(t testing.TB, sig syscall.Signal) {
	t.Helper()
	p.mu.Lock()
	sent := p.killed
	p.mu.Unlock()
	if !sent {
		if err := p.Cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatalf("%s: %v", p.Name, err)
		}
	}
	<-p.exited
}

// KillWithin SIGKILLs the process at a random moment in the next d, while
// the caller goes on (e.g. appends to the journal).
func (p *Process) KillWithin(d time.Duration) {
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	delay := time.Duration(rand.Int64N(int64(d)))
	go func() {
		time.Sleep(delay)
		_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	}()
}

// Stop ends the process as a service manager would: SIGTERM, then SIGKILL
// after 20 s; it returns once the process exited. Stopping a stopped
// process does nothing.
func (p *Process) Stop() {
	p.stopOnce.Do(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			_ = p.Cmd.Process.Kill()
			<-p.exited
		}
	})
}
