package busyjournal

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// The export holds what Write says it wrote: the entries, half of them the
// kernel's, and every captured report replayed whole, so the number of
// victim lines is the number of kills.
func TestWriteCountsWhatItWrites(t *testing.T) {
	reports, err := LoadReports("../../../testdata/kernel/captured")
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
