package oomkillreceiver

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kubecgroup"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadata"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/oomcounter"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/oomparse"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/reconcile"
)

// witness is the stage that keeps the count honest: the kernel counts
// every OOM kill without text (internal/oomcounter reads those counters),
// and every rise must be explained by a kill the log showed, or it is
// counted as a kill the log did not show (internal/reconcile matches the
// two). It also puts kills whose report the kernel rate-limited on the
// container whose counter alone rose.
//
// It is one stage of the receiver's loop (check), right after the follower
// read a batch: the batch is matched to a reading taken then (the kernel
// raises its counters before it prints the line, so the batch's kills are
// in it), and the rises no line explained although the log had been read
// to its end a grace after them are added as kills known only from the
// counters. Its state is kept in the checkpoint with the log position
// (the checkpointer saves it as a keptState). A nil *witness is off: the
// batch passes as it is.
type witness struct {
	cfg    WitnessConfig
	logger *zap.Logger
	tb     *metadata.TelemetryBuilder
	reader *oomcounter.Reader
	// notify wakes the receiver when a pod's counter changes (cgroup v2);
	// nil where the counters are only polled.
	notify *oomcounter.Notifier
	rc     *reconcile.Reconciler
	// bootID is this boot's, as the journal writes _BOOT_ID (32 hex
	// digits): only kills of this boot are matched to these counters.
	bootID   string
	bootTime time.Time
	// host is the host name of the last kill read, for kills known only
	// from the counters.
	host     string
	lastPoll time.Time
	// failing: reading the counters fails (logged once per spell).
	failing bool
	// deferred are log events read while the counters could not be: they
	// are matched at the next reading, so their rises are not taken for
	// kills the log did not show.
	deferred []reconcile.Event
	// warned: the first kill known only from the counters was logged.
	warned bool
	// caughtUp is when the follower last found the log's end: every line
	// written before it has been read.
	caughtUp time.Time
	// woken: a watched counter changed while the receiver slept.
	woken atomic.Bool
	now   func() time.Time
}

// witnessFiles are the kernel files the witness reads (tests point them
// elsewhere).
type witnessFiles struct {
	vmstat, bootID, stat string
}

var kernelFiles = witnessFiles{vmstat: "/proc/vmstat", bootID: "/proc/sys/kernel/random/boot_id", stat: "/proc/stat"}

// maxDeferred bounds the log events kept while the counters cannot be read.
const maxDeferred = 100_000

// witnessStateKey holds the reconciler's state in the checkpoint.
const witnessStateKey = "oomkill.witness"

// witnessState is what the checkpoint keeps.
type witnessState struct {
	// BootID: counters start from zero at every boot.
	BootID string          `json:"boot_id"`
	State  reconcile.State `json:"state"`
}

// newWitness returns nil, after saying why, when the witness is off or the
// kernel has no counters; the receiver then counts from the log alone.
func newWitness(cfg *Config, files witnessFiles, logger *zap.Logger, tb *metadata.TelemetryBuilder) *witness {
	if !cfg.Witness.Enabled {
		logger.Info("witness.enabled is false: OOM kills are counted from the kernel's log alone, without checking them against the kernel's OOM-kill counters")
		return nil
	}
	reader, err := oomcounter.Open(cfg.Outcome.CgroupRoot, files.vmstat, cfg.Witness.MaxCgroups)
	if err != nil {
		if errors.Is(err, oomcounter.ErrNoCounters) {
			logger.Info("This kernel has no OOM-kill counters (they came with 4.13): the witness is off and kills are counted from the kernel's log alone", zap.Error(err))
		} else {
			logger.Warn("Cannot read the kernel's OOM-kill counters: the witness is off and kills are counted from the kernel's log alone", zap.Error(err))
		}
		return nil
	}
	boot, err := readBootID(files.bootID)
	if err != nil {
		logger.Warn("Cannot read this boot's ID: the witness is off", zap.Error(err))
		return nil
	}
	bootTime, err := readBootTime(files.stat)
	if err != nil {
		logger.Warn("Cannot read the boot time: the witness is off", zap.Error(err))
		return nil
	}
	w := &witness{cfg: cfg.Witness, logger: logger, tb: tb, reader: reader, bootID: boot, bootTime: bootTime, now: time.Now}
	if reader.Layout() == oomcounter.LayoutV2 {
		if w.notify, err = oomcounter.NewNotifier(); err != nil {
			logger.Info("No inotify: the counters are polled", zap.Error(err))
		}
	}
	logger.Info("Checking OOM kills against the kernel's own counters",
		zap.String("reads", reader.Describe()), zap.Stringer("layout", reader.Layout()),
		zap.Bool("notified", w.notify != nil), zap.Duration("poll_interval", w.cfg.PollInterval),
		zap.Duration("grace", w.cfg.Grace), zap.Int("max_cgroups", w.cfg.MaxCgroups))
	return w
}

// startWitness makes the witness (nil when it is off), has the checkpointer
// keep its state and restores the state the checkpoint holds.
func startWitness(ctx context.Context, cfg *Config, cp *checkpointer, logger *zap.Logger, tb *metadata.TelemetryBuilder) *witness {
	w := newWitness(cfg, kernelFiles, logger, tb)
	if w == nil {
		return nil
	}
	saved, err := cp.keep(ctx, witnessStateKey, w)
	if err != nil {
		logger.Error("Cannot read the witness state from the checkpoint", zap.Error(err))
		saved = nil
	}
	w.start(saved)
	return w
}

// check is the witness's stage: it matches the batch just read to the
// kernel's counters and returns the kills to count: the batch's, less the
// late lines of kills already counted from the counters and with the
// cgroup the counters attribute to rate-limited reports, then the kills
// known only from the counters.
func (w *witness) check(ctx context.Context, b batch) []killRecord {
	if w == nil {
		return b.kills
	}
	if b.caughtUp.After(w.caughtUp) {
		w.caughtUp = b.caughtUp
	}
	var others []reconcile.Event
	for _, c := range b.counted {
		if ev, ok := w.event(c.kill, c.kind); ok {
			others = append(others, ev)
		}
	}
	kills := w.reconcile(ctx, b.kills, others)
	return append(kills, w.declare(ctx, w.caughtUp)...)
}

// waitBound bounds the receiver's sleep: until the next poll is due, or a
// watched counter changed (cgroup v2). Call the returned func when the
// sleep is over.
func (w *witness) waitBound(ctx context.Context) (context.Context, context.CancelFunc) {
	if w == nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithDeadline(ctx, w.lastPoll.Add(w.cfg.PollInterval))
	if w.notify != nil {
		go func() {
			select {
			case <-w.notify.C:
				w.woken.Store(true)
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	return ctx, cancel
}

// start restores the saved state (nil: none) and takes the first reading:
// the baseline, or what changed while the collector was down.
func (w *witness) start(saved []byte) {
	cfg := reconcile.Config{Grace: w.cfg.Grace, MaxRuns: 4 * max(w.cfg.MaxCgroups, 1024)}
	w.rc = reconcile.New(cfg)
	if saved != nil {
		var s witnessState
		if err := json.Unmarshal(saved, &s); err != nil {
			w.logger.Error("Ignoring unusable witness state in the checkpoint: kills while the collector was down are counted from the log only", zap.Error(err))
		} else {
			w.rc = reconcile.Restore(cfg, s.State)
			if s.BootID != w.bootID {
				// Counters started from zero at this boot: all of
				// what they show happened since.
				w.rc.StartBoot(w.bootTime)
				w.logger.Info("The node rebooted since the checkpoint: its OOM-kill counters since boot are checked against the log")
			}
		}
	}
	w.read()
}

// wake fires when a watched counter changed (nil: polled only).
func (w *witness) wake() <-chan struct{} {
	if w.notify == nil {
		return nil
	}
	return w.notify.C
}

// poll reads the node's counter when due (or woken), and everything when
// it rose: a node without OOM kills costs one small read per interval. It
// says whether the counters could be read.
func (w *witness) poll() bool {
	woken := w.woken.Swap(false)
	select {
	case <-w.wake():
		woken = true
	default:
	}
	if !woken && w.now().Sub(w.lastPoll) < w.cfg.PollInterval {
		return true
	}
	w.lastPoll = w.now()
	node, err := w.reader.Node()
	if err != nil {
		w.noteError(err)
		return false
	}
	if node != w.rc.LastNode() || !w.rc.Baselined() || len(w.deferred) > 0 {
		return w.read()
	}
	return true
}

// read takes a full reading; false when it failed.
func (w *witness) read() bool {
	start := w.now()
	s, err := w.reader.Read()
	if err != nil {
		w.noteError(err)
		return false
	}
	if w.failing {
		w.failing = false
		w.logger.Info("Reading the kernel's OOM-kill counters works again")
	}
	r := reconcile.Reading{Start: start, End: w.now(), Node: s.Node, Truncated: s.Truncated}
	r.Cgroups = make([]reconcile.CgroupCount, len(s.Cgroups))
	for i, c := range s.Cgroups {
		r.Cgroups[i] = reconcile.CgroupCount{Path: c.Path, Count: reconcile.Count{Kills: c.Kills, GroupKills: c.GroupKills}, Hierarchical: w.reader.Hierarchical()}
	}
	w.rc.Observe(r)
	w.lastPoll = r.End
	if len(w.deferred) > 0 {
		w.rc.Match(w.deferred)
		w.deferred = nil
	}
	if w.notify != nil {
		for _, f := range w.reader.KubepodsRoots() {
			if err := w.notify.Watch(f); err != nil {
				w.logger.Debug("Cannot watch a kubelet cgroup's memory.events; its kills are noticed by polling", zap.Error(err))
			}
		}
	}
	return true
}

func (w *witness) noteError(err error) {
	if !w.failing {
		w.logger.Warn("Reading the kernel's OOM-kill counters failed; retrying at the next poll", zap.Error(err))
	}
	w.failing = true
}

// reconcile matches a batch just read (kills, and the group kills and
// repeated victim lines the kernel also counted) to the counters, read
// now. It returns the kills to count: those already counted from the
// counters (their line came after the grace) are left out; those the log
// printed without cgroup carry the cgroup the counters attribute.
func (w *witness) reconcile(ctx context.Context, kills []killRecord, others []reconcile.Event) []killRecord {
	if len(kills) == 0 && len(others) == 0 {
		return kills
	}
	w.lastPoll = time.Time{} // the batch's kills are in the counters now
	read := w.poll()
	events := make([]reconcile.Event, 0, len(kills)+len(others))
	var idx []int
	for i, k := range kills {
		if k.Host != "" {
			w.host = k.Host
		}
		if k.BootID != w.bootID {
			continue // another boot's counters, or another machine's journal
		}
		events = append(events, reconcile.Event{Kind: reconcile.Kill, Cgroup: k.TaskMemcg, Time: k.Time})
		idx = append(idx, i)
	}
	events = append(events, others...)
	if !read {
		// Counted from the log as they are; matched once the counters
		// can be read again (bounded: beyond it, their rises may be
		// counted again).
		if len(w.deferred)+len(events) <= maxDeferred {
			w.deferred = append(w.deferred, events...)
		}
		return kills
	}
	matches := w.rc.Match(events)
	keep := kills[:0:0]
	late := map[int]bool{}
	for j, i := range idx {
		m := matches[j]
		switch {
		case m.Late:
			late[i] = true
		case m.Attributed != "" && !kills[i].Attributed:
			k := &kills[i]
			k.TaskMemcg, k.Cgroup, k.Attributed, k.CounterAttributed = m.Attributed, kubecgroup.Parse(m.Attributed), true, true
			w.tb.OomkillReceiverCounterAttributedKills.Add(ctx, 1)
		}
	}
	for i, k := range kills {
		if !late[i] {
			keep = append(keep, k)
			continue
		}
		w.tb.OomkillReceiverLateLogKills.Add(ctx, 1)
		w.logger.Info("The log line of an OOM kill already counted from the kernel's counters came late; not counted again",
			zap.Int64("pid", k.PID), zap.String("process", k.Comm), zap.String("cgroup", k.TaskMemcg),
			zap.Time("kill_time", k.Time), zap.Duration("grace", w.cfg.Grace))
	}
	return keep
}

// event turns what the parser saw besides kills into what the counters
// hold: a group kill, or a victim printed (and counted) again.
func (w *witness) event(k oomparse.Kill, kind oomparse.LineKind) (reconcile.Event, bool) {
	if k.BootID != w.bootID {
		return reconcile.Event{}, false
	}
	switch kind {
	case oomparse.LineGroup:
		return reconcile.Event{Kind: reconcile.GroupKill, Cgroup: k.TaskMemcg, Time: k.Time}, true
	case oomparse.LineDuplicate:
		return reconcile.Event{Kind: reconcile.Echo, Cgroup: k.TaskMemcg, Time: k.Time}, true
	}
	return reconcile.Event{}, false
}

// declare polls when due and returns the kills known only from the
// counters: rises no log line explained although the log had been read to
// its end (at caughtUp) a grace after them.
func (w *witness) declare(ctx context.Context, caughtUp time.Time) []killRecord {
	w.poll()
	ds := w.rc.Declare(caughtUp, w.now())
	if len(ds) == 0 {
		return nil
	}
	out := make([]killRecord, 0, len(ds))
	for _, d := range ds {
		ref := kubecgroup.Parse(d.Cgroup)
		out = append(out, killRecord{
			ID: counterKillID(w.bootID, d.Cgroup, d.To, d.Index),
			Kill: oomparse.Kill{
				Time: d.To, BootID: w.bootID, TaskMemcg: d.Cgroup, Cgroup: ref,
				Constraint: oomparse.ConstraintUnknown,
				Attributed: ref.Kind == kubecgroup.KindContainer || ref.Kind == kubecgroup.KindPod,
			},
			Host:    w.host,
			Outcome: outcomeUnknown,
			Source:  sourceKernelCounter,
		})
	}
	w.tb.OomkillReceiverCounterOnlyKills.Add(ctx, int64(len(out)))
	if !w.warned {
		w.warned = true
		w.logger.Warn("The kernel counted OOM kills its log did not show: they are counted from the kernel's own counters (oom.source=kernel_counter, no process name or pid). "+
			"The log lines were lost or dropped (journald rate limits or storage, a ring buffer overrun), or a kernel this collector version does not understand reworded them: "+
			"check the collector's version against the node's kernel, and journald. Logged once; otelcol_oomkill_receiver_counter_only_kills counts them",
			zap.Int("kills", len(out)), zap.String("cgroup", ds[0].Cgroup), zap.Time("seen_at", ds[0].To))
	}
	return out
}

// changed, state and saved keep the reconciler's state in the checkpoint
// (keptState).
func (w *witness) changed() bool { return w.rc.Changed() }

func (w *witness) saved() { w.rc.Saved() }

// state is the reconciler's state to checkpoint; nil when unchanged.
func (w *witness) state() (string, []byte) {
	if !w.rc.Changed() {
		return witnessStateKey, nil
	}
	b, err := json.Marshal(witnessState{BootID: w.bootID, State: w.rc.Export()})
	if err != nil {
		w.logger.Error("Cannot encode the witness state", zap.Error(err))
		return witnessStateKey, nil
	}
	return witnessStateKey, b
}

func (w *witness) close() {
	if w != nil && w.notify != nil {
		_ = w.notify.Close()
	}
}

// counterKillID is oom.kill.id of a kill known only from the counters:
// stable for the same reading, so a restart that declares it again gives
// it the same ID.
func counterKillID(bootID, cgroup string, seen time.Time, index int) string {
	b := make([]byte, 0, 64+len(cgroup))
	b = append(b, "counter\n"...)
	b = append(b, bootID...)
	b = append(b, '\n')
	b = append(b, cgroup...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, seen.UnixNano(), 10)
	b = append(b, '\n')
	b = strconv.AppendInt(b, int64(index), 10)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// readBootID reads the boot ID as the journal writes it: 32 hex digits.
func readBootID(path string) (string, error) {
	b, err := os.ReadFile(path) //nolint:gosec // G304: /proc/sys/kernel/random/boot_id
	if err != nil {
		return "", err
	}
	id := strings.ReplaceAll(strings.TrimSpace(string(b)), "-", "")
	if len(id) != 32 {
		return "", errors.New("unexpected boot ID " + strconv.Quote(string(b)))
	}
	return id, nil
}

// readBootTime reads btime from /proc/stat.
func readBootTime(path string) (time.Time, error) {
	f, err := os.Open(path) //nolint:gosec // G304: /proc/stat
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, err
			}
			return time.Unix(s, 0), nil
		}
	}
	return time.Time{}, errors.New("no btime line in " + path)
}
