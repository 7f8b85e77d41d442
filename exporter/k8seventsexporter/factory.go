package k8seventsexporter

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/aggregate"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/kill"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/metadata"
	"github.com/otelcol-oomkill/otelcol-oomkill/internal/kubeclient"
)

// NewFactory creates the k8sevents exporter factory.
func NewFactory() exporter.Factory { return newFactory(newClientFor) }

// newClientFor builds the exporter's clientset from its configuration.
func newClientFor(cfg *Config) (kubernetes.Interface, error) {
	return kubeclient.New(kubeclient.Options{
		AuthType: cfg.AuthType, Context: cfg.Context, Kubeconfig: cfg.Kubeconfig,
		UserAgent: "otelcol-oomkill/k8sevents",
		// The exporter's own token buckets bound the writes; client-go's
		// limiter only has to stay out of their way (a write may be a pod read
		// and a create).
		QPS: 2*float32(cfg.RateLimit.Total.QPS) + 1, Burst: 2*cfg.RateLimit.Total.Burst + 1,
	})
}

// newFactory lets tests hand in a client (client-go's fake clientset).
func newFactory(newClient func(*Config) (kubernetes.Interface, error)) exporter.Factory {
	return exporter.NewFactory(
		metadata.Type,
		func() component.Config { return createDefaultConfig() },
		exporter.WithLogs(func(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
			c := cfg.(*Config)
			e, err := newExporter(c, set, newClient)
			if err != nil {
				return nil, err
			}
			inner, err := exporterhelper.NewLogs(ctx, set, cfg, e.push,
				exporterhelper.WithStart(e.start),
				exporterhelper.WithShutdown(e.shutdown),
				exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
				exporterhelper.WithTimeout(c.TimeoutConfig),
				exporterhelper.WithRetry(c.RetryConfig),
				exporterhelper.WithQueue(c.QueueConfig),
			)
			if err != nil || !c.QueueConfig.HasValue() {
				return inner, err
			}
			return &neverBlock{Logs: inner, e: e}, nil
		}, metadata.LogsStability),
	)
}

// neverBlock turns a full sending queue into a counted drop: events are
// best effort, and a refusal would make the receiver pause reading the
// journal, which would hold back the metrics too.
type neverBlock struct {
	exporter.Logs
	e *eventsExporter
}

func (n *neverBlock) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	err := n.Logs.ConsumeLogs(ctx, ld)
	switch {
	case err == nil:
		n.e.status.Clear(causeQueueFull)
		return nil
	case consumererror.IsPermanent(err):
		return err
	}
	kills := 0
	for i := 0; i < ld.ResourceLogs().Len(); i++ {
		sls := ld.ResourceLogs().At(i).ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				if lrs.At(k).EventName() == kill.EventName {
					kills++
				}
			}
		}
	}
	n.e.series.Drop(ctx, kills, aggregate.DropQueueFull)
	n.e.status.Fail(causeQueueFull, err, "sending_queue is full: kills dropped, not written to events (k8sevents_kills_dropped{reason=queue_full} counts them)", zap.Int("kills", kills))
	return consumererror.NewPermanent(err)
}
