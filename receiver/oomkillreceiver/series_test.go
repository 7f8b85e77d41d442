package oomkillreceiver

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testSeriesConfig() SeriesConfig {
	return SeriesConfig{MaxSeries: 5, MaxSeriesPerContainer: 3, Retention: time.Hour, MaxExpiredSeries: 4}
}

func key(container, exe string) seriesKey {
	return seriesKey{
		resourceKey: resourceKey{PodUID: "pod-" + container, ContainerID: container, CgroupPath: "/kubepods/pod-" + container + "/" + container},
		Constraint:  "memcg", Executable: exe, Outcome: "survived",
	}
}

func sum(t *seriesTable) int64 {
	var n int64
	for _, s := range t.live {
		n += s.count
	}
	return n
}

func TestSeriesCapsGoToOverflowAndKeepTheSum(t *testing.T) {
	tab := newSeriesTable(testSeriesConfig())
	now := time.Unix(1000, 0)
	kills := 0
	// One container renames itself 100 times: 2 named series, then its own
	// overflow (3 in all); it cannot use up the global cap.
	for i := 0; i < 100; i++ {
		kind := tab.count(key("c0", fmt.Sprintf("name-%d", i)), now)
		kills++
		if i < 2 {
			assert.Equal(t, noOverflow, kind)
		} else {
			assert.Equal(t, containerOverflow, kind)
		}
	}
	assert.Equal(t, 3, tab.perResource[key("c0", "").resourceKey])
	own := tab.live[seriesKey{resourceKey: key("c0", "").resourceKey, Overflow: true}]
	require.NotNil(t, own)
	assert.Equal(t, int64(98), own.count)

	// Two more series fit (5 named: c0's 3, c1, c2), then the global
	// overflow takes new containers.
	assert.Equal(t, noOverflow, tab.count(key("c1", "php-fpm"), now))
	assert.Equal(t, noOverflow, tab.count(key("c2", "php-fpm"), now))
	kills += 2
	for i := 3; i < 50; i++ {
		assert.Equal(t, globalOverflow, tab.count(key(fmt.Sprintf("c%d", i), "php-fpm"), now))
		kills++
	}
	// An existing series keeps counting in place.
	assert.Equal(t, noOverflow, tab.count(key("c1", "php-fpm"), now))
	kills++
	assert.Equal(t, 5, tab.named())
	assert.Len(t, tab.live, 6, "5 named series and the global overflow")
	assert.Equal(t, int64(47), tab.live[overflowKey].count)
	assert.Equal(t, int64(kills), sum(tab), "every kill is in some series")
}

func TestSeriesExpireOnlyWhenGoneAndIdle(t *testing.T) {
	tab := newSeriesTable(testSeriesConfig())
	base := time.Unix(1000, 0)
	tab.count(key("alive", "a"), base)
	tab.count(key("gone", "a"), base)
	tab.count(key("gone", "a"), base)
	tab.count(key("recent", "a"), base.Add(50*time.Minute))
	alive := func(k resourceKey) bool { return k.ContainerID == "alive" }

	assert.Equal(t, 0, tab.expire(base.Add(59*time.Minute), alive), "nothing is past the retention yet")
	clear(tab.dirtySlots)
	assert.Equal(t, 1, tab.expire(base.Add(61*time.Minute), alive), "only the idle series of a gone container")
	assert.NotContains(t, tab.live, key("gone", "a"))
	assert.Contains(t, tab.live, key("alive", "a"))
	assert.Contains(t, tab.live, key("recent", "a"))
	assert.True(t, tab.expiredDirty)
	assert.Len(t, tab.dirtySlots, 1, "the expired series' slot is deleted at the next checkpoint")

	// The same identity comes back: its count continues, start time kept,
	// so a counter never goes down behind an alert rule.
	tab.count(key("gone", "a"), base.Add(2*time.Hour))
	back := tab.live[key("gone", "a")]
	assert.Equal(t, int64(3), back.count)
	assert.Equal(t, base, back.start)
}

func TestExpiredTotalsAreBounded(t *testing.T) {
	e := newExpiredTotals(3)
	for i := uint64(0); i < 100; i++ {
		e.put(i, expiredTotal{count: int64(i)})
		if i%2 == 0 {
			e.take(i) // came back
		}
	}
	assert.LessOrEqual(t, len(e.byKey), 3)
	assert.LessOrEqual(t, len(e.order), 2*3+16)
	_, ok := e.byKey[99]
	assert.True(t, ok, "the newest is remembered")

	back := newExpiredTotals(3)
	back.unmarshal(e.marshal())
	assert.Equal(t, e.byKey, back.byKey)
}

func TestSlotsAreReused(t *testing.T) {
	cfg := testSeriesConfig()
	cfg.MaxSeries = 100
	cfg.MaxSeriesPerContainer = 100
	tab := newSeriesTable(cfg)
	base := time.Unix(1000, 0)
	for round := 0; round < 20; round++ {
		now := base.Add(time.Duration(round) * 2 * time.Hour)
		for i := 0; i < 10; i++ {
			tab.count(key(fmt.Sprintf("r%d-c%d", round, i), "x"), now)
		}
		tab.expire(now.Add(90*time.Minute), func(resourceKey) bool { return false })
	}
	assert.Empty(t, tab.live)
	assert.LessOrEqual(t, tab.slots.next, 10, "slot keys are bounded by the live series, not by history")
}

func TestRestoreFoldsSeriesBeyondLoweredCaps(t *testing.T) {
	tab := newSeriesTable(SeriesConfig{MaxSeries: 2, MaxSeriesPerContainer: 10, Retention: time.Hour, MaxExpiredSeries: 10})
	for i := 0; i < 5; i++ {
		tab.restore(&counterSeries{seriesKey: key(fmt.Sprintf("c%d", i), "x"), count: 10, slot: tab.slots.take()}, false)
	}
	assert.Equal(t, 2, tab.named())
	assert.Equal(t, int64(30), tab.live[overflowKey].count)
	assert.Equal(t, int64(50), sum(tab))
}

func TestDueAndChanged(t *testing.T) {
	tab := newSeriesTable(testSeriesConfig())
	base := time.Unix(1000, 0)
	tab.count(key("a", "x"), base)
	tab.count(key("b", "x"), base)
	assert.Len(t, tab.takeChanged(base), 2)
	assert.Empty(t, tab.takeChanged(base), "a delivery carries only what changed since the last one")
	tab.count(key("a", "x"), base.Add(40*time.Second))
	assert.Len(t, tab.takeChanged(base.Add(40*time.Second)), 1)
	due := tab.due(base.Add(61*time.Second), 30*time.Second)
	require.Len(t, due, 1, "b was not emitted for 61 s, a 21 s ago")
	assert.Equal(t, "b", due[0].ContainerID)
}
