// Package dashboard builds the Grafana dashboard shipped as
// examples/grafana/otelcol-oomkill.json: its panels and their PromQL. The
// JSON is generated from here (go test ./internal/dashboard -update) so
// that its queries are written once; the tests check the file is current,
// that it decodes strictly into Grafana's dashboard schema, and (test/e2e)
// that every panel's query returns series from a real Prometheus after
// real kills.
package dashboard

import (
	"fmt"
	"slices"
	"strings"
)

// The metrics, as the shipped configs expose them.
const (
	killMetric = "container_oom_kill_count_total"
	// A collector's own counter, exported from its start (at 0): which
	// nodes have a collector reporting.
	coverageMetric = "otelcol_oomkill_receiver_kills"
)

// Dashboard variables, all multi-value with "All" as `.*` (which also
// matches a missing label: a Prometheus without a cluster label works).
const (
	killFilter = `cluster=~"$cluster", k8s_namespace_name=~"$namespace", k8s_node_name=~"$node"`
	selfFilter = `cluster=~"$cluster", k8s_node_name=~"$node"`
)

// identity is what names one counter of the receiver whatever else its
// labels say: the labels the receiver itself sets (and the cluster). The
// pod's names are not part of it: k8smeta adds them only while it knows the
// pod, so five minutes after a pod is deleted the same counter is exported
// without them; and neither are the scrape's labels (instance, pod), which
// change when the collector pod is replaced.
// oom_source ("log" or "kernel_counter") tells apart a container's kills
// read from the log and those known only from the kernel's counters.
var identity = []string{
	"cluster", "k8s_node_name", "container_id", "oom_cgroup_path", "oom_constraint",
	"oom_container_outcome", "process_executable_name", "otel_metric_overflow", "oom_source",
}

// killsIn is, for each counter, the kills of the last window (a Grafana
// duration such as $__interval or $__range), keeping the labels by
// (besides the identity's) for the panel to group on. A counter is born at
// its first kill with value 1, so increase() would miss that kill (usually
// a container's only one): a counter whose identity did not exist window ago
// counts whole; one that did counts what it grew by (never below 0: a
// counter that started again after a lost checkpoint is not negative kills).
// The difference of the counter with itself window ago is exact (no
// increase() extrapolation), so the steps of a time series add up to the
// kills of its range. Limit: a collector away for more than Prometheus'
// lookback (5 minutes) brings its counters back as new, once. Collectors
// before oom.source exported the same counters without it: a missing
// oom_source reads as "log", so an upgrade continues each counter instead
// of counting its whole total again.
func killsIn(window string, by []string, extra string) string {
	sel := killMetric + "{" + killFilter + extra + "}"
	now := withSource(sel)
	before := withSource(sel + " offset " + window)
	id := strings.Join(identity, ", ")
	keep := strings.Join(union(identity, by), ", ")
	return fmt.Sprintf(`(
    clamp_min(
        max by (%[1]s) (%[3]s)
      - max by (%[1]s) (%[4]s),
      0)
  or
    (
        max by (%[1]s) (%[3]s)
      unless on (%[2]s)
        max by (%[2]s) (%[4]s)
    )
)`, keep, id, now, before)
}

// withSource gives a kill counter without oom_source the value "log".
func withSource(sel string) string {
	return `label_replace(` + sel + `, "oom_source", "log", "oom_source", "")`
}

// union is a followed by the labels of b it lacks.
func union(a, b []string) []string {
	out := append([]string{}, a...)
	for _, l := range b {
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

// sumKills sums killsIn by the given labels.
func sumKills(window string, by []string, extra string) string {
	return fmt.Sprintf("sum by (%s) %s", strings.Join(by, ", "), killsIn(window, by, extra))
}

// coveredZero is 0 for each node whose collector reports (by node, or in
// all), so that a panel shows "0 kills" for a watched node and "No data"
// only where no collector runs.
func coveredZero(by []string) string {
	if len(by) == 0 {
		return fmt.Sprintf("0 * sum(%s{%s})", coverageMetric, selfFilter)
	}
	return fmt.Sprintf("0 * sum by (%s) (%s{%s})", strings.Join(by, ", "), coverageMetric, selfFilter)
}

// health is a collector counter's growth per step, by node.
func health(metric string) string {
	return fmt.Sprintf("sum by (cluster, k8s_node_name) (increase(%s{%s}[$__rate_interval]))", metric, selfFilter)
}

var (
	workload    = []string{"k8s_namespace_name", "k8s_deployment_name", "k8s_statefulset_name", "k8s_daemonset_name", "k8s_job_name"}
	byNode      = []string{"cluster", "k8s_node_name"}
	byPod       = []string{"k8s_namespace_name", "k8s_pod_name"}
	byContainer = []string{"k8s_namespace_name", "k8s_pod_name", "k8s_container_name"}
	recent      = []string{"k8s_namespace_name", "k8s_pod_name", "k8s_container_name", "process_executable_name", "oom_container_outcome", "oom_constraint", "k8s_node_name"}
)

const (
	survived = `, oom_container_outcome="survived"`
	exited   = `, oom_container_outcome="exited"`
	system   = `, oom_constraint="system"`
)

// The panels' queries.
var (
	qKillsTotal    = fmt.Sprintf("sum(%s) or %s", killsIn("$__range", nil, ""), coveredZero(nil))
	qSilentTotal   = fmt.Sprintf("sum(%s) or %s", killsIn("$__range", nil, survived), coveredZero(nil))
	qRestartTotal  = fmt.Sprintf("sum(%s) or %s", killsIn("$__range", nil, exited), coveredZero(nil))
	qSystemTotal   = fmt.Sprintf("sum(%s) or %s", killsIn("$__range", nil, system), coveredZero(nil))
	qByWorkload    = sumKills("$__interval", workload, "")
	qByOutcome     = sumKills("$__interval", []string{"oom_container_outcome"}, "")
	qSystemByNode  = fmt.Sprintf("%s\nor\n%s", sumKills("$__interval", byNode, system), coveredZero(byNode))
	qTopPods       = fmt.Sprintf("topk(10, %s > 0)", sumKills("$__range", byPod, ""))
	qTopContainers = fmt.Sprintf("topk(10, %s > 0)", sumKills("$__range", byContainer, ""))
	qRecentKills   = fmt.Sprintf("%s > 0", sumKills("$__range", recent, ""))
	qCollectors    = fmt.Sprintf("count(sum by (cluster, k8s_node_name) (%s{%s}))", coverageMetric, selfFilter)
	qDrift         = health("otelcol_oomkill_receiver_unrecognized_lines")
	qUnattributed  = health("otelcol_oomkill_receiver_unattributed_kills")
	qGaps          = health("otelcol_oomkill_receiver_checkpoint_gaps")
	qRetries       = health("otelcol_oomkill_receiver_delivery_retries")
	qCounterOnly   = health("otelcol_oomkill_receiver_counter_only_kills")
)
