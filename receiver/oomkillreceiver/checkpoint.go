package oomkillreceiver

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/extension/xextension/storage"
)

// checkpointKey is the storage key of the receiver's checkpoint.
const checkpointKey = "oomkill.checkpoint"

// checkpoint is saved only after the next consumers accepted everything up
// to Cursor, and holds the totals as of that cursor: restoring both
// together is what makes a restart count every kill exactly once.
type checkpoint struct {
	Version int `json:"version"`
	// Cursor is the journal cursor of the last entry fully delivered.
	Cursor string `json:"cursor,omitempty"`
	// RealtimeUsec is that entry's time, to resume near it if the cursor
	// is gone.
	RealtimeUsec int64 `json:"realtime_usec,omitempty"`
	// StartTimeUnixNano is the start time of every counter series: the
	// first start of this receiver with this storage.
	StartTimeUnixNano int64         `json:"start_time_unix_nano"`
	Series            []seriesCount `json:"series"`
}

const checkpointVersion = 1

func loadCheckpoint(ctx context.Context, c storage.Client) (*checkpoint, error) {
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
	if cp.Version != checkpointVersion {
		return nil, fmt.Errorf("checkpoint version %d, this receiver reads %d", cp.Version, checkpointVersion)
	}
	return &cp, nil
}

func saveCheckpoint(ctx context.Context, c storage.Client, cp *checkpoint) error {
	cp.Version = checkpointVersion
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	return c.Set(ctx, checkpointKey, b)
}

func (cp *checkpoint) startTime() time.Time { return time.Unix(0, cp.StartTimeUnixNano) }
