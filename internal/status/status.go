// Package status reports a component's health to the collector from the
// causes that can make it fail (reading, delivering, saving a checkpoint,
// calling an API). The component is a recoverable error while any cause
// fails and OK again once every cause has cleared; each failing spell is
// logged once when it starts and once when it ends, however often the
// failing call is retried in between.
package status

import (
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.uber.org/zap"
)

// Reporter tracks the failing causes of one component. It is safe for
// concurrent use. The zero value is not usable; use New.
type Reporter struct {
	logger *zap.Logger
	now    func() time.Time

	mu      sync.Mutex
	host    component.Host
	failing map[string]*spell
}

// spell is one cause's current run of failures.
type spell struct {
	since    time.Time
	failures int
}

// New returns a Reporter that logs with logger. Status events are sent
// once SetHost gave it the host.
func New(logger *zap.Logger) *Reporter {
	return &Reporter{logger: logger, now: time.Now, failing: map[string]*spell{}}
}

// SetHost gives the host status events go to (the one Start received).
func (r *Reporter) SetHost(host component.Host) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.host = host
}

// Fail records that cause failed with err. The first failure of a spell
// is logged at error level with msg and fields and turns the component's
// status into a recoverable error; repeats are logged at debug level only.
// It returns whether this failure started the spell.
func (r *Reporter) Fail(cause string, err error, msg string, fields ...zap.Field) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.failing[cause]; ok {
		s.failures++
		r.logger.Debug(msg, append(fields, zap.String("cause", cause), zap.Int("failures", s.failures), zap.Error(err))...)
		return false
	}
	r.failing[cause] = &spell{since: r.now(), failures: 1}
	r.logger.Error(msg+" (logged once until it recovers)", append(fields, zap.String("cause", cause), zap.Error(err))...)
	componentstatus.ReportStatus(r.host, componentstatus.NewRecoverableErrorEvent(err))
	return true
}

// Clear records that cause works again. If it was failing, the end of
// the spell is logged, and when no other cause still fails the component
// is reported OK again. It returns whether cause was failing.
func (r *Reporter) Clear(cause string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.failing[cause]
	if !ok {
		return false
	}
	delete(r.failing, cause)
	r.logger.Info("Recovered", zap.String("cause", cause), zap.Int("failures", s.failures),
		zap.Duration("failing_for", r.now().Sub(s.since).Round(time.Millisecond)))
	if len(r.failing) == 0 {
		componentstatus.ReportStatus(r.host, componentstatus.NewEvent(componentstatus.StatusOK))
	}
	return true
}

// Record is Fail when err is not nil and Clear otherwise.
func (r *Reporter) Record(cause string, err error, msg string, fields ...zap.Field) {
	if err != nil {
		r.Fail(cause, err, msg, fields...)
		return
	}
	r.Clear(cause)
}

// Failing lists the causes failing now, sorted ("" when none).
func (r *Reporter) Failing() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	causes := make([]string, 0, len(r.failing))
	for c := range r.failing {
		causes = append(causes, c)
	}
	sort.Strings(causes)
	return strings.Join(causes, ",")
}
