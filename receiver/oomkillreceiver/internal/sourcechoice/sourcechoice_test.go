package sourcechoice

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSocketTellsLiveFromDead(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "socket")

	state, saw := probeSocket(sock)
	assert.Equal(t, JournaldUnseen, state)
	assert.Equal(t, "journald's socket "+sock+" is not there", saw)

	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	require.NoError(t, err)
	state, saw = probeSocket(sock)
	assert.Equal(t, JournaldRunning, state)
	assert.Equal(t, "journald's socket "+sock+" accepts messages", saw)

	// Closing a datagram socket leaves its file behind, as a journald
	// that stopped does.
	require.NoError(t, l.Close())
	_, err = os.Stat(sock)
	require.NoError(t, err, "the socket file stays")
	state, saw = probeSocket(sock)
	assert.Equal(t, JournaldStopped, state)
	assert.Equal(t, "journald's socket "+sock+" refuses messages: no journald runs", saw)

	plain := filepath.Join(dir, "plain")
	require.NoError(t, os.WriteFile(plain, nil, 0o600))
	state, _ = probeSocket(plain)
	assert.Equal(t, JournaldUnseen, state)
}

// A process whose command line names systemd-journald is taken for one;
// systemd-journal-remote, with the same comm, is not.
func TestJournaldProcess(t *testing.T) {
	proc := t.TempDir()
	write := func(pid, cmdline string) {
		require.NoError(t, os.MkdirAll(filepath.Join(proc, pid), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(proc, pid, "cmdline"), []byte(cmdline), 0o600))
	}
	write("12", "/lib/systemd/systemd-journal-remote\x00-o\x00x.journal\x00")
	write("13", "")
	_, ok := journaldProcess(proc)
	assert.False(t, ok)
	write("40", "/lib/systemd/systemd-journald\x00")
	pid, ok := journaldProcess(proc)
	assert.True(t, ok)
	assert.Equal(t, "40", pid)
}

// The same on this machine's /proc, with a real process named so.
func TestJournaldProcessInProc(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	if _, ok := journaldProcess("/proc"); ok {
		t.Skip("a systemd-journald runs on this machine: the test's own would not be told from it")
	}
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	cmd := &exec.Cmd{Path: sleep, Args: []string{"/lib/systemd/systemd-journald", "30"}}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	state, saw := LookForJournald(filepath.Join(t.TempDir(), "none"), "/proc")
	assert.Equal(t, JournaldRunning, state)
	assert.Equal(t, "a systemd-journald process runs (pid "+strconv.Itoa(cmd.Process.Pid)+")", saw)
}

func TestDecide(t *testing.T) {
	denied := errors.New("permission denied")
	running := Evidence{Journald: JournaldRunning, JournaldSeen: "journald's socket S accepts messages"}
	stopped := Evidence{Journald: JournaldStopped, JournaldSeen: "journald's socket S refuses messages: no journald runs"}
	unseen := Evidence{Journald: JournaldUnseen, JournaldSeen: "journald's socket S is not there"}
	with := func(e Evidence, journalErr, kmsgErr error) Evidence {
		e.JournalErr, e.KmsgErr = journalErr, kmsgErr
		return e
	}
	tests := []struct {
		name    string
		e       Evidence
		want    Choice
		wantErr string
	}{
		{"journald writes the journal", with(running, nil, nil), Choice{Source: Journal, Reason: "journald's socket S accepts messages"}, ""},
		{
			"journald writes a journal this process may not read", with(running, denied, nil),
			Choice{Source: Kmsg, Reason: "journald's socket S accepts messages, but the journal cannot be read (permission denied)"},
			"",
		},
		{
			"journald stopped: its files are stale", with(stopped, nil, nil),
			Choice{Source: Kmsg, Reason: "journald's socket S refuses messages: no journald runs"},
			"",
		},
		{
			"no journald seen", with(unseen, nil, nil),
			Choice{Source: Kmsg, Reason: "journald's socket S is not there, and no systemd-journald process is visible"},
			"",
		},
		{
			"only journal files visible (a pod without the device)", with(unseen, nil, denied),
			Choice{Source: Journal, Doubtful: true, Reason: "journald's socket S is not there and /dev/kmsg cannot be read (permission denied); the journal files are read, but they grow only while a journald writes them"},
			"",
		},
		{
			"journald stopped and no device", with(stopped, nil, denied),
			Choice{},
			"source: auto found no kernel log to read. the journal: journald's socket S refuses messages: no journald runs, so its files are stale; /dev/kmsg: permission denied",
		},
		{
			"nothing readable", with(unseen, errors.New("no journal directory"), denied),
			Choice{},
			"source: auto found no kernel log to read. the journal: no journal directory; /dev/kmsg: permission denied",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decide(tt.e)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
