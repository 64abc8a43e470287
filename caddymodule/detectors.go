package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/caddy-audit/caddy-audit/adminapi"
	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/storage"
)

// Defaults of the detector worker.
const (
	defaultSweepInterval   = 5 * time.Minute
	defaultDetectorHistory = 72 * time.Hour
	// detectorFeedSize bounds the committed batches waiting for the
	// worker. The writer never waits on it: a full feed drops the batch
	// (counted), and the worker reads the missing seqs from the store.
	detectorFeedSize = 1024
	// detectorFeedEvents bounds the events those batches hold (batches are
	// up to max_batch long): while the worker replays history after a
	// start or a detector config change, the feed must not pin gigabytes.
	detectorFeedEvents = 65536
	// detectorPage is how many stored events one catch-up read returns.
	detectorPage = 1000
	// detectorSaveEvery persists the judged seq during a long catch-up, so
	// a crash in the middle of one does not start it over.
	detectorSaveEvery = 50000
)

// detectorSettings are what the current config asks of the detector
// worker. Like the worker, they outlive configs; a reload that changes the
// detector config rebuilds the engine.
type detectorSettings struct {
	cfg     detectors.Config
	sweep   time.Duration
	history time.Duration
}

// loadDetectorsFile reads a YAML detector config. Unknown fields are
// errors (a typo must not silently keep a default), and every error names
// the file, line and column.
func loadDetectorsFile(path string) (detectors.Config, error) {
	var cfg detectors.Config
	raw, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("detectors_file: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return cfg, fmt.Errorf("detectors_file %s: %s", path, trimYAML(err))
	}
	if len(root.Content) == 0 {
		return cfg, nil // an empty file: all defaults
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("detectors_file %s: %s", path, withColumns(trimYAML(err), &root))
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("detectors_file %s: %w", path, err)
	}
	return cfg, nil
}

var (
	yamlPrefix   = regexp.MustCompile(`^yaml: (unmarshal errors:\n\s*)?`)
	yamlNewlines = regexp.MustCompile(`\n\s*`)
)

func trimYAML(err error) string {
	return yamlNewlines.ReplaceAllString(yamlPrefix.ReplaceAllString(err.Error(), ""), "; ")
}

var yamlLine = regexp.MustCompile(`line (\d+):`)

// withColumns turns yaml.v3's "line N:" into "line N column C:", taking
// the column of the first node on that line: type and unknown-field errors
// only carry the line, and an editor jumps better with both.
func withColumns(msg string, root *yaml.Node) string {
	cols := make(map[int]int)
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if c, ok := cols[n.Line]; !ok || n.Column < c {
			cols[n.Line] = n.Column
		}
		for _, k := range n.Content {
			walk(k)
		}
	}
	walk(root)
	return yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(yamlLine.FindStringSubmatch(m)[1])
		if c, ok := cols[n]; ok && c > 0 {
			return fmt.Sprintf("line %d column %d:", n, c)
		}
		return m
	})
}

// detectorWorker runs the detection engine for one database. It is fed
// committed events by the writer (OnCommit) and sweeps the store on a
// timer to catch up on what the feed dropped and to flush throttled alert
// updates. The engine is single-goroutine: everything touching it runs on
// run's goroutine, and other goroutines reach it through ctl.
type detectorWorker struct {
	store  *storage.Store
	logger *loggerRef
	feed   chan feedBatch
	ctl    chan func()

	mu       sync.Mutex
	settings detectorSettings
	// hours are the business hours stored in workspace records (through
	// the admin API), which override the config's for those workspaces.
	hours map[string]storage.BusinessHours
	// lastSweep and lastSweepTook describe the last sweep, for the API.
	lastSweep     time.Time
	lastSweepTook time.Duration
	changed       chan struct{}

	stopping chan struct{}
	done     chan struct{}
	started  atomic.Bool

	// judgedSeq mirrors seq and eventsJudged counts the events the engine
	// judged since the worker started, for readers on other goroutines.
	judgedSeq    atomic.Uint64
	eventsJudged atomic.Uint64

	// rebuildEvery is the least time between two rebuilds; rebuilds
	// counts them (tests).
	rebuildEvery time.Duration
	rebuilds     atomic.Int64

	// Owned by run's goroutine.
	rebuiltAt time.Time
	engine    *detectors.Engine
	cfgJSON   []byte       // the engine's config, to notice a reload changing it
	seq       uint64       // last event seq judged
	queued    atomic.Int64 // events waiting in feed
	saved     uint64       // last seq persisted
	alerts    alertTally   // what persist wrote, for sweep results

	// lastAtOpen is the newest seq when the worker was made, before the
	// writer could add any: where a worker with no history and no saved
	// position starts, so nothing committed meanwhile is skipped.
	lastAtOpen uint64
}

// newDetectorWorker makes the worker for store. Make it before the writer
// that feeds it (see lastAtOpen), then start it.
func newDetectorWorker(store *storage.Store, logger *loggerRef, s detectorSettings) *detectorWorker {
	last, err := store.LastSeq()
	if err != nil {
		logger.L().Error("reading the last event seq", zap.Error(err))
	}
	return &detectorWorker{
		lastAtOpen: last,
		store:      store, logger: logger, settings: s,
		hours:    make(map[string]storage.BusinessHours),
		feed:     make(chan feedBatch, detectorFeedSize),
		ctl:      make(chan func(), 64),
		changed:  make(chan struct{}, 1),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),

		rebuildEvery: defaultRebuildEvery,
	}
}

// defaultRebuildEvery spaces engine rebuilds: each one replays
// detector_history from the store, so a client alternating business-hours
// PATCHes must not keep the engine replaying instead of judging. Changes
// that arrive within it are applied together when it has passed.
const defaultRebuildEvery = 30 * time.Second

// start begins the worker's goroutine. Events committed before it runs
// wait in the feed or are read back from the store.
func (w *detectorWorker) start() {
	w.started.Store(true)
	go w.run()
}

// feedBatch is one committed batch: the events the engine judges, and the
// seq range of the whole batch, so the events left out (admin, lifecycle,
// request_received) are not mistaken for a gap to read from the store.
type feedBatch struct {
	first, last uint64
	events      []*storage.Event
}

// offer is the writer's OnCommit hook. It never blocks: a full feed drops
// the batch and counts it, and the worker later reads those events back
// from the store by seq.
func (w *detectorWorker) offer(events []*storage.Event) {
	if len(events) == 0 {
		return
	}
	b := feedBatch{first: events[0].Seq, last: events[len(events)-1].Seq}
	for _, ev := range events {
		if liveTraffic(ev) {
			b.events = append(b.events, ev)
		}
	}
	n := int64(len(b.events))
	if w.queued.Add(n) > detectorFeedEvents {
		w.queued.Add(-n)
		metrics.detectorDropped.Add(float64(n))
		return
	}
	select {
	case w.feed <- b:
	default:
		w.queued.Add(-n)
		metrics.detectorDropped.Add(float64(n))
	}
}

// release asks the engine to forget an alert an analyst closed, so that a
// new occurrence opens a new alert. It does not wait; if the control queue
// is full the request is lost, and the worker releases the alert itself at
// its next update (persist sees the closed status).
func (w *detectorWorker) release(id string) {
	select {
	case w.ctl <- func() { w.engine.Release(id) }:
	default:
	}
}

// configure applies the settings of a newly started config.
func (w *detectorWorker) configure(s detectorSettings) {
	w.mu.Lock()
	w.settings = s
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// workspaceChanged applies the business hours of a workspace record the
// admin API created or changed. Stored hours win over the config's, field
// by field; a record without hours gives the workspace back to the
// config. If that changes the engine's configuration, the worker rebuilds
// the engine as on a reload: it replays detector_history from the store,
// so baselines and open alerts come back, now judged in the new hours.
// Rebuilds are at least rebuildEvery apart: changes within that time are
// coalesced into one rebuild when it has passed. It does not block.
func (w *detectorWorker) workspaceChanged(ws storage.Workspace) {
	w.mu.Lock()
	if ws.BusinessHours == nil || ws.BusinessHours.IsZero() {
		delete(w.hours, ws.ID)
	} else {
		w.hours[ws.ID] = *ws.BusinessHours
	}
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// loadWorkspaceHours reads the business hours of the stored workspace
// records, before the engine is first built.
func (w *detectorWorker) loadWorkspaceHours() {
	records, err := w.store.Workspaces()
	if err != nil {
		w.logger.L().Error("reading workspace records for the detectors", zap.Error(err))
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ws := range records {
		if ws.BusinessHours != nil && !ws.BusinessHours.IsZero() {
			w.hours[ws.ID] = *ws.BusinessHours
		}
	}
}

// withWorkspaceHours returns cfg with the stored business hours laid over
// its workspace overrides (a workspace without one gets one). cfg's map is
// not modified: it belongs to the app's config.
func withWorkspaceHours(cfg detectors.Config, hours map[string]storage.BusinessHours) detectors.Config {
	if len(hours) == 0 {
		return cfg
	}
	ws := make(map[string]detectors.Settings, len(cfg.Workspaces)+len(hours))
	maps.Copy(ws, cfg.Workspaces)
	for id, h := range hours {
		s := ws[id]
		bh := s.BusinessHours
		if h.Timezone != "" {
			bh.Timezone = h.Timezone
		}
		if len(h.Days) > 0 {
			bh.Days = slices.Clone(h.Days)
		}
		if h.Start != "" {
			bh.Start = h.Start
		}
		if h.End != "" {
			bh.End = h.End
		}
		s.BusinessHours = bh
		ws[id] = s
	}
	cfg.Workspaces = ws
	return cfg
}

// current returns the settings in force: the newest config's, with the
// stored workspace business hours applied.
func (w *detectorWorker) current() detectorSettings {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.settings
	s.cfg = withWorkspaceHours(s.cfg, w.hours)
	if s.sweep <= 0 {
		s.sweep = defaultSweepInterval
	}
	if s.history < 0 {
		s.history = 0
	}
	return s
}

// stop judges what is left in the feed, flushes the engine and records
// how far it got. Call it after the writer is closed.
func (w *detectorWorker) stop() {
	close(w.stopping)
	<-w.done
}

func (w *detectorWorker) run() {
	defer close(w.done)
	w.loadWorkspaceHours()
	s := w.current()
	w.rebuild(s)
	tick := time.NewTicker(s.sweep)
	defer tick.Stop()
	// due fires when a change deferred by rebuildEvery can be applied;
	// nil when none is pending.
	var due <-chan time.Time
	apply := func() {
		ns := w.current()
		tick.Reset(ns.sweep)
		if cfg, _ := json.Marshal(ns.cfg); !bytes.Equal(cfg, w.cfgJSON) || ns.history != s.history {
			w.persist(w.engine.Flush())
			w.rebuild(ns)
		}
		s = ns
	}
	for {
		select {
		case <-w.stopping:
		drain:
			for {
				select {
				case batch := <-w.feed:
					w.judgeBatch(batch)
				default:
					break drain
				}
			}
			w.persist(w.engine.Flush())
			w.save()
			return
		case batch := <-w.feed:
			w.judgeBatch(batch)
		case fn := <-w.ctl:
			fn()
		case <-tick.C:
			w.sweep()
		case <-w.changed:
			if due != nil {
				continue // pending: current() is read when it is due
			}
			if wait := w.rebuildEvery - time.Since(w.rebuiltAt); wait > 0 {
				due = time.After(wait)
				continue
			}
			apply()
		case <-due:
			due = nil
			apply()
		}
	}
}

// rebuild starts a fresh engine and replays the last s.history of stored
// events into it, to rebuild baselines and open alerts, then catches up to
// the newest event. Alert ids are deterministic, so the alerts the replay
// raises again merge into the stored ones instead of duplicating them.
func (w *detectorWorker) rebuild(s detectorSettings) {
	start := time.Now()
	w.rebuiltAt = start
	w.rebuilds.Add(1)
	w.engine = detectors.NewEngine(s.cfg)
	w.cfgJSON, _ = json.Marshal(s.cfg)
	saved, err := w.store.DetectorSeq()
	if err != nil {
		w.logger.L().Error("reading the detector position", zap.Error(err))
	}
	from := saved + 1
	if s.history > 0 {
		// Back to the start of the history, and never further: events
		// before it rebuild nothing the engine still keeps, and a first
		// start on a large store stays bounded. After a downtime longer
		// than the history, the events in between are not judged.
		at, err := w.store.SeqAtTime(start.Add(-s.history))
		if err != nil {
			w.logger.L().Error("finding the detector replay start", zap.Error(err))
		} else {
			from = at
		}
	} else if saved == 0 {
		// No history wanted and nothing judged yet: start with what
		// was committed after the worker was made.
		from = w.lastAtOpen + 1
	}
	w.seq, w.saved = from-1, saved
	n := w.catchUp(0)
	w.persist(w.engine.Flush())
	w.save()
	w.refreshOpenAlerts()
	w.logger.L().Info("detector engine started", zap.Uint64("resumed_after_seq", saved),
		zap.Uint64("replayed_from_seq", from), zap.Int("events_judged", n), zap.Duration("took", time.Since(start)))
}

// liveTraffic reports whether the live engine judges ev: proxied requests
// at their outcome. Admin and lifecycle events, a strict route's
// request_received record and backfilled history (judged by its own
// replay, in its own time) are not.
func liveTraffic(ev *storage.Event) bool {
	return ev.Kind == storage.KindHTTP && ev.Stage != storage.StageRequestReceived && !ev.Imported()
}

// judgeBatch judges a batch from the feed, first reading from the store
// whatever came between the last judged event and the batch (a dropped
// batch, or events committed while the worker replayed).
func (w *detectorWorker) judgeBatch(batch feedBatch) {
	defer w.queued.Add(-int64(len(batch.events)))
	defer func() { w.judgedSeq.Store(w.seq) }()
	if first := batch.first; first > w.seq+1 {
		w.catchUp(first - 1)
		if first > w.seq+1 {
			// The store could not be read (or we are stopping): judging
			// the batch now would skip the gap for good. The sweep, or
			// the next start, reads it all from the store.
			return
		}
	}
	for _, ev := range batch.events {
		if ev.Seq <= w.seq {
			continue // already read from the store
		}
		w.persist(w.engine.Process(ev))
		w.eventsJudged.Add(1)
		w.seq = ev.Seq
	}
	w.seq = max(w.seq, batch.last)
}

// catchUp judges stored events after w.seq up to seq until (0: up to the
// newest), in seq order, and returns how many it read.
func (w *detectorWorker) catchUp(until uint64) int {
	n := 0
	defer func() { w.judgedSeq.Store(w.seq) }()
	for {
		events, err := w.store.EventsAfter(w.seq, detectorPage)
		if err != nil {
			if !errors.Is(err, storage.ErrClosed) {
				w.logger.L().Error("reading events for the detectors", zap.Uint64("after_seq", w.seq), zap.Error(err))
			}
			return n
		}
		if len(events) == 0 {
			return n
		}
		select {
		case <-w.stopping:
			// Shutting down in the middle of a replay: the next start
			// replays again.
			return n
		default:
		}
		for i := range events {
			ev := &events[i]
			if until != 0 && ev.Seq > until {
				return n
			}
			n++
			if liveTraffic(ev) {
				w.persist(w.engine.Process(ev))
				w.eventsJudged.Add(1)
			}
			w.seq = ev.Seq
		}
		if w.seq-w.saved >= detectorSaveEvery {
			w.save()
		}
	}
}

// alertTally counts what persist wrote since the worker started.
type alertTally struct{ written, created, escalated int }

// persist stores the engine's updates. Metrics count what the store says
// changed (created or escalated), so a replay after a restart, which
// re-raises stored alerts, does not count them twice.
func (w *detectorWorker) persist(updates []detectors.AlertUpdate) {
	for i := range updates {
		u := &updates[i]
		stored, res, err := w.store.PutAlert(u.Alert)
		if err != nil {
			w.logger.L().Error("storing an alert", zap.String("alert", u.Alert.ID), zap.Error(err))
			continue
		}
		w.alerts.written++
		if res.Created {
			w.alerts.created++
		}
		if res.Escalated {
			w.alerts.escalated++
		}
		if res.Created || res.Escalated {
			metrics.alerts.WithLabelValues(stored.Detector, stored.Severity).Inc()
			if res.Created {
				w.logger.L().Warn("alert", zap.String("id", stored.ID), zap.String("detector", stored.Detector),
					zap.String("severity", stored.Severity), zap.String("summary", stored.Evidence.Summary))
			}
		}
		// An analyst closed it, and these events came after: let the
		// next occurrence open a new alert (a lost release request heals
		// here; a replay does not release before the closing time).
		closed := stored.Status == storage.StatusResolved || stored.Status == storage.StatusFalsePositive
		if closed && !u.Alert.LastSeen.Before(stored.StatusAt) {
			w.engine.Release(stored.ID)
		}
	}
}

// sweep catches up with the store, flushes throttled updates, records the
// position and refreshes the open-alert gauge.
func (w *detectorWorker) sweep() adminapi.SweepResult {
	start := time.Now()
	res := adminapi.SweepResult{StartedAt: start.UTC(), FromSeq: w.seq}
	before := w.alerts
	res.EventsRead = w.catchUp(0)
	w.persist(w.engine.Flush())
	res.AlertUpdates = w.alerts.written - before.written
	res.AlertsCreated = w.alerts.created - before.created
	res.AlertsEscalated = w.alerts.escalated - before.escalated
	w.save()
	w.refreshOpenAlerts()
	took := time.Since(start)
	res.ToSeq, res.DurationSeconds = w.seq, took.Seconds()
	w.mu.Lock()
	w.lastSweep, w.lastSweepTook = start.Add(took), took
	w.mu.Unlock()
	metrics.sweepSeconds.Observe(took.Seconds())
	metrics.lastSweep.SetToCurrentTime()
	return res
}

// status reports the worker's configuration and progress for the admin
// API (GET /api/v1/detectors). It is safe on any goroutine.
func (w *detectorWorker) status() adminapi.DetectorRuntime {
	running := w.started.Load()
	select {
	case <-w.stopping:
		running = false
	default:
	}
	rt := adminapi.DetectorRuntime{
		Running:      running,
		Config:       w.current().cfg,
		JudgedSeq:    w.judgedSeq.Load(),
		EventsJudged: w.eventsJudged.Load(),
	}
	w.mu.Lock()
	rt.LastSweep, rt.LastSweepDuration = w.lastSweep, w.lastSweepTook
	w.mu.Unlock()
	return rt
}

// refreshOpenAlerts sets the open-alert gauge from the store.
func (w *detectorWorker) refreshOpenAlerts() {
	c, err := w.store.CountAlerts()
	if err != nil {
		if !errors.Is(err, storage.ErrClosed) {
			w.logger.L().Error("counting alerts", zap.Error(err))
		}
		return
	}
	for _, sev := range storage.Severities {
		metrics.openAlerts.WithLabelValues(sev).Set(float64(c.OpenBySeverity[sev]))
	}
}

func (w *detectorWorker) save() {
	if w.seq == w.saved {
		return
	}
	if err := w.store.SetDetectorSeq(w.seq); err != nil {
		if !errors.Is(err, storage.ErrClosed) {
			w.logger.L().Error("saving the detector position", zap.Error(err))
		}
		return
	}
	w.saved = w.seq
}

// sweepNow runs a sweep on the worker's goroutine and waits for it (POST
// /api/v1/detectors/sweep, and tests). A worker that is not running
// answers adminapi.ErrDetectorsUnavailable rather than queueing work
// nobody will do.
func (w *detectorWorker) sweepNow(ctx context.Context) (adminapi.SweepResult, error) {
	if !w.started.Load() {
		return adminapi.SweepResult{}, adminapi.ErrDetectorsUnavailable
	}
	// The worker hands the result over on a channel with room for it: a
	// caller that gave up (ctx) has stopped reading, and the worker must
	// neither block on it nor write into memory the caller still reads.
	out := make(chan adminapi.SweepResult, 1)
	select {
	case w.ctl <- func() { out <- w.sweep() }:
	case <-w.stopping:
		return adminapi.SweepResult{}, adminapi.ErrDetectorsUnavailable
	case <-ctx.Done():
		return adminapi.SweepResult{}, ctx.Err()
	}
	select {
	case res := <-out:
		return res, nil
	case <-w.done:
		// Stopped before reaching the request.
		return adminapi.SweepResult{}, adminapi.ErrDetectorsUnavailable
	case <-ctx.Done():
		return adminapi.SweepResult{}, ctx.Err()
	}
}
