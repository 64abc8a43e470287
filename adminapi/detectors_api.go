package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/storage"
)

// detectorRoutes are the detector endpoints.
func (a *api) detectorRoutes() []route {
	return []route{
		{method: http.MethodGet, path: "/api/v1/detectors", perm: permSettingsRead, h: a.listDetectors,
			summary: "List the six detectors with their effective settings, workspace overrides and status", query: detectorsParams.docs(), resp: detectorsList{}},
		{method: http.MethodPost, path: "/api/v1/detectors/sweep", perm: permAlertsManage, h: a.sweepDetectors,
			summary: "Run a detector sweep now: judge events not yet judged and flush pending alert updates (global principals only)", resp: SweepResult{}},
	}
}

// ErrDetectorsUnavailable is what a Sweep hook returns when the detector
// worker is not running (stopped, or not started yet).
var ErrDetectorsUnavailable = errors.New("the detectors are not running")

// SweepResult says what one detector sweep did.
type SweepResult struct {
	// StartedAt is when the sweep began.
	StartedAt time.Time `json:"started_at"`
	// DurationSeconds is how long it took.
	DurationSeconds float64 `json:"duration_seconds"`
	// FromSeq is the last event seq judged before the sweep, ToSeq after.
	FromSeq uint64 `json:"from_seq"`
	ToSeq   uint64 `json:"to_seq"`
	// EventsRead counts the stored events the sweep read to catch up.
	EventsRead int `json:"events_read"`
	// AlertUpdates counts the alert updates stored (new, escalated or
	// updated alerts, throttled updates flushed).
	AlertUpdates int `json:"alert_updates"`
	// AlertsCreated and AlertsEscalated count what the store says changed.
	AlertsCreated   int `json:"alerts_created"`
	AlertsEscalated int `json:"alerts_escalated"`
}

// DetectorRuntime is what the running detector worker reports about
// itself for GET /api/v1/detectors.
type DetectorRuntime struct {
	// Running is false when the worker is stopped.
	Running bool
	// Config is the configuration the engine runs with, stored workspace
	// business hours included.
	Config detectors.Config
	// LastSweep is when the last sweep ended (zero before the first) and
	// LastSweepDuration how long it took.
	LastSweep         time.Time
	LastSweepDuration time.Duration
	// JudgedSeq is the last event seq the worker judged.
	JudgedSeq uint64
	// EventsJudged counts the events the worker judged since it started.
	EventsJudged uint64
}

// detectorsList is the body of GET /api/v1/detectors.
type detectorsList struct {
	// Running says whether the detector worker runs in this process.
	Running bool `json:"running"`
	// Worker is the worker's progress, shown to global principals only
	// (its figures count every workspace's traffic).
	Worker *workerStatus `json:"worker,omitempty"`
	// BusinessHours are the global working hours of the off-hours checks.
	BusinessHours detectors.BusinessHours `json:"business_hours"`
	// WorkspaceBusinessHours are the working hours of workspaces that
	// differ from the global ones (stored workspace settings win over the
	// config file).
	WorkspaceBusinessHours map[string]detectors.BusinessHours `json:"workspace_business_hours"`
	// Detectors are the six detectors in a stable order.
	Detectors []detectorView `json:"detectors"`
}

// workerStatus is the detector worker's progress.
type workerStatus struct {
	// LastSweepAt is when the last sweep ended; null before the first.
	LastSweepAt *time.Time `json:"last_sweep_at"`
	// LastSweepSeconds is how long the last sweep took.
	LastSweepSeconds float64 `json:"last_sweep_seconds"`
	// JudgedSeq is the last event seq judged; LastSeq the newest stored;
	// Lag the difference (events committed but not judged yet, admin and
	// lifecycle events included).
	JudgedSeq uint64 `json:"judged_seq"`
	LastSeq   uint64 `json:"last_seq"`
	Lag       uint64 `json:"lag"`
	// EventsJudged counts the events judged since the worker started.
	EventsJudged uint64 `json:"events_judged"`
}

// detectorView is one detector with its settings and alerts.
type detectorView struct {
	// Name is the detector's name, as in alerts.
	Name string `json:"name"`
	// Enabled is the global switch; a workspace may differ (see
	// workspaces).
	Enabled bool `json:"enabled"`
	// Suppression is how long a repeat updates the open alert instead of
	// opening a new one, such as "15m0s".
	Suppression string `json:"suppression"`
	// Settings is the detector's section of the effective configuration
	// (thresholds, windows, buckets), as in the detectors config.
	Settings json.RawMessage `json:"settings"`
	// Workspaces are the workspaces whose settings for this detector
	// differ from the global ones.
	Workspaces map[string]detectorOverride `json:"workspaces"`
	// OpenAlerts counts this detector's open or acknowledged alerts by
	// severity (in the caller's scope).
	OpenAlerts map[string]int `json:"open_alerts"`
}

// detectorOverride is one workspace's effective settings of a detector.
type detectorOverride struct {
	// Enabled is the detector's switch in this workspace.
	Enabled bool `json:"enabled"`
	// Suppression is the workspace's suppression window.
	Suppression string `json:"suppression"`
	// Settings is the detector's section of the workspace's settings.
	Settings json.RawMessage `json:"settings"`
}

// section is the part of every detector's settings the list reads.
type section struct {
	Enabled     *bool              `json:"enabled"`
	Suppression detectors.Duration `json:"suppression"`
}

// detectorSections splits resolved settings into each detector's JSON
// section (the Settings fields are named after the detectors).
func detectorSections(s detectors.Settings) (map[string]json.RawMessage, error) {
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var out map[string]json.RawMessage
	return out, json.Unmarshal(raw, &out)
}

// describeSection reads the switch and suppression of one section; a
// detector without its own suppression uses the settings' global one.
func describeSection(raw json.RawMessage, global detectors.Duration) (enabled bool, suppression string) {
	var sec section
	_ = json.Unmarshal(raw, &sec) // marshalled by us just before
	if sec.Suppression <= 0 {
		sec.Suppression = global
	}
	return sec.Enabled == nil || *sec.Enabled, sec.Suppression.D().String()
}

// detectorsQuery is a parsed GET /api/v1/detectors query string.
type detectorsQuery struct{ workspace string }

// detectorsParams are the query parameters of GET /api/v1/detectors.
var detectorsParams = params[detectorsQuery]{
	"workspace": {doc: "Confine the open alert counts and the workspace settings to this workspace. A key holding settings:read in several workspaces names one of them.",
		parse: func(q *detectorsQuery, v string) error { q.workspace = v; return nil }},
}

// listDetectors serves GET /api/v1/detectors.
func (a *api) listDetectors(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	var q detectorsQuery
	if err := parseParams(r.URL.RawQuery, &q, detectorsParams); err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	rt := DetectorRuntime{Config: a.detectors}
	if a.detectorStatus != nil {
		rt = a.detectorStatus()
	}
	cfg := rt.Config.WithDefaults()
	scope := storage.AlertFilter{Workspace: q.workspace}
	if !a.scopeAlerts(w, r, key, &scope) {
		return
	}
	open, err := a.openAlertsByDetector(scope.Workspace)
	if err != nil {
		a.storeError(w, r, "counting open alerts", err)
		return
	}
	global, err := detectorSections(cfg.Settings)
	if err != nil {
		a.storeError(w, r, "describing the detector settings", err)
		return
	}
	out := detectorsList{Running: rt.Running, BusinessHours: cfg.BusinessHours,
		WorkspaceBusinessHours: map[string]detectors.BusinessHours{}, Detectors: []detectorView{}}
	for _, name := range detectors.Detectors {
		enabled, supp := describeSection(global[name], cfg.Suppression)
		v := detectorView{Name: name, Enabled: enabled, Suppression: supp, Settings: global[name],
			Workspaces: map[string]detectorOverride{}, OpenAlerts: open[name]}
		if v.OpenAlerts == nil {
			v.OpenAlerts = map[string]int{}
		}
		out.Detectors = append(out.Detectors, v)
	}
	for _, ws := range slices.Sorted(maps.Keys(cfg.Workspaces)) {
		if !inScope(r, ws) || (scope.Workspace != "" && ws != scope.Workspace) {
			continue
		}
		s := cfg.Workspaces[ws]
		if !slices.Equal(s.BusinessHours.Days, cfg.BusinessHours.Days) || s.BusinessHours.Timezone != cfg.BusinessHours.Timezone ||
			s.BusinessHours.Start != cfg.BusinessHours.Start || s.BusinessHours.End != cfg.BusinessHours.End {
			out.WorkspaceBusinessHours[ws] = s.BusinessHours
		}
		sections, err := detectorSections(s)
		if err != nil {
			a.storeError(w, r, "describing the detector settings", err)
			return
		}
		for i := range out.Detectors {
			d := &out.Detectors[i]
			enabled, supp := describeSection(sections[d.Name], s.Suppression)
			if enabled != d.Enabled || supp != d.Suppression || !bytes.Equal(sections[d.Name], d.Settings) {
				d.Workspaces[ws] = detectorOverride{Enabled: enabled, Suppression: supp, Settings: sections[d.Name]}
			}
		}
	}
	if scope.Workspace == "" && a.detectorStatus != nil {
		last, err := a.store.LastSeq()
		if err != nil {
			a.storeError(w, r, "reading the last event seq", err)
			return
		}
		ws := &workerStatus{LastSweepSeconds: rt.LastSweepDuration.Seconds(), JudgedSeq: rt.JudgedSeq,
			LastSeq: last, EventsJudged: rt.EventsJudged}
		if last > rt.JudgedSeq {
			ws.Lag = last - rt.JudgedSeq
		}
		if !rt.LastSweep.IsZero() {
			t := rt.LastSweep.UTC()
			ws.LastSweepAt = &t
		}
		out.Worker = ws
	}
	details := map[string]any{"running": rt.Running, "returned": len(out.Detectors)}
	if scope.Workspace != "" {
		details["workspace"] = scope.Workspace
	}
	a.record(r, key, "detectors.list", http.StatusOK, details)
	writeJSON(w, http.StatusOK, out)
}

// openAlertsByDetector counts the open and acknowledged alerts (of
// workspace ws, or all when "") by detector and severity.
func (a *api) openAlertsByDetector(ws string) (map[string]map[string]int, error) {
	out := make(map[string]map[string]int)
	for _, status := range []string{storage.StatusOpen, storage.StatusAcknowledged} {
		_, err := a.scanAlerts(storage.AlertFilter{Status: status, Workspace: ws}, func(al *storage.Alert) {
			m := out[al.Detector]
			if m == nil {
				m = make(map[string]int)
				out[al.Detector] = m
			}
			m[al.Severity]++
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sweepDetectors serves POST /api/v1/detectors/sweep.
func (a *api) sweepDetectors(w http.ResponseWriter, r *http.Request) {
	const action = "detectors.sweep"
	key, _ := principalFrom(r.Context())
	if !a.requireGlobal(w, r, "a sweep judges every workspace's events") {
		return
	}
	if a.sweep == nil {
		a.record(r, key, action, http.StatusServiceUnavailable, map[string]any{"reason": ErrDetectorsUnavailable.Error()})
		writeProblem(w, r, http.StatusServiceUnavailable, "the detectors are not running in this process")
		return
	}
	res, err := a.sweep(r.Context())
	switch {
	case errors.Is(err, ErrDetectorsUnavailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		a.record(r, key, action, http.StatusServiceUnavailable, map[string]any{"reason": err.Error()})
		writeProblem(w, r, http.StatusServiceUnavailable, "the sweep did not run: "+err.Error()+"; retry shortly")
		return
	case err != nil:
		a.log.Error("running a detector sweep", "error", err)
		a.record(r, key, action, http.StatusInternalServerError, map[string]any{"reason": err.Error()})
		writeProblem(w, r, http.StatusInternalServerError, fmt.Sprintf("the sweep failed: %v", err))
		return
	}
	a.record(r, key, action, http.StatusOK, map[string]any{
		"from_seq": res.FromSeq, "to_seq": res.ToSeq, "events_read": res.EventsRead,
		"alert_updates": res.AlertUpdates, "alerts_created": res.AlertsCreated, "alerts_escalated": res.AlertsEscalated,
		"duration_seconds": res.DurationSeconds,
	})
	writeJSON(w, http.StatusOK, res)
}
