package oomkillreceiver

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/internal/status"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kernlog"
)

// progressEvery: with no kills, the position read is still checkpointed
// this often, so a restart does not read again everything since the last
// kill; a failed save is retried as often.
const progressEvery = 10 * time.Second

// causeCheckpoint is the status cause of loading or saving the checkpoint.
const causeCheckpoint = "checkpoint"

// checkpointer keeps the kernel log position and the series totals in the
// storage extension, saved together in one batch once the next consumers
// accepted everything up to the position.
type checkpointer struct {
	// client is the storage extension's; nil: no storage, every start
	// begins at start_at with counters from zero.
	client storage.Client
	// record is what was last saved; its cursor is the committed position.
	record checkpointRecord
	// read is the position of the last line read, ahead of the record
	// until committed (zero: nothing read since).
	read kernlog.Position
	// attempted is when a save was last tried; failing: it failed.
	attempted time.Time
	failing   bool
	// restored: a checkpoint was loaded (its kept states belong to it).
	restored bool
	// kept is state another stage keeps in the checkpoint (the witness's),
	// saved in the same batch as the position; nil: none.
	kept keptState
	// pending are the held kills the checkpoint restored, until taken.
	pending []killRecord

	logger *zap.Logger
	status *status.Reporter
}

// keptState is state a stage keeps in the checkpoint under its own key,
// saved with the position it belongs to.
type keptState interface {
	// changed: the state differs from what was last saved.
	changed() bool
	// state is the state to save under key; nil: nothing to save.
	state() (key string, value []byte)
	// saved: the last state returned is in the checkpoint.
	saved()
}

// newCheckpointer opens the storage extension's client (none when id is nil).
func newCheckpointer(ctx context.Context, host component.Host, id *component.ID, self component.ID, logger *zap.Logger, st *status.Reporter) (*checkpointer, error) {
	c := &checkpointer{logger: logger, status: st, record: checkpointRecord{StartTimeUnixNano: time.Now().UnixNano()}}
	if id == nil {
		logger.Warn("No storage extension configured: kills that happen while the collector is down are not counted, and counters restart from zero on every start. Set `storage` to a file_storage extension to keep them.")
		return c, nil
	}
	var err error
	c.client, err = storageClient(ctx, host, *id, self)
	return c, err
}

// load restores the checkpoint: the position and the series table. A
// checkpoint that cannot be read cannot be repaired: it is reported and the
// receiver starts as configured rather than refuse to run.
func (c *checkpointer) load(ctx context.Context, cfg SeriesConfig) *seriesTable {
	t := newSeriesTable(cfg)
	if c.client == nil {
		return t
	}
	cp, pending, err := loadCheckpoint(ctx, c.client, t)
	if err != nil {
		c.status.Fail(causeCheckpoint, err, "Ignoring unusable checkpoint")
		return newSeriesTable(cfg)
	}
	if cp != nil {
		c.record = *cp
		c.restored = true
	}
	c.pending = pending
	return t
}

// keep has s saved with every commit from now on and returns what the
// loaded checkpoint holds under key (nil: nothing, or no checkpoint).
func (c *checkpointer) keep(ctx context.Context, key string, s keptState) ([]byte, error) {
	c.kept = s
	if c.client == nil || !c.restored {
		return nil, nil
	}
	return c.client.Get(ctx, key)
}

// restoredPending are the kills the last run read but had not decided
// the outcome of: the position is past them, so they are taken from here.
func (c *checkpointer) restoredPending() []killRecord {
	p := c.pending
	c.pending = nil
	return p
}

// position is the committed position: where reading resumes.
func (c *checkpointer) position() kernlog.Position {
	if c.record.Cursor == "" {
		return kernlog.Position{}
	}
	return kernlog.Position{Cursor: c.record.Cursor, Time: time.UnixMicro(c.record.RealtimeUsec), BootID: c.record.KernelBootID, KernelUsec: c.record.KernelUsec}
}

// advance notes that lines were read up to p.
func (c *checkpointer) advance(p kernlog.Position) {
	if !p.IsZero() {
		c.read = p
	}
}

// due reports whether to commit now: the series changed (unless the last
// save failed: then it is retried after progressEvery), or lines were read
// and not committed for progressEvery.
func (c *checkpointer) due(now time.Time, t *seriesTable) bool {
	changed := t.dirty() || (c.kept != nil && c.kept.changed())
	if changed && !c.failing {
		return true
	}
	return (changed || !c.read.IsZero()) && now.Sub(c.attempted) >= progressEvery
}

// dueAt is when a commit that is not due now will be (zero: none waits).
// Without storage there is nothing to save later.
func (c *checkpointer) dueAt(t *seriesTable) time.Time {
	if c.client == nil || (!t.dirty() && c.read.IsZero() && (c.kept == nil || !c.kept.changed())) {
		return time.Time{}
	}
	return c.attempted.Add(progressEvery)
}

// commit saves the position read with the series changed up to it and the
// kills the outcome stage holds (held; nil: none to save): a position past
// a kill not delivered yet is saved only with that kill.
// Delivered data must be checkpointed even when Shutdown has begun, or the
// next start would send it again: call it with a context not cancelled by
// Shutdown.
func (c *checkpointer) commit(ctx context.Context, t *seriesTable, held *outcomeObserver) {
	if !c.read.IsZero() {
		c.record.Cursor, c.record.RealtimeUsec = c.read.Cursor, c.read.Time.UnixMicro()
		c.record.KernelBootID, c.record.KernelUsec = c.read.BootID, c.read.KernelUsec
		c.read = kernlog.Position{}
	}
	c.attempted = time.Now()
	savePending := held != nil && held.changed
	if c.client == nil {
		t.saved()
		if savePending {
			held.changed = false
		}
		if c.kept != nil {
			c.kept.saved()
		}
		return
	}
	var extra []*storage.Operation
	var pending []killRecord
	if savePending {
		pending = held.pending()
		op, err := pendingOperation(pending)
		if err != nil {
			c.status.Record(causeCheckpoint, err, "Saving checkpoint failed; a restart may read these entries again")
			return
		}
		extra = append(extra, op)
	}
	keptSaved := false
	if c.kept != nil {
		if key, v := c.kept.state(); v != nil {
			extra = append(extra, storage.SetOperation(key, v))
			keptSaved = true
		}
	}
	if c.record.Cursor == "" && !t.dirty() && len(extra) == 0 {
		return
	}
	c.logger.Debug("Saving checkpoint", zap.Time("entry_time", time.UnixMicro(c.record.RealtimeUsec)), zap.Int("changed_series", len(t.dirtySlots)), zap.Int("pending_kills", len(pending)))
	err := saveCheckpoint(ctx, c.client, &c.record, t, extra...)
	c.failing = err != nil
	if err == nil && savePending {
		held.changed = false
	}
	if err == nil && keptSaved {
		c.kept.saved()
	}
	c.status.Record(causeCheckpoint, err, "Saving checkpoint failed; a restart may read these entries again")
}

// close closes the storage client.
func (c *checkpointer) close(ctx context.Context) error {
	if c.client == nil {
		return nil
	}
	return c.client.Close(ctx)
}

func storageClient(ctx context.Context, host component.Host, id, self component.ID) (storage.Client, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("storage %q: no such extension; add it under `extensions:` and `service.extensions`", id)
	}
	se, ok := ext.(storage.Extension)
	if !ok {
		return nil, fmt.Errorf("storage %q is not a storage extension (use e.g. file_storage)", id)
	}
	c, err := se.GetClient(ctx, component.KindReceiver, self, "")
	if err != nil {
		return nil, fmt.Errorf("storage %q: %w", id, err)
	}
	return c, nil
}

// Storage keys. The checkpoint is spread over keys so that a write touches
// only what changed: the cursor record on every commit, one slot key per
// series counted since the last commit, and the expired totals when some
// expired or came back. All of one commit go in one storage batch (one
// file_storage transaction), so cursor and totals always match.
const (
	checkpointKey = "oomkill.checkpoint"
	seriesKeyPfx  = "oomkill.series."
	expiredKey    = "oomkill.expired"
	// pendingKey holds the kills read whose outcome was not decided yet
	// (outcome.go), saved with the position that is past them.
	pendingKey = "oomkill.pending"
)

// checkpointRecord is saved only after the next consumers accepted
// everything up to Cursor, together with the series changed up to it:
// restoring both is what makes a restart count every kill exactly once.
type checkpointRecord struct {
	Version int `json:"version"`
	// Cursor is the kernel log position (kernlog.Position.Cursor: the
	// journal's cursor, or /dev/kmsg's boot and sequence number) of the
	// last line fully delivered.
	Cursor string `json:"cursor,omitempty"`
	// RealtimeUsec is that line's stored time, to resume near it if the
	// line is gone.
	RealtimeUsec int64 `json:"realtime_usec,omitempty"`
	// KernelBootID and KernelUsec are that line by the kernel's own
	// account, the same whichever source read it: where another source
	// resumes when the source was switched.
	KernelBootID string `json:"kernel_boot_id,omitempty"`
	KernelUsec   uint64 `json:"kernel_usec,omitempty"`
	// StartTimeUnixNano is the first start of this receiver with this
	// storage (the start time of series restored from a version 1 file).
	StartTimeUnixNano int64 `json:"start_time_unix_nano"`
	// Slots is one past the highest series slot that may hold a series.
	Slots int `json:"slots,omitempty"`
	// Series is only in version 1 checkpoints (every series in one record);
	// it is read once and rewritten as slots.
	Series []seriesRecord `json:"series,omitempty"`
}

// seriesRecord is one series as stored in its slot.
type seriesRecord struct {
	seriesKey
	Count             int64 `json:"count"`
	StartUnixNano     int64 `json:"start_unix_nano,omitempty"`
	LastCountedUnixNs int64 `json:"last_counted_unix_nano,omitempty"`
}

const checkpointVersion = 2

// withSource gives a series saved before oom.source existed its source:
// every kill then was read from the log. Its count goes on in the same
// series (exporters see oom.source=log appear on it once).
func (r seriesRecord) withSource() seriesKey {
	k := r.seriesKey
	if k.Source == "" && !k.Overflow {
		k.Source = sourceLog
	}
	return k
}

func slotKey(slot int) string { return seriesKeyPfx + strconv.Itoa(slot) }

// loadCheckpoint reads the checkpoint and its series into t. nil, nil:
// there is none.
func loadCheckpoint(ctx context.Context, c storage.Client, t *seriesTable) (*checkpointRecord, []killRecord, error) {
	b, err := c.Get(ctx, checkpointKey)
	if err != nil {
		return nil, nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	if b == nil {
		return nil, nil, nil
	}
	var cp checkpointRecord
	if err := json.Unmarshal(b, &cp); err != nil {
		return nil, nil, fmt.Errorf("checkpoint is not valid JSON: %w", err)
	}
	switch cp.Version {
	case 1:
		// Every series was in the record: give each a slot, all written at
		// the first commit.
		start := time.Unix(0, cp.StartTimeUnixNano)
		for _, r := range cp.Series {
			t.restore(&counterSeries{seriesKey: r.withSource(), count: r.Count, start: start, lastCounted: time.Now(), slot: t.slots.take()}, true)
		}
		cp.Series = nil
		t.expiredDirty = true
		return &cp, nil, nil
	case checkpointVersion:
	default:
		return nil, nil, fmt.Errorf("checkpoint version %d, this receiver reads 1 and %d", cp.Version, checkpointVersion)
	}
	ops := make([]*storage.Operation, 0, cp.Slots+1)
	for i := 0; i < cp.Slots; i++ {
		ops = append(ops, storage.GetOperation(slotKey(i)))
	}
	expired, pending := storage.GetOperation(expiredKey), storage.GetOperation(pendingKey)
	ops = append(ops, expired, pending)
	if err := c.Batch(ctx, ops...); err != nil {
		return nil, nil, fmt.Errorf("reading checkpoint series: %w", err)
	}
	// Slots are handed out above the stored ones and from the empty ones
	// met so far, never over a stored series still to be restored.
	t.slots.next = max(t.slots.next, cp.Slots)
	for i, op := range ops[:cp.Slots] {
		if op.Value == nil {
			t.slots.free(i)
			continue
		}
		var r seriesRecord
		if err := json.Unmarshal(op.Value, &r); err != nil {
			return nil, nil, fmt.Errorf("checkpoint series slot %d is not valid JSON: %w", i, err)
		}
		t.restore(&counterSeries{
			seriesKey: r.withSource(), count: r.Count, slot: i,
			start: time.Unix(0, r.StartUnixNano), lastCounted: time.Unix(0, r.LastCountedUnixNs),
		}, false)
	}
	t.expired.unmarshal(expired.Value)
	var held []killRecord
	if pending.Value != nil {
		if err := json.Unmarshal(pending.Value, &held); err != nil {
			return nil, nil, fmt.Errorf("checkpoint's pending kills are not valid JSON: %w", err)
		}
	}
	return &cp, held, nil
}

// saveCheckpoint writes the cursor record and what changed in t since the
// last successful save, and extra (the kills still held for their outcome,
// the witness's state), in one batch; t forgets the changes only once the
// batch succeeded.
func saveCheckpoint(ctx context.Context, c storage.Client, cp *checkpointRecord, t *seriesTable, extra ...*storage.Operation) error {
	cp.Version = checkpointVersion
	cp.Slots = t.slots.next
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	ops := make([]*storage.Operation, 0, len(t.dirtySlots)+3)
	ops = append(ops, storage.SetOperation(checkpointKey, b))
	for slot, s := range t.dirtySlots {
		if s == nil {
			ops = append(ops, storage.DeleteOperation(slotKey(slot)))
			continue
		}
		rb, err := json.Marshal(seriesRecord{
			seriesKey: s.seriesKey, Count: s.count,
			StartUnixNano: s.start.UnixNano(), LastCountedUnixNs: s.lastCounted.UnixNano(),
		})
		if err != nil {
			return err
		}
		ops = append(ops, storage.SetOperation(slotKey(slot), rb))
	}
	if t.expiredDirty {
		ops = append(ops, storage.SetOperation(expiredKey, t.expired.marshal()))
	}
	ops = append(ops, extra...)
	if err := c.Batch(ctx, ops...); err != nil {
		return err
	}
	t.saved()
	return nil
}

func (cp *checkpointRecord) startTime() time.Time { return time.Unix(0, cp.StartTimeUnixNano) }

// pendingOperation replaces the pending kills in the checkpoint (deletes
// the key when none is held).
func pendingOperation(pending []killRecord) (*storage.Operation, error) {
	if len(pending) == 0 {
		return storage.DeleteOperation(pendingKey), nil
	}
	pb, err := json.Marshal(pending)
	if err != nil {
		return nil, err
	}
	return storage.SetOperation(pendingKey, pb), nil
}
