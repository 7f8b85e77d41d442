//go:build linux

package kmsg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kernlog"
)

const testBoot = "0123456789abcdef0123456789abcdef"

// ringDevice models /dev/kmsg's semantics as the kernel's ABI document
// states them, for tests of the reader's bookkeeping: a ring of records
// numbered from first; a reader's cursor; a read returns the record at the
// cursor, EAGAIN at the end, EPIPE once when the cursor's record was
// overwritten (moving the cursor to the oldest held), EINVAL when the
// buffer is too small. Its fd (an eventfd) is readable while a read would
// not return EAGAIN, as the device's poll is. The real device is tested
// below and in test/kmsg.
type ringDevice struct {
	mu      sync.Mutex
	first   uint64
	records []string // records[i] has sequence number first+i
	cursor  uint64
	ev      int
	ready   bool
	closed  bool
}

func newRingDevice(t *testing.T, first uint64, n int) *ringDevice {
	t.Helper()
	ev, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	require.NoError(t, err)
	d := &ringDevice{first: first, cursor: first, ev: ev}
	for i := 0; i < n; i++ {
		d.records = append(d.records, "")
	}
	for i := range d.records {
		d.records[i] = record(first+uint64(i), 0, fmt.Sprintf("line %d", first+uint64(i)))
	}
	d.sync()
	return d
}

func record(seq uint64, facility int, msg string) string {
	return fmt.Sprintf("%d,%d,%d,-;%s\n", facility<<3|6, seq, 1000*seq, msg)
}

// sync makes the eventfd readable exactly when a read would not block.
func (d *ringDevice) sync() {
	want := d.cursor < d.first || d.cursor < d.first+uint64(len(d.records))
	var b [8]byte
	switch {
	case want && !d.ready:
		b[0] = 1
		_, _ = unix.Write(d.ev, b[:])
	case !want && d.ready:
		_, _ = unix.Read(d.ev, b[:])
	}
	d.ready = want
}

// add appends kernel records printed after the newest.
func (d *ringDevice) add(msgs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range msgs {
		d.records = append(d.records, record(d.first+uint64(len(d.records)), 0, m))
	}
	d.sync()
}

// addRaw appends records as read(2) returns them.
func (d *ringDevice) addRaw(raw ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records = append(d.records, raw...)
	d.sync()
}

// overwrite drops the n oldest records, as a full ring buffer does.
func (d *ringDevice) overwrite(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records = d.records[n:]
	d.first += uint64(n)
	d.sync()
}

func (d *ringDevice) read(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.sync()
	if d.cursor < d.first {
		d.cursor = d.first
		return 0, unix.EPIPE
	}
	i := d.cursor - d.first
	if i >= uint64(len(d.records)) {
		return 0, unix.EAGAIN
	}
	r := d.records[i]
	if len(p) < len(r) {
		return 0, unix.EINVAL
	}
	d.cursor++
	return copy(p, r), nil
}

func (d *ringDevice) seek(whence int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.sync()
	switch whence {
	case unix.SEEK_SET:
		d.cursor = d.first
	case unix.SEEK_END:
		d.cursor = d.first + uint64(len(d.records))
	default:
		return unix.EINVAL
	}
	return nil
}

func (d *ringDevice) fd() int { return d.ev }

func (d *ringDevice) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return unix.Close(d.ev)
}

func ringReader(t *testing.T, d *ringDevice) *Reader {
	t.Helper()
	r, err := newReader(d, "ring", testBoot)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// readAll reads records until none is left, returning their sequence
// numbers and how many records were reported lost (Gap) before each.
func readAll(t *testing.T, r *Reader) (seqs []uint64, lost []int64) {
	t.Helper()
	var gap int64
	for {
		ok, err := r.Next()
		var g *kernlog.Gap
		if errors.As(err, &g) {
			require.Positive(t, g.Lost)
			gap += g.Lost
			continue
		}
		require.NoError(t, err)
		if !ok {
			require.Zero(t, gap, "a gap is followed by the record after it")
			return seqs, lost
		}
		seqs = append(seqs, r.Record().Seq)
		lost = append(lost, gap)
		gap = 0
	}
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func cursor(seq uint64) kernlog.Position {
	return kernlog.Position{Cursor: Position{BootID: testBoot, Seq: seq}.Cursor()}
}

func TestReaderReadsInOrder(t *testing.T) {
	d := newRingDevice(t, 0, 3)
	d.addRaw(record(3, 1, "Memory cgroup out of memory: Killed process 1 (forged)"))
	d.add(`Killed\x0amulti`)
	r := ringReader(t, d)
	require.NoError(t, r.SeekHead())
	_, err := r.Position()
	require.Error(t, err, "no record read yet")
	var msgs []string
	var origins []kernlog.Origin
	for {
		ok, err := r.Next()
		require.NoError(t, err)
		if !ok {
			break
		}
		m, err := r.Text()
		require.NoError(t, err)
		msgs = append(msgs, m)
		o := r.Origin()
		o.Stored = time.Time{}
		origins = append(origins, o)
		seq := uint64(len(msgs) - 1)
		p, err := r.Position()
		require.NoError(t, err)
		assert.Equal(t, cursor(seq).Cursor, p.Cursor)
		assert.Equal(t, 1000*seq, r.Stamp().MonotonicUsec)
		assert.Empty(t, r.Stamp().Host, "the device names no host")
		assert.WithinDuration(t, r.Stamp().Time, p.Time, time.Millisecond)
	}
	assert.Equal(t, []string{"line 0", "line 1", "line 2", "Memory cgroup out of memory: Killed process 1 (forged)", "Killed\nmulti"}, msgs)
	kernel := kernlog.Origin{Kernel: true, BootID: testBoot}
	forged := kernlog.Origin{Writer: "a process, syslog facility 1", BootID: testBoot}
	assert.Equal(t, []kernlog.Origin{kernel, kernel, kernel, forged, kernel}, origins)
}

// The kernel's µs since boot become wall-clock time as the journal reader
// makes them: boot time plus the µs.
func TestReaderKernelTime(t *testing.T) {
	d := newRingDevice(t, 0, 0)
	var mono unix.Timespec
	require.NoError(t, unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono))
	nowUsec := uint64(mono.Nano() / 1000)
	d.addRaw(fmt.Sprintf("6,0,%d,-;printed a second ago\n", nowUsec-1_000_000))
	r := ringReader(t, d)
	require.NoError(t, r.SeekHead())
	ok, err := r.Next()
	require.NoError(t, err)
	require.True(t, ok)
	assert.WithinDuration(t, time.Now().Add(-time.Second), r.Stamp().Time, 50*time.Millisecond)
}

func TestReaderResumesAfterPosition(t *testing.T) {
	d := newRingDevice(t, 10, 11) // 10..20
	r := ringReader(t, d)
	found, err := r.SeekAfter(cursor(15))
	require.NoError(t, err)
	assert.True(t, found)
	seqs, lost := readAll(t, r)
	assert.Equal(t, seqRange(16, 20), seqs)
	assert.Equal(t, make([]int64, 5), lost)
}

// Nothing printed since the checkpoint: nothing to read, nothing lost, and
// the next record is the one after the checkpoint.
func TestReaderResumesAtNewest(t *testing.T) {
	d := newRingDevice(t, 10, 11)
	r := ringReader(t, d)
	_, err := r.SeekAfter(cursor(20))
	require.NoError(t, err)
	seqs, _ := readAll(t, r)
	assert.Empty(t, seqs)
	d.add("new")
	seqs, lost := readAll(t, r)
	assert.Equal(t, []uint64{21}, seqs)
	assert.Equal(t, []int64{0}, lost)
}

// The ring buffer overwrote records after the checkpoint while the reader
// was away: the first record held tells how many.
func TestReaderCountsRecordsLostSinceCheckpoint(t *testing.T) {
	d := newRingDevice(t, 30, 11) // 30..40
	r := ringReader(t, d)
	found, err := r.SeekAfter(cursor(15))
	require.NoError(t, err)
	assert.True(t, found, "the position is this boot's; the loss is the Gap's")
	ok, err := r.Next()
	assert.False(t, ok)
	var g *kernlog.Gap
	require.ErrorAs(t, err, &g)
	assert.Equal(t, int64(14), g.Lost, "16..29 were overwritten")
	assert.Contains(t, g.Error(), "14 kernel log lines lost: overwritten in the kernel's ring buffer before they were read (the collector was not reading)")
	seqs, lost := readAll(t, r)
	assert.Equal(t, seqRange(30, 40), seqs)
	assert.Equal(t, make([]int64, 11), lost)
}

// A checkpoint of an earlier boot is gone with that boot: this boot's
// records are read from the oldest held.
func TestReaderNewBootStartsAtOldest(t *testing.T) {
	d := newRingDevice(t, 5, 5)
	r := ringReader(t, d)
	found, err := r.SeekAfter(kernlog.Position{Cursor: Position{BootID: strings.Repeat("f", 32), Seq: 1000}.Cursor()})
	require.NoError(t, err)
	assert.False(t, found)
	seqs, lost := readAll(t, r)
	assert.Equal(t, seqRange(5, 9), seqs)
	assert.Equal(t, make([]int64, 5), lost)
}

// A position that is not this source's (the journal's cursor, saved before
// the source was switched): reading starts after its time.
func TestReaderResumesAfterAnotherSourcesTime(t *testing.T) {
	d := newRingDevice(t, 0, 10) // printed at 0, 1, ..., 9 ms after boot
	r := ringReader(t, d)
	found, err := r.SeekAfter(kernlog.Position{Cursor: "s=abc;i=1f;b=00;m=1;t=2;x=3", Time: r.wallTime(5500)})
	require.NoError(t, err)
	assert.False(t, found)
	seqs, lost := readAll(t, r)
	assert.Equal(t, seqRange(6, 9), seqs)
	assert.Equal(t, make([]int64, 4), lost)
}

// The journal's position of a line of this boot, with the kernel's stamp
// of it (the source was switched from the journal): reading starts right
// after that line by the kernel's timestamp, though journald stored it,
// and the position's time is, 3 ms later.
func TestReaderResumesAfterAnotherSourcesKernelStamp(t *testing.T) {
	d := newRingDevice(t, 0, 10) // printed at 0, 1, ..., 9 ms after boot
	r := ringReader(t, d)
	found, err := r.SeekAfter(kernlog.Position{
		Cursor: "s=abc;i=1f;b=00;m=1;t=2;x=3", Time: r.wallTime(8000),
		BootID: testBoot, KernelUsec: 5000,
	})
	require.NoError(t, err)
	assert.True(t, found)
	seqs, lost := readAll(t, r)
	assert.Equal(t, seqRange(6, 9), seqs)
	assert.Equal(t, make([]int64, 4), lost)
	p, err := r.Position()
	require.NoError(t, err)
	assert.Equal(t, testBoot, p.BootID)
	assert.Equal(t, uint64(9000), p.KernelUsec, "the kernel's stamp of the last record read")
}

// Another source's position of an earlier boot: this boot is read from its
// oldest record.
func TestReaderAnotherSourcesEarlierBoot(t *testing.T) {
	d := newRingDevice(t, 0, 3)
	r := ringReader(t, d)
	found, err := r.SeekAfter(kernlog.Position{Cursor: "s=abc", Time: r.wallTime(2500), BootID: strings.Repeat("e", 32), KernelUsec: 99_000_000})
	require.NoError(t, err)
	assert.False(t, found)
	seqs, _ := readAll(t, r)
	assert.Equal(t, seqRange(0, 2), seqs)
}

// EPIPE while reading: the ring buffer overran the reader. The read after
// it returns the oldest record still held; the jump is the loss.
func TestReaderOverrunWhileReading(t *testing.T) {
	d := newRingDevice(t, 0, 5)
	r := ringReader(t, d)
	require.NoError(t, r.SeekHead())
	for i := 0; i < 3; i++ {
		ok, err := r.Next()
		require.NoError(t, err)
		require.True(t, ok)
	}
	d.add("5", "6", "7", "8", "9", "10", "11", "12")
	d.overwrite(8) // 0..7 gone; the reader's next (3) among them
	ok, err := r.Next()
	assert.False(t, ok)
	var g *kernlog.Gap
	require.ErrorAs(t, err, &g)
	assert.Equal(t, int64(5), g.Lost, "3..7 lost")
	assert.Contains(t, g.Why, "the reader fell behind")
	seqs, lost := readAll(t, r)
	assert.Equal(t, seqRange(8, 12), seqs)
	assert.Equal(t, make([]int64, 5), lost)
}

// SeekEnd knows the newest sequence number, so an overrun before the first
// new record is read is still counted exactly.
func TestReaderSeekEndThenOverrun(t *testing.T) {
	d := newRingDevice(t, 100, 5) // 100..104
	r := ringReader(t, d)
	newest, err := r.SeekEnd()
	require.NoError(t, err)
	assert.Equal(t, cursor(104).Cursor, newest.Cursor)
	seqs, _ := readAll(t, r)
	assert.Empty(t, seqs, "only records printed from now on")
	d.add("105", "106", "107", "108")
	d.overwrite(7) // 100..106 gone
	seqs, lost := readAll(t, r)
	assert.Equal(t, []uint64{107, 108}, seqs)
	assert.Equal(t, []int64{2, 0}, lost, "105 and 106 lost")

	empty := ringReader(t, newRingDevice(t, 0, 0))
	newest, err = empty.SeekEnd()
	require.NoError(t, err)
	assert.True(t, newest.IsZero())
}

// A position beyond everything this boot holds cannot be this boot's: the
// reader says so once and reads every record held rather than skip them.
func TestReaderPositionAhead(t *testing.T) {
	d := newRingDevice(t, 0, 5)
	r := ringReader(t, d)
	_, err := r.SeekAfter(cursor(1 << 40))
	require.NoError(t, err)
	_, err = r.Next()
	require.ErrorIs(t, err, ErrPositionAhead)
	assert.ErrorContains(t, err, "seq 1099511627776, newest 4")
	seqs, _ := readAll(t, r)
	assert.Equal(t, seqRange(0, 4), seqs)
}

// A record that does not parse is reported by Text; the reader goes on.
func TestReaderMalformedRecord(t *testing.T) {
	d := newRingDevice(t, 0, 1)
	d.addRaw("garbage without header\n", record(2, 0, "after"))
	r := ringReader(t, d)
	require.NoError(t, r.SeekHead())
	ok, err := r.Next()
	require.True(t, ok)
	require.NoError(t, err)
	ok, err = r.Next()
	require.True(t, ok)
	require.NoError(t, err)
	_, err = r.Text()
	require.ErrorIs(t, err, ErrMalformed)
	assert.False(t, r.Origin().Kernel)
	p, err := r.Position()
	require.NoError(t, err)
	assert.Equal(t, cursor(0).Cursor, p.Cursor, "the position stays at the last good record")
	seqs, lost := readAll(t, r)
	assert.Equal(t, []uint64{2}, seqs)
	assert.Equal(t, []int64{1}, lost, "seq 1, the malformed one, counts as not read")
}

// A record larger than the buffer (EINVAL) grows it.
func TestReaderGrowsBuffer(t *testing.T) {
	d := newRingDevice(t, 0, 0)
	big := strings.Repeat("x", 3*initialRecord)
	d.add(big)
	r := ringReader(t, d)
	require.NoError(t, r.SeekHead())
	ok, err := r.Next()
	require.NoError(t, err)
	require.True(t, ok)
	m, _ := r.Text()
	assert.Equal(t, big, m)
}

func TestCursor(t *testing.T) {
	p := Position{BootID: testBoot, Seq: 2908}
	assert.Equal(t, "kmsg;b="+testBoot+";s=2908", p.Cursor())
	got, ok := ParseCursor(p.Cursor())
	assert.True(t, ok)
	assert.Equal(t, p, got)
	for _, c := range []string{"", "s=abc;i=1;b=" + testBoot, "kmsg;b=short;s=1", "kmsg;b=" + testBoot + ";s=-1", "kmsg;b=" + testBoot} {
		_, ok := ParseCursor(c)
		assert.False(t, ok, "%q", c)
	}
}

func TestWaitWakesForRecord(t *testing.T) {
	d := newRingDevice(t, 0, 0)
	r := ringReader(t, d)
	require.NoError(t, r.SeekHead())
	done := make(chan error, 1)
	go func() { done <- r.Wait(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("Wait returned with nothing to read: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	d.add("new")
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return for a new record")
	}
	ok, err := r.Next()
	require.NoError(t, err)
	require.True(t, ok)
}

// Wait returns nil when its context ends (kernlog.Source: the follower's
// timers set a deadline on it; that is no failure to wait).
func TestWaitReturnsWhenCancelled(t *testing.T) {
	d := newRingDevice(t, 0, 0)
	r := ringReader(t, d)
	for i := 0; i < 3; i++ { // a wake-up left over must not end the next Wait
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		start := time.Now()
		err := r.Wait(ctx)
		cancel()
		require.NoError(t, err)
		assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, r.Wait(ctx))
}

func TestCloseEndsWait(t *testing.T) {
	d := newRingDevice(t, 0, 0)
	r, err := newReader(d, "ring", testBoot)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- r.Wait(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, r.Close())
	select {
	case err := <-done:
		require.ErrorIs(t, err, fs.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end Wait")
	}
	assert.True(t, d.closed)
	require.ErrorIs(t, r.Wait(context.Background()), fs.ErrClosed)
	require.NoError(t, r.Close(), "a second Close is harmless")
}

func TestReadBootID(t *testing.T) {
	dir := t.TempDir()
	f := dir + "/boot_id"
	require.NoError(t, os.WriteFile(f, []byte("1afbe1c0-a744-4980-9715-8c69997e22d2\n"), 0o600))
	id, err := ReadBootID(f)
	require.NoError(t, err)
	assert.Equal(t, "1afbe1c0a744498097158c69997e22d2", id, "journald's _BOOT_ID form")
	require.NoError(t, os.WriteFile(f, []byte("nonsense\n"), 0o600))
	_, err = ReadBootID(f)
	assert.ErrorContains(t, err, "not a UUID")
	_, err = ReadBootID(dir + "/missing")
	assert.ErrorIs(t, err, fs.ErrNotExist)
}
