package oomparse

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// kernelFixtures is the repository's shared kernel-report fixture folder.
const kernelFixtures = "../../../../testdata/kernel"

// loadFixture reads a kernel fixture: one kernel message per line as the
// journal's MESSAGE holds it. Lines starting with "# " are comments;
// "@boot ID" switches the boot ID and "@sleep SECONDS" advances the clock;
// "@|TEXT" continues the message before it with a new line TEXT.
func loadFixture(t testing.TB, path string) []Message {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var msgs []Message
	now := time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)
	boot := "boot-1"
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "# "):
			continue
		case strings.HasPrefix(line, "@boot "):
			boot = strings.TrimPrefix(line, "@boot ")
			continue
		case strings.HasPrefix(line, "@|"):
			require.NotEmpty(t, msgs, "%s: continuation without a message", path)
			msgs[len(msgs)-1].Text += "\n" + line[2:]
			continue
		case strings.HasPrefix(line, "@sleep "):
			s, err := strconv.ParseFloat(strings.TrimPrefix(line, "@sleep "), 64)
			require.NoError(t, err)
			now = now.Add(time.Duration(s * float64(time.Second)))
			continue
		}
		now = now.Add(time.Millisecond)
		msgs = append(msgs, Message{Text: line, Time: now, BootID: boot})
	}
	require.NoError(t, sc.Err())
	return msgs
}

// feedAll runs msgs through a fresh assembler and returns the kills.
func feedAll(msgs []Message) ([]Kill, Stats) {
	a := NewAssembler(Options{})
	var kills []Kill
	for _, m := range msgs {
		if k, out := a.Feed(m); out == LineKill {
			kills = append(kills, k)
		}
	}
	return kills, a.Stats()
}

func fixturePath(name string) string { return filepath.Join(kernelFixtures, name) }
