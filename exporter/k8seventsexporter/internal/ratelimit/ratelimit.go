// Package ratelimit is the exporter's write limiter: two token buckets
// every API write must pass, one per pod (per node for Node events) and
// one for the whole exporter. A write that finds either bucket empty
// takes no token from the other; the caller defers it.
package ratelimit

import (
	"time"

	"golang.org/x/time/rate"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/lru"
)

// Bucket is a token bucket: QPS writes per second on average, Burst at once.
type Bucket struct {
	QPS   float64
	Burst int
}

func (b Bucket) limiter() *rate.Limiter { return rate.NewLimiter(rate.Limit(b.QPS), b.Burst) }

// Limiter holds the overall bucket and the per-pod buckets, at most
// maxPods of them (the least recently used is forgotten first, and starts
// full when its pod writes again). Not safe for concurrent use.
type Limiter struct {
	perPod Bucket
	pods   *lru.Cache[string, *rate.Limiter]
	total  *rate.Limiter
}

// New returns a limiter with full buckets.
func New(perPod, total Bucket, maxPods int) *Limiter {
	return &Limiter{perPod: perPod, pods: lru.New[string, *rate.Limiter](maxPods, nil), total: total.limiter()}
}

// Allow takes one token from key's bucket and one from the overall bucket
// at now, or none when either is empty.
func (l *Limiter) Allow(key string, now time.Time) bool {
	pl, ok := l.pods.Get(key)
	if !ok {
		pl = l.perPod.limiter()
		l.pods.Put(key, pl)
	}
	if pl.TokensAt(now) < 1 || l.total.TokensAt(now) < 1 {
		return false
	}
	pl.AllowN(now, 1)
	l.total.AllowN(now, 1)
	return true
}
