package oomkillreceiver

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/cgroupstate"
)

// outcomeObserver decides, for each kill, whether its container lived on:
// it looks at the victim's cgroup once the kill has had outcome.delay to
// take effect. The decision is the kernel's bookkeeping, never a guess.
type outcomeObserver struct {
	cfg    OutcomeConfig
	obs    *cgroupstate.Observer // nil: observation off or impossible
	logger *zap.Logger
	now    func() time.Time
	sleep  func(context.Context, time.Duration) bool
}

func newOutcomeObserver(cfg OutcomeConfig, logger *zap.Logger) *outcomeObserver {
	o := &outcomeObserver{cfg: cfg, logger: logger, now: time.Now, sleep: sleep}
	if cfg.CgroupRoot == "" {
		logger.Info("outcome.cgroup_root is empty: container outcomes are not observed (oom.container.outcome=unknown)")
		return o
	}
	obs, err := cgroupstate.New(cfg.CgroupRoot)
	switch {
	case err != nil:
		logger.Warn("Cannot read the cgroup filesystem: every oom.container.outcome will be unknown; mount the host's /sys/fs/cgroup read-only and set outcome.cgroup_root to it",
			zap.String("cgroup_root", cfg.CgroupRoot), zap.Error(err))
	case obs.Layout() == cgroupstate.LayoutNone:
		logger.Warn("No cgroup filesystem under outcome.cgroup_root: every oom.container.outcome will be unknown; mount the host's /sys/fs/cgroup read-only and set outcome.cgroup_root to it",
			zap.String("cgroup_root", cfg.CgroupRoot))
	default:
		o.obs = obs
		logger.Info("Observing OOM victims' cgroups for oom.container.outcome",
			zap.String("cgroup_root", cfg.CgroupRoot), zap.Stringer("layout", obs.Layout()),
			zap.String("method", obs.Method()), zap.Duration("delay", cfg.Delay))
	}
	return o
}

// observe holds the batch back until its newest kill is outcome.delay old
// (at most that long), then sets each kill's Outcome. It returns how many
// kills had a cgroup that could not be observed, and false if ctx ended
// while waiting (nothing was delivered or checkpointed, so the kills are
// read again at the next start).
func (o *outcomeObserver) observe(ctx context.Context, kills []killRecord) (unobservable int, ok bool) {
	now := o.now()
	var wait time.Duration
	for _, k := range kills {
		if d := k.Time.Add(o.cfg.Delay).Sub(now); d > wait {
			wait = min(d, o.cfg.Delay) // a kernel clock ahead of ours must not hold us longer
		}
	}
	if o.obs != nil && wait > 0 && !o.sleep(ctx, wait) {
		return 0, false
	}
	seen := now.Add(wait)
	states := map[string]cgroupstate.State{} // a group kill names one cgroup many times
	for i := range kills {
		k := &kills[i]
		if !k.Attributed || k.TaskMemcg == "" {
			k.Outcome = outcomeUnknown
			continue
		}
		state, ok := states[k.TaskMemcg]
		if !ok {
			state = o.state(k.TaskMemcg)
			states[k.TaskMemcg] = state
		}
		if state == cgroupstate.Unknown {
			unobservable++
		}
		k.Outcome = decideOutcome(state, seen.Sub(k.Time) <= o.cfg.MaxAge)
	}
	return unobservable, true
}

// decideOutcome: processes left in the cgroup mean the container survived,
// whenever it is seen. No process left, or the cgroup gone, means it
// exited only when seen right after the kill; a kill read from history may
// have been followed by anything.
func decideOutcome(state cgroupstate.State, fresh bool) string {
	switch state {
	case cgroupstate.Populated:
		return outcomeSurvived
	case cgroupstate.Empty, cgroupstate.Gone:
		if fresh {
			return outcomeExited
		}
	}
	return outcomeUnknown
}

func (o *outcomeObserver) state(path string) cgroupstate.State {
	if o.obs == nil {
		return cgroupstate.Unknown
	}
	state, err := o.obs.Observe(path)
	if err != nil {
		o.logger.Debug("Cannot observe the victim's cgroup", zap.String("cgroup", path), zap.Error(err))
	}
	return state
}

// alive says whether processes still run in a series' cgroup: such a
// series is kept past its retention.
func (o *outcomeObserver) alive(k resourceKey) bool {
	return o.state(k.CgroupPath) == cgroupstate.Populated
}
