package caddymodule

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-audit/caddy-audit/storage"
)

// Defaults of the audit app's background work.
const (
	defaultRetentionInterval  = time.Hour
	defaultCheckpointInterval = 10 * time.Minute
)

// maintenanceSettings are what the current config asks of the
// background work. They can change on reload; the loop outlives configs,
// like the pipeline it belongs to.
type maintenanceSettings struct {
	retention       storage.RetentionPolicy
	retentionEvery  time.Duration
	checkpointEvery time.Duration
}

// maintenance signs checkpoints of the integrity chain and applies
// retention, in one goroutine per database.
type maintenance struct {
	store  *storage.Store
	logger *loggerRef

	mu       sync.Mutex
	settings maintenanceSettings
	changed  chan struct{}

	cancel context.CancelFunc
	done   chan struct{}
}

func startMaintenance(store *storage.Store, logger *loggerRef, s maintenanceSettings) *maintenance {
	ctx, cancel := context.WithCancel(context.Background())
	m := &maintenance{store: store, logger: logger, settings: s,
		changed: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go m.run(ctx)
	return m
}

// configure applies the settings of a newly started config.
func (m *maintenance) configure(s maintenanceSettings) {
	m.mu.Lock()
	m.settings = s
	m.mu.Unlock()
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// current returns the settings, with defaults for what a config left out
// (an App built without Provision, as in tests).
func (m *maintenance) current() maintenanceSettings {
	m.mu.Lock()
	s := m.settings
	m.mu.Unlock()
	if s.retentionEvery <= 0 {
		s.retentionEvery = defaultRetentionInterval
	}
	if s.checkpointEvery <= 0 {
		s.checkpointEvery = defaultCheckpointInterval
	}
	return s
}

// stop ends the loop and signs a last checkpoint, so the trail's final
// state can be proven after shutdown. Call it once no more events come.
func (m *maintenance) stop() {
	m.cancel()
	<-m.done
	m.checkpoint()
}

func (m *maintenance) run(ctx context.Context) {
	defer close(m.done)
	s := m.current()
	checkpointTick := time.NewTicker(s.checkpointEvery)
	retentionTick := time.NewTicker(s.retentionEvery)
	defer checkpointTick.Stop()
	defer retentionTick.Stop()
	m.retain(ctx, s.retention) // a restart must not postpone retention by an interval
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.changed:
			s = m.current()
			checkpointTick.Reset(s.checkpointEvery)
			retentionTick.Reset(s.retentionEvery)
		case <-checkpointTick.C:
			m.checkpoint()
		case <-retentionTick.C:
			m.retain(ctx, m.current().retention)
		}
	}
}

func (m *maintenance) checkpoint() {
	cp, err := m.store.Checkpoint()
	switch {
	case err == nil:
		metrics.checkpointSeq.Set(float64(cp.Seq))
		metrics.checkpointTime.Set(float64(cp.Time.Unix()))
	case errors.Is(err, storage.ErrCheckpointsDisabled), errors.Is(err, storage.ErrClosed):
	default:
		// A refusal to sign (the chain went backwards) is exactly what an
		// operator must hear about.
		metrics.checkpointErrors.Inc()
		m.logger.L().Error("signing an integrity checkpoint", zap.Error(err))
	}
}

func (m *maintenance) retain(ctx context.Context, p storage.RetentionPolicy) {
	if p.DefaultDays == 0 && p.FloorDays == 0 {
		// Workspaces may still set their own retention.
		if ws, err := m.store.Workspaces(); err != nil || !anyRetention(ws) {
			return
		}
	}
	start := time.Now()
	res, err := m.store.ApplyRetention(ctx, start, p)
	if res.Removed > 0 {
		metrics.purged.Add(float64(res.Removed))
		m.logger.L().Info("retention purged events", zap.Int("removed", res.Removed),
			zap.Any("by_workspace", res.ByWorkspace), zap.Strings("held", res.Held), zap.Duration("took", time.Since(start)))
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		m.logger.L().Error("applying retention", zap.Error(err))
	}
}

func anyRetention(ws []storage.Workspace) bool {
	for _, w := range ws {
		if w.RetentionDays > 0 {
			return true
		}
	}
	return false
}
