package oomkillreceiver

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kernlog"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadatatest"
)

// fakeSource is a kernlog.Source over lines in memory; lines appended
// later wake a Wait. It counts the Waits that returned.
type fakeSource struct {
	mu     sync.Mutex
	lines  []string
	next   int // index of the line Next moves to
	grown  chan struct{}
	wakes  int
	closed bool
}

func newFakeSource(lines ...string) *fakeSource {
	return &fakeSource{lines: lines, grown: make(chan struct{}, 1)}
}

func (f *fakeSource) append(lines ...string) {
	f.mu.Lock()
	f.lines = append(f.lines, lines...)
	f.mu.Unlock()
	select {
	case f.grown <- struct{}{}:
	default:
	}
}

func (f *fakeSource) Next() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next >= len(f.lines) {
		return false, nil
	}
	f.next++
	return true, nil
}

func (f *fakeSource) Text() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lines[f.next-1], nil
}

func (f *fakeSource) Origin() kernlog.Origin {
	return kernlog.Origin{Kernel: true, BootID: bootA, Stored: t0}
}

func (f *fakeSource) Stamp() kernlog.Stamp {
	f.mu.Lock()
	defer f.mu.Unlock()
	return kernlog.Stamp{Time: t0, MonotonicUsec: uint64(f.next), Host: hostName}
}

func (f *fakeSource) Position() (kernlog.Position, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return kernlog.Position{Cursor: string(rune('a' + f.next)), Time: t0}, nil
}

func (f *fakeSource) SeekAfter(kernlog.Position) (bool, error) { return false, nil }
func (f *fakeSource) SeekHead() error                          { return nil }
func (f *fakeSource) SeekEnd() (kernlog.Position, error)       { return kernlog.Position{}, nil }

func (f *fakeSource) Wait(ctx context.Context) error {
	select {
	case <-f.grown:
	case <-ctx.Done():
	}
	f.mu.Lock()
	f.wakes++
	f.mu.Unlock()
	return nil
}

func (f *fakeSource) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeSource) waits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wakes
}

// startOn starts a receiver reading src instead of the configured journal.
func startOn(t *testing.T, cfg *Config, src *fakeSource) (*oomReceiver, *consumertest.LogsSink) {
	t.Helper()
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	r, err := newReceiver(cfg, metadatatest.NewSettings(tel))
	require.NoError(t, err)
	r.open = func(*Config, *zap.Logger) (kernlog.Source, error) { return src, nil }
	sink := &consumertest.LogsSink{}
	r.logs = sink
	r.metrics = &consumertest.MetricsSink{}
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	return r, sink
}

// Idle, the receiver sleeps until its source says the log grew: no timer
// wakes it while there is no series, nothing to checkpoint and no kill to
// sum up; then a kill wakes it at once, and Shutdown ends the wait.
func TestIdleReceiverDoesNotWakeUp(t *testing.T) {
	src := newFakeSource("eth0: link up", "cni0: port 1(veth1) entered forwarding state")
	cfg := testConfig(t.TempDir())
	cfg.Outcome.CgroupRoot = ""
	r, sink := startOn(t, cfg, src)
	time.Sleep(2500 * time.Millisecond)
	assert.Zero(t, src.waits(), "woken up with nothing new")

	src.append(oomReportLines(4242)...)
	eventually(t, "the kill", func() bool { return sink.LogRecordCount() == 1 })
	require.NoError(t, r.Shutdown(context.Background()))
	assert.True(t, src.closed, "the loop closes its source")
}

func oomReportLines(pid int) []string {
	var out []string
	for _, e := range report(pid, t0, bootA) {
		out = append(out, e.Message)
	}
	return out
}

// With the witness on, the one thing that wakes an idle receiver is its
// poll of the node's OOM-kill counter: once per poll_interval, not more
// (a deadline left in the past would spin the loop).
func TestIdleWitnessWakesOnlyToPoll(t *testing.T) {
	k := newFakeKernel(t)
	src := newFakeSource("eth0: link up")
	cfg := k.witnessConfig(t.TempDir())
	cfg.Witness.PollInterval, cfg.Witness.Grace = 500*time.Millisecond, time.Second
	r, sink := startOn(t, cfg, src)
	const idle = 3 * time.Second
	time.Sleep(idle)
	wakes := src.waits()
	assert.LessOrEqual(t, wakes, int(idle/cfg.Witness.PollInterval)+2, "woken up more often than the witness polls")
	assert.GreaterOrEqual(t, wakes, 2, "the witness's poll wakes the receiver")

	// What the polls are for: a kill the log never shows is counted.
	k.kill(k.container(1))
	eventually(t, "the kill known only from the counters", func() bool { return sink.LogRecordCount() == 1 })
	require.NoError(t, r.Shutdown(context.Background()))
}
