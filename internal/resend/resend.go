// Package resend marks a delivery that carries data the pipeline has seen
// before: a receiver's periodic re-export of its counter series (the
// oomkill receiver's metrics refresh). A processor that holds data back to
// wait for metadata (k8smeta waiting for a pod's status) passes such data
// on at once: whatever the wait could learn, it learned when the data was
// first sent, so waiting again only delays the batch.
//
// The mark travels in the context of Consume* calls, so it reaches the
// processors that run in the receiver's call (not past a batch processor or
// an exporter's queue, where nothing waits any more).
package resend

import "context"

type markKey struct{}

// NewContext returns ctx marked as carrying data sent before.
func NewContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, markKey{}, true)
}

// FromContext reports whether ctx carries data sent before.
func FromContext(ctx context.Context) bool {
	marked, _ := ctx.Value(markKey{}).(bool)
	return marked
}
