// Package kmsg reads the kernel's log records from /dev/kmsg in pure Go (no
// cgo, no child process): every Linux node has it, with or without
// journald. The record format is the kernel's ABI
// (Documentation/ABI/testing/dev-kmsg): one record per read(2),
//
//	PRIO,SEQ,USEC,FLAGS[,more];MESSAGE
//	 KEY=VALUE
//
// with the message's non-printable bytes and backslashes escaped as \xNN.
// Parsing (this file) does no I/O and builds everywhere; the reader is
// Linux-only.
package kmsg

import (
	"bytes"
	"errors"
	"fmt"
)

// Record is one kernel log record as /dev/kmsg delivers it.
type Record struct {
	// Facility is the syslog facility: 0 for lines the kernel printed;
	// a process writing into /dev/kmsg always gets another (the kernel
	// turns facility 0 into 1, LOG_USER), so it cannot forge kernel lines.
	Facility uint32
	// Level is the syslog level, 0 (emerg) to 7 (debug).
	Level uint32
	// Seq is the record's sequence number, counted from 0 at boot.
	Seq uint64
	// Usec is the kernel's timestamp in µs since boot: the value journald
	// stores as _SOURCE_MONOTONIC_TIMESTAMP.
	Usec uint64
	// Message is the text, unescaped: a record the kernel printed as
	// several lines (e.g. "Memory cgroup stats for …") keeps its newlines,
	// as journald's MESSAGE does.
	Message string
}

// FromKernel tells a line the kernel printed from one a process wrote.
func (r *Record) FromKernel() bool { return r.Facility == 0 }

// ErrMalformed is wrapped by Parse's errors.
var ErrMalformed = errors.New("malformed /dev/kmsg record")

// Parse reads one record as returned by one read(2) of /dev/kmsg. Header
// fields after FLAGS (e.g. caller=T123 with CONFIG_PRINTK_CALLER) and the
// KEY=VALUE continuation lines are ignored, as the ABI asks of readers.
func Parse(b []byte) (Record, error) {
	semi := bytes.IndexByte(b, ';')
	if semi < 0 {
		return Record{}, fmt.Errorf("%w: no ';' after the header in %q", ErrMalformed, truncate(b))
	}
	header := b[:semi]
	prio, rest, ok := number(header)
	if !ok || prio > 1<<32-1 {
		return Record{}, fmt.Errorf("%w: priority in header %q", ErrMalformed, header)
	}
	seq, rest, ok := number(rest)
	if !ok {
		return Record{}, fmt.Errorf("%w: sequence number in header %q", ErrMalformed, header)
	}
	usec, _, ok := number(rest) // FLAGS and any later fields: ignored
	if !ok {
		return Record{}, fmt.Errorf("%w: timestamp in header %q", ErrMalformed, header)
	}
	msg := b[semi+1:]
	if nl := bytes.IndexByte(msg, '\n'); nl >= 0 {
		msg = msg[:nl]
	}
	return Record{
		Facility: uint32(prio >> 3),
		Level:    uint32(prio & 7),
		Seq:      seq,
		Usec:     usec,
		Message:  Unescape(msg),
	}, nil
}

// number reads the decimal field at the start of b, up to a comma or the
// end, and returns what follows the comma.
func number(b []byte) (n uint64, rest []byte, ok bool) {
	i := 0
	for ; i < len(b) && b[i] != ','; i++ {
		c := b[i]
		if c < '0' || c > '9' || n > (1<<64-1-9)/10 {
			return 0, nil, false
		}
		n = n*10 + uint64(c-'0')
	}
	if i == 0 {
		return 0, nil, false
	}
	if i < len(b) {
		i++ // the comma
	}
	return n, b[i:], true
}

// Unescape undoes the kernel's \xNN escaping. The kernel escapes every
// backslash too (as \x5c), so any other backslash sequence cannot come from
// it and is kept as it is, as journald keeps it.
func Unescape(b []byte) string {
	i := bytes.IndexByte(b, '\\')
	if i < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for ; i >= 0; i = bytes.IndexByte(b, '\\') {
		out = append(out, b[:i]...)
		if i+3 < len(b) && b[i+1] == 'x' {
			if hi, lo := unhex(b[i+2]), unhex(b[i+3]); hi >= 0 && lo >= 0 {
				out = append(out, byte(hi<<4|lo))
				b = b[i+4:]
				continue
			}
		}
		out = append(out, '\\')
		b = b[i+1:]
	}
	return string(append(out, b...))
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func truncate(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}
