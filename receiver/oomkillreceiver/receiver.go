package oomkillreceiver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/receiver"
	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/journal"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadata"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/oomparse"
)

const (
	// batchEntries bounds how many entries are read between deliveries.
	batchEntries = 4096
	// waitTimeout bounds one wait for journal changes; Shutdown waits at
	// most this long for the reader to notice.
	waitTimeout = time.Second
	// progressEvery: with no kills, the cursor is still checkpointed this
	// often so a restart does not re-read everything since the last kill.
	progressEvery = 10 * time.Second
	// unrecognizedLogged is how many not-understood lines are logged in
	// full; after that every 1000th is.
	unrecognizedLogged = 20
)

// The journal is reopened, to unmap the files read, after reading
// reopenAfter entries through one handle (this bounds what a catch-up
// holds), or on reaching its end after reopenIdleAfter (so what a catch-up
// read is not kept while idle). Variables so a test can lower them.
var (
	reopenAfter     = 25_000
	reopenIdleAfter = 10_000
)

type oomReceiver struct {
	cfg     *Config
	set     receiver.Settings
	logger  *zap.Logger
	logs    consumer.Logs
	metrics consumer.Metrics
	tb      *metadata.TelemetryBuilder

	host   component.Host
	client storage.Client
	reader *journal.Reader
	asm    *oomparse.Assembler
	emit   emitter
	series *seriesTable
	// outcomes observes what became of each victim's container.
	outcomes *outcomeObserver
	// reportedSeries is the live series count last added to telemetry.
	reportedSeries int
	// overflowLogged: the first kill into each kind of overflow is logged.
	overflowLogged map[overflowKind]bool
	cp             checkpoint
	saved          time.Time
	pending        string // cursor read but not yet checkpointed
	// lastBoot is the boot ID of the previous entry.
	lastBoot string
	pendRT   time.Time
	// sinceOpen counts entries read through the current journal handle.
	sinceOpen int
	// stateChanged: series expired since the last checkpoint.
	stateChanged bool

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func newReceiver(cfg *Config, set receiver.Settings) (*oomReceiver, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	return &oomReceiver{cfg: cfg, set: set, logger: set.Logger, tb: tb, overflowLogged: map[overflowKind]bool{}}, nil
}

func (r *oomReceiver) source() journal.Source {
	return journal.Source{Directory: r.cfg.Journal.Directory, Files: r.cfg.Journal.Files}
}

// Start checks the journal can be read, restores the checkpoint, positions
// the reader and starts following the journal.
func (r *oomReceiver) Start(ctx context.Context, host component.Host) error {
	r.host = host
	exportCountersAtZero(ctx, r.tb)
	n, err := journal.CheckReadable(r.source())
	if err != nil {
		return fmt.Errorf("oomkill receiver cannot read the journal: %w", err)
	}
	if n == 0 {
		r.logger.Warn("No journal files yet; waiting for journald to create them", zap.Any("journal", r.source()))
	}
	if r.cfg.StorageID != nil {
		if r.client, err = storageClient(ctx, host, *r.cfg.StorageID, r.set.ID); err != nil {
			return err
		}
	} else {
		r.logger.Warn("No storage extension configured: kills that happen while the collector is down are not counted, and counters restart from zero on every start. Set `storage` to a file_storage extension to keep them.")
	}
	r.series = newSeriesTable(r.cfg.Series)
	var cp *checkpoint
	if r.client != nil {
		if cp, err = loadCheckpoint(ctx, r.client, r.series); err != nil {
			// A broken checkpoint cannot be repaired; say so loudly and
			// start as configured rather than refuse to run.
			r.logger.Error("Ignoring unusable checkpoint", zap.Error(err))
			componentstatus.ReportStatus(host, componentstatus.NewRecoverableErrorEvent(err))
			cp, r.series = nil, newSeriesTable(r.cfg.Series)
		}
	}
	if cp == nil {
		cp = &checkpoint{StartTimeUnixNano: time.Now().UnixNano()}
	}
	r.cp = *cp
	r.reportSeries(ctx)
	r.outcomes = newOutcomeObserver(r.cfg.Outcome, r.logger)
	r.emit = emitter{cfg: r.cfg, version: r.set.BuildInfo.Version, mb: metadata.NewMetricsBuilder(r.cfg.MetricsBuilderConfig, r.set,
		metadata.WithStartTime(pcommon.NewTimestampFromTime(cp.startTime())))}
	r.asm = oomparse.NewAssembler(oomparse.Options{PageSize: int64(os.Getpagesize())})

	if r.reader, err = journal.Open(r.source()); err != nil {
		return fmt.Errorf("oomkill receiver cannot open the journal %+v: %w", r.source(), err)
	}
	if err := r.position(); err != nil {
		r.reader.Close()
		return fmt.Errorf("oomkill receiver cannot position in the journal: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.done = make(chan struct{})
	go r.run(runCtx)
	return nil
}

// position puts the reader right after the checkpoint, or at start_at.
func (r *oomReceiver) position() error {
	if r.cp.Cursor == "" {
		r.logger.Info("Starting without checkpoint", zap.String("start_at", r.cfg.StartAt))
		if r.cfg.StartAt == StartAtBeginning {
			return r.reader.SeekHead()
		}
		last, err := r.reader.SeekEnd()
		r.logger.Info("Positioned at the end of the journal", zap.String("after_cursor", last))
		return err
	}
	saved := time.UnixMicro(r.cp.RealtimeUsec)
	found, err := r.reader.SeekAfter(r.cp.Cursor, saved)
	if err != nil {
		return err
	}
	if found {
		r.logger.Info("Resuming after checkpoint", zap.Time("checkpoint_time", saved), zap.Int("series", len(r.series.live)))
		return nil
	}
	r.tb.OomkillReceiverCheckpointGaps.Add(context.Background(), 1)
	r.logger.Warn("Checkpoint cursor is no longer in the journal (vacuumed or rotated away): resuming at the oldest entry after the checkpoint time; kills logged in between and already removed from the journal cannot be counted",
		zap.Time("checkpoint_time", saved), zap.String("cursor", r.cp.Cursor))
	return nil
}

func storageClient(ctx context.Context, host component.Host, id, self component.ID) (storage.Client, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("storage %q: no such extension; add it under `extensions:` and `service.extensions`", id)
	}
	se, ok := ext.(storage.Extension)
	if !ok {
		return nil, fmt.Errorf("storage %q is not a storage extension (use e.g. file_storage)", id)
	}
	c, err := se.GetClient(ctx, component.KindReceiver, self, "")
	if err != nil {
		return nil, fmt.Errorf("storage %q: %w", id, err)
	}
	return c, nil
}

// Shutdown stops reading; everything not delivered stays behind the
// checkpoint and is read again on the next start.
func (r *oomReceiver) Shutdown(ctx context.Context) error {
	var errs []error
	r.once.Do(func() {
		if r.cancel != nil {
			r.cancel()
			select {
			case <-r.done:
			case <-ctx.Done():
				errs = append(errs, ctx.Err())
			}
		}
		if r.reader != nil {
			errs = append(errs, r.reader.Close())
		}
		if r.client != nil {
			errs = append(errs, r.client.Close(ctx))
		}
		r.tb.Shutdown()
	})
	return errors.Join(errs...)
}

// run follows the journal until Shutdown. Each round is the same stages:
// read and assemble a batch of entries, observe the victims' cgroups,
// account the kills in their series, deliver, checkpoint.
func (r *oomReceiver) run(ctx context.Context) {
	defer close(r.done)
	var refresh <-chan time.Time
	if r.cfg.MetricsRefreshInterval > 0 && r.metrics != nil {
		t := time.NewTicker(r.cfg.MetricsRefreshInterval)
		defer t.Stop()
		refresh = t.C
	}
	sweep := time.NewTicker(expirySweepInterval(r.cfg.Series.Retention))
	defer sweep.Stop()
	// Counters restored from the checkpoint are exposed at once, not at
	// the next kill or refresh.
	if r.metrics != nil {
		r.refreshMetrics(ctx, 0)
	}
	readFailing := false
	for ctx.Err() == nil {
		kills, entries, err := r.readBatch(ctx)
		readFailing = r.noteRead(ctx, err, readFailing)
		if len(kills) > 0 {
			unobservable, ok := r.outcomes.observe(ctx, kills)
			if !ok {
				return // shutting down: the checkpoint stays before these kills
			}
			r.tb.OomkillReceiverOutcomeUnobservable.Add(ctx, int64(unobservable))
			r.account(ctx, kills)
			if !r.deliver(ctx, kills) {
				return
			}
		}
		if len(kills) > 0 || r.stateChanged || (r.pending != "" && time.Since(r.saved) > progressEvery) {
			// Delivered data must be checkpointed even when Shutdown has
			// begun, or the next start would send it again.
			r.commit(context.WithoutCancel(ctx))
		}
		r.sinceOpen += entries
		if caughtUp := entries == 0 && err == nil; r.sinceOpen >= reopenAfter || (caughtUp && r.sinceOpen >= reopenIdleAfter) {
			r.reopen()
		}
		if entries > 0 || err != nil {
			continue
		}
		select {
		case <-refresh:
			r.refreshMetrics(ctx, r.cfg.MetricsRefreshInterval/2)
		case <-sweep.C:
			r.expireSeries(ctx)
		default:
		}
		if _, err := r.reader.Wait(waitTimeout); err != nil {
			r.logger.Warn("Waiting for journal changes failed", zap.Error(err))
			sleep(ctx, waitTimeout)
		}
	}
}

// expirySweepInterval: often enough that a series leaves soon after its
// retention, rarely enough to cost nothing.
func expirySweepInterval(retention time.Duration) time.Duration {
	return max(min(retention/4, time.Minute), 10*time.Millisecond)
}

// noteRead counts and reports a failed read (once per failing spell) and
// its recovery; it returns whether reads are failing.
func (r *oomReceiver) noteRead(ctx context.Context, err error, failing bool) bool {
	switch {
	case err != nil:
		r.tb.OomkillReceiverReadErrors.Add(ctx, 1)
		r.logger.Error("Reading the journal failed; retrying", zap.Error(err))
		if !failing {
			componentstatus.ReportStatus(r.host, componentstatus.NewRecoverableErrorEvent(err))
		}
		sleep(ctx, waitTimeout)
		return true
	case failing:
		componentstatus.ReportStatus(r.host, componentstatus.NewEvent(componentstatus.StatusOK))
	}
	return false
}

// reopen gives back the memory the journal files read so far hold, by
// reopening the journal right after the last entry read. Called between
// batches, after delivery.
func (r *oomReceiver) reopen() {
	read := r.sinceOpen
	r.sinceOpen = 0
	cursor, rt := r.pending, r.pendRT
	if cursor == "" {
		cursor, rt = r.cp.Cursor, time.UnixMicro(r.cp.RealtimeUsec)
	}
	if cursor == "" {
		return
	}
	found, err := r.reader.Reopen(cursor, rt)
	switch {
	case err != nil:
		r.logger.Warn("Reopening the journal to release memory failed; reading on with the open handle", zap.Error(err))
	case !found:
		// The entry just read is gone: the journal was vacuumed meanwhile.
		r.tb.OomkillReceiverCheckpointGaps.Add(context.Background(), 1)
		r.logger.Warn("Last entry read vanished while reopening the journal; resuming at the oldest entry after its time", zap.Time("entry_time", rt))
	default:
		r.logger.Debug("Reopened the journal, releasing mapped journal files", zap.Int("entries_read", read))
	}
}

// readBatch reads up to batchEntries kernel entries and returns the kills
// they hold. The cursor of the last entry read becomes pending.
func (r *oomReceiver) readBatch(ctx context.Context) ([]killRecord, int, error) {
	var kills []killRecord
	entries := 0
	var err error
	var settleUntil time.Time // bounds the wait for a group kill's members
	for entries < batchEntries && ctx.Err() == nil {
		var ok bool
		if ok, err = r.reader.Next(); err != nil {
			break
		}
		if !ok {
			if !r.groupMayContinue(kills) {
				break
			}
			if settleUntil.IsZero() {
				settleUntil = time.Now().Add(groupSettle)
			}
			left := time.Until(settleUntil)
			if left <= 0 {
				break
			}
			if _, werr := r.reader.Wait(left); werr != nil {
				break
			}
			continue
		}
		entries++
		switch k, out, ferr := r.feedCurrent(); {
		case ferr != nil:
			r.tb.OomkillReceiverReadErrors.Add(ctx, 1)
			r.logger.Warn("Skipping unreadable journal entry", zap.Error(ferr))
		case out == oomparse.OutcomeKill:
			kills = append(kills, k)
		case out == oomparse.OutcomeReport:
			if g, open := r.asm.OpenGroup(); open {
				markGroupLeader(kills, g, r.lastBoot)
			}
		}
	}
	countGroups(kills)
	if entries > 0 {
		r.tb.OomkillReceiverEntriesRead.Add(ctx, int64(entries))
		cur, cerr := r.reader.Cursor()
		rt, _ := r.reader.Realtime()
		if cerr == nil {
			r.pending, r.pendRT = cur, rt
		}
	}
	return kills, entries, err
}

// groupMayContinue: the batch ends on a member line of a group kill whose
// burst may not be over; its members are delivered together so that
// oom.group.size counts them all.
func (r *oomReceiver) groupMayContinue(kills []killRecord) bool {
	if len(kills) == 0 || !kills[len(kills)-1].GroupKill {
		return false
	}
	_, open := r.asm.OpenGroup()
	return open
}

// feedCurrent feeds the current entry to the parser.
func (r *oomReceiver) feedCurrent() (killRecord, oomparse.Outcome, error) {
	msg, err := r.reader.Message()
	if err != nil {
		return killRecord{}, 0, err
	}
	// Most kernel lines are not about OOM and cannot touch the parser's
	// state: skip the cgo calls for their identifier, boot ID and time.
	if !r.asm.Relevant(msg) {
		r.asm.Skip()
		return killRecord{}, oomparse.OutcomeIgnored, nil
	}
	if id := r.reader.Identifier(); id != journal.KernelIdentifier {
		// Written to /dev/kmsg by a process, not printed by the kernel: a
		// forged "Killed process" line must not count.
		r.tb.OomkillReceiverForeignLines.Add(context.Background(), 1)
		r.logger.Debug("Ignoring a kernel-transport line not from the kernel", zap.String("identifier", id), zap.String("line", msg))
		r.asm.Skip()
		return killRecord{}, oomparse.OutcomeIgnored, nil
	}
	boot := r.lastBoot
	if b, err := r.reader.BootID(); err == nil {
		boot = b
	} else {
		// Treating a missing boot ID as a reboot would drop the report in
		// progress; assume the boot of the previous entry.
		r.logger.Debug("Journal entry without readable _BOOT_ID", zap.Error(err))
	}
	r.lastBoot = boot
	rt, _ := r.reader.Realtime()
	before := r.asm.Stats().Unrecognized
	k, out := r.asm.Feed(oomparse.Message{Text: msg, Time: rt, BootID: boot})
	if n := r.asm.Stats().Unrecognized; n > before {
		r.tb.OomkillReceiverUnrecognizedLines.Add(context.Background(), int64(n-before))
		if n <= unrecognizedLogged || n%1000 == 0 {
			r.logger.Warn("Kernel line looks like an OOM report but matches no known format; please report it with your kernel version",
				zap.String("line", msg), zap.Uint64("unrecognized_total", n))
		}
	}
	if out != oomparse.OutcomeKill {
		return killRecord{}, out, nil
	}
	if kt, err := r.reader.KernelTime(); err == nil {
		k.Time = kt
	}
	return killRecord{Kill: k, Host: r.reader.Hostname(), ID: r.killID(k)}, out, nil
}

// account counts each kill in its series (or an overflow series) and logs it.
func (r *oomReceiver) account(ctx context.Context, kills []killRecord) {
	now := time.Now()
	for _, k := range kills {
		if kind := r.series.count(keyOf(k), now); kind != noOverflow {
			r.tb.OomkillReceiverOverflowKills.Add(ctx, 1)
			r.logOverflow(kind, k)
		}
		r.tb.OomkillReceiverKills.Add(ctx, 1)
		if !k.Attributed {
			r.tb.OomkillReceiverUnattributedKills.Add(ctx, 1)
		}
		r.logger.Info("OOM kill", zap.Int64("pid", k.PID), zap.String("process", k.Comm),
			zap.String("k8s.pod.uid", k.Cgroup.PodUID), zap.String("container.id", k.Cgroup.ContainerID),
			zap.String("constraint", string(k.Constraint)), zap.Bool("attributed", k.Attributed),
			zap.String("outcome", k.Outcome))
	}
	r.reportSeries(ctx)
}

// logOverflow says once per kind of overflow that a cap was reached.
func (r *oomReceiver) logOverflow(kind overflowKind, k killRecord) {
	if r.overflowLogged[kind] {
		return
	}
	r.overflowLogged[kind] = true
	if kind == containerOverflow {
		r.logger.Warn("A container reached series.max_series_per_container: its further process names, constraints and outcomes are counted in its overflow series (otel.metric.overflow=true); logged once",
			zap.String("k8s.pod.uid", k.Cgroup.PodUID), zap.String("container.id", k.Cgroup.ContainerID),
			zap.String("cgroup", k.TaskMemcg), zap.Int("max_series_per_container", r.cfg.Series.MaxSeriesPerContainer))
		return
	}
	r.logger.Warn("series.max_series reached: kills of further series are counted in one overflow series without pod or container (otel.metric.overflow=true); totals stay exact. Raise series.max_series if this node needs more; logged once",
		zap.Int("max_series", r.cfg.Series.MaxSeries))
}

// reportSeries keeps the live series gauge current.
func (r *oomReceiver) reportSeries(ctx context.Context) {
	n := len(r.series.live)
	r.tb.OomkillReceiverSeries.Add(ctx, int64(n-r.reportedSeries))
	r.reportedSeries = n
}

// expireSeries retires series of gone containers past their retention.
func (r *oomReceiver) expireSeries(ctx context.Context) {
	if n := r.series.expire(time.Now(), r.outcomes.alive); n > 0 {
		r.tb.OomkillReceiverSeriesExpired.Add(ctx, int64(n))
		r.logger.Debug("Series expired", zap.Int("expired", n), zap.Int("live", len(r.series.live)))
		r.reportSeries(ctx)
		r.stateChanged = true
	}
}

// deliver hands the kills' log records and the series they changed to the
// next consumers, retrying with backoff until they accept or the receiver
// shuts down (false). Logs and metrics are retried separately so a
// consumer that accepted is not sent data twice.
func (r *oomReceiver) deliver(ctx context.Context, kills []killRecord) bool {
	changed := r.series.takeChanged(time.Now())
	if r.logs != nil {
		ok := r.retry(ctx, "logs", func() error {
			return r.logs.ConsumeLogs(ctx, r.emit.logs(kills, time.Now()))
		})
		if !ok {
			return false
		}
	}
	if r.metrics != nil {
		return r.retry(ctx, "metrics", func() error {
			return r.metrics.ConsumeMetrics(ctx, r.emit.metrics(changed, time.Now()))
		})
	}
	return true
}

// retry calls send until it succeeds, fails permanently, or ctx ends.
func (r *oomReceiver) retry(ctx context.Context, signal string, send func() error) bool {
	backoff := r.cfg.Retry.InitialInterval
	failing := false
	for {
		err := send()
		if err == nil {
			if failing {
				componentstatus.ReportStatus(r.host, componentstatus.NewEvent(componentstatus.StatusOK))
				r.logger.Info("Next consumer accepts data again", zap.String("signal", signal))
			}
			return true
		}
		if consumererror.IsPermanent(err) {
			// Sending the same data again cannot succeed; keep going so
			// that one bad payload does not stop counting.
			r.logger.Error("Next consumer rejected data permanently; it is dropped", zap.String("signal", signal), zap.Error(err))
			return true
		}
		r.tb.OomkillReceiverDeliveryRetries.Add(ctx, 1)
		if !failing {
			componentstatus.ReportStatus(r.host, componentstatus.NewRecoverableErrorEvent(err))
			failing = true
		}
		r.logger.Warn("Next consumer refused data; retrying (reading paused, nothing dropped)",
			zap.String("signal", signal), zap.Duration("backoff", backoff), zap.Error(err))
		if !sleep(ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, r.cfg.Retry.MaxInterval)
	}
}

// commit checkpoints the pending cursor with the series changed up to it.
func (r *oomReceiver) commit(ctx context.Context) {
	if r.pending != "" {
		r.cp.Cursor, r.cp.RealtimeUsec = r.pending, r.pendRT.UnixMicro()
		r.pending = ""
	}
	r.saved = time.Now()
	r.stateChanged = false
	if r.client == nil {
		clear(r.series.dirtySlots)
		return
	}
	if r.cp.Cursor == "" && len(r.series.dirtySlots) == 0 {
		return
	}
	r.logger.Debug("Saving checkpoint", zap.Time("entry_time", r.pendRT), zap.Int("changed_series", len(r.series.dirtySlots)))
	if err := saveCheckpoint(ctx, r.client, &r.cp, r.series); err != nil {
		r.logger.Error("Saving checkpoint failed; a restart may read these entries again", zap.Error(err))
		componentstatus.ReportStatus(r.host, componentstatus.NewRecoverableErrorEvent(err))
	}
}

// refreshMetrics re-emits the series not emitted within notWithin, so idle
// series do not expire in exporters. Best effort: the next kill or refresh
// sends them again.
func (r *oomReceiver) refreshMetrics(ctx context.Context, notWithin time.Duration) {
	due := r.series.due(time.Now(), notWithin)
	if len(due) == 0 {
		return
	}
	if err := r.metrics.ConsumeMetrics(ctx, r.emit.metrics(due, time.Now())); err != nil {
		r.logger.Debug("Metrics refresh refused", zap.Error(err))
	}
}

// sleep waits d or until ctx ends; false means ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
