package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/storage"
)

// detectorAlerts stores alerts: brute_force high open (acme), brute_force
// high acknowledged (globex), brute_force critical resolved (acme), and
// mass_deletion low open (globex).
func detectorAlerts(e *testEnv) {
	for i, a := range []struct{ det, sev, status, ws string }{
		{detectors.DetectorBruteForce, storage.SeverityHigh, storage.StatusOpen, "acme"},
		{detectors.DetectorBruteForce, storage.SeverityHigh, storage.StatusAcknowledged, "globex"},
		{detectors.DetectorBruteForce, storage.SeverityCritical, storage.StatusResolved, "acme"},
		{detectors.DetectorMassDeletion, storage.SeverityLow, storage.StatusOpen, "globex"},
	} {
		at := t0.Add(time.Duration(i) * time.Minute)
		if _, _, err := e.store.PutAlert(storage.Alert{
			ID: fmt.Sprintf("alr_%d", i), Rule: "r", Detector: a.det, Severity: a.sev, Status: a.status, Workspace: a.ws,
			Subject:   storage.Subject{Kind: storage.SubjectIP, Value: fmt.Sprintf("203.0.113.%d", i)},
			FirstSeen: at, LastSeen: at, Count: 1,
		}); err != nil {
			e.t.Fatal(err)
		}
	}
}

func TestListDetectors(t *testing.T) {
	off := false
	cfg := detectors.Config{
		Settings: detectors.Settings{MassDeletion: detectors.MassDeletionConfig{Enabled: &off}},
		Workspaces: map[string]detectors.Settings{
			"acme":   {BruteForce: detectors.BruteForceConfig{Burst: detectors.Bucket{Capacity: 3}}},
			"globex": {BusinessHours: detectors.BusinessHours{Timezone: "Asia/Tokyo"}},
		},
	}
	sweptAt := t0.Add(-time.Minute)
	e := newHookedEnv(t, func(c *Config) {
		c.DetectorStatus = func() DetectorRuntime {
			return DetectorRuntime{Running: true, Config: cfg, LastSweep: sweptAt, LastSweepDuration: 1500 * time.Millisecond,
				JudgedSeq: 2, EventsJudged: 2}
		}
	})
	detectorAlerts(e)
	for range 5 {
		e.seed(&storage.Event{Time: t0, Kind: storage.KindHTTP, Workspace: "acme"})
	}

	got := decodeAs[detectorsList](t, e.get("/api/v1/detectors", e.key("auditor", "", nil)), http.StatusOK)
	if !got.Running || len(got.Detectors) != 6 {
		t.Fatalf("running %v, %d detectors", got.Running, len(got.Detectors))
	}
	byName := map[string]detectorView{}
	for i, d := range got.Detectors {
		if d.Name != detectors.Detectors[i] {
			t.Errorf("detector %d = %s, want %s", i, d.Name, detectors.Detectors[i])
		}
		byName[d.Name] = d
	}
	bf, md, ua := byName[detectors.DetectorBruteForce], byName[detectors.DetectorMassDeletion], byName[detectors.DetectorUnusualAccess]
	if !bf.Enabled || md.Enabled || bf.Suppression != "15m0s" || ua.Suppression != "1h0m0s" {
		t.Errorf("enabled/suppression: brute_force %v %s, mass_deletion %v, unusual_access %s", bf.Enabled, bf.Suppression, md.Enabled, ua.Suppression)
	}
	var burst struct {
		Burst detectors.Bucket `json:"burst"`
	}
	if err := json.Unmarshal(bf.Settings, &burst); err != nil || burst.Burst.Capacity != 5 || burst.Burst.LeakSpeed.D() != 10*time.Second {
		t.Errorf("brute_force settings = %s (%v), want the default burst 5/10s", bf.Settings, err)
	}
	if ov, ok := bf.Workspaces["acme"]; !ok || len(bf.Workspaces) != 1 || json.Unmarshal(ov.Settings, &burst) != nil || burst.Burst.Capacity != 3 || burst.Burst.LeakSpeed.D() != 10*time.Second {
		t.Errorf("brute_force overrides = %v, want acme with capacity 3 and the inherited leak", bf.Workspaces)
	}
	if len(md.Workspaces) != 0 {
		t.Errorf("mass_deletion overrides = %v, want none", md.Workspaces)
	}
	if h := got.WorkspaceBusinessHours; len(h) != 1 || h["globex"].Timezone != "Asia/Tokyo" || h["globex"].Start != "08:00" || got.BusinessHours.Timezone != "UTC" {
		t.Errorf("business hours = %+v, by workspace %+v", got.BusinessHours, h)
	}
	if bf.OpenAlerts[storage.SeverityHigh] != 2 || bf.OpenAlerts[storage.SeverityCritical] != 0 || md.OpenAlerts[storage.SeverityLow] != 1 || len(ua.OpenAlerts) != 0 {
		t.Errorf("open alerts: brute_force %v, mass_deletion %v, unusual_access %v", bf.OpenAlerts, md.OpenAlerts, ua.OpenAlerts)
	}
	w := got.Worker
	if w == nil || w.JudgedSeq != 2 || w.LastSeq != 5 || w.Lag != 3 || w.EventsJudged != 2 || w.LastSweepSeconds != 1.5 ||
		w.LastSweepAt == nil || !w.LastSweepAt.Equal(sweptAt) {
		t.Errorf("worker = %+v", w)
	}
	if ev := e.lastAudit(); ev.Action != "detectors.list" || ev.Details["running"] != true {
		t.Errorf("audit event = %s %v", ev.Action, ev.Details)
	}

	// A scoped principal: its own overrides and alerts, no worker figures.
	scoped := decodeAs[detectorsList](t, e.get("/api/v1/detectors", e.key("security_analyst", "globex", nil)), http.StatusOK)
	for _, d := range scoped.Detectors {
		if len(d.Workspaces) != 0 {
			t.Errorf("scoped %s overrides = %v, want none (acme's are not globex's business)", d.Name, d.Workspaces)
		}
		if d.Name == detectors.DetectorBruteForce && (d.OpenAlerts[storage.SeverityHigh] != 1 || len(d.OpenAlerts) != 1) {
			t.Errorf("scoped brute_force open alerts = %v, want globex's one", d.OpenAlerts)
		}
	}
	if scoped.Worker != nil || len(scoped.WorkspaceBusinessHours) != 1 {
		t.Errorf("scoped worker %+v, business hours %v", scoped.Worker, scoped.WorkspaceBusinessHours)
	}
	wantProblem(t, e.get("/api/v1/detectors", e.key("workspace_viewer", "", nil)), http.StatusForbidden, "settings:read")
}

func TestListDetectorsNotRunning(t *testing.T) {
	e := newEnv(t, nil)
	got := decodeAs[detectorsList](t, e.get("/api/v1/detectors", e.key("admin", "", nil)), http.StatusOK)
	if got.Running || got.Worker != nil || len(got.Detectors) != 6 || !got.Detectors[0].Enabled {
		t.Errorf("got running %v worker %+v, %d detectors", got.Running, got.Worker, len(got.Detectors))
	}
}

func TestSweepDetectors(t *testing.T) {
	result := SweepResult{StartedAt: t0, DurationSeconds: 0.25, FromSeq: 10, ToSeq: 42, EventsRead: 32, AlertUpdates: 3, AlertsCreated: 2, AlertsEscalated: 1}
	tests := []struct {
		name   string
		sweep  func(context.Context) (SweepResult, error)
		role   string
		ws     string
		status int
		detail string
	}{
		{"runs", func(context.Context) (SweepResult, error) { return result, nil }, "security_analyst", "", http.StatusOK, ""},
		{"not wired", nil, "admin", "", http.StatusServiceUnavailable, "not running"},
		{"stopped", func(context.Context) (SweepResult, error) { return SweepResult{}, ErrDetectorsUnavailable }, "admin", "", http.StatusServiceUnavailable, "not running"},
		{"fails", func(context.Context) (SweepResult, error) { return SweepResult{}, errors.New("disk on fire") }, "admin", "", http.StatusInternalServerError, "disk on fire"},
		{"scoped", func(context.Context) (SweepResult, error) { return result, nil }, "admin", "acme", http.StatusForbidden, "every workspace"},
		{"auditor", func(context.Context) (SweepResult, error) { return result, nil }, "auditor", "", http.StatusForbidden, "alerts:manage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			e := newHookedEnv(t, func(c *Config) {
				if tt.sweep != nil {
					c.Sweep = func(ctx context.Context) (SweepResult, error) { calls++; return tt.sweep(ctx) }
				}
			})
			w := e.send(http.MethodPost, "/api/v1/detectors/sweep", e.key(tt.role, tt.ws, nil), "")
			ev := e.lastAudit()
			if ev.Status != tt.status {
				t.Errorf("audit status = %d, want %d", ev.Status, tt.status)
			}
			if tt.status != http.StatusOK {
				wantProblem(t, w, tt.status, tt.detail)
				return
			}
			got := decodeAs[SweepResult](t, w, http.StatusOK)
			if got != result || calls != 1 {
				t.Errorf("got %+v after %d calls", got, calls)
			}
			if ev.Action != "detectors.sweep" || ev.Details["events_read"] != 32 || ev.Details["alerts_created"] != 2 {
				t.Errorf("audit event = %s %v", ev.Action, ev.Details)
			}
		})
	}
}
