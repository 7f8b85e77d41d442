// Package aggregate is the exporter's ledger of kills: it counts each kill
// once (by kill ID), folds kills of one container, process, limit and
// outcome into one event series, and knows for every series how many of
// its kills the API's Event holds. Every kill ends up written or dropped
// with a reason; both are counted here. It holds no client.
package aggregate

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/event"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/kill"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/lru"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/metadata"
)

// Reasons a kill is written to no event (the kills_dropped reason
// attribute, declared in metadata.yaml).
const (
	DropNoPod         = "no_pod"
	DropPodDeleted    = "pod_deleted"
	DropNamespaceGone = "namespace_gone"
	DropRejected      = "rejected"
	DropEvicted       = "evicted"
	DropQueueFull     = "queue_full"
)

// Key groups kills into one event: same pod (or node), container, process
// name, limit and outcome. The note, immutable in events.k8s.io/v1, is
// then true of every kill in the series but the pid and sizes.
//
// The fields' names and order are part of each Event's object name (see
// objectName): changing them renames the events of a restarted exporter.
type Key struct {
	Namespace, Pod, PodUID, Container string
	Node                              string // set for Node events only
	Process, Outcome                  string
	Scope                             kill.Scope
}

// Regarding is the object the series' Event is about.
func (k Key) Regarding() event.Regarding {
	return event.Regarding{Namespace: k.Namespace, Pod: k.Pod, PodUID: k.PodUID, Container: k.Container, Node: k.Node}
}

// Series is one event and the kills it counts.
type Series struct {
	Key  Key
	Name string // the Event's object name
	// First is the kill the note describes; its time is the eventTime.
	First  kill.Kill
	Latest kill.Kill
	// Count is the kills observed; Written those the API's Event holds
	// (0: not created yet).
	Count, Written int
	// Dead is the drop reason of a series given up; its later kills are
	// dropped for the same reason.
	Dead string
	// Verified: the pod was read and is the kill's.
	Verified bool
	// Deferred: the rate limit held back a write (counted once).
	Deferred bool
	// ForbiddenSince is the first Forbidden answer: an API server that
	// just started refuses until its RBAC caches are filled.
	ForbiddenSince time.Time
}

func newSeries(key Key, k kill.Kill) *Series {
	s := &Series{Key: key, First: k, Latest: k, Count: 1}
	s.Name = s.objectName()
	return s
}

// Pending reports whether the series has kills to write.
func (s *Series) Pending() bool { return s.Dead == "" && s.Count > s.Written }

// Unwritten is the number of kills the API's Event does not hold yet.
func (s *Series) Unwritten() int { return s.Count - s.Written }

// Event is the series' Event as its first write makes it.
func (s *Series) Event() event.Series {
	return event.Series{Name: s.Name, Regarding: s.Key.Regarding(), First: s.First, Count: s.Count, LastObserved: s.Latest.Time}
}

// Restart makes the kills not yet written a new event, for when the
// series' Event expired (the API server keeps events 1h) or was deleted.
func (s *Series) Restart() {
	s.Count -= s.Written
	s.Written = 0
	s.First = s.Latest
	s.Name = s.objectName()
}

// objectName is stable for a series' first kill, so a create repeated
// after a lost answer or a restart finds the event it made.
func (s *Series) objectName() string {
	base := s.Key.Pod
	if s.Key.Node != "" {
		base = s.Key.Node
	}
	return event.ObjectName(base, fmt.Sprintf("%+v\x00%s", s.Key, s.First.ID))
}

// Options bound the table and say which kills make a series.
type Options struct {
	// Window: a kill more than this after the last kill of its series
	// starts a new event instead of raising the series' count.
	Window time.Duration
	// MaxSeries and MaxKillIDs bound what is remembered (least recently
	// used go first).
	MaxSeries, MaxKillIDs int
	// NodeEvents: a kill outside any pod makes a series on its Node.
	NodeEvents bool
}

// Table is the series and the kill IDs seen. Not safe for concurrent use.
type Table struct {
	opts   Options
	tb     *metadata.TelemetryBuilder
	logger *zap.Logger
	series *lru.Cache[Key, *Series]
	// seen maps each kill ID to its series' key; the zero Key for a kill
	// that made no series.
	seen *lru.Cache[string, Key]
}

// New returns an empty table that counts into tb.
func New(opts Options, tb *metadata.TelemetryBuilder, logger *zap.Logger) *Table {
	t := &Table{opts: opts, tb: tb, logger: logger, seen: lru.New[string, Key](opts.MaxKillIDs, nil)}
	t.series = lru.New[Key, *Series](opts.MaxSeries, func(_ Key, s *Series) {
		if s.Pending() {
			t.Drop(context.Background(), s.Unwritten(), DropEvicted)
			t.logger.Warn("Event series forgotten (aggregation.max_series) before its kills were written",
				zap.String("namespace", s.Key.Namespace), zap.String("pod", s.Key.Pod), zap.Int("kills", s.Unwritten()))
		}
	})
	return t
}

// Add counts a kill into its series (once per kill ID) and returns the
// series to write, or nil.
func (t *Table) Add(ctx context.Context, k kill.Kill) *Series {
	if key, ok := t.seen.Get(k.ID); ok {
		t.tb.K8seventsDedupHits.Add(ctx, 1)
		if s, ok := t.series.Get(key); ok && key != (Key{}) {
			return s
		}
		return nil
	}
	key, ok := t.keyOf(k)
	if !ok {
		t.seen.Put(k.ID, Key{})
		t.Drop(ctx, 1, DropNoPod)
		return nil
	}
	t.seen.Put(k.ID, key)
	s, ok := t.series.Get(key)
	switch {
	case ok && (s.Written == 0 || k.Time.Sub(s.Latest.Time) <= t.opts.Window):
		s.Count++
		if !k.Time.Before(s.Latest.Time) {
			s.Latest = k
		}
		if s.Dead != "" {
			t.Drop(ctx, 1, s.Dead)
			return nil
		}
		t.tb.K8seventsKillsAggregated.Add(ctx, 1)
	default:
		if ok && s.Pending() {
			t.Drop(ctx, s.Unwritten(), DropEvicted)
		}
		s = newSeries(key, k)
		t.series.Put(key, s)
	}
	return s
}

func (t *Table) keyOf(k kill.Kill) (Key, bool) {
	key := Key{Process: k.Process, Outcome: k.Outcome, Scope: k.Scope}
	switch {
	case k.HasPod():
		key.Namespace, key.Pod, key.PodUID, key.Container = k.Namespace, k.PodName, k.PodUID, k.Container
	case t.opts.NodeEvents && k.PodUID == "" && k.Node != "":
		key.Namespace, key.Node = event.NodeNamespace, k.Node
	default:
		return Key{}, false
	}
	return key, true
}

// Drop counts n kills written to no event for reason.
func (t *Table) Drop(ctx context.Context, n int, reason string) {
	t.tb.K8seventsKillsDropped.Add(ctx, int64(n), metric.WithAttributes(attribute.String("reason", reason)))
}

// Abandon marks a series as never to be written: its kills, and later
// kills of the same key within the window, are dropped and counted.
func (t *Table) Abandon(ctx context.Context, s *Series, reason string, err error) {
	s.Dead = reason
	t.Drop(ctx, s.Unwritten(), reason)
	t.logger.Info("Kill not written to a Kubernetes Event", zap.String("reason", reason),
		zap.String("namespace", s.Key.Namespace), zap.String("pod", s.Key.Pod), zap.String("node", s.Key.Node),
		zap.Int("kills", s.Unwritten()), zap.Error(err))
}

// Pending lists the series with kills to write.
func (t *Table) Pending() []*Series {
	var todo []*Series
	t.series.Each(func(_ Key, s *Series) {
		if s.Pending() {
			todo = append(todo, s)
		}
	})
	return todo
}

// Unwritten is the number of kills waiting to be written, over all series.
func (t *Table) Unwritten() int {
	n := 0
	t.series.Each(func(_ Key, s *Series) {
		if s.Pending() {
			n += s.Unwritten()
		}
	})
	return n
}

// HasPending reports whether any series has kills to write.
func (t *Table) HasPending() bool {
	pending := false
	t.series.Each(func(_ Key, s *Series) { pending = pending || s.Pending() })
	return pending
}

// NextExpiry is when the first written series' window ends; Sweep
// forgets it at any later time. ok is false when no written series is
// remembered.
func (t *Table) NextExpiry() (at time.Time, ok bool) {
	t.series.Each(func(_ Key, s *Series) {
		if s.Pending() {
			return
		}
		if end := s.Latest.Time.Add(t.opts.Window); !ok || end.Before(at) {
			at, ok = end, true
		}
	})
	return at, ok
}

// Sweep forgets written series whose window has passed at now.
func (t *Table) Sweep(now time.Time) {
	cutoff := now.Add(-t.opts.Window)
	var old []Key
	t.series.Each(func(k Key, s *Series) {
		if !s.Pending() && s.Latest.Time.Before(cutoff) {
			old = append(old, k)
		}
	})
	for _, k := range old {
		t.series.Remove(k)
	}
}

// Len is the number of series remembered.
func (t *Table) Len() int { return t.series.Len() }

// KillIDs is the number of kill IDs remembered.
func (t *Table) KillIDs() int { return t.seen.Len() }
