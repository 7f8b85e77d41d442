package k8smetaprocessor

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-oomkill/otelcol-oomkill/internal/sharedcomponent"
	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/kube"
	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/metadata"
)

// NewFactory creates the k8smeta processor factory.
func NewFactory() processor.Factory {
	return newFactory(func(cfg *Config) (kubernetes.Interface, error) { return kube.NewClient(cfg.AuthType, cfg.Context) })
}

// newFactory lets tests hand in a client (client-go's fake clientset).
func newFactory(newClient func(*Config) (kubernetes.Interface, error)) processor.Factory {
	// One watch per configuration, whatever the number of pipelines.
	var shared sharedcomponent.Map[*Config, *k8smeta]
	get := func(set processor.Settings, cfg component.Config) (*sharedcomponent.Component[*k8smeta], error) {
		c := cfg.(*Config)
		return shared.LoadOrStore(c, func() (*k8smeta, error) { return newK8smeta(c, set, newClient) })
	}
	capabilities := processorhelper.WithCapabilities(consumer.Capabilities{MutatesData: true})
	return processor.NewFactory(
		metadata.Type,
		func() component.Config { return createDefaultConfig() },
		processor.WithLogs(func(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Logs) (processor.Logs, error) {
			p, err := get(set, cfg)
			if err != nil {
				return nil, err
			}
			return processorhelper.NewLogs(ctx, set, cfg, next, p.Unwrap.processLogs, capabilities,
				processorhelper.WithStart(p.Start), processorhelper.WithShutdown(p.Shutdown))
		}, metadata.LogsStability),
		processor.WithMetrics(func(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Metrics) (processor.Metrics, error) {
			p, err := get(set, cfg)
			if err != nil {
				return nil, err
			}
			return processorhelper.NewMetrics(ctx, set, cfg, next, p.Unwrap.processMetrics, capabilities,
				processorhelper.WithStart(p.Start), processorhelper.WithShutdown(p.Shutdown))
		}, metadata.MetricsStability),
		processor.WithTraces(func(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
			p, err := get(set, cfg)
			if err != nil {
				return nil, err
			}
			return processorhelper.NewTraces(ctx, set, cfg, next, p.Unwrap.processTraces, capabilities,
				processorhelper.WithStart(p.Start), processorhelper.WithShutdown(p.Shutdown))
		}, metadata.TracesStability),
	)
}
