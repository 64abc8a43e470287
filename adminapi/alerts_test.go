package adminapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// alertEnv is a testEnv whose API reports closed alerts.
type alertEnv struct {
	*testEnv
	mu     sync.Mutex
	closed []string
}

func newAlertEnv(t *testing.T) *alertEnv {
	t.Helper()
	e := &alertEnv{}
	e.testEnv = newHookedEnv(t, func(c *Config) {
		c.OnAlertClosed = func(id string) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.closed = append(e.closed, id)
		}
	})
	// Six alerts, one a minute: detectors alternate, workspaces alternate.
	for i := range 6 {
		a := storage.Alert{
			ID: fmt.Sprintf("alr_%d", i), Rule: "r", Status: storage.StatusOpen,
			Detector:  []string{"brute_force", "mass_deletion"}[i%2],
			Severity:  []string{storage.SeverityHigh, storage.SeverityCritical, storage.SeverityLow}[i%3],
			Workspace: []string{"acme", "globex"}[i%2],
			Subject:   storage.Subject{Kind: storage.SubjectIP, Value: fmt.Sprintf("203.0.113.%d", i)},
			FirstSeen: t0.Add(time.Duration(i) * time.Minute), LastSeen: t0.Add(time.Duration(i) * time.Minute), Count: 1,
		}
		if _, _, err := e.store.PutAlert(a); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func decodeAlerts(t *testing.T, w *httptest.ResponseRecorder) AlertsPage {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var p AlertsPage
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func alertIDs(as []storage.Alert) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

func TestAlertsList(t *testing.T) {
	e := newAlertEnv(t)
	admin := e.key("admin", "", nil)
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"alr_5", "alr_4", "alr_3", "alr_2", "alr_1", "alr_0"}},
		{"?detector=mass_deletion", []string{"alr_5", "alr_3", "alr_1"}},
		{"?severity=critical", []string{"alr_4", "alr_1"}},
		{"?status=open&workspace=acme", []string{"alr_4", "alr_2", "alr_0"}},
		{"?subject=203.0.113.3", []string{"alr_3"}},
		{"?from=" + t0.Add(2*time.Minute).Format(time.RFC3339) + "&to=" + t0.Add(4*time.Minute).Format(time.RFC3339), []string{"alr_3", "alr_2"}},
		{"?status=resolved", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			p := decodeAlerts(t, e.get("/api/v1/alerts"+tt.query, admin))
			if got := alertIDs(p.Alerts); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("pages", func(t *testing.T) {
		var got []string
		target := "/api/v1/alerts?limit=4"
		for range 5 {
			p := decodeAlerts(t, e.get(target, admin))
			got = append(got, alertIDs(p.Alerts)...)
			if p.NextCursor == "" {
				break
			}
			target = "/api/v1/alerts?limit=4&cursor=" + p.NextCursor
		}
		if len(got) != 6 {
			t.Errorf("paged through %v", got)
		}
	})
	for _, bad := range []struct{ query, detail string }{
		{"?detector=nope", "detector"},
		{"?severity=urgent", "severity"},
		{"?status=closed", "status"},
		{"?limit=0", "limit"},
		{"?sev=high", "unknown parameter"},
		{"?cursor=zzz", "cursor"},
		{"?from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z", "earlier"},
	} {
		t.Run("bad "+bad.query, func(t *testing.T) {
			wantProblem(t, e.get("/api/v1/alerts"+bad.query, admin), http.StatusBadRequest, bad.detail)
		})
	}
}

func TestAlertsPermissionsAndScope(t *testing.T) {
	e := newAlertEnv(t)
	auditor := e.key("auditor", "", nil)
	viewer := e.key("workspace_viewer", "acme", nil)
	scoped := e.key("security_analyst", "acme", nil)

	// Auditors read alerts but do not manage them.
	if w := e.get("/api/v1/alerts", auditor); w.Code != http.StatusOK {
		t.Fatalf("auditor list: %d", w.Code)
	}
	wantProblem(t, e.send(http.MethodPost, "/api/v1/alerts/alr_0/acknowledge", auditor, ""), http.StatusForbidden, "alerts:manage")
	// workspace_viewer has no alerts:read.
	wantProblem(t, e.get("/api/v1/alerts", viewer), http.StatusForbidden, "alerts:read")

	// A workspace key sees its workspace only, like events.
	p := decodeAlerts(t, e.get("/api/v1/alerts", scoped))
	if got := alertIDs(p.Alerts); !slices.Equal(got, []string{"alr_4", "alr_2", "alr_0"}) {
		t.Errorf("scoped list = %v", got)
	}
	wantProblem(t, e.get("/api/v1/alerts?workspace=globex", scoped), http.StatusForbidden, "scoped to workspace")
	// Another workspace's alert is not found, for reading and managing.
	wantProblem(t, e.get("/api/v1/alerts/alr_1", scoped), http.StatusNotFound, "alr_1")
	wantProblem(t, e.send(http.MethodPost, "/api/v1/alerts/alr_1/resolve", scoped, ""), http.StatusNotFound, "alr_1")
	if w := e.get("/api/v1/alerts/alr_0", scoped); w.Code != http.StatusOK {
		t.Errorf("own alert: %d %s", w.Code, w.Body)
	}
}

func TestAlertsWorkflow(t *testing.T) {
	e := newAlertEnv(t)
	analyst := e.key("security_analyst", "", nil)
	post := func(path, body string) *httptest.ResponseRecorder {
		return e.send(http.MethodPost, "/api/v1/alerts/alr_0"+path, analyst, body)
	}
	decode := func(w *httptest.ResponseRecorder, status int) storage.Alert {
		t.Helper()
		if w.Code != status {
			t.Fatalf("status %d, want %d: %s", w.Code, status, w.Body)
		}
		var a storage.Alert
		if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
			t.Fatal(err)
		}
		return a
	}

	a := decode(post("/acknowledge", ""), http.StatusOK)
	if a.Status != storage.StatusAcknowledged || a.StatusAt.IsZero() || a.StatusBy == "" {
		t.Fatalf("after acknowledge: %+v", a)
	}
	a = decode(post("/comments", `{"comment": "looking at the firewall logs"}`), http.StatusCreated)
	if n := len(a.History); n != 2 || a.History[1].Comment != "looking at the firewall logs" {
		t.Fatalf("history %+v", a.History)
	}
	a = decode(post("/resolve", `{"comment": "IP blocked"}`), http.StatusOK)
	if a.Status != storage.StatusResolved || a.History[2].From != storage.StatusAcknowledged || a.History[2].Comment != "IP blocked" {
		t.Fatalf("after resolve: %+v", a)
	}
	e.mu.Lock()
	if !slices.Equal(e.closed, []string{"alr_0"}) {
		t.Errorf("OnAlertClosed told %v", e.closed)
	}
	e.mu.Unlock()

	// Closed alerts cannot be acknowledged or resolved again: 409.
	wantProblem(t, post("/acknowledge", ""), http.StatusConflict, "is resolved")
	wantProblem(t, post("/false_positive", ""), http.StatusConflict, "cannot become false_positive")

	// Bad bodies and unknown alerts.
	wantProblem(t, post("/comments", ""), http.StatusBadRequest, "comment is required")
	wantProblem(t, post("/comments", `{"note": "x"}`), http.StatusBadRequest, "comment")
	wantProblem(t, post("/resolve", `not json`), http.StatusBadRequest, "comment")
	wantProblem(t, e.send(http.MethodPost, "/api/v1/alerts/alr_nope/acknowledge", analyst, ""), http.StatusNotFound, "alr_nope")
	wantProblem(t, e.send(http.MethodGet, "/api/v1/alerts/alr_0/resolve", analyst, ""), http.StatusMethodNotAllowed, "POST")

	// Every call is in the audit trail, the 409s and 400s included.
	var actions []string
	for _, ev := range e.rec.recorded() {
		if ev.Kind == storage.KindAdmin {
			actions = append(actions, fmt.Sprintf("%s:%d", ev.Action, ev.Status))
		}
	}
	want := []string{
		"alerts.acknowledged:200", "alerts.comment:201", "alerts.resolved:200",
		"alerts.acknowledged:409", "alerts.false_positive:409",
		"alerts.comment:400", "alerts.comment:400", "alerts.resolved:400", "alerts.acknowledged:404",
	}
	if !slices.Equal(actions, want) {
		t.Errorf("recorded %v\nwant     %v", actions, want)
	}
	// The resolve record names the alert and the transition.
	for _, ev := range e.rec.recorded() {
		if ev.Action == "alerts.resolved" && ev.Status == 200 {
			if ev.Details["alert_id"] != "alr_0" || ev.Details["from"] != storage.StatusAcknowledged || ev.User == "" {
				t.Errorf("resolve record %+v", ev)
			}
		}
	}
}

func TestAlertsListIsRecorded(t *testing.T) {
	e := newAlertEnv(t)
	admin := e.key("admin", "", nil)
	e.get("/api/v1/alerts?severity=high", admin)
	e.get("/api/v1/alerts/alr_0", admin)
	recs := e.rec.recorded()
	if len(recs) != 2 || recs[0].Action != "alerts.list" || recs[1].Action != "alerts.get" {
		t.Fatalf("recorded %+v", recs)
	}
	f, _ := recs[0].Details["filter"].(map[string]any)
	if f["severity"] != "high" || recs[0].Details["returned"] != 2 {
		t.Errorf("list record details %+v", recs[0].Details)
	}
}
