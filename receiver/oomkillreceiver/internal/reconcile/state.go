package reconcile

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// State is what a restart needs to go on exactly where the reconciler
// was: the last reading, and the units still waiting or recently
// declared. It is saved together with the log position, so the log lines
// after that position meet exactly the units they were meant for.
type State struct {
	Last     *lastState     `json:"last,omitempty"`
	Node     accountState   `json:"node"`
	Accounts []accountState `json:"accounts,omitempty"`
	Contests []contestState `json:"contests,omitempty"`
	Owed     int64          `json:"owed,omitempty"`
	Declared []declaredKill `json:"declared,omitempty"`
	Lates    []lateLine     `json:"lates,omitempty"`
}

type lastState struct {
	Start     time.Time `json:"start"`
	Node      uint64    `json:"node"`
	Truncated bool      `json:"truncated,omitempty"`
	// Cgroups holds the non-zero counters only (all of them when the
	// reading was truncated): a cgroup missing here starts from zero at
	// the next reading, which is what a zero counter is.
	Cgroups []cgroupState `json:"cgroups,omitempty"`
}

type cgroupState struct {
	Path string `json:"p"`
	Count
	Hierarchical bool `json:"h,omitempty"`
}

type accountState struct {
	Path   string `json:"path,omitempty"`
	Hier   bool   `json:"hier,omitempty"`
	Kills  ledger `json:"kills,omitempty"`
	Groups ledger `json:"groups,omitempty"`
}

type contestState struct {
	Units map[string]ledger `json:"units"`
	Obs   int64             `json:"obs"`
}

// Export returns the state to save; call Saved once it is.
func (rc *Reconciler) Export() State {
	s := State{Node: accountState{Kills: rc.node.kills}, Owed: rc.owed, Declared: rc.declared, Lates: rc.lates}
	if rc.last != nil {
		l := &lastState{Start: rc.last.Start, Node: rc.last.Node, Truncated: rc.last.Truncated}
		for _, c := range rc.last.Cgroups {
			if c.Kills != 0 || c.GroupKills != 0 || rc.last.Truncated {
				l.Cgroups = append(l.Cgroups, cgroupState(c))
			}
		}
		slices.SortFunc(l.Cgroups, func(a, b cgroupState) int { return cmp.Compare(a.Path, b.Path) })
		s.Last = l
	}
	for _, a := range rc.accounts {
		if a.empty() {
			continue
		}
		s.Accounts = append(s.Accounts, accountState{Path: a.path, Hier: a.hier, Kills: a.kills, Groups: a.groups})
	}
	slices.SortFunc(s.Accounts, func(a, b accountState) int { return cmp.Compare(a.Path, b.Path) })
	for _, c := range rc.contests {
		cs := contestState{Units: map[string]ledger{}, Obs: c.obs}
		for p, l := range c.units {
			cs.Units[p] = *l
		}
		s.Contests = append(s.Contests, cs)
	}
	return s
}

// Marshal encodes the state.
func (s State) Marshal() ([]byte, error) { return json.Marshal(s) }

// UnmarshalState decodes a saved state.
func UnmarshalState(b []byte) (State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("witness state is not valid JSON: %w", err)
	}
	return s, nil
}

// Restore makes a reconciler from a saved state. The next reading counts
// from the saved one; call StartBoot first when the node rebooted since.
func Restore(cfg Config, s State) *Reconciler {
	rc := New(cfg)
	rc.node.kills = s.Node.Kills
	rc.owed, rc.declared, rc.lates = s.Owed, s.Declared, s.Lates
	if s.Last != nil {
		rc.last = &snapshot{Start: s.Last.Start, Node: s.Last.Node, Truncated: s.Last.Truncated, Cgroups: map[string]CgroupCount{}}
		for _, c := range s.Last.Cgroups {
			rc.last.Cgroups[c.Path] = CgroupCount(c)
		}
	}
	for _, a := range s.Accounts {
		rc.accounts[a.Path] = &account{path: a.Path, hier: a.Hier, kills: a.Kills, groups: a.Groups}
		rc.waiting[a.Path] = rc.accounts[a.Path]
	}
	for _, c := range s.Contests {
		ct := &contest{units: map[string]*ledger{}, obs: c.Obs}
		for p, l := range c.Units {
			ct.units[p] = &l
			if rc.accounts[p] == nil {
				rc.accounts[p] = &account{path: p}
			}
		}
		rc.contests = append(rc.contests, ct)
	}
	rc.bound()
	return rc
}
