package oomkillreceiver

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// The Info line per kill is what `kubectl logs` shows of the kills. A
// catch-up of a node's history, or an OOM storm, can bring 100,000 kills in
// seconds: at most killLogBurst lines are written per killLogWindow, and
// the kills beyond them are summed up in one line at the window's end.
// Every kill still has its log record and its count. The window is a
// variable so a test can shorten it.
const killLogBurst = 10

var killLogWindow = 10 * time.Second

// killLog writes what the receiver logs about kills: the per-kill Info
// line, bounded, and the first kill into each kind of overflow series.
type killLog struct {
	logger *zap.Logger
	series SeriesConfig
	// overflowLogged: the first kill into each kind of overflow is logged.
	overflowLogged map[overflowKind]bool
	// start is when the current window began (zero: none open); logged
	// and unlogged count its kills written and not written.
	start    time.Time
	logged   int
	unlogged int
}

// log writes k's line, or counts k when the window's lines are used up.
func (l *killLog) log(k killRecord, now time.Time) {
	l.flush(now)
	if l.start.IsZero() {
		l.start = now
	}
	if l.logged >= killLogBurst {
		l.unlogged++
		return
	}
	l.logged++
	l.logger.Info("OOM kill", zap.Int64("pid", k.PID), zap.String("process", k.Comm),
		zap.String("k8s.pod.uid", k.Cgroup.PodUID), zap.String("container.id", k.Cgroup.ContainerID),
		zap.String("constraint", string(k.Constraint)), zap.Bool("attributed", k.Attributed),
		zap.Bool("group_kill", k.GroupKill), zap.String("outcome", k.Outcome), zap.String("source", k.source()))
}

// flush closes the window once it is over, summing up the kills it did
// not log.
func (l *killLog) flush(now time.Time) {
	if l.start.IsZero() || now.Sub(l.start) < killLogWindow {
		return
	}
	if l.unlogged > 0 {
		l.logger.Info(fmt.Sprintf("%d more OOM kills not logged one by one (at most %d lines per %v); each has its log record and is counted in container.oom_kill.count",
			l.unlogged, killLogBurst, killLogWindow), zap.Int("kills_not_logged", l.unlogged))
	}
	l.start, l.logged, l.unlogged = time.Time{}, 0, 0
}

// dueAt is when the pending summary is due (zero: none pending).
func (l *killLog) dueAt() time.Time {
	if l.unlogged == 0 {
		return time.Time{}
	}
	return l.start.Add(killLogWindow)
}

// overflow says once per kind of overflow that a cap was reached.
func (l *killLog) overflow(kind overflowKind, k killRecord) {
	if l.overflowLogged[kind] {
		return
	}
	if l.overflowLogged == nil {
		l.overflowLogged = map[overflowKind]bool{}
	}
	l.overflowLogged[kind] = true
	if kind == containerOverflow {
		l.logger.Warn("A container reached series.max_series_per_container: its further process names, constraints and outcomes are counted in its overflow series (otel.metric.overflow=true); logged once",
			zap.String("k8s.pod.uid", k.Cgroup.PodUID), zap.String("container.id", k.Cgroup.ContainerID),
			zap.String("cgroup", k.TaskMemcg), zap.Int("max_series_per_container", l.series.MaxSeriesPerContainer))
		return
	}
	l.logger.Warn("series.max_series reached: kills of further series are counted in one overflow series without pod or container (otel.metric.overflow=true); totals stay exact. Raise series.max_series if this node needs more; logged once",
		zap.Int("max_series", l.series.MaxSeries))
}
