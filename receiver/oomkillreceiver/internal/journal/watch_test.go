//go:build linux && cgo

package journal

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kernlog"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

const testBoot = "0123456789abcdef0123456789abcdef"

var testStart = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func entry(msg string, i int) []journaltest.Entry {
	return journaltest.Entries([]string{msg}, testStart.Add(time.Duration(i)*time.Second), testBoot, "node")
}

// readAll returns the texts of the lines readable now.
func readAll(t *testing.T, src kernlog.Source) []string {
	t.Helper()
	var out []string
	for {
		ok, err := src.Next()
		require.NoError(t, err)
		if !ok {
			return out
		}
		text, err := src.Text()
		require.NoError(t, err)
		out = append(out, text)
	}
}

// waitAndRead waits until lines are readable and reads them. Every Wait
// must return well before its far deadline: woken by a change. A writer
// makes several changes (creating, writing, closing a file), so the first
// wake-up may come before its lines are readable.
func waitAndRead(t *testing.T, src kernlog.Source, what string) []string {
	t.Helper()
	const limit = 20 * time.Second
	for range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		start := time.Now()
		require.NoError(t, src.Wait(ctx))
		cancel()
		require.Less(t, time.Since(start), limit/2, "%s: Wait was not woken", what)
		if got := readAll(t, src); len(got) > 0 {
			return got
		}
	}
	t.Fatalf("%s: woken 50 times, nothing to read", what)
	return nil
}

// Wait sleeps while the journal does not change, however long, and wakes
// when journald appends, when a file appears, and when a machine-id
// directory made after Open gets its journal, as libsystemd follows them.
func TestWaitSleepsUntilTheJournalChanges(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.journal")
	journaltest.Write(t, a, entry("first", 0))
	src, err := Open(Location{Directory: dir}, Options{})
	require.NoError(t, err)
	defer src.Close()
	require.NotNil(t, src.(*Reader).watch, "the directory is watched")
	assert.Equal(t, []string{"first"}, readAll(t, src))

	// Nothing changes: no wake-up before the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	start := time.Now()
	require.NoError(t, src.Wait(ctx))
	cancel()
	assert.GreaterOrEqual(t, time.Since(start), 1500*time.Millisecond, "woke up with nothing changed")

	written := make(chan struct{}, 1)
	later := func(f func()) {
		go func() { time.Sleep(300 * time.Millisecond); f(); written <- struct{}{} }()
	}
	later(func() { journaltest.Write(t, a, entry("second", 1)) })
	assert.Equal(t, []string{"second"}, waitAndRead(t, src, "an append"))
	<-written

	later(func() { journaltest.Write(t, filepath.Join(dir, "b.journal"), entry("third", 2)) })
	assert.Equal(t, []string{"third"}, waitAndRead(t, src, "a new file"))
	<-written

	sub := filepath.Join(dir, "3d1219c7c4c5404aaa1f6d2a48adfda4")
	later(func() {
		if assert.NoError(t, os.Mkdir(sub, 0o755)) {
			journaltest.Write(t, filepath.Join(sub, "system.journal"), entry("fourth", 3))
		}
	})
	assert.Equal(t, []string{"fourth"}, waitAndRead(t, src, "a new machine-id directory"))
	<-written
	later(func() { journaltest.Write(t, filepath.Join(sub, "system.journal"), entry("fifth", 4)) })
	assert.Equal(t, []string{"fifth"}, waitAndRead(t, src, "an append in the new machine-id directory"))
	<-written

	// Shutdown: a cancelled context ends Wait at once.
	ctx, cancel = context.WithCancel(context.Background())
	later(cancel)
	defer func() { <-written }()
	start = time.Now()
	require.NoError(t, src.Wait(ctx))
	assert.Less(t, time.Since(start), 10*time.Second)
}

// journal.files: the files' directories are watched, so appends wake Wait.
func TestWaitFollowsAppendsToFiles(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.journal")
	journaltest.Write(t, a, entry("first", 0))
	src, err := Open(Location{Files: []string{a}}, Options{})
	require.NoError(t, err)
	defer src.Close()
	assert.Equal(t, []string{"first"}, readAll(t, src))
	written := make(chan struct{})
	go func() {
		defer close(written)
		time.Sleep(300 * time.Millisecond)
		journaltest.Write(t, a, entry("second", 1))
	}()
	assert.Equal(t, []string{"second"}, waitAndRead(t, src, "an append"))
	<-written
}
