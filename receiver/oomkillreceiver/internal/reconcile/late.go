package reconcile

import (
	"slices"
	"time"
)

// A kill known only from the counters is declared after the grace; its log
// line may still come (a journal catching up after a long lag). Such a
// late line is matched to one declared kill, never counted again. Which
// line belongs to which kill is a bipartite matching (a line that names its
// cgroup may only take that cgroup's kill, a line without cgroup any kill
// of its time), kept maximal by moving earlier lines along augmenting
// paths when a new line finds every fitting kill taken.

// declaredKill is one kill counted from the counters, remembered for
// LateHorizon.
type declaredKill struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Paths are the cgroups whose kill it may be; nil at node level.
	Paths []string `json:"paths,omitempty"`
	// Line is the index of the late line matched to it in lates, or -1.
	Line int `json:"line"`
}

// lateLine is a log line that came after its kill was declared.
type lateLine struct {
	Time time.Time `json:"time"`
	// Chain is the named cgroup and its ancestors; nil when the line
	// named none.
	Chain []string `json:"chain,omitempty"`
	Named bool     `json:"named,omitempty"`
}

// fits says whether line l may be the log line of declared kill d.
func (l lateLine) fits(d *declaredKill, slack time.Duration, nodeLevel bool) bool {
	if !(run{From: d.From, To: d.To}).covers(l.Time, slack) {
		return false
	}
	if !l.Named || (d.Paths == nil && nodeLevel) {
		return true
	}
	for _, p := range d.Paths {
		if slices.Contains(l.Chain, p) {
			return true
		}
	}
	return false
}

// remember keeps n declared kills of window (from, to] for late lines.
func (rc *Reconciler) remember(from, to time.Time, paths []string, n int64) {
	for ; n > 0; n-- {
		rc.declared = append(rc.declared, declaredKill{From: from, To: to, Paths: paths, Line: -1})
	}
	if over := len(rc.declared) - rc.cfg.MaxRuns; over > 0 {
		rc.forget(func(i int) bool { return i < over })
	}
}

// matchLate matches a line at t (chain nil: no cgroup named) to a declared
// kill whose window holds t within slack. nodeLevel: node-level kills may
// be taken too (a named line tries its cgroup's first, then the node's
// pending units, then those).
func (rc *Reconciler) matchLate(t time.Time, chain []string, nodeLevel bool, slack time.Duration) bool {
	line := lateLine{Time: t, Chain: chain, Named: chain != nil}
	rc.lates = append(rc.lates, line)
	li := len(rc.lates) - 1
	seen := make([]bool, len(rc.declared))
	if rc.augment(li, func(d *declaredKill) bool { return line.fits(d, slack, nodeLevel) }, seen) {
		return true
	}
	rc.lates = rc.lates[:li]
	return false
}

// augment finds line li a kill that ok allows, moving the lines of taken
// kills to other kills they fit where needed (Kuhn's algorithm).
func (rc *Reconciler) augment(li int, ok func(*declaredKill) bool, seen []bool) bool {
	for ui := range rc.declared {
		d := &rc.declared[ui]
		if seen[ui] || !ok(d) {
			continue
		}
		seen[ui] = true
		if d.Line >= 0 {
			other := rc.lates[d.Line]
			if !rc.augment(d.Line, func(x *declaredKill) bool { return other.fits(x, rc.cfg.Slack, true) }, seen) {
				continue
			}
		}
		d.Line = li
		return true
	}
	return false
}

// forgetDeclared drops the declared kills that ended before t, and the
// late lines matched to them.
func (rc *Reconciler) forgetDeclared(t time.Time) {
	rc.forget(func(i int) bool { return rc.declared[i].To.Before(t) })
}

func (rc *Reconciler) forget(drop func(int) bool) {
	keepLine := make([]int, len(rc.lates)) // old index -> new index, -1 dropped
	for i := range keepLine {
		keepLine[i] = -2 // unmatched lines are not kept
	}
	var kept []declaredKill
	for i, d := range rc.declared {
		if drop(i) {
			if d.Line >= 0 {
				keepLine[d.Line] = -1
			}
			continue
		}
		if d.Line >= 0 {
			keepLine[d.Line] = 0
		}
		kept = append(kept, d)
	}
	var lines []lateLine
	for i, k := range keepLine {
		if k == 0 {
			keepLine[i] = len(lines)
			lines = append(lines, rc.lates[i])
		}
	}
	for i := range kept {
		if kept[i].Line >= 0 {
			kept[i].Line = keepLine[kept[i].Line]
		}
	}
	rc.declared, rc.lates = kept, lines
}

// ancestry is a cgroup path and its ancestors.
func ancestry(path string) []string {
	var out []string
	for p := path; p != ""; p = parentPath(p) {
		out = append(out, p)
	}
	return out
}
