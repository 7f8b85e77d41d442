package oomkillreceiver

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

// flakyStorage is a storage extension whose writes fail while failing is set.
type flakyStorage struct {
	component.StartFunc
	component.ShutdownFunc
	mu      sync.Mutex
	data    map[string][]byte
	failing bool
}

func (s *flakyStorage) GetClient(context.Context, component.Kind, component.ID, string) (storage.Client, error) {
	return s, nil
}

func (s *flakyStorage) setFailing(f bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing = f
}

func (s *flakyStorage) Get(_ context.Context, k string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data[k], nil
}

func (s *flakyStorage) Set(ctx context.Context, k string, v []byte) error {
	return s.Batch(ctx, storage.SetOperation(k, v))
}

func (s *flakyStorage) Delete(ctx context.Context, k string) error {
	return s.Batch(ctx, storage.DeleteOperation(k))
}

func (s *flakyStorage) Close(context.Context) error { return nil }

func (s *flakyStorage) Batch(_ context.Context, ops ...*storage.Operation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, op := range ops {
		if op.Type != storage.Get && s.failing {
			return errors.New("disk full")
		}
	}
	for _, op := range ops {
		switch op.Type {
		case storage.Get:
			op.Value = s.data[op.Key]
		case storage.Set:
			s.data[op.Key] = op.Value
		case storage.Delete:
			delete(s.data, op.Key)
		}
	}
	return nil
}

// statusHost serves the storage extension and keeps the status events.
type statusHost struct {
	host
	mu     sync.Mutex
	events []componentstatus.Status
}

func (h *statusHost) Report(e *componentstatus.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e.Status())
}

func (h *statusHost) statuses() []componentstatus.Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]componentstatus.Status(nil), h.events...)
}

// A checkpoint save that fails makes the receiver a recoverable error,
// logged once however often it fails again; the next good save makes it
// OK again.
func TestCheckpointFailureThenRecoveryReportsOK(t *testing.T) {
	dir := t.TempDir()
	journalFile := filepath.Join(dir, "a.journal")
	at := time.Now().Add(-time.Hour)
	journaltest.Write(t, journalFile, report(900, at, bootA))
	st := &flakyStorage{data: map[string][]byte{}, failing: true}
	h := &statusHost{host: host{ext: map[component.ID]component.Component{storageID: st}}}
	cfg := testConfig(dir)
	cfg.StorageID = &storageID
	cfg.Outcome.CgroupRoot = ""
	core, logs := observer.New(zapcore.DebugLevel)
	r := startLogging(t, cfg, h, nil, nil, zap.New(core))

	eventually(t, "the first kill", func() bool { return r.logs.LogRecordCount() == 1 })
	eventually(t, "a recoverable error", func() bool {
		return assert.ObjectsAreEqual([]componentstatus.Status{componentstatus.StatusRecoverableError}, h.statuses())
	})
	journaltest.Write(t, journalFile, report(901, at.Add(time.Second), bootA))
	eventually(t, "the second kill, its save failing too", func() bool {
		// At least 2: on a slow machine the 10 s retry of the first save
		// may fail once more before the second kill is read.
		return r.logs.LogRecordCount() == 2 && logs.FilterMessageSnippet("Saving checkpoint failed").Len() >= 2
	})
	failed := logs.FilterMessageSnippet("Saving checkpoint failed").All()
	assert.Equal(t, zapcore.ErrorLevel, failed[0].Level, "the spell's first failure")
	for _, f := range failed[1:] {
		assert.Equal(t, zapcore.DebugLevel, f.Level, "a repeat")
	}

	st.setFailing(false)
	journaltest.Write(t, journalFile, report(902, at.Add(2*time.Second), bootA))
	eventually(t, "OK again after a good save", func() bool {
		return assert.ObjectsAreEqual([]componentstatus.Status{componentstatus.StatusRecoverableError, componentstatus.StatusOK}, h.statuses())
	})
	eventually(t, "the checkpoint holds the third kill's series", func() bool {
		b, _ := st.Get(context.Background(), checkpointKey)
		return len(b) > 0
	})
	assert.Equal(t, 1, logs.FilterMessage("Recovered").Len())
}
