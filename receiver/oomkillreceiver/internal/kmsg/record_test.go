package kmsg

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Record
	}{
		{
			name: "kernel victim line",
			in:   "3,2908,1355564,-;Memory cgroup out of memory: Killed process 2962 (python3) total-vm:221368kB, anon-rss:65024kB, file-rss:1628kB, shmem-rss:0kB, UID:0 pgtables:184kB oom_score_adj:0\n",
			want: Record{Facility: 0, Level: 3, Seq: 2908, Usec: 1355564, Message: "Memory cgroup out of memory: Killed process 2962 (python3) total-vm:221368kB, anon-rss:65024kB, file-rss:1628kB, shmem-rss:0kB, UID:0 pgtables:184kB oom_score_adj:0"},
		},
		{
			// A process wrote "<0>…" into /dev/kmsg: the kernel gave it
			// facility 1 (LOG_USER), so it cannot pass as the kernel's.
			name: "written by a process",
			in:   "8,2909,1355600,-;Memory cgroup out of memory: Killed process 1 (forged)\n",
			want: Record{Facility: 1, Level: 0, Seq: 2909, Usec: 1355600, Message: "Memory cgroup out of memory: Killed process 1 (forged)"},
		},
		{
			name: "continuation lines and a caller field are not the message",
			in:   "6,12,3000,-,caller=T1;usb 1-1: new high-speed USB device\n SUBSYSTEM=usb\n DEVICE=c189:1\n",
			want: Record{Level: 6, Seq: 12, Usec: 3000, Message: "usb 1-1: new high-speed USB device"},
		},
		{
			name: "a multi-line record keeps its newlines",
			in:   `6,40,31190300,-;anon 8208384\x0afile 0\x0akernel 180224` + "\n",
			want: Record{Level: 6, Seq: 40, Usec: 31190300, Message: "anon 8208384\nfile 0\nkernel 180224"},
		},
		{
			name: "escaped backslash, tab and non-ASCII bytes",
			in:   `4,7,1,c;a\x5cx41 b\x09c \xc3\xa9` + "\n",
			want: Record{Level: 4, Seq: 7, Usec: 1, Message: "a\\x41 b\tc é"},
		},
		{
			name: "no trailing newline",
			in:   "0,0,0,-;Linux version 6.1",
			want: Record{Message: "Linux version 6.1"},
		},
		{
			name: "empty message",
			in:   "6,1,2,-;\n",
			want: Record{Level: 6, Seq: 1, Usec: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.want.Facility == 0, got.FromKernel())
		})
	}
}

func TestParseMalformed(t *testing.T) {
	for in, want := range map[string]string{
		"no header at all\n":               "no ';' after the header",
		"6,1;two fields\n":                 `timestamp in header "6,1"`,
		"x,1,2,-;bad priority\n":           `priority in header "x,1,2,-"`,
		"6,-1,2,-;bad seq\n":               `sequence number in header "6,-1,2,-"`,
		"6,1,2.5,-;bad time\n":             `timestamp in header "6,1,2.5,-"`,
		"6,,2,-;empty seq\n":               "sequence number",
		"99999999999,1,2,-;prio too big\n": "priority",
		"6,1,99999999999999999999,-;x\n":   "timestamp",
		"":                                 "no ';'",
	} {
		_, err := Parse([]byte(in))
		require.ErrorIs(t, err, ErrMalformed, "%q", in)
		assert.ErrorContains(t, err, want, "%q", in)
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		``:             ``,
		`plain`:        `plain`,
		`\x0a`:         "\n",
		`\x0A\x7f`:     "\n\x7f",
		`tail\`:        `tail\`,
		`\x4`:          `\x4`,
		`\xzz`:         `\xzz`,
		`\n stays`:     `\n stays`,
		`a\x5c\x5cb`:   `a\\b`,
		`\x5cx41`:      `\x41`,
		`mid\x20space`: `mid space`,
	} {
		assert.Equal(t, want, Unescape([]byte(in)), "%q", in)
	}
}

// kernelEscape is how the kernel writes a message into /dev/kmsg
// (kernel/printk/printk.c, msg_add_ext_text): bytes below space, from 127
// up, and the backslash as \xNN.
func kernelEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c >= 127 || c == '\\' {
			fmt.Fprintf(&b, `\x%02x`, c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// The kernel lab's journals are what journald stored for real OOM reports
// on 6.1 and 6.12 (multi-line "Memory cgroup stats" records, hostile
// process names among the captured ones): written as the kernel writes
// them into /dev/kmsg, every record parses back to journald's MESSAGE,
// priority and kernel time.
func TestParseAgreesWithJournald(t *testing.T) {
	files, err := filepath.Glob("../../../../testdata/journal/*/*/*.export")
	require.NoError(t, err)
	more, err := filepath.Glob("../../../../testdata/journal/captured/*.export")
	require.NoError(t, err)
	files = append(files, more...)
	require.NotEmpty(t, files)
	multiLine, records := 0, 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for i, e := range exportEntries(t, b) {
			if e["_TRANSPORT"] != "kernel" {
				continue
			}
			prio, err := strconv.Atoi(e["PRIORITY"])
			require.NoError(t, err)
			fac := 0
			if e["SYSLOG_FACILITY"] != "" {
				fac, err = strconv.Atoi(e["SYSLOG_FACILITY"])
				require.NoError(t, err)
			}
			usec := e["_SOURCE_MONOTONIC_TIMESTAMP"]
			if usec == "" {
				usec = "0"
			}
			raw := fmt.Sprintf("%d,%d,%s,-;%s\n SUBSYSTEM=memory\n", fac<<3|prio, i, usec, kernelEscape(e["MESSAGE"]))
			rec, err := Parse([]byte(raw))
			require.NoError(t, err, "%s entry %d", f, i)
			assert.Equal(t, e["MESSAGE"], rec.Message, "%s entry %d", f, i)
			assert.Equal(t, e["SYSLOG_IDENTIFIER"] == "kernel", rec.FromKernel(), "%s entry %d", f, i)
			assert.Equal(t, usec, strconv.FormatUint(rec.Usec, 10))
			records++
			if strings.Contains(rec.Message, "\n") {
				multiLine++
			}
		}
	}
	t.Logf("%d kernel records of %d journals, %d of them multi-line", records, len(files), multiLine)
	assert.Positive(t, multiLine, "the fixtures hold multi-line records")
}

// exportEntries reads the journal export format: FIELD=value lines, or a
// name line, a little-endian 64-bit length and the raw value (values with
// newlines); entries end with a blank line.
func exportEntries(t *testing.T, b []byte) []map[string]string {
	t.Helper()
	var out []map[string]string
	cur := map[string]string{}
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		require.GreaterOrEqual(t, nl, 0, "export cut short")
		line := string(b[:nl])
		b = b[nl+1:]
		if line == "" {
			out = append(out, cur)
			cur = map[string]string{}
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			cur[k] = v
			continue
		}
		require.GreaterOrEqual(t, len(b), 8)
		n := int(binary.LittleEndian.Uint64(b))
		require.Greater(t, len(b), 8+n)
		cur[line] = string(b[8 : 8+n])
		b = b[8+n+1:]
	}
	return out
}
