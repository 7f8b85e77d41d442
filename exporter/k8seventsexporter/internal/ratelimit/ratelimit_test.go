package ratelimit

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

var t0 = time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC)

func TestPerPodBucket(t *testing.T) {
	l := New(Bucket{QPS: 0.1, Burst: 2}, Bucket{QPS: 100, Burst: 100}, 10)
	assert.True(t, l.Allow("shop/a/", t0))
	assert.True(t, l.Allow("shop/a/", t0))
	assert.False(t, l.Allow("shop/a/", t0), "burst of 2 used")
	assert.True(t, l.Allow("shop/b/", t0), "another pod has its own bucket")
	assert.False(t, l.Allow("shop/a/", t0.Add(9*time.Second)))
	assert.True(t, l.Allow("shop/a/", t0.Add(10*time.Second)), "one token per 10s")
}

// An empty overall bucket takes no token from the pod's: the write is
// deferred whole, and the pod keeps its burst for later.
func TestTotalBucketTakesNothingWhenEmpty(t *testing.T) {
	l := New(Bucket{QPS: 0.001, Burst: 3}, Bucket{QPS: 0.001, Burst: 1}, 10)
	assert.True(t, l.Allow("shop/a/", t0))
	assert.False(t, l.Allow("shop/b/", t0))
	assert.False(t, l.Allow("shop/b/", t0))
	l.total = Bucket{QPS: 100, Burst: 100}.limiter()
	assert.True(t, l.Allow("shop/b/", t0))
	assert.True(t, l.Allow("shop/b/", t0))
	assert.True(t, l.Allow("shop/b/", t0), "pod b still had its whole burst")
	assert.False(t, l.Allow("shop/b/", t0))
}

func TestPodBucketsAreBounded(t *testing.T) {
	l := New(Bucket{QPS: 0.001, Burst: 1}, Bucket{QPS: 100, Burst: 100}, 2)
	for _, k := range []string{"a", "b", "c"} {
		assert.True(t, l.Allow(k, t0))
	}
	assert.Equal(t, 2, l.pods.Len())
	assert.True(t, l.Allow("a", t0), "a was forgotten and starts full")
	assert.False(t, l.Allow("c", t0))
}
