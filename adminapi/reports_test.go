package adminapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

// testHMACKey keys the pseudonyms of the report tests.
var testHMACKey = []byte("report-test-hmac-key-32-bytes!!!")

// newReportEnv is newEnv with a redactor (for subject requests) and
// whatever edit changes in the config.
func newReportEnv(t *testing.T, edit func(*Config)) *testEnv {
	t.Helper()
	return newHookedEnv(t, func(c *Config) {
		c.Redactor = policy.NewRedactor(testHMACKey, nil, nil)
		if edit != nil {
			edit(c)
		}
	})
}

// Report test data set, around rb. The range of the tests is
// [rFrom, rTo).
var (
	rb    = time.Date(2025, 3, 10, 10, 0, 0, 0, time.UTC)
	rFrom = "2025-03-01T00:00:00Z"
	rTo   = "2025-03-15T00:00:00Z"
	rQ    = "from=" + rFrom + "&to=" + rTo
)

// hev is a proxied request event of the data set.
func hev(min int, ws, user string, verified bool, method, path string, status int, ip, ua string, score int, factors ...string) *storage.Event {
	ev := &storage.Event{
		Time: rb.Add(time.Duration(min) * time.Minute), Kind: storage.KindHTTP, Stage: storage.StageResponseComplete,
		Workspace: ws, User: user, UserVerified: verified, Method: method, Path: path, Status: status,
		Outcome: storage.Outcome(status), ClientIP: ip, UserAgent: ua, RiskScore: score, RiskLevel: levelOf(score),
		Suspicious: score >= 40,
	}
	for _, f := range factors {
		name, detail, _ := strings.Cut(f, ":")
		ev.RiskFactors = append(ev.RiskFactors, storage.RiskFactor{Name: name, Points: 2, Detail: detail})
	}
	return ev
}

func levelOf(score int) string {
	switch {
	case score >= 70:
		return "critical"
	case score >= 40:
		return "high"
	case score >= 20:
		return "medium"
	}
	return "low"
}

// seedReportData stores the known data set:
//
//	acme:   alice (verified) GET, POST 201, DELETE 204 from two IPs;
//	        bob (claimed) GET /admin/users 200 and /admin/settings 403;
//	        an anonymous POST /login 401;
//	globex: carol (verified) GET 200 and GET 401;
//	_audit: a key creation (201) and a forbidden call (403);
//	lifecycle: audit_started, events_dropped (3), events_purged;
//	and one acme event before the range.
func seedReportData(e *testEnv) {
	e.t.Helper()
	evs := []*storage.Event{
		hev(0, "acme", "alice", true, "GET", "/api/items", 200, "10.0.0.1", "ua-1", 0),
		hev(1, "acme", "alice", true, "POST", "/api/items", 201, "10.0.0.1", "ua-1", 0),
		hev(2, "acme", "alice", true, "DELETE", "/api/items/7", 204, "10.0.0.2", "ua-2", 10, "destructive_method:successful DELETE"),
		hev(3, "acme", "bob", false, "GET", "/admin/users", 200, "10.0.0.3", "ua-3", 60, "sensitive_path:/admin", "unverified_identity:claimed user on a privileged route"),
		hev(4, "acme", "", false, "POST", "/login", 401, "10.0.0.4", "ua-4", 30, "failed_auth:401 Unauthorized"),
		hev(5, "acme", "bob", false, "GET", "/admin/settings", 403, "10.0.0.3", "ua-3", 80, "access_denied:403 Forbidden", "sensitive_path:/admin", "unverified_identity:claimed user on a privileged route"),
		hev(6, "globex", "carol", true, "GET", "/api/items", 200, "10.1.0.1", "ua-9", 0),
		hev(7, "globex", "carol", true, "GET", "/api/secret", 401, "10.1.0.1", "ua-9", 30, "failed_auth:401 Unauthorized"),
		{Time: rb.Add(8 * time.Minute), Kind: storage.KindAdmin, Action: "rbac.keys.create", Workspace: storage.AuditWorkspace,
			User: "key-1", UserVerified: true, Method: "POST", Path: "/api/v1/keys", Status: 201, Outcome: "success", ClientIP: "127.0.0.1", UserAgent: "curl/8"},
		{Time: rb.Add(9 * time.Minute), Kind: storage.KindAdmin, Action: "auth.forbidden", Workspace: storage.AuditWorkspace,
			User: "key-1", UserVerified: true, Method: "GET", Path: "/api/v1/events", Status: 403, Outcome: "failure", ClientIP: "127.0.0.1", UserAgent: "curl/8"},
		{Time: rb.Add(10 * time.Minute), Kind: storage.KindLifecycle, Action: "audit_started"},
		{Time: rb.Add(11 * time.Minute), Kind: storage.KindLifecycle, Action: "events_dropped", Details: map[string]any{"dropped": 3}},
		{Time: rb.Add(12 * time.Minute), Kind: storage.KindLifecycle, Action: "events_purged", Details: map[string]any{"removed": 1, "default_days": 400, "floor_days": 0}},
		hev(-20*24*60, "acme", "alice", true, "GET", "/api/items", 200, "10.0.0.1", "ua-1", 0),
	}
	e.seed(evs...)
	if err := e.store.PutWorkspace(storage.Workspace{ID: "acme", RetentionDays: 30}); err != nil {
		e.t.Fatal(err)
	}
}

// seedReportAlerts stores three alerts: an open high one (acme), a
// critical one acknowledged after 10 minutes and resolved after 30
// (acme), and a medium one marked a false positive after an hour
// (globex).
func seedReportAlerts(e *testEnv) {
	e.t.Helper()
	put := func(id, det, sev, ws, kind, subj string) {
		if _, _, err := e.store.PutAlert(storage.Alert{ID: id, Detector: det, Severity: sev, Workspace: ws,
			Subject: storage.Subject{Kind: kind, Value: subj}, FirstSeen: rb, LastSeen: rb.Add(time.Minute), Count: 1}); err != nil {
			e.t.Fatal(err)
		}
	}
	put("al-1", "brute_force", "high", "acme", storage.SubjectIP, "10.0.0.4")
	put("al-2", "privilege_escalation", "critical", "acme", storage.SubjectUser, "bob")
	put("al-3", "unauthorized_access", "medium", "globex", storage.SubjectIP, "10.1.0.1")
	for _, s := range []struct {
		id, to string
		after  time.Duration
	}{
		{"al-2", storage.StatusAcknowledged, 10 * time.Minute},
		{"al-2", storage.StatusResolved, 30 * time.Minute},
		{"al-3", storage.StatusFalsePositive, time.Hour},
	} {
		if _, err := e.store.SetAlertStatus(s.id, s.to, "analyst", "", rb.Add(s.after)); err != nil {
			e.t.Fatal(err)
		}
	}
}

// getReport fetches target and decodes a 200 answer into v.
func getReport(t *testing.T, e *testEnv, target, secret string, v any) *httptest.ResponseRecorder {
	t.Helper()
	w := e.get(target, secret)
	if w.Code != http.StatusOK {
		t.Fatalf("GET %s = %d: %s", target, w.Code, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("decoding %s: %v", target, err)
	}
	return w
}

// queryRows finds the named query of an envelope.
func queryRows(t *testing.T, env ReportEnvelope, name string) ReportQuery {
	t.Helper()
	for _, q := range env.Queries {
		if q.Name == name {
			return q
		}
	}
	t.Fatalf("no query %q in %+v", name, env.Queries)
	return ReportQuery{}
}

func TestReportEnvelope(t *testing.T) {
	e := newReportEnv(t, nil)
	admin := e.key("admin", "", nil)
	seedReportData(e)

	// No checkpoint yet: stated, not an error. Default range: 30 days up to now.
	var rep SOC2Report
	getReport(t, e, "/api/v1/reports/soc2", admin, &rep)
	env := rep.ReportEnvelope
	if env.Report != "soc2" || env.Version != reportVersion || !env.GeneratedAt.Equal(t0) || env.Workspace != "all" {
		t.Errorf("envelope = %+v", env)
	}
	if !env.TimeRange.To.Equal(t0) || !env.TimeRange.From.Equal(t0.AddDate(0, 0, -30)) {
		t.Errorf("default range = %+v, want 30 days up to %s", env.TimeRange, t0)
	}
	if env.Checkpoint.Present || env.Checkpoint.Note == "" {
		t.Errorf("checkpoint without one = %+v, want present=false and a note", env.Checkpoint)
	}
	// The default range holds every event, the one 20 days before rb too
	// (rb is 4 days before t0, so that one is 24 days old).
	if env.Totals.Events != 14 {
		t.Errorf("totals.events = %d, want 14 over the default range", env.Totals.Events)
	}

	cp, err := e.store.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	getReport(t, e, "/api/v1/reports/soc2?"+rQ, admin, &rep)
	env = rep.ReportEnvelope
	c := env.Checkpoint
	if !c.Present || !c.Signed || c.Seq != cp.Seq || c.HeadHash != cp.Link || c.Time == nil || !c.Time.Equal(cp.Time) || c.KeyID != cp.KeyID {
		t.Errorf("checkpoint = %+v, want %+v signed", c, cp)
	}
	wantFrom, _ := time.Parse(time.RFC3339, rFrom)
	if !env.TimeRange.From.Equal(wantFrom) || env.Totals.Events != 13 || env.Totals.Alerts != 0 {
		t.Errorf("range %+v totals %+v, want from %s, 13 events, 0 alerts", env.TimeRange, env.Totals, rFrom)
	}
	q := queryRows(t, env, "events")
	if q.Rows != 13 || q.Filter["from"] != "2025-03-01T00:00:00Z" || q.Filter["to"] != "2025-03-15T00:00:00Z" {
		t.Errorf("events query = %+v", q)
	}
	if q := queryRows(t, env, "lifecycle"); q.Rows != 3 || q.Filter["kind"] != "lifecycle" {
		t.Errorf("lifecycle query = %+v", q)
	}
	if q := queryRows(t, env, "api_keys"); q.Rows != 1 {
		t.Errorf("api_keys query = %+v, want the one admin key", q)
	}
}

func TestReportBadParams(t *testing.T) {
	e := newReportEnv(t, nil)
	admin := e.key("admin", "", nil)
	viewer := e.key("workspace_viewer", "acme", nil)
	scoped := e.key("auditor", "acme", nil)
	for _, path := range []string{"/api/v1/reports/soc2", "/api/v1/reports/gdpr", "/api/v1/reports/pci", "/api/v1/reports/score", "/api/v1/risk/summary", "/api/v1/risk/users/alice", "/api/v1/risk/top"} {
		t.Run(path, func(t *testing.T) {
			wantProblem(t, e.get(path+"?from=2025-03-15T00:00:00Z&to=2025-03-01T00:00:00Z", admin), http.StatusBadRequest, `"from": must be earlier than "to"`)
			wantProblem(t, e.get(path+"?from=2026-01-01T00:00:00Z", admin), http.StatusBadRequest, `must be earlier than "to" (default: now)`)
			wantProblem(t, e.get(path+"?user=alice", admin), http.StatusBadRequest, `"user": unknown parameter`)
			wantProblem(t, e.get(path+"?to=yesterday", admin), http.StatusBadRequest, "RFC 3339")
			wantProblem(t, e.get(path+"?workspace=globex", scoped), http.StatusForbidden, `scoped to workspace "acme"`)
			if path != "/api/v1/risk/users/alice" {
				wantProblem(t, e.get(path, viewer), http.StatusForbidden, "reports:read")
			}
		})
	}
	wantProblem(t, e.get("/api/v1/risk/top?by=path", admin), http.StatusBadRequest, "expects user or ip")
	wantProblem(t, e.get("/api/v1/risk/top?limit=101", admin), http.StatusBadRequest, "between 1 and 100")
	wantProblem(t, e.get("/api/v1/gdpr/subjects/alice/export?format=csv", admin), http.StatusBadRequest, "expects ndjson or json")
	wantProblem(t, e.get("/api/v1/gdpr/subjects/alice/export", scoped), http.StatusForbidden, "gdpr:manage")
}

func TestSOC2Report(t *testing.T) {
	e := newReportEnv(t, nil)
	admin := e.key("admin", "", nil)
	e.key("security_analyst", "", nil) // never used
	e.key("auditor", "", func(k *storage.APIKey) { exp := t0.Add(-24 * time.Hour); k.ExpiresAt = &exp })
	e.key("auditor", "", func(k *storage.APIKey) {
		used := t0.AddDate(0, 0, -100)
		k.LastUsedAt, k.CreatedAt = &used, rb
	})
	e.key("auditor", "", func(k *storage.APIKey) { rev := rb; k.RevokedAt = &rev })
	seedReportData(e)
	seedReportAlerts(e)

	var rep SOC2Report
	getReport(t, e, "/api/v1/reports/soc2?"+rQ, admin, &rep)

	c1 := rep.CC61
	if c1.ProxiedRequests != 8 || c1.RequestsWithUser != 7 || c1.VerifiedRequests != 5 || !c1.AuthenticationInUse ||
		c1.VerifiedShare != 0.7143 || c1.AdminAPICalls != 2 || c1.AdminAPIDenied != 1 {
		t.Errorf("CC6.1 = %+v", c1)
	}
	if want := map[string]int64{"admin": 1, "security_analyst": 1, "auditor": 1}; !mapsEqual(c1.ActiveAPIKeysByRole, want) {
		t.Errorf("CC6.1 keys by role = %v, want %v", c1.ActiveAPIKeysByRole, want)
	}
	if c1.Status != statusGaps || len(c1.Gaps) != 1 || !strings.Contains(c1.Gaps[0], "2 of 7 requests with a user carried a claimed identity") {
		t.Errorf("CC6.1 status %s gaps %q", c1.Status, c1.Gaps)
	}

	c2 := rep.CC62
	if c2.KeysCreatedInRange != 1 || c2.KeysRevokedInRange != 1 || c2.KeyCreationEvents != 1 || c2.KeyRevocationEvents != 0 ||
		len(c2.KeysNeverUsed) != 1 || len(c2.KeysUnused90Days) != 1 || len(c2.KeysExpired) != 1 || c2.Status != statusGaps || len(c2.Gaps) != 3 {
		t.Errorf("CC6.2 = %+v", c2)
	}

	c3 := rep.CC63
	if c3.PrivilegedRouteRequests != 2 || c3.PrivilegedUnverified != 2 || c3.Forbidden != 2 || c3.RoleChangeEvents != 0 ||
		c3.Status != statusGaps || !strings.Contains(strings.Join(c3.Gaps, ";"), "2 of 2 requests to privileged routes") {
		t.Errorf("CC6.3 = %+v", c3)
	}

	c72 := rep.CC72
	if len(c72.DetectorsEnabled) != 6 || len(c72.DetectorsDisabled) != 0 || c72.DroppedEvents != 3 || c72.DropRecords != 1 ||
		!mapsEqual(c72.EventsByKind, map[string]int64{"http": 8, "admin": 2, "lifecycle": 3}) ||
		c72.AlertsByDetector["brute_force"]["high"] != 1 || c72.AlertsByDetector["privilege_escalation"]["critical"] != 1 ||
		c72.AlertsByDetector["unauthorized_access"]["medium"] != 1 || len(c72.AlertsByDetector) != 3 {
		t.Errorf("CC7.2 = %+v", c72)
	}
	if c72.Status != statusGaps || len(c72.Gaps) != 1 || !strings.Contains(c72.Gaps[0], "dropped 3 event(s)") {
		t.Errorf("CC7.2 gaps = %q", c72.Gaps)
	}

	c73 := rep.CC73
	if c73.Alerts != 3 || c73.Acknowledged != 1 || c73.Resolved != 1 || c73.FalsePositive != 1 ||
		c73.MeanTimeToAcknowledgeSeconds != 600 || c73.MeanTimeToResolveSeconds != 2700 || c73.OpenCritical != 0 ||
		!mapsEqual(c73.ByStatus, map[string]int64{"open": 1, "resolved": 1, "false_positive": 1}) {
		t.Errorf("CC7.3 = %+v", c73)
	}
	if c73.Status != statusGaps || len(c73.Gaps) != 1 || !strings.Contains(c73.Gaps[0], "1 alert(s) never acknowledged") {
		t.Errorf("CC7.3 gaps = %q", c73.Gaps)
	}
	if rep.Totals.Alerts != 3 || rep.Totals.Events != 13 {
		t.Errorf("totals = %+v", rep.Totals)
	}

	// The call audited itself with the report's name, range and rows.
	evs := e.rec.recorded()
	last := evs[len(evs)-1]
	if last.Action != "reports.soc2" || last.Status != 200 || last.Details["report"] != "soc2" ||
		last.Details["from"] != "2025-03-01T00:00:00Z" || last.Details["workspace"] != "all" || last.Details["rows"] != int64(13+3+5+3) {
		t.Errorf("audit event = %s %d %v", last.Action, last.Status, last.Details)
	}
}

// TestReportsScoped runs every report with a key scoped to acme (and
// with an admin asking for acme): nothing of globex, of the audit
// workspace or of the pipeline is counted, and its name never appears.
func TestReportsScoped(t *testing.T) {
	e := newReportEnv(t, nil)
	scoped := e.key("auditor", "acme", nil)
	admin := e.key("admin", "", nil)
	e.key("auditor", "globex", nil)
	seedReportData(e)
	seedReportAlerts(e)
	for _, secret := range []string{scoped, admin} {
		for _, path := range []string{"/api/v1/reports/soc2", "/api/v1/reports/gdpr", "/api/v1/reports/pci", "/api/v1/reports/score", "/api/v1/risk/summary", "/api/v1/risk/top", "/api/v1/risk/users/carol"} {
			target := path + "?" + rQ
			if secret == admin {
				target += "&workspace=acme"
			}
			w := e.get(target, secret)
			if w.Code != http.StatusOK {
				t.Fatalf("GET %s = %d: %s", target, w.Code, w.Body)
			}
			for _, leak := range []string{"globex", "carol", "10.1.0.1", "ua-9", "127.0.0.1", "curl/8", "key-1"} {
				if strings.Contains(w.Body.String(), leak) && !(leak == "carol" && strings.Contains(path, "carol")) {
					t.Errorf("GET %s leaks %q: %s", target, leak, w.Body)
				}
			}
			var env ReportEnvelope
			if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
				t.Fatal(err)
			}
			if env.Workspace != "acme" {
				t.Errorf("GET %s: workspace %q", target, env.Workspace)
			}
			want := int64(6) // acme's six events in range
			switch {
			case strings.Contains(path, "carol"):
				want = 0
			case strings.HasSuffix(path, "/top"):
				want = 6
			}
			if env.Totals.Events != want {
				t.Errorf("GET %s: totals.events = %d, want %d", target, env.Totals.Events, want)
			}
		}
	}
	var soc SOC2Report
	getReport(t, e, "/api/v1/reports/soc2?"+rQ, scoped, &soc)
	if soc.CC61.ProxiedRequests != 6 || soc.CC61.RequestsWithUser != 5 || soc.CC61.VerifiedRequests != 3 || soc.CC61.AdminAPICalls != 0 ||
		soc.CC73.Alerts != 2 || soc.CC72.DroppedEvents != 0 || !mapsEqual(soc.CC61.ActiveAPIKeysByRole, map[string]int64{"auditor": 1}) {
		t.Errorf("scoped SOC 2 = CC6.1 %+v CC7.3 %+v", soc.CC61, soc.CC73)
	}
	if q := queryRows(t, soc.ReportEnvelope, "lifecycle"); q.Rows != 0 || !strings.HasPrefix(q.Note, "skipped") {
		t.Errorf("scoped lifecycle query = %+v, want skipped", q)
	}
}

func TestPCIReport(t *testing.T) {
	e := newReportEnv(t, nil)
	admin := e.key("admin", "", nil)
	seedReportData(e)
	if _, err := e.store.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	var rep PCIReport
	getReport(t, e, "/api/v1/reports/pci?"+rQ, admin, &rep)
	want := map[string]int64{"10.2.1.1": 5, "10.2.1.2": 4, "10.2.1.3": 2, "10.2.1.4": 4, "10.2.1.5": 1, "10.2.1.6": 2, "10.2.1.7": 2}
	if len(rep.EventClasses) != 7 {
		t.Fatalf("event classes = %+v", rep.EventClasses)
	}
	for _, c := range rep.EventClasses {
		if c.Count != want[c.Requirement] || c.Status != "seen" || c.Source == "" {
			t.Errorf("%s = %+v, want count %d seen", c.Requirement, c, want[c.Requirement])
		}
	}
	f := rep.Fields
	if f.Events != 10 || f.User != 0.9 || f.Type != 1 || f.Time != 1 || f.Outcome != 1 || f.Origin != 1 || f.Resource != 1 {
		t.Errorf("10.2.2 = %+v", f)
	}
	if p := rep.Protection; !p.HashChain || !p.CheckpointPresent || !p.CheckpointSigned || p.Status != pciMet {
		t.Errorf("10.3 = %+v", p)
	}
	r := rep.Retention
	if r.Status != pciGaps || r.Retention.DefaultDays == nil || *r.Retention.DefaultDays != 400 || len(r.Gaps) != 1 ||
		!strings.Contains(r.Gaps[0], `workspace "acme" keeps 30 days`) {
		t.Errorf("10.5 = %+v", r)
	}
	if fl := rep.Failures; fl.DroppedEvents != 3 || fl.DropRecords != 1 || !fl.Counted || fl.Status != pciGaps {
		t.Errorf("10.7 = %+v", fl)
	}

	// Without any event, every class is "not seen" and 10.3 has a gap.
	e2 := newReportEnv(t, nil)
	admin2 := e2.key("admin", "", nil)
	getReport(t, e2, "/api/v1/reports/pci?"+rQ, admin2, &rep)
	for _, c := range rep.EventClasses {
		if c.Count != 0 || c.Status != "not seen" {
			t.Errorf("empty %s = %+v", c.Requirement, c)
		}
	}
	if rep.Protection.Status != pciGaps || rep.Retention.Status != pciUnknown || rep.Failures.Status != pciMet {
		t.Errorf("empty: 10.3 %+v 10.5 %+v 10.7 %+v", rep.Protection, rep.Retention, rep.Failures)
	}
}

func TestGDPRReport(t *testing.T) {
	e := newReportEnv(t, nil)
	admin := e.key("admin", "", nil)
	seedReportData(e)
	var rep GDPRReport
	getReport(t, e, "/api/v1/reports/gdpr?"+rQ, admin, &rep)
	fg := rep.Figures
	// users: alice, bob, carol and the API key; IPs: four of acme, one of
	// globex, the admin's; agents: ua-1..4, ua-9, curl/8.
	if fg.DistinctUsers != 4 || fg.DistinctIPs != 6 || fg.DistinctUserAgents != 6 || fg.ErasureRequests != 0 || fg.ErasedEvents != 0 {
		t.Errorf("figures = %+v", fg)
	}
	cats := map[string]int64{}
	for _, c := range rep.Record.PersonalData {
		cats[c.Field] = c.Events
	}
	if cats["user"] != 9 || cats["client_ip"] != 10 || cats["user_agent"] != 10 || cats["referer"] != 0 {
		t.Errorf("personal data = %v", cats)
	}
	ret := rep.Record.Retention
	if ret.DefaultDays == nil || *ret.DefaultDays != 400 || ret.FloorDays == nil || *ret.FloorDays != 0 ||
		len(ret.Workspaces) != 1 || ret.Workspaces[0] != (WorkspaceRetention{Workspace: "acme", Days: 30}) {
		t.Errorf("retention = %+v", ret)
	}
	if len(rep.Record.Purposes) == 0 || len(rep.Record.SecurityMeasures) == 0 || rep.Record.Controller.Note == "" ||
		!strings.Contains(rep.Record.Recipients[0], "admin, auditor, security_analyst, workspace_viewer") {
		t.Errorf("record = %+v", rep.Record)
	}
	if q := queryRows(t, rep.ReportEnvelope, "workspaces"); q.Rows != 1 {
		t.Errorf("workspaces query = %+v", q)
	}
}

// mapsEqual compares two count maps, a missing key counting as zero.
func mapsEqual[K comparable](got, want map[K]int64) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	for k, v := range got {
		if want[k] != v {
			return false
		}
	}
	return true
}
