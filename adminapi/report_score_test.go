package adminapi

import (
	"math"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/storage"
)

// TestScoreReport starts from a perfect data set (score 100) and adds
// one deficiency at a time: only the component concerned drops, by the
// documented amount.
func TestScoreReport(t *testing.T) {
	off := false
	tests := []struct {
		name string
		// clock, when set, is how far after the real time the API's clock
		// runs (to age the checkpoint).
		clock time.Duration
		// noCheckpoint and verifyOK shape the integrity evidence.
		noCheckpoint, noVerify bool
		verify                 *bool
		extra                  []*storage.Event
		alerts                 []string // severities of open alerts to add
		disable                bool
		component              string
		value                  float64
	}{
		{name: "perfect"},
		{name: "open critical alert", alerts: []string{"critical"}, component: "open_alerts", value: 15},
		{name: "open high and medium alerts", alerts: []string{"high", "medium"}, component: "open_alerts", value: 18},
		{name: "three open criticals floor at 0", alerts: []string{"critical", "critical", "critical"}, component: "open_alerts", value: 0},
		{name: "failed auth 5%", extra: []*storage.Event{hev(30, "acme", "", false, "POST", "/login", 401, "10.9.0.1", "ua", 30, "failed_auth")},
			component: "failed_auth", value: 11.25},
		{name: "suspicious 5%", extra: []*storage.Event{hev(30, "acme", "alice", true, "GET", "/api/items", 200, "10.9.0.1", "ua", 50)},
			component: "suspicious_events", value: 7.5},
		{name: "no verification", noVerify: true, component: "integrity_verified", value: 0},
		{name: "failed verification", verify: new(bool), component: "integrity_verified", value: 0},
		{name: "privileged unverified", extra: []*storage.Event{hev(30, "acme", "mallory", false, "GET", "/admin/x", 200, "10.9.0.1", "ua", 0)},
			component: "privileged_identity", value: 5},
		{name: "detector disabled", disable: true, component: "detector_coverage", value: 8.33},
		{name: "drops", extra: []*storage.Event{{Time: rb, Kind: storage.KindLifecycle, Action: "events_dropped", Details: map[string]any{"dropped": 1}}},
			component: "drops", value: 0},
		{name: "checkpoint 2h old", clock: 2 * time.Hour, component: "checkpoint_freshness", value: 5},
		{name: "checkpoint 25h old", clock: 25 * time.Hour, component: "checkpoint_freshness", value: 0},
		{name: "no checkpoint", noCheckpoint: true, component: "checkpoint_freshness", value: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newReportEnv(t, func(c *Config) {
				if tt.disable {
					c.Detectors = detectors.DefaultConfig()
					c.Detectors.BruteForce.Enabled = &off
				}
			})
			admin := e.key("admin", "", nil)
			// 18 verified reads and one verified admin request: nothing to fault.
			var evs []*storage.Event
			for i := range 18 {
				evs = append(evs, hev(i, "acme", "alice", true, "GET", "/api/items", 200, "10.0.0.1", "ua-1", 0))
			}
			evs = append(evs, hev(18, "acme", "root", true, "GET", "/admin/panel", 200, "10.0.0.9", "ua-1", 20, "sensitive_path:/admin"))
			evs = append(evs, tt.extra...)
			e.seed(evs...)
			for i, sev := range tt.alerts {
				if _, _, err := e.store.PutAlert(storage.Alert{ID: "s" + string(rune('a'+i)), Detector: "brute_force", Severity: sev,
					Workspace: "acme", FirstSeen: rb, LastSeen: rb, Count: 1}); err != nil {
					t.Fatal(err)
				}
			}
			if !tt.noCheckpoint {
				if _, err := e.store.Checkpoint(); err != nil {
					t.Fatal(err)
				}
			}
			if tt.clock != 0 {
				e.clock = time.Now().Add(tt.clock)
			}
			ok := true
			if tt.verify != nil {
				ok = *tt.verify
			}
			if !tt.noVerify {
				e.seed(&storage.Event{Time: e.clock.Add(-time.Minute), Kind: storage.KindAdmin, Action: "integrity.verify",
					Workspace: storage.AuditWorkspace, Method: "POST", Path: "/api/v1/integrity/verify", Status: 200, Details: map[string]any{"ok": ok}})
			}

			var rep ScoreReport
			getReport(t, e, "/api/v1/reports/score?"+rQ, admin, &rep)
			want := map[string]float64{
				"open_alerts": 25, "failed_auth": 15, "suspicious_events": 15, "integrity_verified": 10,
				"checkpoint_freshness": 10, "privileged_identity": 10, "detector_coverage": 10, "drops": 5,
			}
			if tt.component != "" {
				want[tt.component] = tt.value
			}
			sum := 0.0
			if len(rep.Components) != len(want) {
				t.Fatalf("components = %+v", rep.Components)
			}
			for _, c := range rep.Components {
				if c.Value != want[c.Name] || c.Explanation == "" {
					t.Errorf("%s = %v (%s), want %v", c.Name, c.Value, c.Explanation, want[c.Name])
				}
				sum += want[c.Name]
			}
			if rep.Score != int(math.Round(sum)) {
				t.Errorf("score = %d, want %d", rep.Score, int(math.Round(sum)))
			}
			if tt.name == "perfect" && rep.Score != 100 {
				t.Errorf("perfect data set scores %d", rep.Score)
			}
			evsRec := e.rec.recorded()
			if last := evsRec[len(evsRec)-1]; last.Action != "reports.score" || last.Details["score"] != rep.Score {
				t.Errorf("audit event = %s %v", last.Action, last.Details)
			}
		})
	}
}

// TestScoreFailedVerification: the latest verification found problems.
func TestScoreFailedVerification(t *testing.T) {
	comps := scoreComponents(scoreInputs{verified: true, verifyOK: false, detectorsOn: 6, dropsCounted: true,
		checkpoint: CheckpointSummary{Present: true, Signed: true}})
	for _, c := range comps {
		if c.Name == "integrity_verified" && c.Value != 0 {
			t.Errorf("integrity_verified after a failed verification = %v", c.Value)
		}
		if c.Name == "checkpoint_freshness" && c.Value != 10 {
			t.Errorf("checkpoint_freshness at age 0 = %v", c.Value)
		}
	}
}
