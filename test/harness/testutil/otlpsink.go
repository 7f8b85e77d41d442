package testutil

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // the OTLP exporters compress with gzip by default
)

// OTLPSink is a real OTLP/gRPC endpoint (the OTLP logs and metrics services
// over gRPC on a loopback TCP port, as any backend serves them) that a test
// can take down and bring back on the same port. It keeps every logs
// request it accepted, and for each cumulative integer sum series the
// highest value.
type OTLPSink struct {
	mu   sync.Mutex
	addr string
	srv  *grpc.Server
	logs []plog.Logs
	sums map[string]int64 // metric name|resource|attributes -> highest value
}

// StartOTLPSink serves until the test ends.
func StartOTLPSink(t testing.TB) *OTLPSink {
	t.Helper()
	s := &OTLPSink{addr: "127.0.0.1:0", sums: map[string]int64{}}
	s.Up(t)
	t.Cleanup(s.Down)
	return s
}

// Addr is host:port, for an exporter's endpoint.
func (s *OTLPSink) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Up serves on the sink's address (the same port every time).
func (s *OTLPSink) Up(t testing.TB) {
	t.Helper()
	var lis net.Listener
	var err error
	// The port was just released by Down; a connection of the old server
	// in TIME_WAIT does not block a listener, but be patient anyway.
	for i := 0; i < 50; i++ {
		if lis, err = net.Listen("tcp", s.Addr()); !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	plogotlp.RegisterGRPCServer(srv, &logsService{s: s})
	pmetricotlp.RegisterGRPCServer(srv, &metricsService{s: s})
	s.mu.Lock()
	s.addr, s.srv = lis.Addr().String(), srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(lis) }()
}

// Down closes the listener and every connection: exports fail with
// Unavailable until Up.
func (s *OTLPSink) Down() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// Logs returns the logs of every request accepted, in order.
func (s *OTLPSink) Logs() []plog.Logs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]plog.Logs(nil), s.logs...)
}

// LogRecords returns every log record accepted, in order.
func (s *OTLPSink) LogRecords() []plog.LogRecord { return LogRecords(s.Logs()) }

// LogRecords flattens logs (a sink's, e.g. consumertest.LogsSink's
// AllLogs) into their log records, in order.
func LogRecords(logs []plog.Logs) []plog.LogRecord {
	var out []plog.LogRecord
	for _, ld := range logs {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			sls := ld.ResourceLogs().At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					out = append(out, lrs.At(k))
				}
			}
		}
	}
	return out
}

// SumTotal adds up the highest value seen of each series of the integer
// sum metric named name (e.g. container.oom_kill.count): a counter's total
// however often its series were exported.
func (s *OTLPSink) SumTotal(name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for k, v := range s.sums {
		if strings.HasPrefix(k, name+"|") {
			n += v
		}
	}
	return n
}

type logsService struct {
	plogotlp.UnimplementedGRPCServer
	s *OTLPSink
}

func (l logsService) Export(_ context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	ld := plog.NewLogs()
	req.Logs().CopyTo(ld)
	l.s.mu.Lock()
	l.s.logs = append(l.s.logs, ld)
	l.s.mu.Unlock()
	return plogotlp.NewExportResponse(), nil
}

type metricsService struct {
	pmetricotlp.UnimplementedGRPCServer
	s *OTLPSink
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
				if ms.At(k).Type() != pmetric.MetricTypeSum {
					continue
				}
				dps := ms.At(k).Sum().DataPoints()
				for d := 0; d < dps.Len(); d++ {
					if dps.At(d).ValueType() != pmetric.NumberDataPointValueTypeInt {
						continue
					}
					key := ms.At(k).Name() + "|" + res + "|" + attrKey(dps.At(d).Attributes())
					m.s.sums[key] = max(m.s.sums[key], dps.At(d).IntValue())
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
