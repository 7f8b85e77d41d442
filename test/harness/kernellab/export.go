package kernellab

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Entry is one journal entry of the export format.
type Entry struct {
	Fields map[string]string
	// Raw is the entry's bytes, blank line included, as journalctl wrote it.
	Raw []byte
}

// Message is the entry's MESSAGE.
func (e Entry) Message() string { return e.Fields["MESSAGE"] }

// Kernel reports whether the kernel itself printed the entry (not a
// process writing to /dev/kmsg).
func (e Entry) Kernel() bool {
	return e.Fields["_TRANSPORT"] == "kernel" && e.Fields["SYSLOG_IDENTIFIER"] == "kernel"
}

// ParseExport splits the journal export format ("FIELD=value" lines, or a
// field name, a 64-bit little-endian length and raw bytes for binary
// values; entries end with a blank line) into entries.
func ParseExport(b []byte) ([]Entry, error) {
	var out []Entry
	cur := Entry{Fields: map[string]string{}}
	start, pos := 0, 0
	for pos < len(b) {
		nl := bytes.IndexByte(b[pos:], '\n')
		if nl < 0 {
			return out, fmt.Errorf("journal export: entry %d is cut short", len(out)+1)
		}
		line := b[pos : pos+nl]
		if len(line) == 0 {
			cur.Raw = b[start : pos+1]
			out = append(out, cur)
			cur = Entry{Fields: map[string]string{}}
			pos++
			start = pos
			continue
		}
		if name, value, ok := bytes.Cut(line, []byte("=")); ok {
			cur.Fields[string(name)] = string(value)
			pos += nl + 1
			continue
		}
		p := pos + nl + 1
		if p+8 > len(b) {
			return out, fmt.Errorf("journal export: binary field %q is cut short", line)
		}
		n := binary.LittleEndian.Uint64(b[p : p+8])
		if n > uint64(len(b)-p-8) || p+8+int(n) >= len(b) || b[p+8+int(n)] != '\n' {
			return out, fmt.Errorf("journal export: binary field %q has a bad length", line)
		}
		cur.Fields[string(line)] = string(b[p+8 : p+8+int(n)])
		pos = p + 8 + int(n) + 1
	}
	if pos > start {
		return out, fmt.Errorf("journal export: the last entry has no blank line")
	}
	return out, nil
}

// Between returns the kernel's own entries strictly between the entries
// whose MESSAGE is begin and end (markers a script wrote to /dev/kmsg).
func Between(entries []Entry, begin, end string) ([]Entry, error) {
	b, e := -1, -1
	for i, en := range entries {
		switch en.Message() {
		case begin:
			if b < 0 {
				b = i
			}
		case end:
			if b >= 0 && e < 0 {
				e = i
			}
		}
	}
	if b < 0 || e < 0 {
		return nil, fmt.Errorf("journal: markers %q / %q not found", begin, end)
	}
	var out []Entry
	for _, en := range entries[b+1 : e] {
		if en.Kernel() {
			out = append(out, en)
		}
	}
	return out, nil
}
