{{/* The chart's name, or nameOverride. */}}
{{- define "otelcol-oomkill.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The objects' name: the release name when it contains the chart's name (`helm install
otelcol-oomkill ...` gives the names examples/kubernetes uses), else <release>-otelcol-oomkill.
*/}}
{{- define "otelcol-oomkill.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
Selector labels: the DaemonSet's selector (immutable) and the pods' labels, the same as
examples/kubernetes, so Prometheus' pod discovery and kubectl selectors work for both.
*/}}
{{- define "otelcol-oomkill.selectorLabels" -}}
app.kubernetes.io/name: {{ include "otelcol-oomkill.name" . }}
{{- end -}}

{{/* Labels of every object: the selector labels and Helm's recommended ones. */}}
{{- define "otelcol-oomkill.labels" -}}
{{ include "otelcol-oomkill.selectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "otelcol-oomkill.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "otelcol-oomkill.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: the existing service account to use when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "otelcol-oomkill.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The exporters of each pipeline, from the exporters.* values. */}}
{{- define "otelcol-oomkill.metricsExporters" -}}
{{- $e := list -}}
{{- if .Values.exporters.prometheus.enabled }}{{ $e = append $e "prometheus" }}{{ end -}}
{{- if .Values.exporters.otlp.enabled }}{{ $e = append $e "otlp_grpc" }}{{ end -}}
{{- toJson $e -}}
{{- end -}}

{{- define "otelcol-oomkill.logsExporters" -}}
{{- $e := list -}}
{{- if .Values.exporters.debug.enabled }}{{ $e = append $e "debug" }}{{ end -}}
{{- if .Values.exporters.k8sevents.enabled }}{{ $e = append $e "k8sevents" }}{{ end -}}
{{- if .Values.exporters.otlp.enabled }}{{ $e = append $e "otlp_grpc" }}{{ end -}}
{{- toJson $e -}}
{{- end -}}

{{/*
The collector configuration (the ConfigMap's config.yaml), the same as examples/kubernetes/
02-configmap.yaml with the defaults; its comments explain each setting. No `batch` processor: the
receiver checkpoints its journal cursor when the pipeline returns, so every exporter here is
synchronous or queues on disk first (receiver README, "Delivery guarantees").
*/}}
{{- define "otelcol-oomkill.config" -}}
{{- $metrics := include "otelcol-oomkill.metricsExporters" . | fromJsonArray -}}
{{- $logs := include "otelcol-oomkill.logsExporters" . | fromJsonArray -}}
{{- if and (not $metrics) (not $logs) -}}
{{- fail "exporters: every exporter is off; enable at least one of prometheus, otlp, debug, k8sevents" -}}
{{- end -}}
{{- if and .Values.exporters.otlp.enabled (not .Values.exporters.otlp.endpoint) -}}
{{- fail "exporters.otlp.endpoint: set host:port of the OTLP/gRPC endpoint (exporters.otlp.enabled is true)" -}}
{{- end -}}
extensions:
  file_storage:
    directory: /var/lib/otelcol-oomkill
    create_directory: true
    fsync: true
    compaction:
      directory: /var/lib/otelcol-oomkill
receivers:
  oomkill:
    source: {{ .Values.source }}
    storage: file_storage
    start_at: {{ .Values.startAt }}
    node_name: ${env:K8S_NODE_NAME}
    outcome:
      cgroup_root: /host/sys/fs/cgroup
      proc_root: /host/proc
processors:
  memory_limiter:
    check_interval: 1s
    limit_percentage: 80
    spike_limit_percentage: 20
  k8smeta:
    node_name: ${env:K8S_NODE_NAME}
    storage: file_storage
exporters:
  {{- if .Values.exporters.prometheus.enabled }}
  prometheus:
    endpoint: 0.0.0.0:{{ .Values.exporters.prometheus.port }}
    resource_constant_labels:
      excluded: [k8s.container.restart_count]
  {{- end }}
  {{- if .Values.exporters.debug.enabled }}
  debug:
    verbosity: {{ .Values.exporters.debug.verbosity }}
  {{- end }}
  {{- if .Values.exporters.k8sevents.enabled }}
  k8sevents:
    sending_queue:
      storage: file_storage
  {{- end }}
  {{- with .Values.exporters.otlp }}
  {{- if .enabled }}
  otlp_grpc:
    endpoint: {{ .endpoint | quote }}
    tls:
      insecure: {{ .insecure }}
      {{- with .caFile }}
      ca_file: {{ . | quote }}
      {{- end }}
    {{- with .headers }}
    headers: {{- toYaml . | nindent 6 }}
    {{- end }}
    sending_queue:
      storage: file_storage
      queue_size: {{ .queueSize }}
      block_on_overflow: false
      batch:
        flush_timeout: 200ms
        min_size: 1000
    retry_on_failure:
      enabled: true
      max_elapsed_time: 0
  {{- end }}
  {{- end }}
service:
  extensions: [file_storage]
  pipelines:
    {{- if $metrics }}
    metrics:
      receivers: [oomkill]
      processors: [memory_limiter, k8smeta]
      exporters: {{ toJson $metrics }}
    {{- end }}
    {{- if $logs }}
    logs:
      receivers: [oomkill]
      processors: [memory_limiter, k8smeta]
      exporters: {{ toJson $logs }}
    {{- end }}
  telemetry:
    resource:
      attributes:
        - name: k8s.node.name
          value: ${env:K8S_NODE_NAME}
    logs:
      level: {{ .Values.telemetry.logLevel }}
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 0.0.0.0
                port: {{ .Values.telemetry.port }}
                with_resource_constant_labels:
                  included: [k8s.node.name]
{{- end -}}

{{/* The configuration with .Values.config merged over it, as YAML. */}}
{{- define "otelcol-oomkill.configYaml" -}}
{{- $generated := include "otelcol-oomkill.config" . | fromYaml -}}
{{- if hasKey $generated "Error" -}}
{{- fail (printf "the generated collector configuration is not YAML: %s" $generated.Error) -}}
{{- end -}}
{{- mustMergeOverwrite $generated (deepCopy .Values.config) | toYaml -}}
{{- end -}}
