package collector

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // the OTLP exporters compress with gzip by default
)

// otlpSink is a real OTLP/gRPC endpoint (the OTLP logs and metrics
// services over gRPC on a loopback TCP port, as any backend serves them)
// that the test can take down and bring back on the same port. It keeps
// every log record it accepted, and for each counter series the highest
// cumulative value.
type otlpSink struct {
	addr string

	mu      sync.Mutex
	srv     *grpc.Server
	records []plog.LogRecord
	series  map[string]int64
}

func newOTLPSink(t *testing.T) *otlpSink {
	t.Helper()
	s := &otlpSink{addr: "127.0.0.1:0", series: map[string]int64{}}
	s.up(t)
	t.Cleanup(s.down)
	return s
}

// up serves on the sink's address (the same port every time).
func (s *otlpSink) up(t *testing.T) {
	t.Helper()
	var lis net.Listener
	var err error
	// The port was just released by down; a connection of the old server
	// in TIME_WAIT does not block a listener, but be patient anyway.
	for i := 0; i < 50; i++ {
		if lis, err = net.Listen("tcp", s.addr); !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, err)
	srv := grpc.NewServer()
	plogotlp.RegisterGRPCServer(srv, &logsService{s: s})
	pmetricotlp.RegisterGRPCServer(srv, &metricsService{s: s})
	s.mu.Lock()
	s.addr, s.srv = lis.Addr().String(), srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(lis) }()
}

// down closes the listener and every connection: exports fail with
// Unavailable until up.
func (s *otlpSink) down() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

func (s *otlpSink) logRecords() []plog.LogRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]plog.LogRecord(nil), s.records...)
}

// killTotal sums container.oom_kill.count over its series.
func (s *otlpSink) killTotal() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, v := range s.series {
		n += v
	}
	return n
}

type logsService struct {
	plogotlp.UnimplementedGRPCServer
	s *otlpSink
}

func (l logsService) Export(_ context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	ld := req.Logs()
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	for i := 0; i < ld.ResourceLogs().Len(); i++ {
		sls := ld.ResourceLogs().At(i).ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				lr := plog.NewLogRecord()
				lrs.At(k).CopyTo(lr)
				l.s.records = append(l.s.records, lr)
			}
		}
	}
	return plogotlp.NewExportResponse(), nil
}

type metricsService struct {
	pmetricotlp.UnimplementedGRPCServer
	s *otlpSink
}

func (m metricsService) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	md := req.Metrics()
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		res := attrKey(rms.At(i).Resource().Attributes())
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				if ms.At(k).Name() != "container.oom_kill.count" || ms.At(k).Type() != pmetric.MetricTypeSum {
					continue
				}
				dps := ms.At(k).Sum().DataPoints()
				for d := 0; d < dps.Len(); d++ {
					key := res + "|" + attrKey(dps.At(d).Attributes())
					m.s.series[key] = max(m.s.series[key], dps.At(d).IntValue())
				}
			}
		}
	}
	return pmetricotlp.NewExportResponse(), nil
}

func attrKey(m pcommon.Map) string {
	b, _ := json.Marshal(m.AsRaw()) // map keys come out sorted
	return string(b)
}
