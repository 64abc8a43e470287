// Package caddymodule is the Caddy glue of caddy-audit: the audit app that
// owns the store, the audit HTTP handler that turns requests into events,
// the audit_admin handler that serves the admin API, and their Caddyfile
// syntax. It stays thin; the work happens in storage, policy, detectors and
// adminapi.
package caddymodule

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the `audit` app. It owns the audit database, the HMAC key used for
// redaction and the write pipeline, shared by every audit handler in the
// config. Configure it with the `audit` global option; without one, the
// defaults apply.
type App struct {
	// DataDir holds the database (audit.db), the HMAC key (hmac.key) and,
	// on first start, bootstrap-admin.key. Default: the "audit" folder in
	// Caddy's data directory.
	DataDir string `json:"data_dir,omitempty"`

	// QueueSize bounds the events waiting to be written. Best-effort
	// events beyond it are dropped and counted. Default 8192. Read when the
	// database is opened (first start), not on reload.
	QueueSize int `json:"queue_size,omitempty"`

	// MaxBatch bounds the events committed in one transaction. Default
	// 4096. Batches only grow that large under load (group commit).
	// Read when the database is opened.
	MaxBatch int `json:"max_batch,omitempty"`

	// CommitDelay is how long a best-effort event may wait for others to
	// share its commit (group commit with a window): under load, one
	// commit then carries hundreds of events instead of a few dozen, which
	// is most of what recording costs. A crash loses the best-effort
	// events of the window, as it loses those still queued; strict
	// requests never wait for it. Default 20ms; "off" (-1 in JSON)
	// commits at once. Read when the database is opened.
	CommitDelay caddy.Duration `json:"commit_delay,omitempty"`

	// MaxDBSize caps the database file in bytes; writes beyond it fail
	// (best-effort events are dropped, strict requests get 503). 0 means
	// no cap. Read when the database is opened.
	MaxDBSize int64 `json:"max_db_size,omitempty"`

	// LockTimeout is how long to wait for another process to release the
	// database file. Default 5s.
	LockTimeout caddy.Duration `json:"lock_timeout,omitempty"`

	// RetentionDays keeps events that many days, in workspaces that set no
	// retention of their own; 0 (the default) keeps them forever.
	RetentionDays int `json:"retention_days,omitempty"`

	// RetentionFloorDays is the least any workspace keeps, whatever its
	// own setting: a compliance minimum such as PCI DSS's 365 days.
	RetentionFloorDays int `json:"retention_floor_days,omitempty"`

	// RetentionInterval is how often retention runs. Default 1h.
	RetentionInterval caddy.Duration `json:"retention_interval,omitempty"`

	// CheckpointInterval is how often the integrity chain's head is signed
	// (checkpoint.key under data_dir); a checkpoint is also made at
	// shutdown. Default 10m. Copy checkpoints off the host (GET
	// /api/v1/integrity/checkpoint) to detect rollbacks.
	CheckpointInterval caddy.Duration `json:"checkpoint_interval,omitempty"`

	// SweepInterval is how often the detector worker sweeps: it judges
	// committed events its live feed dropped, emits the alert updates the
	// engine throttled, and refreshes the open-alert gauge. Default 5m.
	SweepInterval caddy.Duration `json:"sweep_interval,omitempty"`

	// DetectorHistory is how much stored history the detector engine
	// replays when it starts (and when a reload changes its config), to
	// rebuild baselines and open alerts; alerts it raises again merge into
	// the stored ones. Events older than this are never judged. Default
	// 72h (the unusual_access baseline needs 3 days).
	DetectorHistory caddy.Duration `json:"detector_history,omitempty"`

	// Detectors tunes the risk score and the six detectors; see the
	// detectors package for every field and its default. Absent means
	// all defaults.
	Detectors *detectors.Config `json:"detectors,omitempty"`

	// DetectorsFile is a YAML file with the same content as Detectors
	// (the field names are the same), read at every provision so that a
	// reload picks up changes. It cannot be combined with Detectors.
	DetectorsFile string `json:"detectors_file,omitempty"`

	// PolicyFile is the audit policy (YAML): which requests are recorded
	// at which level, what is redacted, the failure mode per route,
	// retention, IP handling and a compliance profile to start from. Read
	// at every provision, so a reload picks up changes; a reload that
	// changes it is recorded as a policy_changed event. Without it, each
	// audit handler's own level and failure_mode apply.
	PolicyFile string `json:"policy_file,omitempty"`

	dbPath, keyPath, checkpointKeyPath string

	policy     *policy.Policy // effective; nil without PolicyFile
	policyPath string         // PolicyFile, absolute

	// The pipeline is opened on first use (Start, or a request if the
	// http app started first), never by Provision: `caddy validate`
	// provisions a config and must not lock the database, create keys or
	// start retention. pipeOnce guards pipe, pipeErr and reloaded.
	pipeOnce *sync.Once // a pointer: Caddy copies module values
	pipe     *pipeline
	pipeErr  error
	reloaded bool

	logger      *zap.Logger
	detectorCfg detectors.Config
	scorer      *detectors.Scorer
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "audit",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision checks the config and resolves its paths. It opens nothing:
// see pipeline.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if a.DataDir == "" {
		a.DataDir = filepath.Join(caddy.AppDataDir(), "audit")
	}
	dir, err := caddy.NewReplacer().ReplaceOrErr(a.DataDir, true, true)
	if err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	if a.DataDir, err = filepath.Abs(dir); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	if a.QueueSize < 0 || a.MaxBatch < 0 || a.MaxDBSize < 0 || a.LockTimeout < 0 ||
		a.RetentionDays < 0 || a.RetentionFloorDays < 0 || a.RetentionInterval < 0 || a.CheckpointInterval < 0 ||
		a.SweepInterval < 0 || a.DetectorHistory < 0 {
		return fmt.Errorf("sizes, counts, days and durations of the audit app must not be negative")
	}
	if a.RetentionInterval == 0 {
		a.RetentionInterval = caddy.Duration(defaultRetentionInterval)
	}
	if a.CheckpointInterval == 0 {
		a.CheckpointInterval = caddy.Duration(defaultCheckpointInterval)
	}
	if a.SweepInterval == 0 {
		a.SweepInterval = caddy.Duration(defaultSweepInterval)
	}
	if a.DetectorHistory == 0 {
		a.DetectorHistory = caddy.Duration(defaultDetectorHistory)
	}
	if err := a.loadPolicy(); err != nil {
		return err
	}
	if err := a.loadDetectorConfig(); err != nil {
		return err
	}
	if a.QueueSize == 0 {
		a.QueueSize = 8192
	}
	if a.MaxBatch == 0 {
		a.MaxBatch = 4096
	}
	// Negative means off, so it is not checked with the other durations.
	if a.CommitDelay == 0 {
		a.CommitDelay = caddy.Duration(defaultCommitDelay)
	}
	if a.LockTimeout == 0 {
		a.LockTimeout = caddy.Duration(5 * time.Second)
	}
	a.dbPath = filepath.Join(a.DataDir, "audit.db")
	a.keyPath = filepath.Join(a.DataDir, "hmac.key")
	a.checkpointKeyPath = filepath.Join(a.DataDir, "checkpoint.key")
	a.pipeOnce = new(sync.Once)
	return registerMetrics(ctx.GetMetricsRegistry())
}

// errNotRunning answers requests that reach a config whose audit app was
// cleaned up before it ever opened the database.
var errNotRunning = errors.New("the audit app of this config is not running")

// pipeline opens (or joins, on a reload) the pipeline of the configured
// database, once.
func (a *App) pipeline() (*pipeline, error) {
	if a.pipeOnce == nil {
		return nil, errNotRunning // not provisioned
	}
	a.pipeOnce.Do(func() {
		a.pipe, a.reloaded, a.pipeErr = loadPipeline(a)
	})
	if a.pipe == nil && a.pipeErr == nil {
		return nil, errNotRunning
	}
	return a.pipe, a.pipeErr
}

// usePipeline hands a an already open pipeline (tests build one without
// the pool).
func (a *App) usePipeline(p *pipeline) {
	a.pipeOnce = new(sync.Once)
	a.pipeOnce.Do(func() { a.pipe = p })
}

// Start records a reload (the first start is recorded by the pipeline)
// and makes this config's settings (logger, retention, checkpoints,
// detectors) the ones the shared background work follows.
func (a *App) Start() error {
	p, err := a.pipeline()
	if err != nil {
		return err
	}
	if a.reloaded {
		p.lifecycle("config_reloaded", nil)
	}
	p.adopt(a)
	return nil
}

// apply hands this config's settings to the pipeline's background work.
func (a *App) apply() {
	a.pipe.logger.set(a.logger)
	a.pipe.maintenance.configure(a.maintenanceSettings())
	a.pipe.detector.configure(a.detectorSettings())
	a.recordPolicy(a.pipe)
}

// loadDetectorConfig reads and validates the detector config, from the
// JSON field or the YAML file, and builds the request-path scorer from it.
func (a *App) loadDetectorConfig() error {
	switch {
	case a.Detectors != nil && a.DetectorsFile != "":
		return fmt.Errorf("detectors and detectors_file cannot both be set")
	case a.DetectorsFile != "":
		path, err := caddy.NewReplacer().ReplaceOrErr(a.DetectorsFile, true, true)
		if err != nil {
			return fmt.Errorf("detectors_file: %w", err)
		}
		if a.detectorCfg, err = loadDetectorsFile(path); err != nil {
			return err
		}
	case a.Detectors != nil:
		if err := a.Detectors.Validate(); err != nil {
			return fmt.Errorf("detectors: %w", err)
		}
		a.detectorCfg = *a.Detectors
	}
	a.applyPolicyToDetectors()
	a.scorer = detectors.NewScorer(a.detectorCfg)
	return nil
}

func (a *App) detectorSettings() detectorSettings {
	return detectorSettings{
		cfg:     a.detectorCfg,
		sweep:   time.Duration(a.SweepInterval),
		history: time.Duration(a.DetectorHistory),
	}
}

func (a *App) maintenanceSettings() maintenanceSettings {
	days, floor := a.retentionFromPolicy()
	return maintenanceSettings{
		retention:       storage.RetentionPolicy{DefaultDays: days, FloorDays: floor},
		retentionEvery:  time.Duration(a.RetentionInterval),
		checkpointEvery: time.Duration(a.CheckpointInterval),
	}
}

// Stop does nothing: the pipeline outlives this config when the next one
// uses the same database, and is closed by Cleanup otherwise.
func (a *App) Stop() error { return nil }

// Cleanup releases this config's hold on the pipeline; the last holder
// flushes and closes it.
func (a *App) Cleanup() error {
	// Settle the once: a request arriving after this must not open the
	// pipeline again.
	if a.pipeOnce == nil {
		return nil
	}
	a.pipeOnce.Do(func() {})
	if a.pipe == nil {
		return nil
	}
	a.pipe.abandon(a)
	return releasePipeline(a.dbPath)
}

// score fills the event's risk fields with this config's scorer, or the
// default one for an App built without Provision (tests).
func (a *App) score(ev *storage.Event) {
	if a.scorer == nil {
		detectors.Score(ev)
		return
	}
	a.scorer.Score(ev)
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
