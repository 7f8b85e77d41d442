package reconcile

import "time"

// run is n counter units that rose between two readings: the kernel counted
// each of them at some moment in (From, To].
type run struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	N    int64     `json:"n"`
}

// covers says whether a kill logged at t can be one of the run's units.
// A zero t (the log gave no time) fits any run.
func (r run) covers(t time.Time, slack time.Duration) bool {
	if t.IsZero() {
		return true
	}
	return t.After(r.From.Add(-slack)) && !t.After(r.To.Add(slack))
}

// overlaps says whether two windows can hold the same kill.
func (r run) overlaps(from, to time.Time, slack time.Duration) bool {
	return from.Before(r.To.Add(slack)) && to.After(r.From.Add(-slack))
}

// ledger is a FIFO of runs, oldest first. Its length is bounded by the
// readings within one grace (and merged when the receiver's bound is hit),
// not by the number of kills: a run of n units is one entry.
type ledger []run

func (l *ledger) add(from, to time.Time, n int64) {
	if n <= 0 {
		return
	}
	if k := len(*l); k > 0 && (*l)[k-1].From.Equal(from) && (*l)[k-1].To.Equal(to) {
		(*l)[k-1].N += n
		return
	}
	*l = append(*l, run{From: from, To: to, N: n})
}

func (l ledger) total() int64 {
	var n int64
	for _, r := range l {
		n += r.N
	}
	return n
}

// take removes one unit of the oldest run whose window holds t, else of
// the oldest that holds it within the slack: consecutive windows overlap
// by the slack, and the tighter fit is the likelier.
func (l *ledger) take(t time.Time, slack time.Duration) (run, bool) {
	if i := l.find(t, 0); i >= 0 {
		return l.takeAt(i), true
	}
	if i := l.find(t, slack); i >= 0 {
		return l.takeAt(i), true
	}
	return run{}, false
}

// find returns the index of the narrowest run covering t (the oldest of
// equals), or -1: a wide window (merged runs, a contest's) can hold other
// kills, a narrow one fewer.
func (l ledger) find(t time.Time, slack time.Duration) int {
	best := -1
	for i := range l {
		if l[i].covers(t, slack) && (best < 0 || l[i].width() < l[best].width()) {
			best = i
		}
	}
	return best
}

func (r run) width() time.Duration { return r.To.Sub(r.From) }

// takeOverlap removes one unit of a run that may hold the same kill as
// the window (from, to]: one with that very window (the same reading),
// else the oldest that overlaps it, else the oldest within the slack.
func (l *ledger) takeOverlap(from, to time.Time, slack time.Duration) (run, bool) {
	for i, r := range *l {
		if r.From.Equal(from) && r.To.Equal(to) {
			return l.takeAt(i), true
		}
	}
	for _, s := range []time.Duration{0, slack} {
		for i := range *l {
			if (*l)[i].overlaps(from, to, s) {
				return l.takeAt(i), true
			}
		}
	}
	return run{}, false
}

func (l *ledger) takeAt(i int) run {
	r := (*l)[i]
	(*l)[i].N--
	if (*l)[i].N == 0 {
		*l = append((*l)[:i], (*l)[i+1:]...)
	}
	r.N = 1
	return r
}

// covering returns how many units cover t.
func (l ledger) covering(t time.Time, slack time.Duration) int64 {
	var n int64
	for _, r := range l {
		if r.covers(t, slack) {
			n += r.N
		}
	}
	return n
}

// moveCovering moves every unit covering t into dst.
func (l *ledger) moveCovering(t time.Time, slack time.Duration, dst *ledger) {
	kept := (*l)[:0]
	for _, r := range *l {
		if r.covers(t, slack) {
			dst.add(r.From, r.To, r.N)
			continue
		}
		kept = append(kept, r)
	}
	*l = kept
}

// retract removes up to n units, newest first, and returns how many it
// removed.
func (l *ledger) retract(n int64) int64 {
	removed := int64(0)
	for n > 0 && len(*l) > 0 {
		last := &(*l)[len(*l)-1]
		k := min(n, last.N)
		last.N -= k
		n -= k
		removed += k
		if last.N == 0 {
			*l = (*l)[:len(*l)-1]
		}
	}
	return removed
}

// retractWindow removes up to n units of runs with exactly this window.
func (l *ledger) retractWindow(from, to time.Time, n int64) int64 {
	removed := int64(0)
	for i := len(*l) - 1; i >= 0 && n > 0; i-- {
		r := &(*l)[i]
		if !r.From.Equal(from) || !r.To.Equal(to) {
			continue
		}
		k := min(n, r.N)
		r.N -= k
		n -= k
		removed += k
		if r.N == 0 {
			*l = append((*l)[:i], (*l)[i+1:]...)
		}
	}
	return removed
}

// takeDue removes and returns the runs that ended at or before cutoff.
func (l *ledger) takeDue(cutoff time.Time) ledger {
	var due ledger
	kept := (*l)[:0]
	for _, r := range *l {
		if !r.To.After(cutoff) {
			due = append(due, r)
			continue
		}
		kept = append(kept, r)
	}
	*l = kept
	return due
}

// allDue says whether every run ended at or before cutoff.
func (l ledger) allDue(cutoff time.Time) bool {
	for _, r := range l {
		if r.To.After(cutoff) {
			return false
		}
	}
	return true
}

// squash merges the two oldest runs into one wider run: the counts stay
// exact, only the window in which they may be matched grows.
func (l *ledger) squash() bool {
	if len(*l) < 2 {
		return false
	}
	a, b := (*l)[0], (*l)[1]
	(*l)[1] = run{From: minTime(a.From, b.From), To: maxTime(a.To, b.To), N: a.N + b.N}
	*l = (*l)[1:]
	return true
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
