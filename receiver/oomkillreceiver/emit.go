package oomkillreceiver

import (
	"cmp"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadata"
)

// EventName is the log record event name of a kill.
const EventName = "oom_kill"

// emitter turns kills and totals into pdata. A fresh payload is built for
// every delivery attempt: a consumer may modify what it was given.
type emitter struct {
	cfg     *Config
	version string // the collector's, as the metrics scope carries it
	// mb was made with the persisted start time of the counter series.
	mb *metadata.MetricsBuilder
}

func (e *emitter) resource(k resourceKey) pcommon.Resource {
	rb := metadata.NewResourceBuilder(e.cfg.ResourceAttributes)
	setIf(rb.SetK8sPodUID, k.PodUID)
	setIf(rb.SetContainerID, k.ContainerID)
	setIf(rb.SetHostName, k.HostName)
	setIf(rb.SetK8sNodeName, e.cfg.NodeName)
	setIf(rb.SetOomCgroupPath, k.CgroupPath)
	return rb.Emit()
}

func setIf(set func(string), v string) {
	if v != "" {
		set(v)
	}
}

// logs builds one log record per kill, one ResourceLogs per resource.
func (e *emitter) logs(kills []killRecord, observed time.Time) plog.Logs {
	ld := plog.NewLogs()
	byResource := map[resourceKey]plog.LogRecordSlice{}
	for _, k := range kills {
		rk := keyOf(k).resourceKey
		records, ok := byResource[rk]
		if !ok {
			rl := ld.ResourceLogs().AppendEmpty()
			e.resource(rk).MoveTo(rl.Resource())
			sl := rl.ScopeLogs().AppendEmpty()
			sl.Scope().SetName(metadata.ScopeName)
			sl.Scope().SetVersion(e.version)
			records = sl.LogRecords()
			byResource[rk] = records
		}
		fillLogRecord(records.AppendEmpty(), k, observed)
	}
	return ld
}

// fillLogRecord writes a kill's fields with semantic-convention names where
// they exist and documented oom.* names otherwise (documentation.md).
func fillLogRecord(lr plog.LogRecord, k killRecord, observed time.Time) {
	lr.SetEventName(EventName)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(k.Time))
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(observed))
	lr.SetSeverityNumber(plog.SeverityNumberError)
	lr.SetSeverityText("ERROR")
	a := lr.Attributes()
	a.PutStr("oom.kill.id", k.ID)
	a.PutStr("oom.source", k.source())
	if k.Source == sourceKernelCounter {
		// Only the counters know of it: no pid, name or memory figures.
		lr.Body().SetStr(counterKillBody(k.TaskMemcg))
		a.PutStr("oom.constraint", string(k.Constraint))
		a.PutBool("oom.attributed", k.Attributed)
		a.PutStr("oom.container.outcome", cmp.Or(k.Outcome, outcomeUnknown))
		putStrIf(a, "oom.pod.qos_class", k.Cgroup.QoSClass)
		putStrIf(a, "container.runtime.name", k.Cgroup.Runtime)
		putStrIf(a, "oom.boot_id", k.BootID)
		return
	}
	lr.Body().SetStr(k.Line)
	a.PutInt("process.pid", k.PID)
	a.PutStr("process.executable.name", k.Comm)
	putOpt(a, "process.user.id", k.UID)
	a.PutStr("oom.constraint", string(k.Constraint))
	a.PutBool("oom.attributed", k.Attributed)
	a.PutBool("oom.group_kill", k.GroupKill)
	a.PutStr("oom.container.outcome", cmp.Or(k.Outcome, outcomeUnknown))
	putStrIf(a, "oom.memcg", k.OOMMemcg)
	putStrIf(a, "oom.cpuset", k.Cpuset)
	putStrIf(a, "oom.nodemask", k.Nodemask)
	putStrIf(a, "oom.mems_allowed", k.MemsAllowed)
	putStrIf(a, "oom.pod.qos_class", k.Cgroup.QoSClass)
	putStrIf(a, "container.runtime.name", k.Cgroup.Runtime)
	putOpt(a, "oom.total_vm_kb", k.TotalVMKB)
	putOpt(a, "oom.anon_rss_kb", k.AnonRSSKB)
	putOpt(a, "oom.file_rss_kb", k.FileRSSKB)
	putOpt(a, "oom.shmem_rss_kb", k.ShmemRSSKB)
	putOpt(a, "oom.pgtables_kb", k.PgtablesKB)
	putOpt(a, "oom.score_adj", k.OOMScoreAdj)
	if k.Invoker.Valid {
		a.PutStr("oom.invoker.name", k.Invoker.Comm)
		putStrIf(a, "oom.invoker.gfp_mask", k.Invoker.GFPMask)
		putOpt(a, "oom.invoker.order", k.Invoker.Order)
		putOpt(a, "oom.invoker.score_adj", k.Invoker.OOMScoreAdj)
	}
	putStrIf(a, "oom.boot_id", k.BootID)
	putMemoryContext(a, &k.Kill)
	if k.GroupID != "" {
		a.PutStr("oom.group.id", k.GroupID)
		a.PutInt("oom.group.size", int64(k.GroupSize))
	}
}

// counterKillBody is the body of a kill known only from the counters.
func counterKillBody(cgroup string) string {
	if cgroup == "" {
		return "The kernel counted an OOM kill on this node (/proc/vmstat oom_kill) that its log did not show: the log line was lost, dropped or reworded. Process and cgroup unknown."
	}
	return "The kernel counted an OOM kill in cgroup " + cgroup + " (its OOM-kill counter) that its log did not show: the log line was lost, dropped or reworded. Process unknown."
}

// metrics builds the cumulative counter for the given series (grouped by
// resource, as sortSeries leaves them), each with its own start time.
func (e *emitter) metrics(series []*counterSeries, now time.Time) pmetric.Metrics {
	ts := pcommon.NewTimestampFromTime(now)
	for i, s := range series {
		constraint, ok := metadata.MapAttributeOomConstraint[s.Constraint]
		if !ok {
			constraint = metadata.AttributeOomConstraintUnknown
		}
		outcome, ok := metadata.MapAttributeOomContainerOutcome[s.Outcome]
		if !ok {
			outcome = metadata.AttributeOomContainerOutcomeUnknown
		}
		source, ok := metadata.MapAttributeOomSource[s.Source]
		if !ok {
			source = metadata.AttributeOomSourceLog
		}
		e.mb.RecordContainerOomKillCountDataPoint(ts, s.count, constraint, outcome, source, s.Executable)
		if i == len(series)-1 || series[i+1].resourceKey != s.resourceKey {
			e.mb.EmitForResource(metadata.WithResource(e.resource(s.resourceKey)))
		}
	}
	md := e.mb.Emit()
	setSeriesDetails(md, series)
	return md
}

// setSeriesDetails gives each data point its series' start time and turns
// overflow points into what the OpenTelemetry convention says: only
// otel.metric.overflow=true. The generated builder knows neither; it emits
// data points in the order they were recorded, one resource per group.
func setSeriesDetails(md pmetric.Metrics, series []*counterSeries) {
	next := 0
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				dps := ms.At(k).Sum().DataPoints()
				for d := 0; d < dps.Len() && next < len(series); d++ {
					s := series[next]
					next++
					dp := dps.At(d)
					dp.SetStartTimestamp(pcommon.NewTimestampFromTime(s.start))
					switch {
					case s.Overflow:
						dp.Attributes().Clear()
						dp.Attributes().PutBool(overflowAttribute, true)
					case s.Executable == "":
						// A kill known only from the counters has no
						// process name: absent, not empty.
						dp.Attributes().Remove("process.executable.name")
					}
				}
			}
		}
	}
}

// overflowAttribute marks the data point of kills beyond a series cap.
const overflowAttribute = "otel.metric.overflow"
