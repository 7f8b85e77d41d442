package podstore

import (
	"encoding/json"
	"fmt"
)

// snapshotVersion is the format Snapshot writes; Restore reads only it.
const snapshotVersion = 1

// snapshot is every identity the store remembers, so that a restarted
// collector names the series it still exports as before: the IDs that left
// their pod's status while it ran are not in the API any more.
type snapshot struct {
	Version int          `json:"version"`
	Pods    []*Pod       `json:"pods"` // the pods as the identities saw them
	IDs     []snapshotID `json:"ids"`
}

type snapshotID struct {
	ID        string    `json:"id"`
	Pod       int       `json:"pod"` // index in Pods
	Container Container `json:"container"`
}

// Snapshot encodes every identity (current and gone) and returns the
// change count it reflects (see Changes).
func (s *Store) Snapshot() ([]byte, uint64, error) {
	s.mu.Lock()
	snap := snapshot{Version: snapshotVersion, IDs: make([]snapshotID, 0, len(s.ids))}
	podIndex := map[*Pod]int{}
	for id, idn := range s.ids {
		i, ok := podIndex[idn.meta]
		if !ok {
			i = len(snap.Pods)
			podIndex[idn.meta] = i
			snap.Pods = append(snap.Pods, idn.meta)
		}
		snap.IDs = append(snap.IDs, snapshotID{ID: id, Pod: i, Container: idn.ctr})
	}
	changes := s.changes
	s.mu.Unlock()
	// Outside the lock: a Pod is never changed after its conversion.
	b, err := json.Marshal(snap)
	return b, changes, err
}

// Changes counts changes of the remembered identities (new, gone,
// forgotten): a snapshot taken at the same count is still current.
func (s *Store) Changes() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changes
}

// Restore adds the identities of a snapshot that the store does not know,
// as gone IDs asked about now: the pod watch makes those still in a pod's
// status current again, and the rest live while they are asked about, like
// any gone ID. Call it before the watch starts, so that an ID keeps the
// identity it had before. It returns how many identities it added.
func (s *Store) Restore(data []byte) (int, error) {
	var snap snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return 0, fmt.Errorf("container identities: %w", err)
	}
	if snap.Version != snapshotVersion {
		return 0, fmt.Errorf("container identities: format version %d, this collector reads %d", snap.Version, snapshotVersion)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	added := 0
	touched := map[*podEntry]bool{}
	for _, r := range snap.IDs {
		if r.Pod < 0 || r.Pod >= len(snap.Pods) || snap.Pods[r.Pod] == nil || snap.Pods[r.Pod].UID == "" || r.ID == "" {
			return added, fmt.Errorf("container identities: entry for %q names no pod", r.ID)
		}
		if s.ids[r.ID] != nil {
			continue
		}
		meta := snap.Pods[r.Pod]
		e := s.pods[meta.UID]
		if e == nil {
			// Gone until the watch lists it: kept while asked about.
			e = &podEntry{meta: meta, goneAt: now, lastUsed: now, ids: map[string]*identity{}}
			s.pods[meta.UID] = e
		}
		idn := &identity{id: r.ID, pod: e, meta: meta, ctr: r.Container}
		s.ids[r.ID] = idn
		e.ids[r.ID] = idn
		s.markGone(idn, now)
		touched[e] = true
		added++
	}
	for e := range touched {
		s.enforceCaps(e)
	}
	if added > 0 {
		s.notify()
	}
	return added, nil
}
