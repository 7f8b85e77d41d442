package oomkillreceiver

import (
	"cmp"
	"encoding/binary"
	"hash/fnv"
	"slices"
	"sync/atomic"
	"time"
)

// resourceKey is what tells one emitted resource from another.
type resourceKey struct {
	PodUID      string `json:"k8s.pod.uid,omitempty"`
	ContainerID string `json:"container.id,omitempty"`
	HostName    string `json:"host.name,omitempty"`
	CgroupPath  string `json:"oom.cgroup.path,omitempty"`
}

// seriesKey is one counter series: a resource and the data point attributes.
// An overflow series (Overflow set) has no data point attributes but
// otel.metric.overflow=true: a container's own overflow keeps its resource,
// the receiver's global overflow (overflowKey) has none.
type seriesKey struct {
	resourceKey
	Constraint string `json:"oom.constraint,omitempty"`
	Executable string `json:"process.executable.name,omitempty"`
	Outcome    string `json:"oom.container.outcome,omitempty"`
	// Source is oom.source; series saved by earlier versions have none,
	// and are the log's.
	Source   string `json:"oom.source,omitempty"`
	Overflow bool   `json:"otel.metric.overflow,omitempty"`
}

// expirySweepInterval: often enough that a series leaves soon after its
// retention, rarely enough to cost nothing.
func expirySweepInterval(retention time.Duration) time.Duration {
	return max(min(retention/4, time.Minute), 10*time.Millisecond)
}

// overflowKey is the series of kills that found no room under max_series.
var overflowKey = seriesKey{Overflow: true}

func keyOf(k killRecord) seriesKey {
	return seriesKey{
		resourceKey: resourceKey{
			PodUID:      k.Cgroup.PodUID,
			ContainerID: k.Cgroup.ContainerID,
			HostName:    k.Host,
			CgroupPath:  k.TaskMemcg,
		},
		Constraint: string(k.Constraint),
		Executable: k.Comm,
		Outcome:    k.Outcome,
		Source:     k.source(),
	}
}

// hash identifies a series among the expired ones (64 bits: collisions in
// a few thousand remembered totals are negligible).
func (k seriesKey) hash() uint64 {
	h := fnv.New64a()
	for _, s := range []string{k.PodUID, k.ContainerID, k.HostName, k.CgroupPath, k.Constraint, k.Executable, k.Outcome} {
		_, _ = h.Write([]byte(s))
		_, _ = h.Write([]byte{0})
	}
	if k.Source != sourceLog && k.Source != "" {
		// The log's series hash as they did before oom.source existed,
		// so totals remembered by an earlier version are found again.
		_, _ = h.Write([]byte(k.Source))
		_, _ = h.Write([]byte{0})
	}
	if k.Overflow {
		_, _ = h.Write([]byte{1})
	}
	return h.Sum64()
}

func compareKeys(a, b seriesKey) int {
	return cmp.Or(
		cmp.Compare(a.PodUID, b.PodUID), cmp.Compare(a.ContainerID, b.ContainerID),
		cmp.Compare(a.HostName, b.HostName), cmp.Compare(a.CgroupPath, b.CgroupPath),
		cmp.Compare(a.Constraint, b.Constraint), cmp.Compare(a.Executable, b.Executable),
		cmp.Compare(a.Outcome, b.Outcome), cmp.Compare(a.Source, b.Source), compareBool(a.Overflow, b.Overflow))
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case b:
		return -1
	default:
		return 1
	}
}

// counterSeries is one cumulative counter series and what its lifecycle needs.
type counterSeries struct {
	seriesKey
	count int64
	// start is the counter's start time: when this collector (with this
	// storage) first counted a kill in it.
	start time.Time
	// lastCounted is when the collector last counted a kill in it, by the
	// collector's clock: retention runs from here, not from the kill's time
	// in the journal, so history read in a catch-up is exported too.
	lastCounted time.Time
	// emitted is when it was last handed to the metrics consumer.
	emitted time.Time
	// slot is its storage key in the checkpoint (checkpoint.go).
	slot int
}

// overflowKind says where a kill went when its own series had no room.
type overflowKind int

const (
	noOverflow        overflowKind = iota
	containerOverflow              // max_series_per_container reached
	globalOverflow                 // max_series reached
)

// seriesTable holds the live series, bounded by SeriesConfig: memory, each
// delivery and each checkpoint write grow with what changed, not with
// history. The sum over all series (overflow included) is every kill
// counted; expiry only stops exporting series of gone containers that
// stopped growing, and remembers their totals so one that comes back
// continues its count instead of looking like a counter reset.
type seriesTable struct {
	cfg  SeriesConfig
	live map[seriesKey]*counterSeries
	// perResource counts the live series of each resource (container
	// overflow included, global overflow not).
	perResource map[resourceKey]int
	expired     expiredTotals
	slots       slotAllocator

	// size is len(live), readable from any goroutine (the series gauge).
	size atomic.Int64

	// changed: counted since the last delivery.
	changed map[*counterSeries]struct{}
	// dirtySlots: slot -> series to write (nil: delete) at the next checkpoint.
	dirtySlots   map[int]*counterSeries
	expiredDirty bool
}

func newSeriesTable(cfg SeriesConfig) *seriesTable {
	return &seriesTable{
		cfg:         cfg,
		live:        map[seriesKey]*counterSeries{},
		perResource: map[resourceKey]int{},
		expired:     newExpiredTotals(cfg.MaxExpiredSeries),
		changed:     map[*counterSeries]struct{}{},
		dirtySlots:  map[int]*counterSeries{},
	}
}

// named is the number of live series excluding the global overflow.
func (t *seriesTable) named() int {
	n := len(t.live)
	if _, ok := t.live[overflowKey]; ok {
		n--
	}
	return n
}

// count adds one kill to its series, or to an overflow series when its own
// would exceed a cap.
func (t *seriesTable) count(k seriesKey, now time.Time) overflowKind {
	s, kind := t.live[k], noOverflow
	if s == nil {
		k, kind = t.route(k)
		if s = t.live[k]; s == nil {
			s = t.create(k, now)
		}
	}
	s.count++
	s.lastCounted = now
	t.changed[s] = struct{}{}
	t.dirtySlots[s.slot] = s
	return kind
}

// route picks the series a kill of a new series goes to. A container has
// at most max_series_per_container series, its own overflow included.
func (t *seriesTable) route(k seriesKey) (seriesKey, overflowKind) {
	own := seriesKey{resourceKey: k.resourceKey, Overflow: true}
	_, hasOwn := t.live[own]
	if hasOwn || t.perResource[k.resourceKey] >= t.cfg.MaxSeriesPerContainer-1 {
		if hasOwn || t.named() < t.cfg.MaxSeries {
			return own, containerOverflow
		}
		return overflowKey, globalOverflow
	}
	if t.named() >= t.cfg.MaxSeries {
		return overflowKey, globalOverflow
	}
	return k, noOverflow
}

func (t *seriesTable) create(k seriesKey, now time.Time) *counterSeries {
	s := &counterSeries{seriesKey: k, start: now, slot: t.slots.take()}
	if tomb, ok := t.expired.take(k.hash()); ok {
		s.count, s.start = tomb.count, time.Unix(0, tomb.startUnixNano)
		t.expiredDirty = true
	}
	t.add(s)
	return s
}

// dirty reports whether the table changed since the last checkpoint.
func (t *seriesTable) dirty() bool { return len(t.dirtySlots) > 0 || t.expiredDirty }

// saved forgets the changes: the checkpoint holds them.
func (t *seriesTable) saved() {
	clear(t.dirtySlots)
	t.expiredDirty = false
}

// liveCount is the number of live series; safe from any goroutine.
func (t *seriesTable) liveCount() int64 { return t.size.Load() }

func (t *seriesTable) add(s *counterSeries) {
	t.live[s.seriesKey] = s
	t.size.Store(int64(len(t.live)))
	if s.seriesKey != overflowKey {
		t.perResource[s.resourceKey]++
	}
}

func (t *seriesTable) remove(s *counterSeries) {
	delete(t.live, s.seriesKey)
	t.size.Store(int64(len(t.live)))
	delete(t.changed, s)
	if s.seriesKey != overflowKey {
		if t.perResource[s.resourceKey]--; t.perResource[s.resourceKey] <= 0 {
			delete(t.perResource, s.resourceKey)
		}
	}
	t.slots.free(s.slot)
	t.dirtySlots[s.slot] = nil
}

// restore puts a series read from the checkpoint back (dirty: write it at
// the next commit). A series beyond the caps (lowered since) is folded into
// the global overflow, so the totals still add up.
func (t *seriesTable) restore(s *counterSeries, dirty bool) {
	fits := t.named() < t.cfg.MaxSeries && t.perResource[s.resourceKey] < t.cfg.MaxSeriesPerContainer
	if s.seriesKey == overflowKey || fits {
		if have := t.live[s.seriesKey]; have != nil {
			// The same series in two slots cannot be written by this
			// receiver; merge rather than lose either count.
			t.fold(s, have)
			return
		}
		t.add(s)
		if dirty {
			t.dirtySlots[s.slot] = s
		}
		return
	}
	o := t.live[overflowKey]
	if o == nil {
		o = &counterSeries{seriesKey: overflowKey, start: s.start, lastCounted: s.lastCounted, slot: t.slots.take()}
		t.add(o)
	}
	t.fold(s, o)
}

func (t *seriesTable) fold(from, into *counterSeries) {
	into.count += from.count
	into.lastCounted = maxTime(into.lastCounted, from.lastCounted)
	t.slots.free(from.slot)
	t.dirtySlots[from.slot] = nil
	t.dirtySlots[into.slot] = into
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// expire stops exporting the series that have not grown for the retention
// and whose container is not alive any more; their totals are remembered.
// alive is asked only about series past the retention.
func (t *seriesTable) expire(now time.Time, alive func(resourceKey) bool) int {
	n := 0
	for _, s := range t.live {
		if s.seriesKey == overflowKey || now.Sub(s.lastCounted) < t.cfg.Retention {
			continue
		}
		if s.CgroupPath != "" && alive(s.resourceKey) {
			continue
		}
		t.remove(s)
		t.expired.put(s.hash(), expiredTotal{count: s.count, startUnixNano: s.start.UnixNano()})
		t.expiredDirty = true
		n++
	}
	return n
}

// takeChanged returns the series counted since the last call, in a stable
// order: what a delivery carries.
func (t *seriesTable) takeChanged(now time.Time) []*counterSeries {
	out := make([]*counterSeries, 0, len(t.changed))
	for s := range t.changed {
		out = append(out, s)
		s.emitted = now
	}
	clear(t.changed)
	sortSeries(out)
	return out
}

// due returns the series not emitted within the last interval: what a
// refresh carries so idle series do not expire in exporters.
func (t *seriesTable) due(now time.Time, interval time.Duration) []*counterSeries {
	var out []*counterSeries
	for _, s := range t.live {
		if now.Sub(s.emitted) >= interval {
			out = append(out, s)
			s.emitted = now
		}
	}
	sortSeries(out)
	return out
}

// sortSeries orders series grouped by resource, in a stable order.
func sortSeries(s []*counterSeries) {
	slices.SortFunc(s, func(a, b *counterSeries) int { return compareKeys(a.seriesKey, b.seriesKey) })
}

// expiredTotal is what is remembered of an expired series.
type expiredTotal struct {
	count         int64
	startUnixNano int64
}

// expiredTotals remembers up to max expired series' totals by key hash,
// forgetting the oldest first.
type expiredTotals struct {
	max   int
	byKey map[uint64]expiredTotal
	order []uint64 // oldest first; may hold hashes taken back since
}

func newExpiredTotals(maxEntries int) expiredTotals {
	return expiredTotals{max: maxEntries, byKey: map[uint64]expiredTotal{}}
}

func (e *expiredTotals) put(h uint64, v expiredTotal) {
	if e.max <= 0 {
		return
	}
	if _, ok := e.byKey[h]; !ok {
		e.order = append(e.order, h)
	}
	e.byKey[h] = v
	for len(e.byKey) > e.max && len(e.order) > 0 {
		delete(e.byKey, e.order[0])
		e.order = e.order[1:]
	}
	// Drop stale hashes left in order by take, so order stays bounded.
	if len(e.order) > 2*e.max+16 {
		e.order = slices.DeleteFunc(e.order, func(h uint64) bool { _, ok := e.byKey[h]; return !ok })
	}
}

func (e *expiredTotals) take(h uint64) (expiredTotal, bool) {
	v, ok := e.byKey[h]
	if ok {
		delete(e.byKey, h)
	}
	return v, ok
}

// marshal encodes the remembered totals, oldest first, 24 bytes each.
func (e *expiredTotals) marshal() []byte {
	b := make([]byte, 0, 24*len(e.byKey))
	seen := make(map[uint64]bool, len(e.byKey))
	for _, h := range e.order {
		v, ok := e.byKey[h]
		if !ok || seen[h] {
			continue
		}
		seen[h] = true
		b = binary.LittleEndian.AppendUint64(b, h)
		b = binary.LittleEndian.AppendUint64(b, uint64(v.count))
		b = binary.LittleEndian.AppendUint64(b, uint64(v.startUnixNano))
	}
	return b
}

func (e *expiredTotals) unmarshal(b []byte) {
	for ; len(b) >= 24; b = b[24:] {
		e.put(binary.LittleEndian.Uint64(b), expiredTotal{
			count:         int64(binary.LittleEndian.Uint64(b[8:])),
			startUnixNano: int64(binary.LittleEndian.Uint64(b[16:])),
		})
	}
}

// slotAllocator hands out checkpoint slots, reusing freed ones, so the
// number of slot keys is bounded by the number of live series.
type slotAllocator struct {
	next  int
	freed []int
}

func (a *slotAllocator) take() int {
	if n := len(a.freed); n > 0 {
		s := a.freed[n-1]
		a.freed = a.freed[:n-1]
		return s
	}
	a.next++
	return a.next - 1
}

func (a *slotAllocator) free(s int) { a.freed = append(a.freed, s) }
