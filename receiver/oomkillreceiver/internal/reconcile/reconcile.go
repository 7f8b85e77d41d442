// Package reconcile matches the OOM kills read from the kernel's log to the
// kernel's own OOM-kill counters, so that every kill the kernel counted is
// counted once: from its log line when the log has it, from the counters
// when it does not. It is pure logic with no I/O: readings of the counters
// and the kills read from the log go in, verdicts and the kills known only
// from the counters come out.
//
// The kernel raises its counters (/proc/vmstat oom_kill for the node, the
// victim's memory cgroup's oom_kill) in __oom_kill_process right before it
// prints "Killed process", and for every such line it prints. So a reading
// taken after a batch of log lines was read holds the rise of every kill in
// that batch. A rise that no log line explains once the log has been read
// to its end a grace after the reading is a kill the log did not show.
//
// Counters are kept per account: the node, and each watched cgroup. On
// cgroup v2 a cgroup's counters are hierarchical, and an account holds only
// what its watched children do not (its own processes, and children that
// were removed or never watched), so a container whose cgroup is removed
// right after its kill is still counted on its pod. On cgroup v1 they count
// the victim's own cgroup only.
package reconcile

import (
	"slices"
	"strings"
	"time"
)

// Config tunes the matching.
type Config struct {
	// Grace is how long a counter rise waits for its log line, counted
	// from the reading that saw it to a moment when the log had been read
	// to its end: the log's own delay (journald's lag) must fit in it.
	Grace time.Duration
	// Slack is the clock tolerance when a logged kill's time is compared
	// with the window between two readings.
	Slack time.Duration
	// LateHorizon is how long a kill known only from the counters is
	// remembered, so that its log line, should it come after all, is
	// matched to it rather than counted again.
	LateHorizon time.Duration
	// MaxRuns bounds the runs remembered over all accounts (pending and
	// declared); beyond it the oldest runs of an account are merged into
	// wider windows. Counts stay exact.
	MaxRuns int
}

func (c *Config) setDefaults() {
	if c.Grace <= 0 {
		c.Grace = 10 * time.Second
	}
	if c.Slack <= 0 {
		c.Slack = 250 * time.Millisecond
	}
	if c.LateHorizon <= 0 {
		c.LateHorizon = 10 * time.Minute
	}
	if c.MaxRuns <= 0 {
		c.MaxRuns = 4096
	}
}

// Count is one cgroup's counters.
type Count struct {
	// Kills is oom_kill: processes the OOM killer killed.
	Kills uint64 `json:"k,omitempty"`
	// GroupKills is oom_group_kill (cgroup v2, 5.17+): group kills, each
	// of which counts its first victim twice in Kills.
	GroupKills uint64 `json:"g,omitempty"`
}

// CgroupCount is one watched cgroup's counters in a reading.
type CgroupCount struct {
	// Path is the cgroup's path as the kernel prints it (task_memcg).
	Path string
	Count
	// Hierarchical: the counters include the cgroup's descendants (v2).
	Hierarchical bool
}

// Reading is one look at every counter: the node's first, then every
// watched cgroup, children before parents.
type Reading struct {
	// Start is when the reading began (before the node counter was read),
	// End when it ended.
	Start, End time.Time
	Node       uint64
	Cgroups    []CgroupCount
	// Truncated: more cgroups existed than may be watched; a cgroup seen
	// for the first time after a truncated reading may be old, so it
	// starts from its current value instead of zero.
	Truncated bool
}

// EventKind says what a log event is.
type EventKind int

const (
	// Kill is a killed process ("Killed process …").
	Kill EventKind = iota
	// Echo is a victim line printed (and counted by the kernel) again:
	// the first victim of a memory.oom.group kill. It is not a new kill.
	Echo
	// GroupKill is "Tasks in <cgroup> are going to be killed due to
	// memory.oom.group set": one rise of oom_group_kill.
	GroupKill
)

// Event is one thing the log says the kernel did.
type Event struct {
	Kind EventKind
	// Cgroup is the victim's (or the group's) cgroup path; empty when the
	// log did not name it (a rate-limited report).
	Cgroup string
	// Time is when the kernel printed it.
	Time time.Time
}

// Match is the verdict on one event.
type Match struct {
	// Confirmed: a counter rise was found for it.
	Confirmed bool
	// Attributed is, for a Kill without cgroup, the cgroup whose counter
	// alone rose without a logged kill: the kill is that cgroup's.
	Attributed string
	// Late: this kill was already counted from the counters before its
	// log line came; it must not be counted again.
	Late bool
}

// Declared is a kill known only from the counters.
type Declared struct {
	// Cgroup is the cgroup whose counter rose; empty at node level (only
	// /proc/vmstat rose). For kills that several cgroups' rises leave
	// open it is their closest common ancestor.
	Cgroup string
	// From and To bound when the kernel counted it.
	From, To time.Time
	// Index tells apart kills declared together with the same window.
	Index int
}

// account is the node's or one cgroup's ledger.
type account struct {
	path string
	hier bool
	// kills and groups are counter units not yet explained by the log.
	kills, groups ledger
	// present: the cgroup was in the last reading.
	present bool
}

func (a *account) empty() bool {
	return len(a.kills) == 0 && len(a.groups) == 0
}

// contest holds units of several cgroups that rose while kills without
// cgroup were logged: obs of them are explained, which ones is unknown.
type contest struct {
	units map[string]*ledger
	obs   int64
}

func (c *contest) total() int64 {
	var n int64
	for _, l := range c.units {
		n += l.total()
	}
	return n
}

// Reconciler holds the counters' last reading and the units waiting for
// their log lines. Not safe for concurrent use.
type Reconciler struct {
	cfg      Config
	last     *snapshot
	node     *account
	accounts map[string]*account
	// waiting are the accounts that may hold units (a superset: emptied
	// ones leave at the next Declare), so that a round without kills
	// costs nothing per watched cgroup.
	waiting  map[string]*account
	contests []*contest
	// owed: node units already consumed by declarations whose node rise
	// is not in a reading yet.
	owed int64
	// declared kills and the late lines matched to them (late.go).
	declared []declaredKill
	lates    []lateLine
	// changed since the last Export.
	changed bool
}

// snapshot is the last reading, by path.
type snapshot struct {
	Start     time.Time
	Node      uint64
	Cgroups   map[string]CgroupCount
	Truncated bool
}

// New returns a reconciler whose first reading is its baseline.
func New(cfg Config) *Reconciler {
	cfg.setDefaults()
	return &Reconciler{cfg: cfg, node: &account{}, accounts: map[string]*account{}, waiting: map[string]*account{}}
}

// StartBoot makes the next reading count from zero since boot: after a
// reboot every counter started again, so all of what it shows happened
// since then. Units still waiting from the previous boot are kept for its
// log lines.
func (rc *Reconciler) StartBoot(boot time.Time) {
	rc.last = &snapshot{Start: boot, Cgroups: map[string]CgroupCount{}}
	for _, a := range rc.accounts {
		a.present = false
	}
	rc.changed = true
}

// Observe takes a reading: what rose since the previous one becomes
// pending units, each waiting for its log line.
func (rc *Reconciler) Observe(r Reading) {
	rc.changed = true
	prev := rc.last
	rc.last = &snapshot{Start: r.Start, Node: r.Node, Cgroups: make(map[string]CgroupCount, len(r.Cgroups)), Truncated: r.Truncated}
	for _, c := range r.Cgroups {
		rc.last.Cgroups[c.Path] = c
	}
	for _, a := range rc.accounts {
		a.present = false
	}
	for _, c := range r.Cgroups {
		a := rc.accounts[c.Path]
		if a == nil {
			a = &account{path: c.Path}
			rc.accounts[c.Path] = a
		}
		a.hier, a.present = c.Hierarchical, true
	}
	if prev == nil {
		return // the baseline
	}
	from, to := prev.Start, r.End
	if r.Node >= prev.Node {
		rise := int64(r.Node - prev.Node)
		paid := min(rise, rc.owed)
		rc.owed -= paid
		rc.node.kills.add(from, to, rise-paid)
	}
	rc.addCgroupRises(prev, r, from, to)
	rc.forgetGone()
	rc.bound()
}

// addCgroupRises turns each cgroup's rise into units on its account. A
// hierarchical account keeps what its watched children's rises do not
// explain; a negative remainder is a kill a child's earlier reading missed
// but its parent's had: it is taken back from the parent, or else from the
// child's new units (the same kill, already pending on the parent).
func (rc *Reconciler) addCgroupRises(prev *snapshot, r Reading, from, to time.Time) {
	rises := make(map[string]Count, len(r.Cgroups))
	for _, c := range r.Cgroups {
		p, had := prev.Cgroups[c.Path]
		switch {
		case had && c.Kills >= p.Kills && c.GroupKills >= p.GroupKills:
			rises[c.Path] = Count{Kills: c.Kills - p.Kills, GroupKills: c.GroupKills - p.GroupKills}
		case had:
			rises[c.Path] = c.Count // removed and made again at the same path
		case prev.Truncated:
			// It may have existed unwatched: its count may be old.
		default:
			rises[c.Path] = c.Count // new since the previous reading
		}
	}
	children := map[string][]string{}
	for _, c := range r.Cgroups {
		if _, ok := rises[c.Path]; !ok {
			continue
		}
		if p := ancestorIn(c.Path, rc.last.Cgroups); p != "" && rc.last.Cgroups[p].Hierarchical {
			children[p] = append(children[p], c.Path)
		}
	}
	own := make(map[string][2]int64, len(rises))
	for path, d := range rises {
		k, g := int64(d.Kills), int64(d.GroupKills)
		for _, ch := range children[path] {
			k -= int64(rises[ch].Kills)
			g -= int64(rises[ch].GroupKills)
		}
		own[path] = [2]int64{k, g}
		a := rc.accounts[path]
		a.kills.add(from, to, k)
		a.groups.add(from, to, g)
		if !a.empty() {
			rc.waiting[path] = a
		}
	}
	for path, o := range own {
		a := rc.accounts[path]
		if o[0] < 0 {
			rest := -o[0] - a.kills.retract(-o[0])
			for _, ch := range children[path] {
				rest -= rc.accounts[ch].kills.retractWindow(from, to, rest)
			}
		}
		if o[1] < 0 {
			rest := -o[1] - a.groups.retract(-o[1])
			for _, ch := range children[path] {
				rest -= rc.accounts[ch].groups.retractWindow(from, to, rest)
			}
		}
	}
}

// forgetGone drops accounts of cgroups that are gone and have nothing
// left to match.
func (rc *Reconciler) forgetGone() {
	for p, a := range rc.accounts {
		if !a.present && a.empty() && !rc.inContest(p) {
			delete(rc.accounts, p)
			delete(rc.waiting, p)
		}
	}
}

func (rc *Reconciler) inContest(path string) bool {
	for _, c := range rc.contests {
		if _, ok := c.units[path]; ok {
			return true
		}
	}
	return false
}

// ancestorIn returns the closest proper ancestor of path that is a key of
// set, or "".
func ancestorIn[V any](path string, set map[string]V) string {
	for p := parentPath(path); p != ""; p = parentPath(p) {
		if _, ok := set[p]; ok {
			return p
		}
	}
	return ""
}

func parentPath(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return ""
	}
	return p[:i]
}

// accountFor is the account a kill in cgroup path falls on: the path's
// own, else its closest hierarchical ancestor's.
func (rc *Reconciler) accountFor(path string) *account {
	if a := rc.accounts[path]; a != nil {
		return a
	}
	return rc.hierParentOf(path)
}

func (rc *Reconciler) hierParentOf(path string) *account {
	if p := ancestorIn(path, rc.accounts); p != "" && rc.accounts[p].hier {
		return rc.accounts[p]
	}
	return nil
}

// Match explains events with the units pending: each event takes one. The
// events that name their cgroup go first, so a kill without cgroup can only
// take a rise that no named kill explains.
func (rc *Reconciler) Match(events []Event) []Match {
	out := make([]Match, len(events))
	if len(events) > 0 {
		rc.changed = true
	}
	for i, e := range events {
		if e.Cgroup != "" {
			out[i] = rc.matchNamed(e)
		}
	}
	for i, e := range events {
		if e.Cgroup == "" {
			out[i] = rc.matchUnnamed(e)
		}
	}
	return out
}

// matchNamed explains a kill (or echo, or group kill) the log names the
// cgroup of, with the tightest fit first: a unit whose window holds the
// line's time before one that holds it only within the clock slack. In
// each round: a unit pending on its cgroup's account (or its hierarchical
// ancestors'), one a contest holds, a kill of those already declared (the
// line is late), a node unit (its cgroup was gone or not watched), a
// node-level declared kill.
func (rc *Reconciler) matchNamed(e Event) Match {
	if e.Kind == GroupKill {
		for _, slack := range []time.Duration{0, rc.cfg.Slack} {
			for a := rc.accountFor(e.Cgroup); a != nil; a = rc.hierParentOf(a.path) {
				if i := a.groups.find(e.Time, slack); i >= 0 {
					a.groups.takeAt(i)
					return Match{Confirmed: true}
				}
			}
		}
		return Match{}
	}
	chain := ancestry(e.Cgroup)
	for _, slack := range []time.Duration{0, rc.cfg.Slack} {
		for a := rc.accountFor(e.Cgroup); a != nil; a = rc.hierParentOf(a.path) {
			if i := a.kills.find(e.Time, slack); i >= 0 {
				a.kills.takeAt(i)
				rc.takeNode(e.Time)
				return Match{Confirmed: true}
			}
			if rc.takeFromContest(a.path, e.Time, slack) {
				rc.takeNode(e.Time)
				return Match{Confirmed: true}
			}
		}
		// A late echo was never declared: its unit went against its group
		// kill's (Declare).
		if e.Kind == Kill && rc.matchLate(e.Time, chain, false, slack) {
			return Match{Late: true}
		}
		if i := rc.node.kills.find(e.Time, slack); i >= 0 {
			rc.node.kills.takeAt(i)
			return Match{Confirmed: true}
		}
		if e.Kind == Kill && rc.matchLate(e.Time, chain, true, slack) {
			return Match{Late: true}
		}
	}
	return Match{} // before the first reading (history), or another boot
}

func (rc *Reconciler) takeNode(t time.Time) bool {
	_, ok := rc.node.kills.take(t, rc.cfg.Slack)
	return ok
}

// takeFromContest takes a kill unit of path out of a contest.
func (rc *Reconciler) takeFromContest(path string, t time.Time, slack time.Duration) bool {
	for _, c := range rc.contests {
		if l := c.units[path]; l != nil {
			if i := l.find(t, slack); i >= 0 {
				l.takeAt(i)
				return true
			}
		}
	}
	return false
}

// matchUnnamed explains a kill whose cgroup the log did not name. Exactly
// one cgroup with an unexplained rise in the window that holds its time:
// the kill is that cgroup's. Several, or rises that hold it only within
// the clock slack: it explains one of them, which is unknown; their units
// form a contest, resolved once due. Else it is a late line of a declared
// kill, or a node unit's.
func (rc *Reconciler) matchUnnamed(e Event) Match {
	for _, s := range []time.Duration{0, rc.cfg.Slack} {
		cands, joined := rc.candidates(e.Time, s)
		if s == 0 && len(cands) == 1 && len(joined) == 0 && !rc.killsOutsideCgroups(e.Time) {
			a := cands[0]
			a.kills.take(e.Time, 0)
			rc.takeNode(e.Time)
			m := Match{Confirmed: true}
			if e.Kind == Kill {
				m.Attributed = a.path
			}
			return m
		}
		if len(cands) > 0 || len(joined) > 0 {
			rc.contend(e.Time, s, cands, joined)
			rc.takeNode(e.Time)
			return Match{Confirmed: true}
		}
		if e.Kind == Kill && rc.matchLate(e.Time, nil, true, s) {
			return Match{Late: true}
		}
		if i := rc.node.kills.find(e.Time, s); i >= 0 {
			rc.node.kills.takeAt(i)
			return Match{Confirmed: true}
		}
	}
	return Match{}
}

// killsOutsideCgroups says whether the node counted more unexplained kills
// at t than the watched cgroups did: a kill in a cgroup that is gone (v1)
// or not watched is among them, and a kill without cgroup may be that one.
func (rc *Reconciler) killsOutsideCgroups(t time.Time) bool {
	var cg int64
	for _, a := range rc.waiting {
		cg += a.kills.covering(t, 0)
	}
	for _, c := range rc.contests {
		for _, l := range c.units {
			cg += l.covering(t, 0)
		}
	}
	return rc.node.kills.covering(t, 0) > cg
}

// candidates are the accounts with units covering t, and the contests that
// hold units covering t.
func (rc *Reconciler) candidates(t time.Time, slack time.Duration) ([]*account, []int) {
	var cands []*account
	for _, a := range rc.waiting {
		if a.kills.covering(t, slack) > 0 {
			cands = append(cands, a)
		}
	}
	var joined []int
	for i, c := range rc.contests {
		for _, l := range c.units {
			if l.covering(t, slack) > 0 {
				joined = append(joined, i)
				break
			}
		}
	}
	return cands, joined
}

// contend merges the joined contests and the candidates' units covering t
// into one contest, explained by one more kill.
func (rc *Reconciler) contend(t time.Time, slack time.Duration, cands []*account, joined []int) {
	c := &contest{units: map[string]*ledger{}}
	for i := len(joined) - 1; i >= 0; i-- {
		j := rc.contests[joined[i]]
		for p, l := range j.units {
			dst := c.ledgerFor(p)
			for _, r := range *l {
				dst.add(r.From, r.To, r.N)
			}
		}
		c.obs += j.obs
		rc.contests = slices.Delete(rc.contests, joined[i], joined[i]+1)
	}
	for _, a := range cands {
		a.kills.moveCovering(t, slack, c.ledgerFor(a.path))
	}
	c.obs++
	rc.contests = append(rc.contests, c)
}

func (c *contest) ledgerFor(path string) *ledger {
	l := c.units[path]
	if l == nil {
		l = &ledger{}
		c.units[path] = l
	}
	return l
}

// Declare returns the kills known only from the counters: units that no
// log line explained although the log had been read to its end (at
// caughtUp) a grace after their reading. now is the current time, for
// forgetting old declared kills.
func (rc *Reconciler) Declare(caughtUp, now time.Time) []Declared {
	cutoff := caughtUp.Add(-rc.cfg.Grace)
	var out []Declared
	out = rc.resolveContests(cutoff, out)
	paths := make([]string, 0, len(rc.waiting))
	for p := range rc.waiting {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		a := rc.waiting[p]
		due := a.kills.takeDue(cutoff)
		// Each group kill counted its first victim twice: when the log
		// missed the group kill, one unit per group kill is not a kill.
		echoes := a.groups.takeDue(cutoff).total()
		for _, r := range due {
			for i := 0; i < int(r.N); i++ {
				if echoes > 0 {
					echoes--
					rc.takeNodeOverlap(r.From, r.To)
					continue
				}
				out = append(out, Declared{Cgroup: a.path, From: r.From, To: r.To, Index: i})
				rc.remember(r.From, r.To, []string{a.path}, 1)
				rc.takeNodeOverlap(r.From, r.To)
			}
		}
	}
	// A node unit is known to be no cgroup's only once every cgroup unit
	// that may be the same kill has been explained or declared (each will
	// take a node unit).
	kept := rc.node.kills[:0]
	for _, r := range rc.node.kills {
		if r.To.After(cutoff) || rc.cgroupUnitsOverlap(r) {
			kept = append(kept, r)
			continue
		}
		for i := 0; i < int(r.N); i++ {
			out = append(out, Declared{From: r.From, To: r.To, Index: i})
		}
		rc.remember(r.From, r.To, nil, r.N)
	}
	rc.node.kills = kept
	rc.forgetDeclared(now.Add(-rc.cfg.LateHorizon))
	for p, a := range rc.waiting {
		if a.empty() {
			delete(rc.waiting, p)
			if !a.present && !rc.inContest(p) {
				delete(rc.accounts, p)
			}
		}
	}
	if len(out) > 0 {
		rc.changed = true
	}
	return out
}

// resolveContests declares, for each contest whose units are all due, the
// units its kills do not explain, on the cgroups' closest common ancestor.
func (rc *Reconciler) resolveContests(cutoff time.Time, out []Declared) []Declared {
	kept := rc.contests[:0]
	for _, c := range rc.contests {
		due := true
		for _, l := range c.units {
			due = due && l.allDue(cutoff)
		}
		if !due {
			kept = append(kept, c)
			continue
		}
		// A group kill among the contest's rises counted its first victim
		// twice: that unit is not a kill either.
		missing := c.total() - c.obs
		for p, l := range c.units {
			a := rc.accounts[p]
			if a == nil {
				continue
			}
			for _, r := range *l {
				for missing > 0 {
					g, ok := a.groups.takeOverlap(r.From, r.To, 0)
					if !ok {
						break
					}
					if g.To.After(cutoff) {
						a.groups.add(g.From, g.To, 1)
						break
					}
					missing--
					rc.takeNodeOverlap(g.From, g.To)
				}
			}
		}
		if missing > 0 {
			var from, to time.Time
			var paths []string
			for p, l := range c.units {
				paths = append(paths, p)
				for _, r := range *l {
					if from.IsZero() || r.From.Before(from) {
						from = r.From
					}
					to = maxTime(to, r.To)
				}
			}
			lca := commonAncestor(paths)
			for i := 0; i < int(missing); i++ {
				out = append(out, Declared{Cgroup: lca, From: from, To: to, Index: i})
				rc.takeNodeOverlap(from, to)
			}
			// A late log line of any of them may be one of these.
			rc.remember(from, to, paths, missing)
		}
		rc.changed = true
	}
	rc.contests = kept
	return out
}

// cgroupUnitsOverlap says whether a cgroup unit still waiting may be the
// same kill as a node unit of r.
func (rc *Reconciler) cgroupUnitsOverlap(r run) bool {
	overlaps := func(l ledger) bool {
		return slices.ContainsFunc(l, func(c run) bool { return c.overlaps(r.From, r.To, rc.cfg.Slack) })
	}
	for _, a := range rc.waiting {
		if overlaps(a.kills) {
			return true
		}
	}
	for _, c := range rc.contests {
		for _, l := range c.units {
			if overlaps(*l) {
				return true
			}
		}
	}
	return false
}

func (rc *Reconciler) takeNodeOverlap(from, to time.Time) {
	if _, ok := rc.node.kills.takeOverlap(from, to, rc.cfg.Slack); !ok {
		rc.owed++ // its node rise is not in a reading yet
	}
}

// commonAncestor is the closest cgroup path that is an ancestor (or self)
// of every path; "" when that is the root.
func commonAncestor(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	lca := paths[0]
	for _, p := range paths[1:] {
		for lca != "" && p != lca && !strings.HasPrefix(p, lca+"/") {
			lca = parentPath(lca)
		}
	}
	return lca
}

// bound merges the oldest runs of the busiest ledger while more than
// MaxRuns are remembered.
func (rc *Reconciler) bound() {
	for {
		total := 0
		var busiest *ledger
		visit := func(l *ledger) {
			total += len(*l)
			if busiest == nil || len(*l) > len(*busiest) {
				busiest = l
			}
		}
		visit(&rc.node.kills)
		for _, a := range rc.accounts {
			visit(&a.kills)
			visit(&a.groups)
		}
		for _, c := range rc.contests {
			for _, l := range c.units {
				visit(l)
			}
		}
		if total <= rc.cfg.MaxRuns || !busiest.squash() {
			return
		}
	}
}

// Pending is how many counter units wait for a log line (node level).
func (rc *Reconciler) Pending() int64 { return rc.node.kills.total() }

// Baselined says whether a first reading has been taken.
func (rc *Reconciler) Baselined() bool { return rc.last != nil }

// LastNode is the node counter of the last reading.
func (rc *Reconciler) LastNode() uint64 {
	if rc.last == nil {
		return 0
	}
	return rc.last.Node
}

// Changed says whether the state changed since it was last Saved.
func (rc *Reconciler) Changed() bool { return rc.changed }

// Saved says the state last exported is saved.
func (rc *Reconciler) Saved() { rc.changed = false }
