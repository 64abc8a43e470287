package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/adminapi"
	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/storage"
)

// engineConfig reads the engine's configuration on the worker's goroutine.
func engineConfig(t *testing.T, w *detectorWorker) detectors.Config {
	t.Helper()
	ch := make(chan detectors.Config, 1)
	w.ctl <- func() { ch <- w.engine.Config() }
	select {
	case cfg := <-ch:
		return cfg
	case <-time.After(5 * time.Second):
		t.Fatal("the worker did not answer")
		return detectors.Config{}
	}
}

// call sends one admin API request and decodes a JSON answer into out.
func call(t *testing.T, api http.Handler, method, target, secret, body string, status int, out any) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+secret)
	w := httptest.NewRecorder()
	api.ServeHTTP(w, req)
	if w.Code != status {
		t.Fatalf("%s %s = %d, want %d; body %s", method, target, w.Code, status, w.Body)
	}
	if out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, target, w.Body, err)
		}
	}
}

// detectorsAnswer is the part of GET /api/v1/detectors the test reads.
type detectorsAnswer struct {
	Running bool `json:"running"`
	Worker  *struct {
		JudgedSeq    uint64     `json:"judged_seq"`
		LastSeq      uint64     `json:"last_seq"`
		Lag          uint64     `json:"lag"`
		EventsJudged uint64     `json:"events_judged"`
		LastSweepAt  *time.Time `json:"last_sweep_at"`
	} `json:"worker"`
	WorkspaceBusinessHours map[string]detectors.BusinessHours `json:"workspace_business_hours"`
	Detectors              []struct {
		Name       string         `json:"name"`
		OpenAlerts map[string]int `json:"open_alerts"`
	} `json:"detectors"`
}

// TestAdminAPIDetectorWiring drives the detector worker through the
// admin API as AdminHandler wires it: stored business hours reach the
// engine at start and on change, a sweep runs on demand, and the status
// shows the worker's progress.
func TestAdminAPIDetectorWiring(t *testing.T) {
	initMetrics()
	store := openTestStore(t)
	if err := store.PutWorkspace(storage.Workspace{ID: "acme", BusinessHours: &storage.BusinessHours{Timezone: "Asia/Tokyo"}}); err != nil {
		t.Fatal(err)
	}
	run := startWorker(store, 0)
	stopped := false
	defer func() {
		if !stopped {
			run.stop()
		}
	}()
	h := &AdminHandler{app: &App{}}
	api, err := adminapi.New(h.apiConfig(&pipeline{store: store, writer: run.s, key: make([]byte, 32), detector: run.w}))
	if err != nil {
		t.Fatal(err)
	}
	secret, key, err := adminapi.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	key.Name, key.Role = "test", "admin"
	if err := store.PutAPIKey(key); err != nil {
		t.Fatal(err)
	}

	// The stored record's hours are in force from the start.
	if tz := engineConfig(t, run.w).Workspaces["acme"].BusinessHours.Timezone; tz != "Asia/Tokyo" {
		t.Fatalf("acme's time zone in the engine = %q, want the stored Asia/Tokyo", tz)
	}

	// Events behind the worker's back: the sweep judges them.
	if err := store.Append(loginFailures("192.0.2.7", time.Now().Add(-time.Minute), 7)...); err != nil {
		t.Fatal(err)
	}
	last, _ := store.LastSeq()
	var res adminapi.SweepResult
	call(t, api, http.MethodPost, "/api/v1/detectors/sweep", secret, "", http.StatusOK, &res)
	if res.EventsRead != 7 || res.AlertsCreated != 1 || res.ToSeq != last || res.FromSeq != last-7 || res.AlertUpdates < 1 {
		t.Errorf("sweep = %+v, want 7 events read up to seq %d and one alert", res, last)
	}

	// The API's own audit events (of the sweep, of this listing) keep
	// arriving behind the judged seq, so the worker's figures are checked
	// once it has caught up with the sweep, not for an exact lag.
	var got detectorsAnswer
	waitFor(t, "the worker to report the sweep", func() bool {
		got = detectorsAnswer{}
		call(t, api, http.MethodGet, "/api/v1/detectors", secret, "", http.StatusOK, &got)
		return got.Worker != nil && got.Worker.JudgedSeq >= last && got.Worker.EventsJudged >= 7
	})
	if !got.Running || got.Worker.LastSweepAt == nil || got.Worker.Lag > 2 {
		t.Fatalf("detectors = running %v, worker %+v", got.Running, got.Worker)
	}
	if got.Detectors[0].Name != detectors.DetectorBruteForce || got.Detectors[0].OpenAlerts[storage.SeverityHigh] != 1 {
		t.Errorf("brute_force = %+v", got.Detectors[0])
	}
	if tz := got.WorkspaceBusinessHours["acme"].Timezone; tz != "Asia/Tokyo" {
		t.Errorf("acme's hours in the list = %+v", got.WorkspaceBusinessHours)
	}

	// A new workspace's hours and a removal reach the engine.
	call(t, api, http.MethodPost, "/api/v1/workspaces", secret, `{"id":"globex","business_hours":{"timezone":"Europe/Paris","start":"07:00"}}`, http.StatusCreated, nil)
	call(t, api, http.MethodPatch, "/api/v1/workspaces/acme", secret, `{"business_hours":{}}`, http.StatusOK, nil)
	waitFor(t, "the engine to take globex's hours and drop acme's", func() bool {
		ws := engineConfig(t, run.w).Workspaces
		_, acme := ws["acme"]
		g := ws["globex"].BusinessHours
		return !acme && g.Timezone == "Europe/Paris" && g.Start == "07:00" && g.End == "18:00"
	})
	// The rebuild kept what the store knows: the alert is still open, and
	// a repeat within suppression updates it instead of opening another.
	if a := bruteForceAlerts(t, store, "192.0.2.7"); len(a) != 1 || a[0].Status != storage.StatusOpen {
		t.Errorf("alerts after the rebuild: %+v", a)
	}

	run.stop()
	stopped = true
	call(t, api, http.MethodPost, "/api/v1/detectors/sweep", secret, "", http.StatusServiceUnavailable, nil)
	call(t, api, http.MethodGet, "/api/v1/detectors", secret, "", http.StatusOK, &got)
	if got.Running {
		t.Error("a stopped worker reads as running")
	}
}
