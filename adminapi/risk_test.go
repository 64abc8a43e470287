package adminapi

import (
	"net/http"
	"testing"
	"time"
)

func TestRiskSummary(t *testing.T) {
	e := newReportEnv(t, nil)
	admin := e.key("admin", "", nil)
	seedReportData(e)
	var rep RiskSummary
	getReport(t, e, "/api/v1/risk/summary?"+rQ, admin, &rep)
	// Scores of the eight proxied requests: 0 0 10 60 30 80 0 30.
	if rep.ScoredEvents != 8 || rep.Suspicious != 2 || rep.SuspiciousShare != 0.25 || rep.AverageScore != 26.25 || rep.P95Score != 80 {
		t.Errorf("summary = %+v", rep)
	}
	if !mapsEqual(rep.ByLevel, map[string]int64{"low": 4, "medium": 2, "high": 1, "critical": 1}) {
		t.Errorf("by level = %v", rep.ByLevel)
	}
	want := []FactorCount{{"failed_auth", 2}, {"sensitive_path", 2}, {"unverified_identity", 2}, {"access_denied", 1}, {"destructive_method", 1}}
	if len(rep.TopFactors) != len(want) {
		t.Fatalf("top factors = %+v", rep.TopFactors)
	}
	for i := range want {
		if rep.TopFactors[i] != want[i] {
			t.Errorf("top factor %d = %+v, want %+v", i, rep.TopFactors[i], want[i])
		}
	}
	if last := e.rec.recorded(); last[len(last)-1].Action != "risk.summary" || last[len(last)-1].Details["rows"] != int64(13) {
		t.Errorf("audit = %+v", last[len(last)-1])
	}
}

func TestRiskUser(t *testing.T) {
	e := newReportEnv(t, nil)
	admin := e.key("admin", "", nil)
	viewer := e.key("workspace_viewer", "globex", nil)
	seedReportData(e)
	seedReportAlerts(e)
	if _, err := e.store.SetAlertStatus("al-2", "open", "analyst", "", rb.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var p RiskUserProfile
	getReport(t, e, "/api/v1/risk/users/bob?"+rQ, admin, &p)
	if p.User != "bob" || p.Events != 2 || p.DistinctIPs != 1 || p.DistinctUserAgents != 1 || p.FailedAuth != 0 || p.Denied != 1 ||
		p.Suspicious != 2 || p.AverageScore != 70 || p.MaxScore != 80 || !mapsEqual(p.ByLevel, map[string]int64{"high": 1, "critical": 1}) {
		t.Errorf("profile = %+v", p)
	}
	if p.FirstSeen == nil || !p.FirstSeen.Equal(rb.Add(3*time.Minute)) || p.LastSeen == nil || !p.LastSeen.Equal(rb.Add(5*time.Minute)) {
		t.Errorf("first/last seen = %v %v", p.FirstSeen, p.LastSeen)
	}
	if len(p.OpenAlerts) != 1 || p.OpenAlerts[0].ID != "al-2" || p.OpenAlerts[0].Status != "open" || p.OpenAlerts[0].Severity != "critical" {
		t.Errorf("open alerts = %+v", p.OpenAlerts)
	}
	if len(p.TopFactors) != 3 || p.TopFactors[0] != (FactorCount{"sensitive_path", 2}) {
		t.Errorf("top factors = %+v", p.TopFactors)
	}

	// A viewer of globex (events:read) sees carol, and nothing of bob.
	getReport(t, e, "/api/v1/risk/users/carol?"+rQ, viewer, &p)
	if p.Events != 2 || p.FailedAuth != 1 || p.DistinctIPs != 1 || p.Workspace != "globex" {
		t.Errorf("carol for globex = %+v", p)
	}
	getReport(t, e, "/api/v1/risk/users/bob?"+rQ, viewer, &p)
	if p.Events != 0 || len(p.OpenAlerts) != 0 || p.FirstSeen != nil {
		t.Errorf("bob for globex = %+v, want nothing", p)
	}
	if w := e.get("/api/v1/risk/summary", viewer); w.Code != http.StatusForbidden {
		t.Errorf("viewer on the summary = %d, want 403", w.Code)
	}
}

func TestRiskTop(t *testing.T) {
	e := newReportEnv(t, nil)
	admin := e.key("admin", "", nil)
	seedReportData(e)
	var top RiskTop
	getReport(t, e, "/api/v1/risk/top?"+rQ, admin, &top)
	want := []RiskTopItem{
		{Key: "bob", Events: 2, SumScore: 140, MaxScore: 80, Suspicious: 2},
		{Key: "carol", Events: 2, SumScore: 30, MaxScore: 30},
		{Key: "alice", Events: 3, SumScore: 10, MaxScore: 10},
	}
	if top.By != "user" || len(top.Items) != len(want) {
		t.Fatalf("top = %+v", top)
	}
	for i := range want {
		if top.Items[i] != want[i] {
			t.Errorf("item %d = %+v, want %+v", i, top.Items[i], want[i])
		}
	}
	getReport(t, e, "/api/v1/risk/top?by=ip&limit=2&"+rQ, admin, &top)
	wantIP := []RiskTopItem{
		{Key: "10.0.0.3", Events: 2, SumScore: 140, MaxScore: 80, Suspicious: 2},
		{Key: "10.0.0.4", Events: 1, SumScore: 30, MaxScore: 30},
	}
	if top.By != "ip" || len(top.Items) != 2 || top.Items[0] != wantIP[0] || top.Items[1] != wantIP[1] || top.Totals.Events != 8 {
		t.Errorf("top by ip = %+v", top)
	}
	// carol's 10.1.0.1 also sums 30 with max 30: ties go by key.
	getReport(t, e, "/api/v1/risk/top?by=ip&limit=3&"+rQ, admin, &top)
	if top.Items[2].Key != "10.1.0.1" {
		t.Errorf("third = %+v", top.Items[2])
	}
}
