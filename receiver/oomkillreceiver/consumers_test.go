package oomkillreceiver

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
)

// flakyLogs refuses the first failures calls, as an exporter that is down
// (or a memory limiter refusing) would, then accepts.
type flakyLogs struct {
	mu       sync.Mutex
	failures int
	sink     consumertest.LogsSink
}

func (f *flakyLogs) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

func (f *flakyLogs) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	f.mu.Lock()
	if f.failures > 0 {
		f.failures--
		f.mu.Unlock()
		return errors.New("exporter down")
	}
	f.mu.Unlock()
	return f.sink.ConsumeLogs(ctx, ld)
}

type nopLogs struct{}

func (nopLogs) Capabilities() consumer.Capabilities          { return consumer.Capabilities{} }
func (nopLogs) ConsumeLogs(context.Context, plog.Logs) error { return nil }
