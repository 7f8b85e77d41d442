package oomkillreceiver

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/extension/xextension/storage"
)

// Storage keys. The checkpoint is spread over keys so that a write touches
// only what changed: the cursor record on every commit, one slot key per
// series counted since the last commit, and the expired totals when some
// expired or came back. All of one commit go in one storage batch (one
// file_storage transaction), so cursor and totals always match.
const (
	checkpointKey = "oomkill.checkpoint"
	seriesKeyPfx  = "oomkill.series."
	expiredKey    = "oomkill.expired"
)

// checkpoint is saved only after the next consumers accepted everything up
// to Cursor, together with the series changed up to it: restoring both is
// what makes a restart count every kill exactly once.
type checkpoint struct {
	Version int `json:"version"`
	// Cursor is the journal cursor of the last entry fully delivered.
	Cursor string `json:"cursor,omitempty"`
	// RealtimeUsec is that entry's time, to resume near it if the cursor
	// is gone.
	RealtimeUsec int64 `json:"realtime_usec,omitempty"`
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
func loadCheckpoint(ctx context.Context, c storage.Client, t *seriesTable) (*checkpoint, error) {
	b, err := c.Get(ctx, checkpointKey)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	if b == nil {
		return nil, nil
	}
	var cp checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return nil, fmt.Errorf("checkpoint is not valid JSON: %w", err)
	}
	switch cp.Version {
	case 1:
		// Every series was in the record: give each a slot, all written at
		// the first commit.
		start := time.Unix(0, cp.StartTimeUnixNano)
		for _, r := range cp.Series {
			t.restore(&series{seriesKey: r.withSource(), count: r.Count, start: start, lastCounted: time.Now(), slot: t.slots.take()}, true)
		}
		cp.Series = nil
		t.expiredDirty = true
		return &cp, nil
	case checkpointVersion:
	default:
		return nil, fmt.Errorf("checkpoint version %d, this receiver reads 1 and %d", cp.Version, checkpointVersion)
	}
	ops := make([]*storage.Operation, 0, cp.Slots+1)
	for i := 0; i < cp.Slots; i++ {
		ops = append(ops, storage.GetOperation(slotKey(i)))
	}
	expired := storage.GetOperation(expiredKey)
	ops = append(ops, expired)
	if err := c.Batch(ctx, ops...); err != nil {
		return nil, fmt.Errorf("reading checkpoint series: %w", err)
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
			return nil, fmt.Errorf("checkpoint series slot %d is not valid JSON: %w", i, err)
		}
		t.restore(&series{
			seriesKey: r.withSource(), count: r.Count, slot: i,
			start: time.Unix(0, r.StartUnixNano), lastCounted: time.Unix(0, r.LastCountedUnixNs),
		}, false)
	}
	t.expired.unmarshal(expired.Value)
	return &cp, nil
}

// saveCheckpoint writes the cursor record and what changed in t since the
// last successful save, and extra (the witness's state), in one batch; t
// forgets the changes only once the batch succeeded.
func saveCheckpoint(ctx context.Context, c storage.Client, cp *checkpoint, t *seriesTable, extra ...*storage.Operation) error {
	cp.Version = checkpointVersion
	cp.Slots = t.slots.next
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	ops := make([]*storage.Operation, 0, len(t.dirtySlots)+2)
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
	clear(t.dirtySlots)
	t.expiredDirty = false
	return nil
}

func (cp *checkpoint) startTime() time.Time { return time.Unix(0, cp.StartTimeUnixNano) }
