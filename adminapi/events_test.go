package adminapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

// seed appends events, giving an id to those without one.
func (e *testEnv) seed(events ...*storage.Event) {
	e.t.Helper()
	for _, ev := range events {
		if ev.ID == "" {
			ev.ID = storage.NewID(ev.Time)
		}
	}
	if err := e.store.Append(events...); err != nil {
		e.t.Fatal(err)
	}
}

// decodePage decodes a 200 events answer.
func decodePage(t testing.TB, w *httptest.ResponseRecorder) EventsPage {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
	}
	var p EventsPage
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("decoding page: %v", err)
	}
	return p
}

func ids(events []storage.Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.ID
	}
	return out
}

// filterFixture is a small trail with one distinguishing value per event.
func filterFixture(e *testEnv) {
	at := func(min int) time.Time { return t0.Add(time.Duration(min-60) * time.Minute) }
	e.seed(
		&storage.Event{ID: "a", Time: at(1), Kind: storage.KindHTTP, Stage: storage.StageResponseComplete, Method: "GET", Path: "/api/items", Status: 200, User: "alice", Workspace: "acme", ClientIP: "192.0.2.1", RequestID: "req-a"},
		&storage.Event{ID: "b", Time: at(2), Kind: storage.KindHTTP, Stage: storage.StageResponseComplete, Method: "POST", Path: "/login", Status: 401, User: "bob", Workspace: "acme", ClientIP: "192.0.2.2", RequestID: "req-b"},
		&storage.Event{ID: "c", Time: at(3), Kind: storage.KindHTTP, Stage: storage.StageRequestReceived, Method: "DELETE", Path: "/api/items/7", Status: 204, User: "alice", Workspace: "globex", ClientIP: "2001:db8::1", RequestID: "req-c"},
		&storage.Event{ID: "d", Time: at(4), Kind: storage.KindHTTP, Stage: storage.StageResponseComplete, Method: "GET", Path: "/admin/users", Status: 403, User: "carol", Workspace: "globex", ClientIP: "192.0.2.1", RequestID: "req-d"},
		&storage.Event{ID: "e", Time: at(5), Kind: storage.KindLifecycle, Action: "audit_started"},
	)
}

func TestEventsFilters(t *testing.T) {
	e := newEnv(t, nil)
	filterFixture(e)
	admin := e.key("admin", "", nil)
	ts := func(min int) string {
		return url.QueryEscape(t0.Add(time.Duration(min-60) * time.Minute).Format(time.RFC3339))
	}

	tests := []struct {
		query string
		want  []string // ids, newest first
	}{
		{"", []string{"e", "d", "c", "b", "a"}},
		{"user=alice", []string{"c", "a"}},
		{"workspace=acme", []string{"b", "a"}},
		{"status=403", []string{"d"}},
		{"method=get", []string{"d", "a"}},
		{"method=DELETE", []string{"c"}},
		{"path_prefix=/api/", []string{"c", "a"}},
		{"path_prefix=/api/items/", []string{"c"}},
		{"client_ip=192.0.2.1", []string{"d", "a"}},
		{"client_ip=2001:DB8:0::1", []string{"c"}}, // matched in canonical form
		{"kind=lifecycle", []string{"e"}},
		{"stage=request_received", []string{"c"}},
		{"request_id=req-b", []string{"b"}},
		{"from=" + ts(2), []string{"e", "d", "c", "b"}}, // from is inclusive
		{"to=" + ts(2), []string{"a"}},                  // to is exclusive
		{"from=" + ts(2) + "&to=" + ts(4), []string{"c", "b"}},
		{"to=9999-12-31T23:59:59Z", []string{"e", "d", "c", "b", "a"}}, // beyond the index range
		{"from=0001-01-01T00:00:00Z", []string{"e", "d", "c", "b", "a"}},
		{"from=2300-01-01T00:00:00Z", nil},
		{"user=alice&workspace=globex", []string{"c"}},
		{"user=&workspace=", []string{"e", "d", "c", "b", "a"}}, // empty means unset
		{"user=nobody", nil},
		{"limit=2", []string{"e", "d"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			w := e.get("/api/v1/events?"+tt.query, admin)
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			p := decodePage(t, w)
			if got := ids(p.Events); !slices.Equal(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEventsEmptyIsArray(t *testing.T) {
	e := newEnv(t, nil)
	w := e.get("/api/v1/events", e.key("admin", "", nil))
	if got := strings.TrimSpace(w.Body.String()); got != `{"events":[]}` {
		t.Errorf("body = %s, want {\"events\":[]}", got)
	}
}

func TestEventsPagination(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.key("admin", "", nil)
	const n = 103
	var want []string
	for i := range n {
		// Groups of three share a timestamp, so pages must also cut inside
		// runs of equal times.
		ev := &storage.Event{ID: fmt.Sprintf("ev-%03d", i), Time: t0.Add(-time.Hour + time.Duration(i/3)*time.Second), Kind: storage.KindHTTP, Workspace: []string{"acme", "globex"}[i%2]}
		e.seed(ev)
		want = append(want, ev.ID)
	}
	slices.Reverse(want) // newest first

	for _, limit := range []int{1, 7, 50, 103, 1000} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var got []string
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > n+1 {
					t.Fatal("pagination does not end")
				}
				q := url.Values{"limit": {fmt.Sprint(limit)}}
				if cursor != "" {
					q.Set("cursor", cursor)
				}
				p := decodePage(t, e.get("/api/v1/events?"+q.Encode(), admin))
				if len(p.Events) > limit {
					t.Fatalf("page of %d events, limit %d", len(p.Events), limit)
				}
				got = append(got, ids(p.Events)...)
				if p.NextCursor == "" {
					break
				}
				cursor = p.NextCursor
			}
			if !slices.Equal(got, want) {
				t.Errorf("pages returned %d events %v\nwant %d %v", len(got), got, len(want), want)
			}
		})
	}

	t.Run("with a filter", func(t *testing.T) {
		var got []string
		cursor := ""
		for {
			p := decodePage(t, e.get("/api/v1/events?workspace=globex&limit=10&cursor="+cursor, admin))
			got = append(got, ids(p.Events)...)
			if cursor = p.NextCursor; cursor == "" {
				break
			}
		}
		var wantGlobex []string
		for _, id := range want {
			var i int
			_, _ = fmt.Sscanf(id, "ev-%d", &i)
			if i%2 == 1 {
				wantGlobex = append(wantGlobex, id)
			}
		}
		if !slices.Equal(got, wantGlobex) {
			t.Errorf("got %v\nwant %v", got, wantGlobex)
		}
	})
}

func TestEventsBadParams(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.key("admin", "", nil)
	tests := []struct {
		query, param string
	}{
		{"from=yesterday", `"from"`},
		{"from=2025-03-14", `"from"`},
		{"to=2025-13-01T00:00:00Z", `"to"`},
		{"from=2025-03-14T12:00:00Z&to=2025-03-14T11:00:00Z", `"from"`},
		{"status=abc", `"status"`},
		{"status=99", `"status"`},
		{"status=600", `"status"`},
		{"limit=0", `"limit"`},
		{"limit=-5", `"limit"`},
		{"limit=1001", `"limit"`},
		{"limit=ten", `"limit"`},
		{"client_ip=not-an-ip", `"client_ip"`},
		{"client_ip=192.0.2.1:443", `"client_ip"`},
		{"method=GE%20T", `"method"`},
		{"path_prefix=api", `"path_prefix"`},
		{"kind=weird", `"kind"`},
		{"stage=done", `"stage"`},
		{"cursor=bogus", `cursor`},
		{"cursor=AQAAAAAAAAAAAAAAAAAAAA", `cursor`}, // decodes, wrong length
		{"usr=alice", `"usr"`},
		{"user=alice&user=bob", `"user"`},
		{"user=%zz", "malformed query string"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			wantProblem(t, e.get("/api/v1/events?"+tt.query, admin), http.StatusBadRequest, tt.param)
		})
	}
	// Refused calls are audited too, as what they were: a 400 on the route.
	got := e.rec.recorded()
	if len(got) != len(tests) {
		t.Errorf("%d audit events recorded for %d refused requests", len(got), len(tests))
	}
	for _, ev := range got {
		if ev.Action != "api.call" || ev.Status != http.StatusBadRequest || ev.Details["route"] != "GET /api/v1/events" || ev.User == "" {
			t.Errorf("refused call recorded as %s %d %v by %q", ev.Action, ev.Status, ev.Details, ev.User)
		}
	}
}

func TestEventsWorkspaceScope(t *testing.T) {
	e := newEnv(t, nil)
	filterFixture(e)
	scoped := e.key("workspace_viewer", "acme", nil)

	p := decodePage(t, e.get("/api/v1/events", scoped))
	if got := ids(p.Events); !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("scoped key sees %v, want [b a]", got)
	}
	p = decodePage(t, e.get("/api/v1/events?workspace=acme&user=alice", scoped))
	if got := ids(p.Events); !slices.Equal(got, []string{"a"}) {
		t.Errorf("scoped key with own workspace sees %v, want [a]", got)
	}
	w := e.get("/api/v1/events?workspace=globex", scoped)
	p403 := wantProblem(t, w, http.StatusForbidden, "scoped to workspace")
	if strings.Contains(w.Body.String(), "carol") || strings.Contains(p403.Detail, "req-") {
		t.Errorf("403 leaks events: %s", w.Body)
	}
	ev := e.rec.recorded()
	if len(ev) != 3 || ev[0].Workspace != storage.AuditWorkspace || ev[0].Details["principal_workspace"] != "acme" {
		t.Fatalf("recorded %d events, want 2 searches and 1 refusal in the audit workspace by acme's key", len(ev))
	}
	if denied := ev[2]; denied.Action != "auth.forbidden" || denied.Status != http.StatusForbidden || denied.Outcome != "failure" || denied.Details["principal_workspace"] != "acme" {
		t.Errorf("refusal recorded as %+v", denied)
	}
}

func TestEventsRecordsAuditEvent(t *testing.T) {
	redactor := policy.NewRedactor([]byte("0123456789abcdef0123456789abcdef"), nil, nil)
	e := newHookedEnv(t, func(c *Config) { c.Redactor = redactor })
	filterFixture(e)
	var keyID string
	secret := e.key("auditor", "", func(k *storage.APIKey) { keyID = k.ID })
	// The searched user is a data subject: the trail keeps its token.
	alice := redactor.Token("alice")

	req := httptest.NewRequest(http.MethodGet, "/api/v1/events?user=alice&status=200&limit=5", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	req.RemoteAddr = "198.51.100.7:54321"
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	decodePage(t, w)

	got := e.rec.recorded()
	if len(got) != 1 {
		t.Fatalf("recorded %d events, want 1", len(got))
	}
	ev := got[0]
	checks := []struct {
		field     string
		got, want any
	}{
		{"kind", ev.Kind, storage.KindAdmin},
		{"action", ev.Action, "events.search"},
		{"time", ev.Time, t0},
		{"user", ev.User, keyID},
		{"user_source", ev.UserSource, "api_key"},
		{"user_verified", ev.UserVerified, true},
		{"workspace", ev.Workspace, storage.AuditWorkspace},
		{"client_ip", ev.ClientIP, "198.51.100.7"},
		{"client_port", ev.ClientPort, 54321},
		{"method", ev.Method, http.MethodGet},
		{"path", ev.Path, "/api/v1/events"},
		{"query", ev.Query, "limit=5&status=200&user=" + url.QueryEscape(alice)},
		{"status", ev.Status, 200},
		{"outcome", ev.Outcome, "success"},
		{"returned", ev.Details["returned"], 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.field, c.got, c.want)
		}
	}
	if ev.ID == "" || ev.Time.Location() != time.UTC {
		t.Errorf("id %q, time %v: want an id and UTC", ev.ID, ev.Time)
	}
	filter, _ := ev.Details["filter"].(map[string]any)
	if filter["user"] != alice || filter["status"] != 200 || len(filter) != 2 {
		t.Errorf("details.filter = %v, want user %s and status 200", filter, alice)
	}
	if strings.Contains(fmt.Sprint(ev), secret) {
		t.Error("audit event contains the API key")
	}
}

func TestEventsWithoutRecorder(t *testing.T) {
	store, err := storage.Open(filepath.Join(t.TempDir(), "audit.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	h, err := New(Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	secret, rec, _ := GenerateKey()
	rec.Role = "admin"
	if err := store.PutAPIKey(rec); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d; body %s", w.Code, w.Body)
	}
}

func FuzzEventsQuery(f *testing.F) {
	e := newEnv(f, nil)
	filterFixture(e)
	admin := e.key("admin", "", nil)
	scoped := e.key("workspace_viewer", "acme", nil)
	for _, seed := range []string{
		"", "user=alice", "workspace=globex", "status=200&method=GET",
		"from=2025-03-14T00:00:00Z&to=2025-03-15T00:00:00Z", "limit=1&cursor=AQ",
		"client_ip=::1", "path_prefix=/", "kind=http&stage=request_received",
		"%", "a=1&a=2", "limit=99999999999999999999", "to=0000-01-01T00:00:00Z",
		"cursor=AQAAAAAAAAAAAAAAAAAAAAAA", "from=9999-12-31T23:59:59.999999999Z",
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, rawQuery string, useScoped bool) {
		secret := admin
		if useScoped {
			secret = scoped
		}
		req := httptest.NewRequest(http.MethodGet, "/api/v1/events", nil)
		req.URL.RawQuery = rawQuery
		req.Header.Set("Authorization", "Bearer "+secret)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK:
			var p EventsPage
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Events == nil {
				t.Fatalf("200 with a bad body (%v): %s", err, w.Body)
			}
			for _, ev := range p.Events {
				if useScoped && ev.Workspace != "acme" {
					t.Fatalf("scoped key read workspace %q", ev.Workspace)
				}
			}
		case http.StatusBadRequest, http.StatusForbidden:
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("status %d with Content-Type %q", w.Code, ct)
			}
		default:
			t.Fatalf("query %q: status %d; body %s", rawQuery, w.Code, w.Body)
		}
	})
}

func TestEventsRiskAndClassFilters(t *testing.T) {
	e := newEnv(t, nil)
	e.seed(
		&storage.Event{ID: "ok", Time: t0, Kind: storage.KindHTTP, Status: 200, RiskLevel: "low"},
		&storage.Event{ID: "denied", Time: t0.Add(time.Second), Kind: storage.KindHTTP, Status: 403, RiskScore: 45, RiskLevel: "high", Suspicious: true},
		&storage.Event{ID: "missing", Time: t0.Add(2 * time.Second), Kind: storage.KindHTTP, Status: 404, RiskScore: 10, RiskLevel: "low"},
	)
	admin := e.key("admin", "", nil)
	for query, want := range map[string][]string{
		"status_class=4":   {"missing", "denied"},
		"status_class=2xx": {"ok"},
		"suspicious=true":  {"denied"},
		"risk_level=high":  {"denied"},
		"min_risk=10":      {"missing", "denied"},
	} {
		if got := ids(decodePage(t, e.get("/api/v1/events?"+query, admin)).Events); !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", query, got, want)
		}
	}
	for _, bad := range []string{"status_class=9", "risk_level=severe", "min_risk=101", "suspicious=maybe"} {
		wantProblem(t, e.get("/api/v1/events?"+bad, admin), http.StatusBadRequest, strings.SplitN(bad, "=", 2)[0])
	}
}

// TestAuditKeepsSubjectsTokenized: whatever the outcome, the admin trail
// names a looked-up data subject by token only, so an erasure of the
// subject's events is not undone by the record of who looked them up.
func TestAuditKeepsSubjectsTokenized(t *testing.T) {
	redactor := policy.NewRedactor([]byte("0123456789abcdef0123456789abcdef"), nil, nil)
	e := newHookedEnv(t, func(c *Config) { c.Redactor = redactor })
	filterFixture(e)
	admin, auditor := e.key("admin", "", nil), e.key("auditor", "", nil)
	for _, c := range []struct {
		target, secret string
		status         int
	}{
		{"/api/v1/risk/users/alice", admin, http.StatusOK},
		{"/api/v1/gdpr/subjects/alice/export", auditor, http.StatusForbidden},
		{"/api/v1/gdpr/subjects/alice/export?format=xml", admin, http.StatusBadRequest},
		{"/api/v1/events/export?user=alice&format=csv", admin, http.StatusOK},
		{"/api/v1/events?user=alice&limit=0", admin, http.StatusBadRequest},
	} {
		if w := e.get(c.target, c.secret); w.Code != c.status {
			t.Fatalf("%s: status %d, want %d: %s", c.target, w.Code, c.status, w.Body)
		}
	}
	got := e.rec.recorded()
	if len(got) != 5 {
		t.Fatalf("recorded %d events, want 5", len(got))
	}
	token := redactor.Token("alice")
	for _, ev := range got {
		if s := fmt.Sprint(ev.Path, ev.Query, ev.Details); strings.Contains(s, "alice") {
			t.Errorf("%s recorded the subject in clear: %s", ev.Action, s)
		} else if !strings.Contains(s, token) && !strings.Contains(s, url.QueryEscape(token)) {
			t.Errorf("%s recorded no token of the subject: %s", ev.Action, s)
		}
	}
}
