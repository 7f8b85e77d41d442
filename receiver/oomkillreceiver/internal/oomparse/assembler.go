// Package oomparse turns the kernel's OOM-killer messages, fed in journal
// order, into one Kill per killed process. It is pure Go with no I/O.
//
// The kernel prints one report per OOM event: an invoker line, context
// (cpuset, "Task in …", the 5.0+ "oom-kill:" summary), a task table, then
// one "Killed process" line per victim. Only the victim line is never
// rate-limited, so it is what gets counted; the report before it, when
// present, is joined to it (by pid where the kernel prints one) to name the
// victim's cgroup. A victim line without its report still counts, marked
// not attributed, and never borrows another report's cgroup.
//
// With memory.oom.group set (kubelet's default on cgroup v2) the kernel
// then prints "Tasks in <cgroup> are going to be killed due to
// memory.oom.group set" and one victim line per member. A victim line is
// taken for a member only when it proves it (its pid is in the report's
// task table, or it comes before the first victim's repeat), since the
// next OOM's victim line can follow at once when its report was
// rate-limited.
//
// What a full report says about the memory that ran out (the cgroup's
// counters and statistics, the task table's summary, a system OOM's free
// memory) is read by memctx.go and carried by every kill of that report.
package oomparse

import (
	"strings"
	"time"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kubecgroup"
)

// Message is one kernel log line as the journal holds it.
type Message struct {
	Text   string
	Time   time.Time
	BootID string
}

// Constraint says what limit the OOM hit.
type Constraint string

const (
	ConstraintMemcg     Constraint = "memcg"     // a memory cgroup limit (CONSTRAINT_MEMCG)
	ConstraintSystem    Constraint = "system"    // the whole machine (CONSTRAINT_NONE)
	ConstraintCpuset    Constraint = "cpuset"    // CONSTRAINT_CPUSET
	ConstraintMempolicy Constraint = "mempolicy" // CONSTRAINT_MEMORY_POLICY
	ConstraintUnknown   Constraint = "unknown"   // the report that would say was not seen
)

// Invoker is the task whose allocation triggered the OOM (not necessarily
// the victim).
type Invoker struct {
	Valid       bool
	Comm        string
	GFPMask     string
	Order       OptInt
	OOMScoreAdj OptInt
}

// Kill is one process killed by the OOM killer.
type Kill struct {
	Time   time.Time
	BootID string
	// Line is the kernel's victim line, verbatim.
	Line string

	PID         int64
	Comm        string
	UID         OptInt
	TotalVMKB   OptInt
	AnonRSSKB   OptInt
	FileRSSKB   OptInt
	ShmemRSSKB  OptInt
	PgtablesKB  OptInt
	OOMScoreAdj OptInt

	// Attributed is true when the report that explains this kill was seen
	// and names the victim's memory cgroup.
	Attributed bool
	// GroupKill is true for a process killed because its cgroup has
	// memory.oom.group set; TaskMemcg is then the group's cgroup.
	GroupKill  bool
	Constraint Constraint
	// OOMMemcg is the cgroup whose limit was hit (empty for a system OOM).
	OOMMemcg    string
	TaskMemcg   string
	Cpuset      string
	Nodemask    string
	MemsAllowed string
	Invoker     Invoker
	// Cgroup is what TaskMemcg says about the pod and container.
	Cgroup kubecgroup.Ref
	// Memory is what the report printed about the memory that ran out
	// (memctx.go); nil when it printed none (a rate-limited report). The
	// kills of one report share it: read it, do not change it.
	Memory *MemoryContext
	// Group names the group kill a member belongs to (GroupKill).
	Group GroupRef
}

// GroupRef identifies one memory.oom.group kill: the victim whose kill
// started it, as its victim line was read. Every member of one group kill
// carries the same leader.
type GroupRef struct {
	LeaderPID int64
	// LeaderTime is the Message.Time of the leader's victim line.
	LeaderTime time.Time
	// Member numbers the members in the kernel's order, from 1; the
	// leader's own kill (not a GroupKill) has none.
	Member int
}

// LineKind says what the assembler made of one message.
type LineKind int

const (
	LineIgnored      LineKind = iota // not part of an OOM report
	LineReport                       // a report line that is not a kill
	LineKill                         // a killed process: Feed returned a Kill
	LineDuplicate                    // a victim already counted in this report
	LineUnrecognized                 // looks OOM-related but was not understood
	// LineGroup is "Tasks in <cgroup> are going to be killed due to
	// memory.oom.group set": a group kill begins. Feed returns a Kill with
	// only Time, BootID, TaskMemcg (the group), Cgroup and GroupKill set.
	LineGroup
)

// Stats are cumulative counts since the assembler was made.
type Stats struct {
	Messages     uint64
	Kills        uint64
	Unattributed uint64
	Duplicates   uint64
	// Unrecognized counts OOM-looking lines that were not understood,
	// including victim lines whose trailer had unknown text (the kill
	// still counts): a new kernel format shows up here.
	Unrecognized uint64
	// Expired counts reports dropped without a kill (truncated, or older
	// than ReportTTL when the next line came).
	Expired uint64
	// MissingVictims counts reports whose summary named a victim that no
	// line reported killed, nor "already exiting": the victim line was
	// reworded (a kernel format this version does not know) or lost. The
	// kill itself is not counted from the text; the kernel's counters
	// still count it.
	MissingVictims uint64
}

// Options bound how long a report waits for its victim line.
type Options struct {
	// ReportTTL is the longest gap, in kernel time, between two lines of
	// one report. Default 30s.
	ReportTTL time.Duration
	// ReportMaxLines is the most messages that may pass between two lines
	// of one report (task tables of big machines are long). Default 1<<17.
	ReportMaxLines int
	// MaxLineBytes: longer messages are not parsed (the kernel's own lines
	// are under 1 KiB). Default 16 KiB.
	MaxLineBytes int
	// MaxVictimsPerReport bounds the per-report duplicate check. Default 1<<16.
	MaxVictimsPerReport int
	// MaxTableRows bounds the task table kept per report to check group
	// kill membership; a longer table is not used. Default 1<<17.
	MaxTableRows int
	// GroupMaxGap is the most messages that are not report lines that may
	// pass between two member lines of one group kill. Default 64.
	GroupMaxGap int
	// PageSize converts the pages of the task table and of Mem-Info to
	// bytes: the page size of the machine whose kernel printed the report.
	// Default 4096.
	PageSize int64
	// MaxTaskPIDs bounds the pids of the task table a Kill carries
	// (MemoryContext.Tasks.PIDs). Default 256.
	MaxTaskPIDs int
}

func (o *Options) setDefaults() {
	if o.ReportTTL <= 0 {
		o.ReportTTL = 30 * time.Second
	}
	if o.ReportMaxLines <= 0 {
		o.ReportMaxLines = 1 << 17
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = 16 << 10
	}
	if o.MaxVictimsPerReport <= 0 {
		o.MaxVictimsPerReport = 1 << 16
	}
	if o.MaxTableRows <= 0 {
		o.MaxTableRows = 1 << 17
	}
	if o.GroupMaxGap <= 0 {
		o.GroupMaxGap = 64
	}
	if o.PageSize <= 0 {
		o.PageSize = 4096
	}
	if o.MaxTaskPIDs <= 0 {
		o.MaxTaskPIDs = 256
	}
}

// Assembler joins report lines into kills. It is not safe for concurrent
// use; feed it from one goroutine in journal order.
type Assembler struct {
	opts   Options
	bootID string
	cur    *report
	spare  report // reused to keep Feed allocation-free
	// sinceReportLine counts messages since the current report's last line.
	sinceReportLine int
	// bare is the pid of the victim line just counted without a report
	// (0 when another report line came since): a "Tasks in …" line right
	// after it makes it the victim of a group kill whose report the kernel
	// rate-limited.
	bare, prevBare         int64
	bareTime, prevBareTime time.Time
	tableBuf               map[int64]struct{} // reused for each report's table
	// block is the multi-line part of the report being read (memctx.go).
	block block
	stats Stats
	// missing is the summary of the last report whose victim line never came.
	missing summaryLine
}

// report is the state of one OOM report, up to its last victim line.
type report struct {
	stage    stage
	lastTime time.Time

	invoker     Invoker
	cpuset      string
	nodemask    string
	memsAllowed string
	constraint  Constraint
	oomMemcg    string
	globalOOM   bool

	taskInMemcg string // pre-5.0 "Task in …"
	summary     summaryLine
	hasSummary  bool
	selection   selectionLine
	hasSelected bool
	groupMemcg  string

	// The task table ("Tasks state …") lists the OOM domain's processes
	// (pid and tgid columns): a group member must be one of them.
	tableSeen     bool
	tableOverflow bool
	table         map[int64]struct{}
	// groupVictim is the process whose kill started the group kill; the
	// kernel prints it again among the members. groupClosed is set once a
	// victim line proved not to be a member: the group's burst is over.
	groupVictim       int64
	groupVictimRepeat bool
	groupClosed       bool
	// fromBare: the group kill's own report was rate-limited; only its
	// victim line and "Tasks in …" came.
	fromBare bool

	primaryDone bool
	primaryPID  int64
	primaryTime time.Time
	groupTime   time.Time // the group leader's victim line's time
	groupSeq    int       // members counted so far
	victims     map[int64]struct{}
	// exiting: "OOM victim <summary pid> … is already exiting" came instead
	// of a victim line: nothing was killed.
	exiting bool

	mem    memState
	memOut *MemoryContext // what the report's kills carry, made at the first
}

// stage orders the lines of a report; a line of an earlier or equal stage
// than the report has reached begins a new report.
type stage int

const (
	stageNone stage = iota
	stageInvoker
	stageCpuset
	stageContext // "Task in …", "Memory limit reached …"
	stageTable   // the task table
	stageSummary
	stageSelection
	stageVictim
	stageGroup
)

// NewAssembler returns an assembler with opts' zero fields defaulted.
func NewAssembler(opts Options) *Assembler {
	opts.setDefaults()
	return &Assembler{opts: opts}
}

// Relevant reports whether a message with this text could change the
// assembler's state or counts beyond the message count. Callers may skip
// reading costly fields (the boot ID) of irrelevant messages: Feed ignores
// those fields for them.
func (a *Assembler) Relevant(text string) bool {
	return a.block != blockNone || len(text) > a.opts.MaxLineBytes || mayBeReportLine(text) || strings.HasPrefix(text, memInfoHead)
}

// Skip counts a message Relevant said is irrelevant. Such a message only
// ages the report in progress, so callers need not read its time or boot;
// Feed would do the same with it.
func (a *Assembler) Skip() {
	a.stats.Messages++
	a.sinceReportLine++
}

// Expire ends a report that has waited longer than ReportTTL for its next
// line at now (a wall-clock time, like Message.Time): a caller that has
// read everything there is calls it, so that a report whose victim line
// never comes is noticed without waiting for the next kernel line.
func (a *Assembler) Expire(now time.Time) { a.expire(now) }

// MissingVictim is the pid and the summary's "task_memcg,task=comm" of the
// last report counted in MissingVictims.
func (a *Assembler) MissingVictim() (pid int64, task string) {
	return a.missing.pid, a.missing.taskTail
}

// OpenGroup returns the memory.oom.group kill whose member lines may still
// follow. The kernel names the group only after the leader's victim line,
// so a caller gives the leader's Kill, returned before, this group.
func (a *Assembler) OpenGroup() (GroupRef, bool) {
	r := a.cur
	if r == nil || r.groupMemcg == "" || r.groupClosed || a.sinceReportLine > a.opts.GroupMaxGap {
		return GroupRef{}, false
	}
	return GroupRef{LeaderPID: r.groupVictim, LeaderTime: r.groupTime}, true
}

// Stats returns the counts so far.
func (a *Assembler) Stats() Stats { return a.stats }

// Feed reads one message. When it ends a killed process's report it returns
// the Kill and LineKill.
func (a *Assembler) Feed(m Message) (Kill, LineKind) {
	a.stats.Messages++
	if m.BootID != a.bootID {
		// Nothing carries across boots.
		a.dropReport()
		a.bootID = m.BootID
	}
	t := strings.TrimRight(m.Text, "\n ")
	if len(t) > a.opts.MaxLineBytes {
		if looksOOM(t[:a.opts.MaxLineBytes]) {
			a.stats.Unrecognized++
			return Kill{}, LineUnrecognized
		}
		return Kill{}, LineIgnored
	}
	a.expire(m.Time)
	if a.block != blockNone && a.blockLine(t, m.Time) {
		a.prevBare, a.bare = a.bare, 0
		return Kill{}, LineReport
	}
	if !mayBeReportLine(t) && t != memInfoHead {
		a.sinceReportLine++
		return Kill{}, LineIgnored
	}
	a.prevBare, a.bare = a.bare, 0
	a.prevBareTime = a.bareTime
	k, out := a.classify(t, m)
	switch out {
	case LineIgnored:
		a.bare = a.prevBare
		a.sinceReportLine++
	case LineUnrecognized:
		a.stats.Unrecognized++
	case LineKill:
		a.stats.Kills++
		if !k.Attributed {
			a.stats.Unattributed++
		}
	case LineDuplicate:
		a.stats.Duplicates++
	}
	return k, out
}

func (a *Assembler) classify(t string, m Message) (Kill, LineKind) {
	// Lines anchored at their start by the kernel come first. The others
	// begin with a process name and are tried in turn: a name may quote
	// another line's marker, so a failed parse falls through to the next.
	switch {
	case strings.HasPrefix(t, "oom-kill:"):
		if s, ok := parseSummary(t); ok {
			r := a.reportAt(stageSummary, m.Time)
			r.summary, r.hasSummary = s, true
			r.constraint = constraintFromKernel(s.constraint)
			r.nodemask, r.cpuset, r.memsAllowed = s.nodemask, s.cpuset, s.memsAllowed
			r.oomMemcg, r.globalOOM = s.oomMemcg, s.globalOOM
			return Kill{}, LineReport
		}
	case strings.HasPrefix(t, "Task in "):
		if ti, ok := parseTaskIn(t); ok {
			r := a.reportAt(stageContext, m.Time)
			r.taskInMemcg, r.oomMemcg = ti.taskMemcg, ti.oomMemcg
			r.constraint = ConstraintMemcg
			return Kill{}, LineReport
		}
	case strings.HasPrefix(t, "Memory limit reached of cgroup "):
		r := a.reportAt(stageContext, m.Time)
		r.oomMemcg = t[len("Memory limit reached of cgroup "):]
		r.constraint = ConstraintMemcg
		return Kill{}, LineReport
	case strings.HasPrefix(t, "memory: usage "), strings.HasPrefix(t, "memory+swap: usage "):
		if r := a.memReport(); r != nil && r.mem.counterLine(t) {
			a.block = blockMemcg
			a.touch(r.stage, m.Time)
			return Kill{}, LineReport
		}
	case strings.HasPrefix(t, statsHead):
		if r := a.memReport(); r != nil {
			if opens, ok := r.mem.statsHeader(t); ok {
				if opens {
					a.block = blockStats
				}
				a.touch(r.stage, m.Time)
				return Kill{}, LineReport
			}
		}
	case t == memInfoHead:
		if r := a.memReport(); r != nil {
			a.block = blockMemInfo
			a.touch(r.stage, m.Time)
			return Kill{}, LineReport
		}
	case strings.HasPrefix(t, "Tasks in "):
		if g, ok := parseGroup(t); ok {
			a.group(g, m.Time)
			return Kill{Time: m.Time, BootID: m.BootID, TaskMemcg: g, GroupKill: true, Cgroup: kubecgroup.Parse(g)}, LineGroup
		}
	case strings.HasPrefix(t, "["):
		if out, ok := a.tableLine(t, m.Time); ok {
			return Kill{}, out
		}
	case isEcho(t):
		return Kill{}, LineReport
	case isNotAKill(t):
		// Among group members, "OOM victim <pid> … is already exiting"
		// stands for the first victim's repeat; after a summary, for the
		// victim line.
		if r := a.cur; r != nil {
			pid, ok := exitingPID(t)
			if ok && r.groupMemcg != "" && !r.groupClosed && pid == r.groupVictim {
				r.groupVictimRepeat = true
			}
			if ok && r.hasSummary && pid == r.summary.pid {
				r.exiting = true
			}
		}
		return Kill{}, LineReport
	}
	if strings.Contains(t, victimMarker) {
		if v, ok := parseVictim(t); ok {
			if v.drift {
				a.stats.Unrecognized++
			}
			return a.victim(v, t, m)
		}
	}
	if strings.Contains(t, invokedMarker) {
		if inv, ok := parseInvoker(t); ok {
			r := a.reportAt(stageInvoker, m.Time)
			r.invoker = Invoker{Valid: true, Comm: inv.comm, GFPMask: inv.gfpMask, Order: inv.order, OOMScoreAdj: inv.oomScoreAdj}
			r.nodemask = inv.nodemask
			return Kill{}, LineReport
		}
	}
	if strings.HasSuffix(t, " or sacrifice child") {
		if sel, ok := parseSelection(t); ok {
			r := a.reportAt(stageSelection, m.Time)
			r.selection, r.hasSelected = sel, true
			if r.constraint == "" {
				r.constraint = constraintFromPrefix(sel.prefix)
			}
			return Kill{}, LineReport
		}
	}
	// The pre-5.0 cpuset line only means something right after an invoker.
	if a.cur != nil && a.cur.stage < stageContext && !a.cur.primaryDone {
		if c, ok := parseCpuset(t); ok {
			r := a.reportAt(stageCpuset, m.Time)
			r.cpuset, r.memsAllowed = c.cpuset, c.memsAllowed
			return Kill{}, LineReport
		}
	}
	if looksOOM(t) {
		return Kill{}, LineUnrecognized
	}
	return Kill{}, LineIgnored
}

// victim turns a victim line into a Kill, joined with the current report
// only where the report provably explains it.
func (a *Assembler) victim(v victimLine, line string, m Message) (Kill, LineKind) {
	k := Kill{
		Time: m.Time, BootID: m.BootID, Line: line,
		PID: v.pid, Comm: v.comm, UID: v.uid,
		TotalVMKB: v.totalVMKB, AnonRSSKB: v.anonRSSKB, FileRSSKB: v.fileRSSKB,
		ShmemRSSKB: v.shmemRSSKB, PgtablesKB: v.pgtablesKB, OOMScoreAdj: v.oomScoreAdj,
		Constraint: constraintFromPrefix(v.prefix),
	}
	r := a.cur
	if r == nil {
		a.bare, a.bareTime = v.pid, m.Time
		k.Cgroup = kubecgroup.Parse("")
		return k, LineKill
	}
	if r.groupMemcg != "" && !r.groupClosed {
		if _, seen := r.victims[v.pid]; seen {
			if v.pid == r.groupVictim {
				r.groupVictimRepeat = true
			}
			a.touch(stageGroup, m.Time)
			return Kill{
				Time: m.Time, BootID: m.BootID, Line: line, PID: v.pid, Comm: v.comm,
				TaskMemcg: r.groupMemcg, GroupKill: true, Cgroup: kubecgroup.Parse(r.groupMemcg),
			}, LineDuplicate
		}
		if a.member(r, v.pid) {
			// memory.oom.group: every member dies with the group.
			k.TaskMemcg = r.groupMemcg
			k.GroupKill = true
			r.groupSeq++
			k.Group = GroupRef{LeaderPID: r.groupVictim, LeaderTime: r.groupTime, Member: r.groupSeq}
			a.join(&k, r)
			a.recordVictim(r, v.pid)
			a.touch(stageGroup, m.Time)
			k.Attributed = true
			k.Cgroup = kubecgroup.Parse(k.TaskMemcg)
			return k, LineKill
		}
		// Not one of the group: its burst is over, and this is the victim
		// of a later OOM whose report the kernel rate-limited.
		r.groupClosed = true
	}
	if _, seen := r.victims[v.pid]; seen {
		a.touch(stageVictim, m.Time)
		return Kill{Time: m.Time, BootID: m.BootID, Line: line, PID: v.pid, Comm: v.comm}, LineDuplicate
	}
	switch {
	case r.hasSummary && !r.primaryDone && r.summary.pid == v.pid:
		// 5.0+: the summary names this very process.
		k.TaskMemcg = splitTaskTail(r.summary.taskTail, v.comm, true)
		if !k.UID.Valid {
			k.UID = OptInt{Value: r.summary.uid, Valid: true}
		}
		a.join(&k, r)
	case !r.primaryDone && !r.hasSummary && r.groupMemcg == "":
		// Before 5.0 there is no summary: the first victim after a report
		// is its victim (possibly a child "sacrificed" for the selected
		// process, so the pid need not match the selection line).
		k.TaskMemcg = r.taskInMemcg
		a.join(&k, r)
	case !r.primaryDone && r.hasSummary && r.hasSelected && r.selection.pid == r.summary.pid && r.groupMemcg == "":
		// 5.0 could still sacrifice a child of the selected task, and says
		// so ("… or sacrifice child"); the child lives in the summarised
		// task's cgroup. Without that line a pid mismatch proves nothing,
		// so the kill stays unattributed rather than borrow a cgroup.
		k.TaskMemcg = splitTaskTail(r.summary.taskTail, "", false)
		a.join(&k, r)
	default:
		// A bare victim line after a finished report: the kernel
		// rate-limited this kill's report. Count it, attribute nothing.
		a.recordVictim(r, v.pid)
		a.touch(stageVictim, m.Time)
		a.bare, a.bareTime = v.pid, m.Time
		k.Cgroup = kubecgroup.Parse("")
		return k, LineKill
	}
	r.primaryDone, r.primaryPID, r.primaryTime = true, v.pid, m.Time
	a.block = blockNone
	a.recordVictim(r, v.pid)
	a.touch(stageVictim, m.Time)
	k.Attributed = k.TaskMemcg != ""
	k.Cgroup = kubecgroup.Parse(k.TaskMemcg)
	return k, LineKill
}

// member says whether a victim line after "Tasks in <g> are going to be
// killed due to memory.oom.group set" is one of the group. The kernel
// prints the members in one go, the first victim among them again; a
// later OOM's victim line can follow at once when its report was
// rate-limited, so the line must prove it belongs:
//   - a task table printed with a cgroup-limit report lists exactly the
//     processes of the OOM domain: a member is in it;
//   - a report printed in full but without a table (vm.oom_dump_tasks=0)
//     has nothing to check: its members are taken in order;
//   - otherwise (the group's own report was rate-limited, or the table is
//     the whole system's) only lines before the first victim's repeat are
//     certainly members: after it the next kill may have begun.
func (a *Assembler) member(r *report, pid int64) bool {
	if a.sinceReportLine > a.opts.GroupMaxGap {
		return false
	}
	if r.tableSeen && !r.tableOverflow {
		if _, ok := r.table[pid]; !ok {
			return false
		}
		if r.constraint == ConstraintMemcg {
			return true
		}
		return !r.groupVictimRepeat
	}
	if r.hasSummary && !r.fromBare {
		return true
	}
	return !r.groupVictimRepeat
}

// group handles "Tasks in <g> are going to be killed due to
// memory.oom.group set", printed right after the victim line of the kill
// that chose the group.
func (a *Assembler) group(g string, t time.Time) {
	r := a.cur
	if a.prevBare != 0 || r == nil || r.groupMemcg != "" {
		// The victim line before was counted without a report (or there was
		// none): the kernel rate-limited this group kill's report, but it
		// still names the group and prints every member.
		a.dropReport()
		a.spare = report{}
		r = &a.spare
		a.cur = r
		r.primaryDone, r.fromBare = true, true
		if a.prevBare != 0 {
			r.groupVictim, r.groupTime = a.prevBare, a.prevBareTime
			a.recordVictim(r, a.prevBare)
		}
	} else {
		r.groupVictim, r.groupTime = r.primaryPID, r.primaryTime
	}
	if r.groupVictim == 0 {
		// No leader seen: the group's own line stands for the incident.
		r.groupTime = t
	}
	r.groupMemcg = g
	a.touch(stageGroup, t)
}

// tableLine records the task table's header and rows ("[  pid  ]   uid
// tgid …", "[   4242]     0  4242 …") in the report being printed.
func (a *Assembler) tableLine(t string, tm time.Time) (LineKind, bool) {
	if strings.HasPrefix(t, "[  pid  ]") || strings.HasPrefix(t, "[ pid ]") {
		r := a.reportAt(stageTable, tm)
		r.tableSeen = true
		r.mem.tableHeader(t)
		if a.tableBuf == nil {
			a.tableBuf = make(map[int64]struct{})
		}
		clear(a.tableBuf)
		r.table = a.tableBuf
		return LineReport, true
	}
	r := a.cur
	if r == nil || r.stage != stageTable || !r.tableSeen {
		return 0, false
	}
	var pid, tgid, rss int64
	var name string
	var ok bool
	if r.mem.tableCols > 0 {
		pid, tgid, rss, name, ok = parseTaskRow(t, r.mem.tableCols, r.mem.rssCol)
	} else {
		pid, tgid, ok = parseTableRow(t)
	}
	if !ok {
		return 0, false
	}
	r.mem.taskRow(tgid, rss, name, a.opts.MaxTaskPIDs)
	if len(r.table) >= a.opts.MaxTableRows {
		r.tableOverflow = true
	} else {
		r.table[pid] = struct{}{}
		r.table[tgid] = struct{}{}
	}
	a.touch(stageTable, tm)
	return LineReport, true
}

// join copies the report's context into k.
func (a *Assembler) join(k *Kill, r *report) {
	if r.constraint != "" {
		k.Constraint = r.constraint
	}
	if r.globalOOM {
		k.Constraint = ConstraintSystem
	}
	k.OOMMemcg = r.oomMemcg
	k.Cpuset, k.Nodemask, k.MemsAllowed = r.cpuset, r.nodemask, r.memsAllowed
	k.Invoker = r.invoker
	if r.memOut == nil && r.mem.printed() {
		m := r.mem.finish(a.opts.PageSize)
		r.memOut = &m
	}
	k.Memory = r.memOut
}

// memReport is the report a memory context line belongs to: one in
// progress, before its task table. A line without one (the report's start
// was lost) is not taken.
func (a *Assembler) memReport() *report {
	if r := a.cur; r != nil && !r.primaryDone && r.stage < stageTable {
		return r
	}
	return nil
}

// blockLine reads a line of the block in progress; false hands it on to
// the ordinary line parsers (and, but for Mem-Info's, ends the block).
func (a *Assembler) blockLine(t string, tm time.Time) bool {
	r := a.memReport()
	if r == nil {
		a.block = blockNone
		return false
	}
	var ok bool
	switch a.block {
	case blockMemcg:
		ok = r.mem.counterLine(t)
	case blockStats:
		ok = r.mem.statsLines(t)
	case blockMemInfo:
		// Mem-Info prints per-node and per-zone lines between the ones
		// read here; the task table ends it.
		if !r.mem.memInfoLines(t, a.opts.PageSize) {
			return false
		}
		ok = true
	}
	if !ok {
		a.block = blockNone
		return false
	}
	a.touch(r.stage, tm)
	return true
}

func (a *Assembler) recordVictim(r *report, pid int64) {
	if r.victims == nil {
		r.victims = make(map[int64]struct{}, 1)
	}
	if len(r.victims) < a.opts.MaxVictimsPerReport {
		r.victims[pid] = struct{}{}
	}
}

// reportAt returns the report a line of stage s belongs to, starting a new
// one when s does not follow the current report's progress.
func (a *Assembler) reportAt(s stage, t time.Time) *report {
	if a.cur == nil || s <= a.cur.stage || a.cur.primaryDone {
		a.dropReport()
		a.spare = report{}
		a.cur = &a.spare
	}
	if s >= stageTable {
		a.block = blockNone
	}
	a.touch(s, t)
	return a.cur
}

func (a *Assembler) touch(s stage, t time.Time) {
	if a.cur == nil {
		return
	}
	if s > a.cur.stage {
		a.cur.stage = s
	}
	if !t.IsZero() {
		a.cur.lastTime = t
	}
	a.sinceReportLine = 0
}

// expire drops a report that has waited too long for its next line.
func (a *Assembler) expire(now time.Time) {
	if a.cur == nil {
		return
	}
	tooOld := !now.IsZero() && !a.cur.lastTime.IsZero() && now.Sub(a.cur.lastTime) > a.opts.ReportTTL
	if tooOld || a.sinceReportLine > a.opts.ReportMaxLines {
		a.dropReport()
	}
}

func (a *Assembler) dropReport() {
	if r := a.cur; r != nil && !r.primaryDone && r.groupMemcg == "" {
		a.stats.Expired++
		if r.hasSummary && !r.exiting {
			// The summary named a victim; no line said it was killed.
			a.stats.MissingVictims++
			a.missing = r.summary
		}
	}
	a.cur = nil
	a.sinceReportLine = 0
	a.block = blockNone
}

func constraintFromKernel(c string) Constraint {
	switch c {
	case "CONSTRAINT_MEMCG":
		return ConstraintMemcg
	case "CONSTRAINT_NONE":
		return ConstraintSystem
	case "CONSTRAINT_CPUSET":
		return ConstraintCpuset
	case "CONSTRAINT_MEMORY_POLICY":
		return ConstraintMempolicy
	}
	return ConstraintUnknown
}

// constraintFromPrefix reads the prefix of a selection or victim line:
// "Memory cgroup out of memory" is always a cgroup limit; "Out of memory" is
// any of the others and cannot say which.
func constraintFromPrefix(p string) Constraint {
	if p == "Memory cgroup out of memory" {
		return ConstraintMemcg
	}
	return ConstraintUnknown
}
