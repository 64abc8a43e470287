package adminapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

// reviewEnv is an env with every optional part on (redactor included),
// as the matrix runs.
func reviewEnv(t *testing.T) *testEnv {
	t.Helper()
	e := newEnv(t, nil)
	var err error
	if e.h, err = New(matrixConfig(e)); err != nil {
		t.Fatal(err)
	}
	return e
}

// reviewRedactor is matrixConfig's redactor, to compute the tokens the
// trail must hold.
var reviewRedactor = policy.NewRedactor([]byte("0123456789abcdef0123456789abcdef"), nil, nil)

// twoWorkspaceKey stores a key of role in acme bound to the same role in
// globex, and returns its secret.
func twoWorkspaceKey(e *testEnv, role string) string {
	e.t.Helper()
	secret, rec, err := GenerateKey()
	if err != nil {
		e.t.Fatal(err)
	}
	rec.Name, rec.Role, rec.Workspace = "two", role, "acme"
	if err := e.store.PutAPIKey(rec); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.CreateBinding(storage.RoleBinding{ID: "rb_" + rec.ID, Principal: rec.ID, Role: role, Workspace: "globex", CreatedAt: t0}, false); err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// TestAuditTrailKeepsNoSubjectInClear: subject ids (user filters, the
// alerts' subject filter, {user} path values) reach the admin trail only
// as tokens, even when the query does not parse or the user is named like
// a fixed path segment; API key lookalikes are redacted (S5).
func TestAuditTrailKeepsNoSubjectInClear(t *testing.T) {
	e := reviewEnv(t)
	admin := e.key("admin", "", nil)
	tok := reviewRedactor.Token
	tests := []struct {
		target    string
		status    int
		path      string // the recorded path
		queryHas  string // in the recorded query
		forbidden []string
	}{
		{target: "/api/v1/events?user=alice-secret&bogus=%zz", status: 400, path: "/api/v1/events",
			queryHas: "user=" + strings.ReplaceAll(tok("alice-secret"), ":", "%3A"), forbidden: []string{"alice-secret"}},
		{target: "/api/v1/alerts?subject=bob-secret", status: 200, path: "/api/v1/alerts",
			queryHas: "subject=" + strings.ReplaceAll(tok("bob-secret"), ":", "%3A"), forbidden: []string{"bob-secret"}},
		{target: "/api/v1/risk/users/v1", status: 200, path: "/api/v1/risk/users/" + tok("v1")},
		{target: "/api/v1/gdpr/subjects/api/export", status: 200, path: "/api/v1/gdpr/subjects/" + tok("api") + "/export"},
		{target: "/api/v1/alerts/cka_leakedsecret123", status: 404, path: "/api/v1/alerts/" + redactedKey, forbidden: []string{"leakedsecret123"}},
		{target: "/api/v1/events?request_id=cka_leakedsecret456", status: 200, path: "/api/v1/events", forbidden: []string{"leakedsecret456"}},
		{target: "/api/v1/events?request_id=cka_leakedsecret789&x=%zz", status: 400, path: "/api/v1/events", forbidden: []string{"leakedsecret789"}},
	}
	for _, tt := range tests {
		before := len(e.rec.recorded())
		if w := e.get(tt.target, admin); w.Code != tt.status {
			t.Fatalf("%s: status %d, want %d: %s", tt.target, w.Code, tt.status, w.Body)
		}
		recs := e.rec.recorded()[before:]
		if len(recs) != 1 {
			t.Fatalf("%s: %d audit events, want 1", tt.target, len(recs))
		}
		ev := recs[0]
		if ev.Path != tt.path {
			t.Errorf("%s: recorded path %q, want %q", tt.target, ev.Path, tt.path)
		}
		if !strings.Contains(ev.Query, tt.queryHas) {
			t.Errorf("%s: recorded query %q lacks %q", tt.target, ev.Query, tt.queryHas)
		}
		b, _ := json.Marshal(ev)
		for _, f := range tt.forbidden {
			if strings.Contains(string(b), f) {
				t.Errorf("%s: %q reached the trail: %s", tt.target, f, b)
			}
		}
		if tt.target == "/api/v1/alerts?subject=bob-secret" {
			if got := ev.Details["filter"].(map[string]any)["subject"]; got != tok("bob-secret") {
				t.Errorf("alerts filter subject recorded as %v", got)
			}
		}
	}
}

// TestStatsEchoTheFilterAsked: the stats and time series answer the
// filter the client gave, while the trail keeps its token (C2).
func TestStatsEchoTheFilterAsked(t *testing.T) {
	e := reviewEnv(t)
	admin := e.key("admin", "", nil)
	e.seed(&storage.Event{Time: t0.Add(-time.Minute), Kind: storage.KindHTTP, Stage: storage.StageResponseComplete, Method: "GET", Path: "/x", Status: 200, User: "alice", Workspace: "acme"})
	for _, target := range []string{"/api/v1/events/stats?user=alice", "/api/v1/events/timeseries?user=alice"} {
		w := e.get(target, admin)
		var body struct {
			Filter map[string]any `json:"filter"`
			Total  int64          `json:"total"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != 200 {
			t.Fatalf("%s: %d %s", target, w.Code, w.Body)
		}
		if body.Filter["user"] != "alice" || body.Total != 1 {
			t.Errorf("%s: filter %v total %d, want user alice and 1", target, body.Filter, body.Total)
		}
		recs := e.rec.recorded()
		if got := recs[len(recs)-1].Details["filter"].(map[string]any)["user"]; got != reviewRedactor.Token("alice") {
			t.Errorf("%s: trail filter user = %v", target, got)
		}
	}
}

// TestStatsTotalIsItsBreakdown: the total is the sum of by_status_class,
// admin events (no HTTP status) included (C9).
func TestStatsTotalIsItsBreakdown(t *testing.T) {
	e := reviewEnv(t)
	admin := e.key("admin", "", nil)
	e.seed(
		&storage.Event{Time: t0.Add(-3 * time.Minute), Kind: storage.KindHTTP, Stage: storage.StageResponseComplete, Method: "GET", Path: "/a", Status: 200, Workspace: "acme"},
		&storage.Event{Time: t0.Add(-2 * time.Minute), Kind: storage.KindHTTP, Stage: storage.StageResponseComplete, Method: "GET", Path: "/b", Status: 503, Workspace: "acme"},
		&storage.Event{Time: t0.Add(-time.Minute), Kind: storage.KindAdmin, Action: "x", Workspace: "acme"},
	)
	var st eventStats
	if err := json.Unmarshal(e.get("/api/v1/events/stats", admin).Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	c := st.ByStatusClass
	if sum := c.Informational + c.Success + c.Redirection + c.ClientError + c.ServerError + c.Other; st.Total != 3 || sum != st.Total {
		t.Errorf("total %d, by_status_class sums to %d; want 3 both", st.Total, sum)
	}
}

// TestReportsCountOnlyAppliedChanges: refused key and role calls are in
// the trail under the same actions but change nothing (C3).
func TestReportsCountOnlyAppliedChanges(t *testing.T) {
	e := reviewEnv(t)
	a := e.h.(*api)
	tl := newTally()
	for _, ev := range []storage.Event{
		{Kind: storage.KindAdmin, Action: "rbac.keys.revoke", Status: 200},
		{Kind: storage.KindAdmin, Action: "rbac.keys.revoke", Status: 409},
		{Kind: storage.KindAdmin, Action: "rbac.keys.revoke", Status: 404},
		{Kind: storage.KindAdmin, Action: "rbac.keys.create", Status: 201},
		{Kind: storage.KindAdmin, Action: "rbac.keys.create", Status: 403},
		{Kind: storage.KindAdmin, Action: "rbac.roles.update", Status: 200},
		{Kind: storage.KindAdmin, Action: "rbac.roles.create", Status: 409},
		{Kind: storage.KindAdmin, Action: "rbac.bindings.create", Status: 400},
	} {
		a.tallyEvent(tl, &ev)
	}
	if tl.adminKeyRevoke != 1 || tl.adminKeyCreate != 1 || tl.adminRBAC != 1 || tl.admin != 8 {
		t.Errorf("revoke %d create %d rbac %d admin %d; want 1 1 1 8", tl.adminKeyRevoke, tl.adminKeyCreate, tl.adminRBAC, tl.admin)
	}
}

// TestAlertBodiesUseTheBodyReader: the workflow bodies answer what the
// document promises (413, 415), an empty body is still no comment (C5).
func TestAlertBodiesUseTheBodyReader(t *testing.T) {
	e := reviewEnv(t)
	f := newMatrixFixture(e)
	admin := e.key("admin", "", nil)
	target := "/api/v1/alerts/" + f.acmeAlert + "/acknowledge"
	big := `{"comment":"` + strings.Repeat("a", maxCommentBody) + `"}`
	wantProblem(t, e.send("POST", target, admin, big), http.StatusRequestEntityTooLarge, "larger than")
	req := httptest.NewRequest("POST", target, strings.NewReader("hi"))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "text/plain")
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	wantProblem(t, w, http.StatusUnsupportedMediaType, "JSON")
	if w := e.do("POST", target, admin); w.Code != 200 {
		t.Errorf("empty body: %d %s", w.Code, w.Body)
	}
	recs := e.rec.recorded()
	if last := recs[len(recs)-2]; last.Status != http.StatusUnsupportedMediaType || last.Action != "alerts.acknowledged" {
		t.Errorf("refusal recorded as %s %d", last.Action, last.Status)
	}
}

// TestOpenAPIRequestSchemasOptional: optional body fields are not
// required in the document (C6).
func TestOpenAPIRequestSchemasOptional(t *testing.T) {
	e := reviewEnv(t)
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Required   []string       `json:"required"`
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(e.get(openapiPath, "").Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"CommentBody", "VerifyRequest"} {
		s, ok := doc.Components.Schemas[name]
		if !ok || len(s.Properties) != 1 || len(s.Required) != 0 {
			t.Errorf("%s: present %v, properties %v, required %v; want one optional property", name, ok, s.Properties, s.Required)
		}
	}
}

// TestWorkspaceParamForMultiWorkspaceKeys: a key holding the permission
// in two workspaces names one on the detectors list and the subject
// export, which parse it (C1).
func TestWorkspaceParamForMultiWorkspaceKeys(t *testing.T) {
	e := reviewEnv(t)
	newMatrixFixture(e)
	tests := []struct {
		role, target string
		status       int
		has, hasNot  string
	}{
		{"auditor", "/api/v1/detectors", 400, "name one of them", ""},
		{"auditor", "/api/v1/detectors?workspace=acme", 200, "Europe/Berlin", "Asia/Tokyo"},
		{"auditor", "/api/v1/detectors?workspace=globex", 200, "Asia/Tokyo", "Europe/Berlin"},
		{"auditor", "/api/v1/detectors?workspace=initech", 403, "", ""},
		{"admin", "/api/v1/gdpr/subjects/alice/export", 400, "name one of them", ""},
		{"admin", "/api/v1/gdpr/subjects/alice/export?workspace=acme", 200, "/api/items", ""},
		{"admin", "/api/v1/gdpr/subjects/zed-outsider/export?workspace=globex", 200, "/outsider-only", ""},
	}
	for _, tt := range tests {
		secret := twoWorkspaceKey(e, tt.role)
		w := e.get(tt.target, secret)
		if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.has) || (tt.hasNot != "" && strings.Contains(w.Body.String(), tt.hasNot)) {
			t.Errorf("%s as %s: %d, want %d with %q without %q: %.300s", tt.target, tt.role, w.Code, tt.status, tt.has, tt.hasNot, w.Body)
		}
	}
}

// TestRiskProfileAlertsNeedAlertsRead: the profile (events:read) lists
// open alerts only to callers who may read alerts there (S8).
func TestRiskProfileAlertsNeedAlertsRead(t *testing.T) {
	e := reviewEnv(t)
	e.seed(&storage.Event{Time: t0.Add(-time.Hour), Kind: storage.KindHTTP, Stage: storage.StageResponseComplete, Method: "GET", Path: "/x", Status: 200, User: "alice", Workspace: "acme"})
	al := storage.Alert{ID: "alr_alice", Detector: "brute_force", Rule: "r", Status: storage.StatusOpen, Severity: storage.SeverityHigh, Workspace: "acme",
		Subject: storage.Subject{Kind: storage.SubjectUser, Value: "alice"}, FirstSeen: t0.Add(-time.Hour), LastSeen: t0.Add(-time.Hour), Count: 1}
	if _, _, err := e.store.PutAlert(al); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		role, workspace string
		alerts          int
	}{
		{"admin", "", 1}, {"auditor", "acme", 1}, {"workspace_viewer", "", 0}, {"workspace_viewer", "acme", 0},
	} {
		w := e.get("/api/v1/risk/users/alice", e.key(tt.role, tt.workspace, nil))
		var p RiskUserProfile
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || w.Code != 200 {
			t.Fatalf("%s@%s: %d %s", tt.role, tt.workspace, w.Code, w.Body)
		}
		if len(p.OpenAlerts) != tt.alerts || p.Events != 1 || strings.Contains(w.Body.String(), "alr_alice") != (tt.alerts > 0) {
			t.Errorf("%s@%s: %d open alerts, %d events; want %d and 1", tt.role, tt.workspace, len(p.OpenAlerts), p.Events, tt.alerts)
		}
	}
}

// TestScoreReportHidesTrailCountsWhenScoped: a one-workspace score says
// whether a verification ran, not how many admin calls the trail holds
// (S9).
func TestScoreReportHidesTrailCountsWhenScoped(t *testing.T) {
	e := reviewEnv(t)
	for i := range 3 {
		at := t0.Add(-time.Duration(i+1) * time.Minute)
		e.seed(&storage.Event{Time: at, Kind: storage.KindAdmin, Action: actionIntegrityVerify, Method: "POST", Path: "/api/v1/integrity/verify",
			Status: 403, Workspace: storage.AuditWorkspace})
	}
	e.seed(&storage.Event{Time: t0.Add(-10 * time.Minute), Kind: storage.KindAdmin, Action: actionIntegrityVerify, Method: "POST", Path: "/api/v1/integrity/verify",
		Status: 200, Workspace: storage.AuditWorkspace, Details: map[string]any{"ok": true}})
	for _, tt := range []struct {
		workspace string
		rows      int64
	}{{"", 4}, {"acme", 1}} {
		var rep ScoreReport
		if err := json.Unmarshal(e.get("/api/v1/reports/score", e.key("auditor", tt.workspace, nil)).Body.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		var rows int64 = -1
		for _, q := range rep.Queries {
			if q.Name == "integrity_verifications" {
				rows = q.Rows
			}
		}
		if rows != tt.rows {
			t.Errorf("workspace %q: integrity_verifications rows = %d, want %d", tt.workspace, rows, tt.rows)
		}
	}
}

// TestTokenizeReason: only whole-token occurrences of the id become the
// pseudonym (C12).
func TestTokenizeReason(t *testing.T) {
	const p = "hmac:x"
	for _, tt := range []struct{ reason, user, want string }{
		{"a asked to be erased, ticket a-1", "a", p + " asked to be erased, ticket a-1"},
		{"erase alice.", "alice", "erase " + p + "."},
		{"alice asked; alice2 did not; (alice)", "alice", p + " asked; alice2 did not; (" + p + ")"},
		{"mail from bob@example.org about bob@example.org.", "bob@example.org", "mail from " + p + " about " + p + "."},
		{"alice.smith is someone else", "alice", "alice.smith is someone else"},
		{"nothing here", "zed", "nothing here"},
	} {
		if got := tokenizeReason(tt.reason, tt.user, p); got != tt.want {
			t.Errorf("tokenizeReason(%q, %q) = %q, want %q", tt.reason, tt.user, got, tt.want)
		}
	}
}

// TestEveryRouteRefusesUnknownQuery: every authenticated route answers an
// unknown query parameter with 400 naming it, and documents 400 (C7, C4).
func TestEveryRouteRefusesUnknownQuery(t *testing.T) {
	e := reviewEnv(t)
	f := newMatrixFixture(e)
	admin := e.key("admin", "", nil)
	doc := openAPIResponses(t, e)
	for _, rt := range e.h.(*api).routes() {
		if rt.perm == "" {
			continue
		}
		c := matrixCases[rt.method+" "+rt.path]
		target := c.target(f)
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		w := e.send(rt.method, target+sep+"zz_unknown=1", admin, strings.ReplaceAll(c.body, "{key_id}", f.keyID))
		name := rt.method + " " + rt.path
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "zz_unknown") {
			t.Errorf("%s?zz_unknown=1: %d %.200s", name, w.Code, w.Body)
		}
		if !doc.documents(rt.method, rt.path, w.Code) {
			t.Errorf("%s answers %d, which its operation does not document", name, w.Code)
		}
	}
}

// openAPIDoc is the responses part of the OpenAPI document.
type openAPIDoc map[string]map[string]struct {
	Responses map[string]any `json:"responses"`
}

func openAPIResponses(t testing.TB, e *testEnv) openAPIDoc {
	t.Helper()
	var doc struct {
		Paths openAPIDoc `json:"paths"`
	}
	if err := json.Unmarshal(e.get(openapiPath, "").Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Paths
}

// documents reports whether the operation lists status (405 belongs to
// no operation: it answers methods none defines).
func (d openAPIDoc) documents(method, path string, status int) bool {
	_, ok := d[path][strings.ToLower(method)].Responses[fmt.Sprint(status)]
	return ok || status == http.StatusMethodNotAllowed
}

// TestObservedStatusesAreDocumented: refusals the handlers answer (an
// unknown role or principal, a second revocation, a bad id, a body of
// the wrong type or size) are statuses their operations document (C4).
func TestObservedStatusesAreDocumented(t *testing.T) {
	e := reviewEnv(t)
	f := newMatrixFixture(e)
	admin := e.key("admin", "", nil)
	doc := openAPIResponses(t, e)
	jsonTooBig := `{"name":"` + strings.Repeat("x", 1<<20) + `"}`
	tests := []struct {
		method, pattern, target, body string
		status                        int
	}{
		{"POST", "/api/v1/bindings", "/api/v1/bindings", `{"principal":"nope","role":"auditor"}`, 404},
		{"POST", "/api/v1/keys", "/api/v1/keys", `{"name":"x","role":"no-such-role"}`, 404},
		{"POST", "/api/v1/keys/{id}/revoke", "/api/v1/keys/" + f.keyID + "/revoke", "", 200},
		{"POST", "/api/v1/keys/{id}/revoke", "/api/v1/keys/" + f.keyID + "/revoke", "", 409},
		{"POST", "/api/v1/roles", "/api/v1/roles", `{"name":"reviewer","permissions":["events:read"]}`, 409},
		{"GET", "/api/v1/events/{id}", "/api/v1/events/NOTANID", "", 400},
		{"GET", "/api/v1/keys", "/api/v1/keys?x=1", "", 400},
		{"POST", "/api/v1/import", "/api/v1/import?source=matrix.log", "192.0.2.9 - - [01/May/2024:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1\n", 200},
		{"POST", "/api/v1/import", "/api/v1/import?source=matrix.log", "x\n", 409},
		{"POST", "/api/v1/alerts/{id}/comments", "/api/v1/alerts/" + f.acmeAlert + "/comments", jsonTooBig, 413},
		{"POST", "/api/v1/alerts/{id}/resolve", "/api/v1/alerts/" + f.acmeAlert + "/resolve", "", 200},
		{"POST", "/api/v1/alerts/{id}/resolve", "/api/v1/alerts/" + f.acmeAlert + "/resolve", "", 409},
	}
	for _, tt := range tests {
		w := e.send(tt.method, tt.target, admin, tt.body)
		if w.Code != tt.status {
			t.Errorf("%s %s: %d, want %d: %.200s", tt.method, tt.target, w.Code, tt.status, w.Body)
		}
		if !doc.documents(tt.method, tt.pattern, w.Code) {
			t.Errorf("%s %s answers %d, which its operation does not document", tt.method, tt.pattern, w.Code)
		}
	}
}
