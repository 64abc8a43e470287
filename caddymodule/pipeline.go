package caddymodule

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-audit/caddy-audit/adminapi"
	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

// pipelines holds one open store and writer per database file. A reload
// provisions the new config before the old one is cleaned up; both find the
// same pipeline here, so the new config never waits on bbolt's file lock and
// events in flight in the old config are written, not lost.
var pipelines = caddy.NewUsagePool()

// pipeline is what a database file needs while Caddy runs: the store, its
// writer, the maintenance loop and the detector worker, which all outlive
// a reload.
type pipeline struct {
	store  *storage.Store
	writer *storage.Writer
	key    []byte // HMAC key for redaction
	logger *loggerRef

	maintenance *maintenance

	// holders are the started configs using this pipeline, oldest first;
	// the newest one's settings are in force. A reload that fails after
	// the audit app started is cleaned up again, and its settings must not
	// outlive it.
	mu       sync.Mutex
	holders  []*App
	detector *detectorWorker
	policy   policyState // the audit policy in force; guarded by mu
}

// defaultCommitDelay is the app's commit_delay: long enough that a busy
// proxy commits hundreds of events at once, short next to how fast anyone
// reads the trail.
const defaultCommitDelay = 20 * time.Millisecond

// loadPipeline returns the pipeline for the app's database, opening it on
// first use. Every call must be paired with releasePipeline.
func loadPipeline(a *App) (*pipeline, bool, error) {
	val, loaded, err := pipelines.LoadOrNew(a.dbPath, func() (caddy.Destructor, error) {
		return openPipeline(a)
	})
	if err != nil {
		return nil, false, err
	}
	return val.(*pipeline), loaded, nil
}

func releasePipeline(dbPath string) error {
	_, err := pipelines.Delete(dbPath)
	return err
}

func openPipeline(a *App) (*pipeline, error) {
	initMetrics() // the writer's observer feeds them from the first event
	key, err := policy.LoadOrCreateKey(a.keyPath)
	if err != nil {
		return nil, err
	}
	store, err := storage.Open(a.dbPath, storage.Options{
		LockTimeout:       time.Duration(a.LockTimeout),
		MaxSize:           int64(a.MaxDBSize),
		CheckpointKeyPath: a.checkpointKeyPath,
	})
	if err != nil {
		metrics.openErrors.WithLabelValues(storage.ErrorKind(err)).Inc()
		return nil, err
	}
	logger := newLoggerRef(a.logger)
	observer := &writerObserver{size: store.Size, unindexed: store.UnindexedEvents}
	detector := newDetectorWorker(store, logger, a.detectorSettings())
	w := storage.NewWriter(store, storage.WriterOptions{
		QueueSize:   a.QueueSize,
		MaxBatch:    a.MaxBatch,
		CommitDelay: max(time.Duration(a.CommitDelay), 0),
		Observer:    observer,
		OnCommit:    detector.offer,
		OnError: func(err error) {
			logger.L().Error("writing audit events", zap.String("db", a.dbPath), zap.Error(err))
		},
	})
	p := &pipeline{store: store, writer: w, key: key, logger: logger, detector: detector}
	p.maintenance = startMaintenance(store, logger, a.maintenanceSettings())
	detector.start()

	bootstrapPath := filepath.Join(a.DataDir, "bootstrap-admin.key")
	created, err := adminapi.Bootstrap(store, bootstrapPath)
	if err != nil {
		_ = p.Destruct()
		return nil, fmt.Errorf("creating bootstrap admin key: %w", err)
	}
	if created {
		// The path, never the key: logs travel to places secrets must not.
		logger.L().Warn("no admin API principal existed; created a bootstrap admin key", zap.String("file", bootstrapPath))
	}
	p.lifecycle("audit_started", map[string]any{"db": a.dbPath})
	logger.L().Info("audit store opened", zap.String("db", a.dbPath), zap.Int("queue_size", a.QueueSize))
	return p, nil
}

// adopt makes a, a config that just started, the one whose settings the
// background work follows.
func (p *pipeline) adopt(a *App) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holders = append(p.holders, a)
	a.apply()
}

// abandon forgets a, a config being cleaned up. If it was the newest, its
// config was rejected (a failed reload): the previous one's settings come
// back, and the trail says so.
func (p *pipeline) abandon(a *App) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.Index(p.holders, a)
	if i < 0 {
		return // never started
	}
	newest := i == len(p.holders)-1
	p.holders = slices.Delete(p.holders, i, i+1)
	if newest && len(p.holders) > 0 {
		p.holders[len(p.holders)-1].apply()
		p.lifecycle("config_reverted", map[string]any{"reason": "the newer config was unloaded while an older one still runs"})
	}
}

// lifecycle records something that happened to the audit pipeline itself.
func (p *pipeline) lifecycle(action string, details map[string]any) {
	now := time.Now().UTC()
	_ = p.writer.Enqueue(&storage.Event{
		ID: storage.NewID(now), Time: now, Kind: storage.KindLifecycle,
		Action: action, Details: details,
	})
}

// Destruct flushes every accepted event and closes the file. The pool calls
// it once the last config using this database is cleaned up.
func (p *pipeline) Destruct() error {
	p.lifecycle("audit_stopped", nil)
	p.writer.Close()
	// After the writer: every committed event has been offered.
	p.detector.stop()
	// After the last event: the final checkpoint covers the whole trail.
	p.maintenance.stop()
	err := p.store.Close()
	p.logger.L().Info("audit store closed", zap.String("db", p.store.Path()), zap.Error(err))
	return err
}

var _ caddy.Destructor = (*pipeline)(nil)

// loggerRef is the pipeline's logger, replaced by every config that starts
// (App.Start): the pipeline outlives configs, and a config's log writers
// are closed when it is cleaned up, so holding the first config's logger
// would lose the messages after a reload.
type loggerRef struct{ p atomic.Pointer[zap.Logger] }

func newLoggerRef(l *zap.Logger) *loggerRef {
	r := new(loggerRef)
	r.set(l)
	return r
}

// L returns the current logger.
func (r *loggerRef) L() *zap.Logger { return r.p.Load() }

func (r *loggerRef) set(l *zap.Logger) {
	if l == nil {
		l = zap.NewNop()
	}
	r.p.Store(l)
}
