package dashboard

import (
	"encoding/json"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// UID is the dashboard's uid: the same on every Grafana it is imported into.
const UID = "otelcol-oomkill"

// SchemaVersion is the dashboard JSON schema version written: Grafana 10.4
// and later import it (newer ones migrate it on load).
const SchemaVersion = 39

// The datasource of every panel: the dashboard's `datasource` variable.
var datasource = common.DataSourceRef{Type: ptr("prometheus"), Uid: ptr("${datasource}")}

func ptr[T any](v T) *T { return &v }

// JSON is the dashboard, indented, as examples/grafana/otelcol-oomkill.json holds it.
func JSON() ([]byte, error) {
	d, err := build().Build()
	if err != nil {
		return nil, err
	}
	d.SchemaVersion = SchemaVersion
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

//nolint:staticcheck // the classic dashboard JSON (schemaVersion) is what Grafana 10.4 to 12 import; dashboardv2 needs Grafana 12's v2 API
func build() *dashboard.DashboardBuilder {
	id := uint32(0)
	next := func() uint32 { id++; return id }
	query := func(expr string) *prometheus.DataqueryBuilder {
		return prometheus.NewDataqueryBuilder().Datasource(datasource).Expr(expr).RefId("A").EditorMode(prometheus.QueryEditorModeCode)
	}
	instant := func(expr string) *prometheus.DataqueryBuilder { return query(expr).Instant() }
	// Time series step: at least a minute, two scrapes at the examples' 30 s.
	overTime := func(expr, legend string) *prometheus.DataqueryBuilder {
		return query(expr).Range().LegendFormat(legend).Interval("1m")
	}
	bigNumber := func(title, description, expr, color string) *stat.PanelBuilder {
		return stat.NewPanelBuilder().Id(next()).Title(title).Description(description).Datasource(datasource).
			Height(4).Span(6).Unit("none").Decimals(0).NoValue("No collector reports").
			ColorMode(common.BigValueColorModeValue).GraphMode(common.BigValueGraphModeNone).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
			Thresholds(dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps([]dashboard.Threshold{
				{Color: "green"}, {Value: ptr(1.0), Color: color},
			})).
			WithTarget(instant(expr))
	}
	bars := func(title, description, expr, legend string) *timeseries.PanelBuilder {
		return timeseries.NewPanelBuilder().Id(next()).Title(title).Description(description).Datasource(datasource).
			Height(9).Span(24).Unit("none").Decimals(0).Min(0).
			DrawStyle(common.GraphDrawStyleBars).FillOpacity(80).LineWidth(1).
			Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)).
			Legend(common.NewVizLegendOptionsBuilder().ShowLegend(true).DisplayMode(common.LegendDisplayModeTable).
				Placement(common.LegendPlacementRight).Calcs([]string{"sum"})).
			Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending)).
			WithTarget(overTime(expr, legend))
	}
	top := func(title, description, expr, legend string) *bargauge.PanelBuilder {
		return bargauge.NewPanelBuilder().Id(next()).Title(title).Description(description).Datasource(datasource).
			Height(9).Span(12).Unit("none").Decimals(0).Min(0).
			DisplayMode(common.BarGaugeDisplayModeBasic).Orientation(common.VizOrientationHorizontal).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
			WithTarget(instant(expr).LegendFormat(legend))
	}
	healthPanel := func(title, description, expr string) *timeseries.PanelBuilder {
		return timeseries.NewPanelBuilder().Id(next()).Title(title).Description(description).Datasource(datasource).
			Height(7).Span(8).Unit("none").Decimals(0).Min(0).
			Thresholds(dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps([]dashboard.Threshold{
				{Color: "green"}, {Value: ptr(1.0), Color: "red"},
			})).
			ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeLine)).
			WithTarget(overTime(expr, "{{k8s_node_name}}"))
	}

	outcomeColor := func(name, display, color string) cog.Builder[dashboard.DashboardFieldConfigSourceOverrides] {
		return dashboard.NewDashboardFieldConfigSourceOverridesBuilder().
			Matcher(dashboard.MatcherConfig{Id: "byName", Options: name}).
			Properties([]dashboard.DynamicConfigValue{
				{Id: "displayName", Value: display},
				{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": color}},
			})
	}

	return dashboard.NewDashboardBuilder("OOM kills (otelcol-oomkill)").
		Uid(UID).
		Description("Every kernel OOM kill on the nodes, named: kills by namespace and workload, the silent ones (a worker killed, the container kept running: Kubernetes shows nothing) apart from those that restarted the container, node-wide OOMs, and the detector's own health. Data: otelcol-oomkill's Prometheus exporter (container_oom_kill_count_total) and its own metrics (otelcol_oomkill_receiver_*).").
		Tags([]string{"oom", "kubernetes", "otelcol-oomkill"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Time("now-6h", "now").
		Refresh("1m").
		Timezone(common.TimeZoneBrowser).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus")).
		WithVariable(labelVariable("cluster", "Cluster", `label_values(container_oom_kill_count_total, cluster)`)).
		WithVariable(labelVariable("namespace", "Namespace", `label_values(container_oom_kill_count_total{cluster=~"$cluster"}, k8s_namespace_name)`)).
		WithVariable(labelVariable("node", "Node", `label_values(otelcol_oomkill_receiver_kills{cluster=~"$cluster"}, k8s_node_name)`)).
		WithRow(dashboard.NewRowBuilder("Kills").Id(next())).
		WithPanel(bigNumber("OOM kills",
			"Processes the kernel OOM killer killed in the time range, worker children and main processes alike. 0: collectors report and saw none; No data: no collector reports.",
			qKillsTotal, "orange")).
		WithPanel(bigNumber("Silent kills: container kept running",
			`Kills after which the container lived on (oom_container_outcome="survived"): a worker died under its master, so Kubernetes shows no restart, no OOMKilled and no event. Requests or jobs that worker held were lost.`,
			qSilentTotal, "red")).
		WithPanel(bigNumber("Kills that restarted the container",
			`Kills of a container's last process (oom_container_outcome="exited"): Kubernetes restarts the container and reports OOMKilled.`,
			qRestartTotal, "orange")).
		WithPanel(bigNumber("Node-wide (system) OOM kills",
			`Kills because the whole node ran out of memory (oom_constraint="system"), not a container or pod limit: any pod on the node may be the victim.`,
			qSystemTotal, "red")).
		WithPanel(bars("Kills by namespace and workload",
			"OOM kills per step, by namespace and the pod's workload (Deployment, StatefulSet, DaemonSet or Job; empty for a bare pod, and namespace empty for a process outside any pod or a pod already forgotten).",
			qByWorkload, "{{k8s_namespace_name}} {{k8s_deployment_name}}{{k8s_statefulset_name}}{{k8s_daemonset_name}}{{k8s_job_name}}")).
		WithPanel(bars("Silent kills apart from restarts",
			"OOM kills per step by what became of the container: survived (it kept running, Kubernetes saw nothing), exited (Kubernetes restarted it: OOMKilled), unknown (not observable).",
			qByOutcome, "{{oom_container_outcome}}").
			Span(12).
			Overrides([]cog.Builder[dashboard.DashboardFieldConfigSourceOverrides]{
				outcomeColor("survived", "silent: container kept running", "red"),
				outcomeColor("exited", "container restarted (OOMKilled)", "orange"),
				outcomeColor("unknown", "outcome unknown", "gray"),
			})).
		WithPanel(bars("Node-wide (system) OOM kills by node",
			`OOM kills per step with oom_constraint="system" (the node ran out of memory), by node; 0 for every node whose collector reports.`,
			qSystemByNode, "{{k8s_node_name}}").Span(12)).
		WithRow(dashboard.NewRowBuilder("Where").Id(next())).
		WithPanel(top("Top pods", "The ten pods with the most OOM kills in the time range.", qTopPods, "{{k8s_namespace_name}}/{{k8s_pod_name}}")).
		WithPanel(top("Top containers", "The ten containers with the most OOM kills in the time range.", qTopContainers, "{{k8s_namespace_name}}/{{k8s_pod_name}} {{k8s_container_name}}")).
		WithPanel(table.NewPanelBuilder().Id(next()).Title("Recent kills").
			Description("Every container and killed process name with OOM kills in the time range, with what became of the container. The kill's log record (event oom_kill) has pid, memory and time.").
			Datasource(datasource).Height(10).Span(24).
			SortBy([]cog.Builder[common.TableSortByFieldState]{common.NewTableSortByFieldStateBuilder().DisplayName("kills").Desc(true)}).
			Footer(common.NewTableFooterOptionsBuilder().Show(true).Reducer([]string{"sum"})).
			WithTransformation(dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{
				"excludeByName": map[string]any{"Time": true},
				"indexByName": map[string]any{
					"k8s_namespace_name": 0, "k8s_pod_name": 1, "k8s_container_name": 2, "process_executable_name": 3,
					"oom_container_outcome": 4, "oom_constraint": 5, "k8s_node_name": 6, "Value": 7,
				},
				"renameByName": map[string]any{
					"k8s_namespace_name": "namespace", "k8s_pod_name": "pod", "k8s_container_name": "container",
					"process_executable_name": "process", "oom_container_outcome": "container after the kill",
					"oom_constraint": "limit hit", "k8s_node_name": "node", "Value": "kills",
				},
			}}).
			WithTarget(instant(qRecentKills).Format(prometheus.PromQueryFormatTable))).
		WithRow(dashboard.NewRowBuilder("Detector health").Id(next())).
		WithPanel(stat.NewPanelBuilder().Id(next()).Title("Nodes with a collector reporting").
			Description("Nodes whose otelcol-oomkill collector Prometheus scrapes. Compare with your node count: a node without one is not watched.").
			Datasource(datasource).Height(7).Span(8).Unit("none").Decimals(0).
			ColorMode(common.BigValueColorModeNone).GraphMode(common.BigValueGraphModeArea).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
			WithTarget(overTime(qCollectors, "nodes"))).
		WithPanel(healthPanel("Kernel lines not understood (format drift)",
			"OOM-looking kernel lines that match no known report format (otelcol_oomkill_receiver_unrecognized_lines): OOM kills on that node may go uncounted. Alert: OOMKillParserDrift.",
			qDrift)).
		WithPanel(healthPanel("Kills with unknown pod (unattributed)",
			"Kills whose pod is unknown because the kernel rate-limited their report (otelcol_oomkill_receiver_unattributed_kills). They are counted, without pod and container. Alert: OOMKillUnattributed.",
			qUnattributed)).
		WithPanel(healthPanel("Checkpoint gaps",
			"Times a collector found its saved journal position gone (the journal was vacuumed while it was down): kills logged in between may be missed (otelcol_oomkill_receiver_checkpoint_gaps).",
			qGaps)).
		WithPanel(healthPanel("Delivery retries",
			"Times handing kills to the exporters failed and was retried (otelcol_oomkill_receiver_delivery_retries): the backend or the memory limiter pushed back; nothing is lost, kills wait in the journal.",
			qRetries)).
		WithPanel(healthPanel("Kills known only from the kernel's counters",
			`Kills the kernel's own OOM-kill counters counted that its log did not show (otelcol_oomkill_receiver_counter_only_kills): the log lines were lost (journald dropped or rate-limited them, the ring buffer overran) or a kernel this collector version does not understand reworded them. They are counted all the same (oom_source="kernel_counter"), without the killed process. Alert: OOMKillsMissingFromLog.`,
			qCounterOnly))
}

// labelVariable is a multi-value variable of a label's values, "All" being
// `.*`, which also matches series without the label.
func labelVariable(name, label, query string) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).Label(label).
		Datasource(datasource).
		Query(dashboard.StringOrMap{String: ptr(query)}).Definition(query).
		Multi(true).IncludeAll(true).AllValue(".*").
		Current(dashboard.VariableOption{Text: dashboard.StringOrArrayOfString{String: ptr("All")}, Value: dashboard.StringOrArrayOfString{String: ptr("$__all")}}).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
}
