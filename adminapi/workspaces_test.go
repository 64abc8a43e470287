package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// workspaceHook collects what OnWorkspaceChanged is told.
type workspaceHook struct {
	mu   sync.Mutex
	seen []storage.Workspace
}

func (h *workspaceHook) changed(ws storage.Workspace) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, ws)
}

func (h *workspaceHook) all() []storage.Workspace {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]storage.Workspace(nil), h.seen...)
}

// lastAudit returns the newest audit event the API recorded.
func (e *testEnv) lastAudit() *storage.Event {
	e.t.Helper()
	evs := e.rec.recorded()
	if len(evs) == 0 {
		e.t.Fatal("nothing recorded")
	}
	return evs[len(evs)-1]
}

// workspaceFixture stores events of acme, globex and the audit workspace,
// and records for acme and quiet (which has no events).
func workspaceFixture(e *testEnv) {
	for _, ws := range []string{"acme", "globex", storage.AuditWorkspace, ""} {
		e.seed(&storage.Event{Time: t0.Add(-time.Hour), Kind: storage.KindHTTP, Workspace: ws, Path: "/x"})
	}
	for _, ws := range []storage.Workspace{
		{ID: "acme", Name: "Acme", RetentionDays: 90, CreatedAt: t0, UpdatedAt: t0},
		{ID: "quiet", CreatedAt: t0, UpdatedAt: t0},
	} {
		if err := e.store.PutWorkspace(ws); err != nil {
			e.t.Fatal(err)
		}
	}
}

func decodeAs[T any](t testing.TB, w *httptest.ResponseRecorder, status int) T {
	t.Helper()
	var v T
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decoding %T: %v; body %s", v, err, w.Body)
	}
	return v
}

func TestListWorkspaces(t *testing.T) {
	e := newEnv(t, nil)
	workspaceFixture(e)
	type row struct {
		id                string
		record, hasEvents bool
	}
	tests := []struct {
		name   string
		secret string
		want   []row
	}{
		{"global admin sees records, seen workspaces and _audit", e.key("admin", "", nil), []row{
			{storage.AuditWorkspace, false, true}, {"acme", true, true}, {"globex", false, true}, {"quiet", true, false},
		}},
		{"scoped auditor sees its own only", e.key("auditor", "acme", nil), []row{{"acme", true, true}}},
		{"scoped to a workspace seen in events", e.key("security_analyst", "globex", nil), []row{{"globex", false, true}}},
		{"scoped to an unknown workspace", e.key("auditor", "nobody", nil), []row{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeAs[workspacesList](t, e.get("/api/v1/workspaces", tt.secret), http.StatusOK)
			if len(got.Workspaces) != len(tt.want) {
				t.Fatalf("workspaces = %+v, want %+v", got.Workspaces, tt.want)
			}
			for i, w := range tt.want {
				g := got.Workspaces[i]
				if g.ID != w.id || g.HasRecord != w.record || g.HasEvents != w.hasEvents {
					t.Errorf("row %d = %+v, want %+v", i, g, w)
				}
			}
			ev := e.lastAudit()
			if ev.Action != "workspaces.list" || ev.Details["returned"] != len(tt.want) || ev.Workspace != storage.AuditWorkspace {
				t.Errorf("audit event = %s %v in %q", ev.Action, ev.Details, ev.Workspace)
			}
		})
	}
	if got := decodeAs[workspacesList](t, e.get("/api/v1/workspaces", tests[0].secret), http.StatusOK); got.Workspaces[1].RetentionDays != 90 || got.Workspaces[1].Name != "Acme" {
		t.Errorf("acme = %+v, want its settings", got.Workspaces[1])
	}
	wantProblem(t, e.get("/api/v1/workspaces", e.key("workspace_viewer", "acme", nil)), http.StatusForbidden, "settings:read")
}

func TestGetWorkspace(t *testing.T) {
	e := newEnv(t, nil)
	workspaceFixture(e)
	admin := e.key("admin", "", nil)
	acmeKey := e.key("auditor", "acme", nil)
	tests := []struct {
		name, secret, id string
		status           int
		record           bool
	}{
		{"record", admin, "acme", http.StatusOK, true},
		{"seen in events only", admin, "globex", http.StatusOK, false},
		{"record without events", admin, "quiet", http.StatusOK, true},
		{"unknown", admin, "nobody", http.StatusNotFound, false},
		{"own scope", acmeKey, "acme", http.StatusOK, true},
		{"other scope is not confirmed", acmeKey, "globex", http.StatusNotFound, false},
		{"audit workspace hidden from a scoped key", acmeKey, storage.AuditWorkspace, http.StatusNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.get("/api/v1/workspaces/"+tt.id, tt.secret)
			if tt.status != http.StatusOK {
				wantProblem(t, w, tt.status, `no workspace "`+tt.id+`"`)
				return
			}
			got := decodeAs[workspaceView](t, w, http.StatusOK)
			if got.ID != tt.id || got.HasRecord != tt.record {
				t.Errorf("got %+v", got)
			}
			if ev := e.lastAudit(); ev.Action != "workspaces.get" || ev.Details["workspace"] != tt.id {
				t.Errorf("audit event = %s %v", ev.Action, ev.Details)
			}
		})
	}
}

func TestCreateWorkspace(t *testing.T) {
	hook := &workspaceHook{}
	e := newHookedEnv(t, func(c *Config) { c.OnWorkspaceChanged = hook.changed })
	workspaceFixture(e)
	admin := e.key("admin", "", nil)
	tests := []struct {
		name, secret, body string
		status             int
		detail             string
	}{
		{"valid", admin, `{"id":"initech","name":"Initech","retention_days":400,"business_hours":{"timezone":"America/Chicago","days":["mon","tue"],"start":"07:30","end":"16:00"}}`, http.StatusCreated, ""},
		{"of a workspace seen in events", admin, `{"id":"globex"}`, http.StatusCreated, ""},
		{"exists", admin, `{"id":"acme"}`, http.StatusConflict, `workspace "acme" already exists`},
		{"reserved", admin, `{"id":"_audit"}`, http.StatusBadRequest, "reserved"},
		{"bad characters", admin, `{"id":"a/b"}`, http.StatusBadRequest, "only letters, digits"},
		{"too long", admin, `{"id":"` + strings.Repeat("a", 129) + `"}`, http.StatusBadRequest, "longer than 128"},
		{"no id", admin, `{"name":"x"}`, http.StatusBadRequest, "id is required"},
		{"no body", admin, ``, http.StatusBadRequest, "a JSON body is required"},
		{"unknown field", admin, `{"id":"x","retention":3}`, http.StatusBadRequest, `unknown field "retention"`},
		{"bad time zone", admin, `{"id":"x","business_hours":{"timezone":"Mars/Base"}}`, http.StatusBadRequest, `business_hours.timezone "Mars/Base"`},
		{"bad day and start", admin, `{"id":"x","business_hours":{"days":["mon","xyz"],"start":"9"}}`, http.StatusBadRequest, `business_hours.day "xyz"`},
		{"negative retention", admin, `{"id":"x","retention_days":-1}`, http.StatusBadRequest, "retention_days must be between 0"},
		{"hold without reason", admin, `{"id":"x","legal_hold":true}`, http.StatusBadRequest, "legal_hold_reason is required"},
		{"scoped admin", e.key("admin", "acme", nil), `{"id":"y"}`, http.StatusForbidden, "only a global principal creates workspaces"},
		{"analyst lacks the permission", e.key("security_analyst", "", nil), `{"id":"y"}`, http.StatusForbidden, "workspaces:manage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.send(http.MethodPost, "/api/v1/workspaces", tt.secret, tt.body)
			if tt.status != http.StatusCreated {
				wantProblem(t, w, tt.status, tt.detail)
				return
			}
			got := decodeAs[workspaceView](t, w, http.StatusCreated)
			if !got.HasRecord || !got.CreatedAt.Equal(t0) || w.Header().Get("Location") != "/api/v1/workspaces/"+got.ID {
				t.Errorf("created %+v, Location %q", got, w.Header().Get("Location"))
			}
			stored, err := e.store.GetWorkspace(got.ID)
			if err != nil || stored.Name != got.Name {
				t.Errorf("stored %+v, %v", stored, err)
			}
			if ev := e.lastAudit(); ev.Action != "workspaces.create" || ev.Status != http.StatusCreated || ev.Details["workspace"] != got.ID {
				t.Errorf("audit event = %s %d %v", ev.Action, ev.Status, ev.Details)
			}
		})
	}
	seen := hook.all()
	if len(seen) != 2 || seen[0].ID != "initech" || seen[0].BusinessHours.Timezone != "America/Chicago" || seen[1].ID != "globex" {
		t.Errorf("OnWorkspaceChanged saw %+v", seen)
	}
	if got, _ := e.store.GetWorkspace("initech"); got.RetentionDays != 400 || got.BusinessHours.Start != "07:30" {
		t.Errorf("stored initech = %+v", got)
	}

	req := httptest.NewRequest(http.MethodPost, "/api/v1/workspaces", strings.NewReader("id=x"))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	wantProblem(t, w, http.StatusUnsupportedMediaType, "must be JSON")
}

func TestPatchWorkspace(t *testing.T) {
	hook := &workspaceHook{}
	e := newHookedEnv(t, func(c *Config) { c.OnWorkspaceChanged = hook.changed })
	workspaceFixture(e)
	admin := e.key("admin", "", nil)
	acmeAdmin := e.key("admin", "acme", nil)
	tests := []struct {
		name, secret, id, body string
		status                 int
		detail                 string
		check                  func(t *testing.T, ws storage.Workspace)
		changes                []string // changed settings in the audit event
	}{
		{name: "retention", secret: admin, id: "acme", body: `{"retention_days":30}`, status: http.StatusOK,
			check:   func(t *testing.T, ws storage.Workspace) { wantInt(t, "retention_days", ws.RetentionDays, 30) },
			changes: []string{"retention_days"}},
		{name: "business hours", secret: admin, id: "acme", body: `{"business_hours":{"timezone":"Asia/Tokyo","start":"10:00"}}`, status: http.StatusOK,
			check: func(t *testing.T, ws storage.Workspace) {
				if ws.BusinessHours == nil || ws.BusinessHours.Timezone != "Asia/Tokyo" || ws.BusinessHours.End != "" {
					t.Errorf("business hours = %+v", ws.BusinessHours)
				}
			}, changes: []string{"business_hours"}},
		{name: "same value again changes nothing", secret: admin, id: "acme", body: `{"retention_days":30}`, status: http.StatusOK, changes: []string{}},
		{name: "empty business hours remove them", secret: admin, id: "acme", body: `{"business_hours":{}}`, status: http.StatusOK,
			check: func(t *testing.T, ws storage.Workspace) {
				if ws.BusinessHours != nil {
					t.Errorf("business hours = %+v, want none", ws.BusinessHours)
				}
			}, changes: []string{"business_hours"}},
		{name: "hold needs a reason", secret: admin, id: "acme", body: `{"legal_hold":true}`, status: http.StatusBadRequest, detail: "legal_hold_reason is required"},
		{name: "hold", secret: admin, id: "acme", body: `{"legal_hold":true,"legal_hold_reason":"case 17"}`, status: http.StatusOK,
			check: func(t *testing.T, ws storage.Workspace) {
				if !ws.LegalHold || ws.LegalHoldReason != "case 17" {
					t.Errorf("hold = %v %q", ws.LegalHold, ws.LegalHoldReason)
				}
			}, changes: []string{"legal_hold", "legal_hold_reason"}},
		{name: "lifting the hold forgets the reason", secret: admin, id: "acme", body: `{"legal_hold":false}`, status: http.StatusOK,
			check: func(t *testing.T, ws storage.Workspace) {
				if ws.LegalHold || ws.LegalHoldReason != "" {
					t.Errorf("hold = %v %q", ws.LegalHold, ws.LegalHoldReason)
				}
			}, changes: []string{"legal_hold", "legal_hold_reason"}},
		{name: "rename", secret: admin, id: "acme", body: `{"name":"Acme Corp"}`, status: http.StatusOK,
			check: func(t *testing.T, ws storage.Workspace) {
				if ws.Name != "Acme Corp" || ws.RetentionDays != 30 {
					t.Errorf("got %+v; other settings must stay", ws)
				}
			}, changes: []string{"name"}},
		{name: "bad end", secret: admin, id: "acme", body: `{"business_hours":{"end":"24:30"}}`, status: http.StatusBadRequest, detail: `business_hours.end: "24:30"`},
		{name: "too much retention", secret: admin, id: "acme", body: `{"retention_days":99999}`, status: http.StatusBadRequest, detail: "retention_days must be between 0"},
		{name: "nothing to change", secret: admin, id: "acme", body: `{}`, status: http.StatusBadRequest, detail: "nothing to change"},
		{name: "a workspace seen in events gets a record", secret: admin, id: "globex", body: `{"retention_days":7}`, status: http.StatusOK,
			check: func(t *testing.T, ws storage.Workspace) {
				if ws.RetentionDays != 7 || !ws.CreatedAt.Equal(t0) {
					t.Errorf("got %+v", ws)
				}
			}, changes: []string{"retention_days"}},
		{name: "unknown", secret: admin, id: "nobody", body: `{"retention_days":7}`, status: http.StatusNotFound, detail: `no workspace "nobody"`},
		{name: "other scope", secret: acmeAdmin, id: "globex", body: `{"retention_days":7}`, status: http.StatusNotFound, detail: `no workspace "globex"`},
		{name: "auditor", secret: e.key("auditor", "", nil), id: "acme", body: `{"retention_days":7}`, status: http.StatusForbidden, detail: "workspaces:manage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(hook.all())
			w := e.send(http.MethodPatch, "/api/v1/workspaces/"+tt.id, tt.secret, tt.body)
			if tt.status != http.StatusOK {
				wantProblem(t, w, tt.status, tt.detail)
				if len(hook.all()) != before {
					t.Error("a refused change was announced")
				}
				return
			}
			got := decodeAs[workspaceView](t, w, http.StatusOK)
			stored, err := e.store.GetWorkspace(tt.id)
			if err != nil || !got.HasRecord {
				t.Fatalf("stored: %v; answer %+v", err, got)
			}
			if tt.check != nil {
				tt.check(t, got.Workspace)
				tt.check(t, stored)
			}
			ev := e.lastAudit()
			changes, _ := ev.Details["changes"].(map[string]settingChange)
			if ev.Action != "workspaces.update" || len(changes) != len(tt.changes) {
				t.Errorf("audit event = %s %v, want changes %v", ev.Action, ev.Details, tt.changes)
			}
			for _, name := range tt.changes {
				if _, ok := changes[name]; !ok {
					t.Errorf("audit changes %v lack %s", changes, name)
				}
			}
			if announced := len(hook.all()) - before; announced != min(len(tt.changes), 1) {
				t.Errorf("OnWorkspaceChanged called %d times", announced)
			}
		})
	}
	// The audit event keeps old and new values.
	for _, ev := range e.rec.recorded() {
		if ev.Action != "workspaces.update" {
			continue
		}
		if c, ok := ev.Details["changes"].(map[string]settingChange)["retention_days"]; ok && c.New == 30 {
			if c.Old != 90 {
				t.Errorf("retention change = %+v, want old 90", c)
			}
			return
		}
	}
	t.Error("no audit event recorded the retention change")
}

func wantInt(t *testing.T, what string, got, want int) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %d, want %d", what, got, want)
	}
}

// TestPatchedRetentionApplies checks that a retention set through the API
// governs the next retention pass, which reads workspace records from the
// store each time.
func TestPatchedRetentionApplies(t *testing.T) {
	e := newEnv(t, nil)
	for _, age := range []int{1, 20, 40, 80} {
		e.seed(&storage.Event{Time: t0.AddDate(0, 0, -age), Kind: storage.KindHTTP, Workspace: "acme", Path: "/x"})
	}
	admin := e.key("admin", "", nil)
	if w := e.send(http.MethodPatch, "/api/v1/workspaces/acme", admin, `{"retention_days":30}`); w.Code != http.StatusOK {
		t.Fatalf("PATCH = %d %s", w.Code, w.Body)
	}
	res, err := e.store.ApplyRetention(context.Background(), t0, storage.RetentionPolicy{DefaultDays: 365})
	if err != nil {
		t.Fatal(err)
	}
	if res.ByWorkspace["acme"] != 2 {
		t.Errorf("purged %v, want the 2 acme events older than 30 days", res.ByWorkspace)
	}
}

// TestScopedAdminCannotUndoGlobalSettings: a principal holding
// workspaces:manage only in its workspace may not lift a legal hold,
// reword its reason, shorten retention or change business hours; nobody
// patches a reserved workspace.
func TestScopedAdminCannotUndoGlobalSettings(t *testing.T) {
	hook := &workspaceHook{}
	e := newHookedEnv(t, func(c *Config) { c.OnWorkspaceChanged = hook.changed })
	workspaceFixture(e) // acme: a record with retention 90; _audit: events only
	admin := e.key("admin", "", nil)
	acmeAdmin := e.key("admin", "acme", nil)
	if w := e.send(http.MethodPatch, "/api/v1/workspaces/acme", admin, `{"legal_hold":true,"legal_hold_reason":"litigation 7"}`); w.Code != http.StatusOK {
		t.Fatalf("setting the hold: %d %s", w.Code, w.Body)
	}
	tests := []struct {
		name, secret, id, body string
		status                 int
		detail                 string
	}{
		{"scoped lifts the hold and shortens retention", acmeAdmin, "acme", `{"legal_hold":false,"retention_days":1}`, 403,
			"lifting the legal hold, shortening retention (or returning it to the configured default) needs a global grant"},
		{"scoped lifts the hold", acmeAdmin, "acme", `{"legal_hold":false}`, 403, "lifting the legal hold needs a global grant"},
		{"scoped rewords the reason", acmeAdmin, "acme", `{"legal_hold_reason":"nothing"}`, 403, "changing the legal hold's reason"},
		{"scoped shortens retention", acmeAdmin, "acme", `{"retention_days":30}`, 403, "shortening retention"},
		{"scoped returns retention to the default", acmeAdmin, "acme", `{"retention_days":0}`, 403, "shortening retention"},
		{"scoped changes business hours", acmeAdmin, "acme", `{"business_hours":{"timezone":"Asia/Tokyo"}}`, 403, "changing business hours needs a global grant"},
		{"global admin patches _audit", admin, storage.AuditWorkspace, `{"retention_days":1}`, 403, `workspace "_audit" is reserved`},
		{"global admin holds _audit", admin, storage.AuditWorkspace, `{"legal_hold":true,"legal_hold_reason":"x"}`, 403, "reserved"},
		// What destroys nothing stays open to the tenant.
		{"scoped raises retention", acmeAdmin, "acme", `{"retention_days":400}`, 200, ""},
		{"scoped renames", acmeAdmin, "acme", `{"name":"Acme Corp"}`, 200, ""},
		{"scoped keeps the hold as it is", acmeAdmin, "acme", `{"legal_hold":true,"legal_hold_reason":"litigation 7"}`, 200, ""},
		{"global admin lifts the hold and shortens retention", admin, "acme", `{"legal_hold":false,"retention_days":1}`, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			announced := len(hook.all())
			before, _ := e.store.GetWorkspace(tt.id)
			w := e.send(http.MethodPatch, "/api/v1/workspaces/"+tt.id, tt.secret, tt.body)
			if tt.status == http.StatusOK {
				if w.Code != http.StatusOK {
					t.Fatalf("status %d: %s", w.Code, w.Body)
				}
				return
			}
			wantProblem(t, w, tt.status, tt.detail)
			after, _ := e.store.GetWorkspace(tt.id)
			if fmt.Sprint(before) != fmt.Sprint(after) || len(hook.all()) != announced {
				t.Errorf("a refused change went through: %+v -> %+v", before, after)
			}
			if ev := e.lastAudit(); ev.Action != "auth.forbidden" || ev.Status != http.StatusForbidden {
				t.Errorf("refusal recorded as %s %d", ev.Action, ev.Status)
			}
		})
	}
	got, err := e.store.GetWorkspace("acme")
	if err != nil || got.LegalHold || got.RetentionDays != 1 || got.Name != "Acme Corp" {
		t.Errorf("acme = %+v, %v", got, err)
	}
	if _, err := e.store.GetWorkspace(storage.AuditWorkspace); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("_audit got a record: %v", err)
	}
}
