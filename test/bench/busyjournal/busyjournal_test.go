package busyjournal

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// The export holds what Write says it wrote: the entries, half of them the
// kernel's, and every captured report replayed whole, so the number of
// victim lines is the number of kills.
func TestWriteCountsWhatItWrites(t *testing.T) {
	reports, err := LoadReports(testutil.RepoPath(t, "testdata/kernel/captured"))
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	var b bytes.Buffer
	res, err := Write(&b, Spec{Entries: 200_000, Start: end.Add(-time.Minute), End: end, Reports: reports, KernelPerKill: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var entries, kernel, victims int
	for _, e := range strings.Split(strings.TrimSuffix(b.String(), "\n\n"), "\n\n") {
		entries++
		if strings.Contains(e, "\n_TRANSPORT=kernel\n") {
			kernel++
		}
		if i := strings.Index(e, "\nMESSAGE="); i >= 0 && victimLine.MatchString(e[i+len("\nMESSAGE="):]) {
			victims++
		}
	}
	if entries != res.Entries || kernel != res.KernelEntries || victims != res.Kills {
		t.Fatalf("export holds %d entries, %d kernel, %d victim lines; Write said %+v", entries, kernel, victims, res)
	}
	if res.Entries < 200_000 || res.KernelEntries < res.Entries/2 || res.Kills < res.KernelEntries/1000 || res.Kills > res.KernelEntries/1000+20 {
		t.Fatalf("not the asked-for shape: %+v", res)
	}
}

// Through systemd-journal-remote the entries become a journal that
// journalctl reads back whole: every kernel entry, every victim line.
func TestWriteFilesMakesARealJournal(t *testing.T) {
	reports, err := LoadReports(testutil.RepoPath(t, "testdata/kernel/captured"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	end := time.Now()
	res, err := WriteFiles(dir, Spec{Entries: 20_000, Start: end.Add(-time.Minute), End: end, Reports: reports, KernelPerKill: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("journalctl", "-D", dir, "_TRANSPORT=kernel", "-o", "cat", "--no-pager").Output()
	if err != nil {
		t.Fatalf("journalctl: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	victims := 0
	for _, l := range lines {
		if victimLine.MatchString(l) {
			victims++
		}
	}
	if len(lines) != res.KernelEntries || victims != res.Kills || res.Kills == 0 {
		t.Fatalf("journalctl read %d kernel entries with %d victim lines; Write said %+v", len(lines), victims, res)
	}
}
