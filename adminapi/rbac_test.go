package adminapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// keyID returns the id of the key whose secret is given.
func (e *testEnv) keyID(secret string) string {
	e.t.Helper()
	k, err := e.store.APIKeyByHash(HashKey(secret))
	if err != nil {
		e.t.Fatal(err)
	}
	return k.ID
}

// bind stores a binding of role in ws for the key with this secret.
func (e *testEnv) bind(secret, role, ws string) storage.RoleBinding {
	e.t.Helper()
	b := storage.RoleBinding{ID: storage.NewID(e.clock), Principal: e.keyID(secret), Role: role, Workspace: ws, CreatedAt: e.clock}
	_, builtin := builtinRoles[role]
	if err := e.store.CreateBinding(b, !builtin); err != nil {
		e.t.Fatal(err)
	}
	return b
}

// decode decodes a JSON answer with status into v.
func decode[T any](t *testing.T, w *httptest.ResponseRecorder, status int) T {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body)
	}
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decoding %s: %v", w.Body, err)
	}
	return v
}

// lastEvent returns the last recorded audit event.
func (e *testEnv) lastEvent() *storage.Event {
	e.t.Helper()
	evs := e.rec.recorded()
	if len(evs) == 0 {
		e.t.Fatal("nothing recorded")
	}
	return evs[len(evs)-1]
}

func TestScopeResolution(t *testing.T) {
	type binding struct{ role, ws string }
	tests := []struct {
		name     string
		role, ws string
		bindings []binding
		perm     string
		want     scope
	}{
		{"admin key", "admin", "", nil, permRBACManage, scope{Global: true}},
		{"viewer in one workspace", "workspace_viewer", "acme", nil, permEventsRead, scope{Workspaces: []string{"acme"}}},
		{"viewer lacks alerts", "workspace_viewer", "acme", nil, permAlertsRead, scope{}},
		{"several workspaces", "workspace_viewer", "globex", []binding{{"workspace_viewer", "acme"}, {"auditor", "initech"}}, permEventsRead,
			scope{Workspaces: []string{"acme", "globex", "initech"}}},
		{"per permission: auditor global, admin in acme manages alerts there", "auditor", "", []binding{{"admin", "acme"}}, permAlertsManage,
			scope{Workspaces: []string{"acme"}}},
		{"per permission: auditor global still reads everywhere", "auditor", "", []binding{{"admin", "acme"}}, permAlertsRead,
			scope{Global: true}},
		{"a global binding widens a scoped key", "workspace_viewer", "acme", []binding{{"security_analyst", ""}}, permEventsRead,
			scope{Global: true}},
		{"custom role in a workspace", "workspace_viewer", "acme", []binding{{"triage", "acme"}}, permAlertsManage,
			scope{Workspaces: []string{"acme"}}},
		{"custom role as the key's own", "triage", "", nil, permAlertsRead, scope{Global: true}},
		{"unknown permission in a stored role grants nothing", "triage", "", nil, "secrets:steal", scope{}},
		{"unknown role grants nothing", "ghost", "", nil, permEventsRead, scope{}},
		{"audit workspace only when bound to it", "workspace_viewer", "acme", []binding{{"auditor", storage.AuditWorkspace}}, permEventsRead,
			scope{Workspaces: []string{storage.AuditWorkspace, "acme"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			// A custom role as a store written by hand or a newer version
			// could hold it: one permission this build does not know.
			if err := e.store.CreateRole(storage.Role{Name: "triage", Permissions: []string{permAlertsRead, permAlertsManage, "secrets:steal"}}); err != nil {
				t.Fatal(err)
			}
			secret := e.key(tt.role, tt.ws, nil)
			for _, b := range tt.bindings {
				e.bind(secret, b.role, b.ws)
			}
			k, _ := e.store.APIKeyByHash(HashKey(secret))
			acc, err := e.h.(*api).resolve(k)
			if err != nil {
				t.Fatal(err)
			}
			got := acc.perms[tt.perm]
			if got.Global != tt.want.Global || !slices.Equal(got.Workspaces, tt.want.Workspaces) {
				t.Errorf("scope of %s = %+v, want %+v", tt.perm, got, tt.want)
			}
		})
	}
}

func TestDeletedRoleGrantsNothing(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.store.CreateRole(storage.Role{Name: "reader", Permissions: []string{permEventsRead}}); err != nil {
		t.Fatal(err)
	}
	secret := e.key("workspace_viewer", "acme", nil)
	b := e.bind(secret, "reader", "")
	if w := e.get("/api/v1/events?workspace=globex", secret); w.Code != 200 {
		t.Fatalf("bound globally: status %d", w.Code)
	}
	// The binding goes, then the role: the key is back to acme only.
	if _, err := e.store.DeleteBinding(b.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteRole("reader"); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, e.get("/api/v1/events?workspace=globex", secret), http.StatusForbidden, "scoped to workspace")
	// A key whose own role vanished can do nothing.
	orphan := e.key("reader", "", nil)
	wantProblem(t, e.get("/api/v1/events", orphan), http.StatusForbidden, `role "reader" does not grant events:read`)
}

func TestScopeFilterAcrossWorkspaces(t *testing.T) {
	e := newEnv(t, nil)
	for _, ws := range []string{"acme", "globex", "initech", storage.AuditWorkspace} {
		if err := e.store.Append(&storage.Event{ID: storage.NewID(t0), Time: t0, Kind: storage.KindHTTP, Workspace: ws, Method: "GET", Path: "/" + ws, Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	two := e.key("workspace_viewer", "acme", nil)
	e.bind(two, "workspace_viewer", "globex")
	one := e.key("workspace_viewer", "acme", nil)
	global := e.key("auditor", "", nil)

	tests := []struct {
		name, secret, query string
		status              int
		detail              string
		wantWS              []string
	}{
		{"several: must name one", two, "", 400, `name one of them: acme, globex`, nil},
		{"several: names one", two, "?workspace=globex", 200, "", []string{"globex"}},
		{"several: names another", two, "?workspace=initech", 403, `scoped to workspace "acme", "globex" for events:read`, nil},
		{"several: audit workspace", two, "?workspace=_audit", 403, "scoped to workspace", nil},
		{"one: forced", one, "", 200, "", []string{"acme"}},
		{"one: audit workspace", one, "?workspace=_audit", 403, "scoped to workspace", nil},
		{"global: everything", global, "", 200, "", []string{"_audit", "acme", "globex", "initech"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.get("/api/v1/events"+tt.query, tt.secret)
			if tt.status != 200 {
				wantProblem(t, w, tt.status, tt.detail)
				return
			}
			page := decode[EventsPage](t, w, 200)
			var got []string
			for _, ev := range page.Events {
				got = append(got, ev.Workspace)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.wantWS) {
				t.Errorf("workspaces = %v, want %v", got, tt.wantWS)
			}
		})
	}
}

func TestScopePerPermissionOnAlerts(t *testing.T) {
	// Auditor everywhere plus admin in acme: reads every alert, manages
	// only acme's.
	e := newEnv(t, nil)
	for _, ws := range []string{"acme", "globex"} {
		al := storage.Alert{ID: "alr_" + ws, Detector: "brute_force", Rule: "r", Severity: storage.SeverityHigh, Workspace: ws,
			Subject: storage.Subject{Kind: storage.SubjectIP, Value: "192.0.2.9"}, FirstSeen: t0, LastSeen: t0, Count: 1}
		if _, _, err := e.store.PutAlert(al); err != nil {
			t.Fatal(err)
		}
	}
	secret := e.key("auditor", "", nil)
	e.bind(secret, "admin", "acme")
	if w := e.get("/api/v1/alerts/alr_globex", secret); w.Code != 200 {
		t.Errorf("reading globex's alert: %d", w.Code)
	}
	if w := e.send(http.MethodPost, "/api/v1/alerts/alr_acme/acknowledge", secret, ""); w.Code != 200 {
		t.Errorf("acknowledging acme's alert: %d %s", w.Code, w.Body)
	}
	wantProblem(t, e.send(http.MethodPost, "/api/v1/alerts/alr_globex/acknowledge", secret, ""), http.StatusNotFound, "no alert")
	// An RBAC grant in a workspace does not reach RBAC management.
	wantProblem(t, e.get("/api/v1/roles", secret), http.StatusForbidden, `scoped to workspace "acme" for rbac:manage`)
}

func TestRBACManagementNeedsGlobalGrant(t *testing.T) {
	e := newEnv(t, nil)
	scopedAdmin := e.key("admin", "acme", nil)
	analyst := e.key("security_analyst", "", nil)
	target := e.keyID(analyst)
	calls := []struct{ method, path, body string }{
		{"GET", "/api/v1/roles", ""},
		{"POST", "/api/v1/roles", `{"name":"x","permissions":["events:read"]}`},
		{"GET", "/api/v1/roles/admin", ""},
		{"PUT", "/api/v1/roles/x", `{"permissions":["events:read"]}`},
		{"DELETE", "/api/v1/roles/x", ""},
		{"GET", "/api/v1/bindings", ""},
		{"POST", "/api/v1/bindings", `{"principal":"` + target + `","role":"admin"}`},
		{"DELETE", "/api/v1/bindings/x", ""},
		{"GET", "/api/v1/keys", ""},
		{"POST", "/api/v1/keys", `{"name":"n","role":"admin"}`},
		{"GET", "/api/v1/keys/" + target, ""},
		{"POST", "/api/v1/keys/" + target + "/revoke", ""},
	}
	for _, c := range calls {
		wantProblem(t, e.send(c.method, c.path, scopedAdmin, c.body), http.StatusForbidden, "needs a global grant")
		wantProblem(t, e.send(c.method, c.path, analyst, c.body), http.StatusForbidden, "does not grant rbac:manage")
	}
	if ev := e.lastEvent(); ev.Action != "auth.forbidden" || ev.Status != 403 {
		t.Errorf("refusal recorded as %s %d", ev.Action, ev.Status)
	}
	if bs, _ := e.store.ListBindings(""); len(bs) != 0 {
		t.Errorf("a refused call created bindings: %+v", bs)
	}
	if ks, _ := e.store.ListAPIKeys(); len(ks) != 2 {
		t.Errorf("%d keys after refused calls, want 2", len(ks))
	}
}

func TestMe(t *testing.T) {
	e := newEnv(t, nil)
	secret := e.key("workspace_viewer", "acme", func(k *storage.APIKey) { k.Name = "ci"; k.ExpiresAt = new(t0.Add(time.Hour)) })
	b := e.bind(secret, "auditor", "globex")
	me := decode[meResponse](t, e.get("/api/v1/me", secret), 200)
	if me.ID != e.keyID(secret) || me.Name != "ci" || me.Prefix != secret[:12] || me.Role != "workspace_viewer" || me.Workspace != "acme" {
		t.Errorf("me = %+v", me)
	}
	if me.ExpiresAt == nil || !me.ExpiresAt.Equal(t0.Add(time.Hour)) || me.LastUsedAt == nil || !me.LastUsedAt.Equal(t0) {
		t.Errorf("expiry %v, last use %v", me.ExpiresAt, me.LastUsedAt)
	}
	if len(me.Bindings) != 1 || me.Bindings[0].ID != b.ID {
		t.Errorf("bindings = %+v", me.Bindings)
	}
	want := map[string][]string{
		permAlertsRead: {"globex"}, permEventsExport: {"globex"}, permEventsRead: {"acme", "globex"},
		permIntegrityVerify: {"globex"}, permReportsRead: {"globex"}, permSettingsRead: {"globex"},
	}
	if len(me.Permissions) != len(want) {
		t.Fatalf("permissions = %+v", me.Permissions)
	}
	for _, p := range me.Permissions {
		if p.Global || !slices.Equal(p.Workspaces, want[p.Permission]) {
			t.Errorf("%s: global %v in %v, want %v", p.Permission, p.Global, p.Workspaces, want[p.Permission])
		}
	}
	if ev := e.lastEvent(); ev.Action != "rbac.me" || ev.User != me.ID {
		t.Errorf("recorded %s by %s", ev.Action, ev.User)
	}
	// Any valid key, even one whose role grants nothing; no key, 401.
	nothing := e.key("ghost", "", nil)
	if me := decode[meResponse](t, e.get("/api/v1/me", nothing), 200); len(me.Permissions) != 0 || me.Bindings == nil {
		t.Errorf("role-less me = %+v", me)
	}
	wantProblem(t, e.get("/api/v1/me", ""), http.StatusUnauthorized, "API key is required")
	revoked := e.key("admin", "", func(k *storage.APIKey) { k.RevokedAt = new(t0) })
	wantProblem(t, e.get("/api/v1/me", revoked), http.StatusUnauthorized, errInvalidKey)
	expired := e.key("admin", "", func(k *storage.APIKey) { k.ExpiresAt = new(t0) })
	wantProblem(t, e.get("/api/v1/me", expired), http.StatusUnauthorized, errInvalidKey)
}

func TestPermissions(t *testing.T) {
	e := newEnv(t, nil)
	got := decode[permissionsResponse](t, e.get("/api/v1/permissions", e.key("auditor", "acme", nil)), 200)
	if len(got.Permissions) != len(builtinRoles[roleAdmin]) {
		t.Errorf("%d permissions listed, admin has %d", len(got.Permissions), len(builtinRoles[roleAdmin]))
	}
	for _, p := range got.Permissions {
		if p.Description == "" || !hasPermission(roleAdmin, p.Name) {
			t.Errorf("permission %+v: no description, or admin lacks it", p)
		}
	}
	// Every permission a built-in role grants is documented.
	for role, perms := range builtinRoles {
		for _, p := range perms {
			if !knownPermission(p) {
				t.Errorf("role %s grants %s, which /permissions does not list", role, p)
			}
		}
	}
	wantProblem(t, e.get("/api/v1/permissions", e.key("workspace_viewer", "", nil)), http.StatusForbidden, "settings:read")
}

func TestRolesEndpoints(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.key("admin", "", nil)

	w := e.send("POST", "/api/v1/roles", admin, `{"name":"triage","description":"SOC tier 1","permissions":["alerts:manage","alerts:read","alerts:read"]}`)
	created := decode[roleView](t, w, http.StatusCreated)
	if created.Name != "triage" || !slices.Equal(created.Permissions, []string{"alerts:manage", "alerts:read"}) || created.Builtin || created.CreatedAt == nil || !created.CreatedAt.Equal(t0) {
		t.Errorf("created = %+v", created)
	}
	if loc := w.Header().Get("Location"); loc != "/api/v1/roles/triage" {
		t.Errorf("Location = %q", loc)
	}
	if ev := e.lastEvent(); ev.Action != "rbac.roles.create" || ev.Details["role"] != "triage" || ev.Status != 201 {
		t.Errorf("recorded %+v", ev)
	}

	bad := []struct {
		method, path, body string
		status             int
		detail             string
	}{
		{"POST", "/api/v1/roles", `{"name":"Bad Name","permissions":["events:read"]}`, 400, `field "name"`},
		{"POST", "/api/v1/roles", `{"name":"auditor","permissions":["events:read"]}`, 409, "built-in role"},
		{"POST", "/api/v1/roles", `{"name":"triage","permissions":["events:read"]}`, 409, "already exists"},
		{"POST", "/api/v1/roles", `{"name":"x","permissions":["events:steal"]}`, 400, `unknown permission "events:steal"; known: events:read`},
		{"POST", "/api/v1/roles", `{"name":"x","permissions":[]}`, 400, "at least one permission"},
		{"POST", "/api/v1/roles", `{"name":"x","permissions":["events:read"],"extra":1}`, 400, "unknown field"},
		{"POST", "/api/v1/roles", ``, 400, "a JSON body is required"},
		{"POST", "/api/v1/roles", `{"name":"x","description":"` + strings.Repeat("d", 501) + `","permissions":["events:read"]}`, 400, `field "description"`},
		{"GET", "/api/v1/roles/nope", "", 404, `no role named "nope"`},
		{"GET", "/api/v1/roles/NOPE", "", 404, `no role named "NOPE"`},
		{"PUT", "/api/v1/roles/admin", `{"permissions":["events:read"]}`, 409, "built in and cannot change"},
		{"PUT", "/api/v1/roles/nope", `{"permissions":["events:read"]}`, 404, "no role named"},
		{"PUT", "/api/v1/roles/triage", `{"permissions":["nope"]}`, 400, "unknown permission"},
		{"DELETE", "/api/v1/roles/auditor", "", 409, "built in and cannot be deleted"},
		{"DELETE", "/api/v1/roles/nope", "", 404, "no role named"},
	}
	for _, b := range bad {
		wantProblem(t, e.send(b.method, b.path, admin, b.body), b.status, b.detail)
	}

	all := decode[rolesResponse](t, e.get("/api/v1/roles", admin), 200)
	var names []string
	for _, r := range all.Roles {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"admin", "auditor", "security_analyst", "workspace_viewer", "triage"}) || !all.Roles[0].Builtin || all.Roles[0].Description == "" {
		t.Errorf("roles = %v", names)
	}
	if got := decode[roleView](t, e.get("/api/v1/roles/auditor", admin), 200); !got.Builtin || !slices.Equal(got.Permissions, builtinRoles["auditor"]) {
		t.Errorf("auditor = %+v", got)
	}

	e.clock = t0.Add(time.Minute)
	upd := decode[roleView](t, e.send("PUT", "/api/v1/roles/triage", admin, `{"description":"tier 2","permissions":["alerts:read"]}`), 200)
	if upd.Description != "tier 2" || !slices.Equal(upd.Permissions, []string{"alerts:read"}) || !upd.UpdatedAt.Equal(t0.Add(time.Minute)) || !upd.CreatedAt.Equal(t0) {
		t.Errorf("updated = %+v", upd)
	}

	// In use: refused, naming the key and the binding.
	user := e.key("triage", "", nil)
	other := e.key("auditor", "", nil)
	b := e.bind(other, "triage", "acme")
	p := wantProblem(t, e.send("DELETE", "/api/v1/roles/triage", admin, ""), 409, "still used by")
	if !strings.Contains(p.Detail, e.keyID(user)) || !strings.Contains(p.Detail, b.ID) {
		t.Errorf("detail %q does not name key %s and binding %s", p.Detail, e.keyID(user), b.ID)
	}
	if _, err := e.store.RevokeAPIKey(e.keyID(user), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.DeleteBinding(b.ID); err != nil {
		t.Fatal(err)
	}
	gone := decode[roleView](t, e.send("DELETE", "/api/v1/roles/triage", admin, ""), 200)
	if gone.Name != "triage" {
		t.Errorf("deleted = %+v", gone)
	}
	if ev := e.lastEvent(); ev.Action != "rbac.roles.delete" || ev.Details["role"] != "triage" {
		t.Errorf("recorded %+v", ev)
	}
	wantProblem(t, e.get("/api/v1/roles/triage", admin), 404, "no role named")
}

func TestBindingsEndpoints(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.key("admin", "", nil)
	viewer := e.key("workspace_viewer", "acme", nil)
	vid := e.keyID(viewer)
	revoked := e.keyID(e.key("auditor", "", func(k *storage.APIKey) { k.RevokedAt = new(t0) }))
	if err := e.store.CreateRole(storage.Role{Name: "triage", Permissions: []string{permAlertsRead}}); err != nil {
		t.Fatal(err)
	}

	w := e.send("POST", "/api/v1/bindings", admin, `{"principal":"`+vid+`","role":"workspace_viewer","workspace":"globex"}`)
	b := decode[storage.RoleBinding](t, w, http.StatusCreated)
	if b.Principal != vid || b.Role != "workspace_viewer" || b.Workspace != "globex" || b.CreatedBy != e.keyID(admin) || !b.CreatedAt.Equal(t0) {
		t.Errorf("binding = %+v", b)
	}
	if ev := e.lastEvent(); ev.Action != "rbac.bindings.create" || ev.Details["binding_id"] != b.ID || ev.Details["principal"] != vid {
		t.Errorf("recorded %+v", ev)
	}
	// The grant takes effect at once.
	if w := e.get("/api/v1/events?workspace=globex", viewer); w.Code != 200 {
		t.Errorf("bound viewer reading globex: %d", w.Code)
	}
	e.clock = t0.Add(time.Second)
	custom := decode[storage.RoleBinding](t, e.send("POST", "/api/v1/bindings", admin, `{"principal":"`+vid+`","role":"triage","workspace":"_audit"}`), 201)

	bad := []struct {
		body   string
		status int
		detail string
	}{
		{`{"role":"admin"}`, 400, `field "principal"`},
		{`{"principal":"nobody","role":"admin"}`, 404, `field "principal": no API key with id "nobody"`},
		{`{"principal":"` + revoked + `","role":"admin"}`, 409, "is revoked"},
		{`{"principal":"` + vid + `","role":"ghost"}`, 404, `field "role": no role named "ghost"`},
		{`{"principal":"` + vid + `","role":"Bad!"}`, 400, `field "role"`},
		{`{"principal":"` + vid + `","role":"admin","workspace":"_system"}`, 400, `field "workspace": names starting with '_' are reserved`},
		{`{"principal":"` + vid + `","role":"admin","workspace":"a b"}`, 400, `field "workspace"`},
		{`{"principal":"` + vid + `","role":"workspace_viewer","workspace":"globex"}`, 409, "same principal, role and workspace"},
		{`not json`, 400, "is not valid"},
	}
	for _, c := range bad {
		wantProblem(t, e.send("POST", "/api/v1/bindings", admin, c.body), c.status, c.detail)
	}

	list := decode[bindingsResponse](t, e.get("/api/v1/bindings?principal="+vid, admin), 200)
	if len(list.Bindings) != 2 || list.Bindings[0].ID != b.ID || list.Bindings[1].ID != custom.ID {
		t.Errorf("bindings = %+v", list.Bindings)
	}
	if l := decode[bindingsResponse](t, e.get("/api/v1/bindings?role=triage", admin), 200); len(l.Bindings) != 1 || l.Bindings[0].ID != custom.ID {
		t.Errorf("by role = %+v", l.Bindings)
	}
	if l := decode[bindingsResponse](t, e.get("/api/v1/bindings?workspace=nowhere", admin), 200); l.Bindings == nil || len(l.Bindings) != 0 {
		t.Errorf("empty filter answered %s", e.get("/api/v1/bindings?workspace=nowhere", admin).Body)
	}
	wantProblem(t, e.get("/api/v1/bindings?who=x", admin), 400, `query parameter "who": unknown parameter`)

	del := decode[storage.RoleBinding](t, e.send("DELETE", "/api/v1/bindings/"+b.ID, admin, ""), 200)
	if del.ID != b.ID {
		t.Errorf("deleted = %+v", del)
	}
	if ev := e.lastEvent(); ev.Action != "rbac.bindings.delete" || ev.Details["binding_id"] != b.ID {
		t.Errorf("recorded %+v", ev)
	}
	wantProblem(t, e.send("DELETE", "/api/v1/bindings/"+b.ID, admin, ""), 404, "no role binding")
	wantProblem(t, e.get("/api/v1/events?workspace=globex", viewer), 403, "scoped to workspace")
}

func TestDeletingTheLastManagingBindingIsRefused(t *testing.T) {
	e := newEnv(t, nil)
	// The only manager holds admin through a binding, not its own role.
	secret := e.key("auditor", "", nil)
	b := e.bind(secret, "admin", "")
	wantProblem(t, e.send("DELETE", "/api/v1/bindings/"+b.ID, secret, ""), 409, "no active key that manages access")
	if _, err := e.store.GetBinding(b.ID); err != nil {
		t.Errorf("binding gone after refusal: %v", err)
	}
	// Nor may a custom role that is the last manager lose rbac:manage.
	if err := e.store.CreateRole(storage.Role{Name: "keymaster", Permissions: []string{permRBACManage}}); err != nil {
		t.Fatal(err)
	}
	km := e.key("keymaster", "", nil)
	e.bind(km, "auditor", "") // bindings that do not manage do not count
	if _, err := e.store.DeleteBinding(b.ID); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, e.send("PUT", "/api/v1/roles/keymaster", km, `{"permissions":["events:read"]}`), 409, "would leave no active key that manages access")
	if w := e.send("PUT", "/api/v1/roles/keymaster", km, `{"permissions":["rbac:manage","events:read"]}`); w.Code != 200 {
		t.Errorf("keeping rbac:manage: %d %s", w.Code, w.Body)
	}
}

// TestGrantingMoreThanHeldIsRefused: rbac:manage hands out what its
// holder has, never more (Kubernetes' escalate/bind rule), for keys,
// bindings and roles alike; admin holds everything, so admins may grant
// anything.
func TestGrantingMoreThanHeldIsRefused(t *testing.T) {
	e := newEnv(t, nil)
	for _, r := range []storage.Role{
		{Name: "keymgr", Permissions: []string{permRBACManage}},
		// A key manager who may also read events, but only in acme.
		{Name: "reader", Permissions: []string{permEventsRead}},
		{Name: "exporter", Permissions: []string{permEventsRead, permEventsExport}},
	} {
		r.CreatedAt, r.UpdatedAt = t0, t0
		if err := e.store.CreateRole(r); err != nil {
			t.Fatal(err)
		}
	}
	keymgr := e.key("keymgr", "", nil)
	e.bind(keymgr, "reader", "acme")
	self := e.keyID(keymgr)
	admin := e.key(roleAdmin, "", nil)
	other := e.keyID(e.key("workspace_viewer", "acme", nil))

	tests := []struct {
		name, secret, method, path, body string
		status                           int
		detail                           string
	}{
		{"keymgr binds itself admin", keymgr, "POST", "/api/v1/bindings", `{"principal":"` + self + `","role":"admin"}`,
			403, "does not hold globally: events:read, events:export, alerts:read"},
		{"keymgr binds itself admin in acme", keymgr, "POST", "/api/v1/bindings", `{"principal":"` + self + `","role":"admin","workspace":"acme"}`,
			403, `does not hold in workspace "acme": events:export, alerts:read`},
		{"keymgr issues an admin key", keymgr, "POST", "/api/v1/keys", `{"name":"x","role":"admin"}`,
			403, "granting role \"admin\" globally needs permissions"},
		{"keymgr widens its own role", keymgr, "PUT", "/api/v1/roles/keymgr", `{"permissions":["rbac:manage","gdpr:manage","backup:read"]}`,
			403, "does not hold globally: backup:read, gdpr:manage"},
		{"keymgr creates a role beyond itself", keymgr, "POST", "/api/v1/roles", `{"name":"big","permissions":["gdpr:manage"]}`,
			403, "does not hold globally: gdpr:manage"},
		{"a workspace grant is not a global one", keymgr, "POST", "/api/v1/bindings", `{"principal":"` + other + `","role":"reader"}`,
			403, "does not hold globally: events:read"},
		{"nor one in another workspace", keymgr, "POST", "/api/v1/keys", `{"name":"x","role":"workspace_viewer","workspace":"globex"}`,
			403, `does not hold in workspace "globex": events:read`},
		{"part of a role is not enough", keymgr, "POST", "/api/v1/bindings", `{"principal":"` + other + `","role":"exporter","workspace":"acme"}`,
			403, `in workspace "acme": events:export`},
		// What it holds, where it holds it, it may grant.
		{"keymgr grants reader in acme", keymgr, "POST", "/api/v1/bindings", `{"principal":"` + other + `","role":"reader","workspace":"acme"}`, 201, ""},
		{"keymgr issues a viewer key for acme", keymgr, "POST", "/api/v1/keys", `{"name":"v","role":"workspace_viewer","workspace":"acme"}`, 201, ""},
		{"keymgr issues a keymgr key", keymgr, "POST", "/api/v1/keys", `{"name":"k","role":"keymgr"}`, 201, ""},
		{"keymgr narrows a role", keymgr, "PUT", "/api/v1/roles/exporter", `{"permissions":["events:read"]}`, 200, ""},
		// Admins are unaffected.
		{"admin binds admin", admin, "POST", "/api/v1/bindings", `{"principal":"` + self + `","role":"admin"}`, 201, ""},
		{"admin widens a role", admin, "PUT", "/api/v1/roles/keymgr", `{"permissions":["rbac:manage","gdpr:manage"]}`, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bindings, _ := e.store.ListBindings("")
			keys, _ := e.store.ListAPIKeys()
			w := e.send(tt.method, tt.path, tt.secret, tt.body)
			if tt.status != 403 {
				if w.Code != tt.status {
					t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
				}
				return
			}
			wantProblem(t, w, 403, tt.detail)
			if ev := e.lastEvent(); ev.Action != "auth.forbidden" || ev.Status != 403 {
				t.Errorf("refusal recorded as %s %d", ev.Action, ev.Status)
			}
			bindingsAfter, _ := e.store.ListBindings("")
			keysAfter, _ := e.store.ListAPIKeys()
			if len(bindingsAfter) != len(bindings) || len(keysAfter) != len(keys) {
				t.Errorf("a refused grant changed something: %d→%d bindings, %d→%d keys", len(bindings), len(bindingsAfter), len(keys), len(keysAfter))
			}
		})
	}
	if r, _ := e.store.GetRole("keymgr"); !slices.Equal(r.Permissions, []string{permGDPRManage, permRBACManage}) {
		t.Errorf("keymgr = %v, want only the admin's change", r.Permissions)
	}
	if r, _ := e.store.GetRole("exporter"); !slices.Equal(r.Permissions, []string{permEventsRead}) {
		t.Errorf("exporter = %v", r.Permissions)
	}
}

// TestGrantWorkspaceNamesFollowCreation: the workspace rule of grants is
// the one of workspace creation (storage.ValidWorkspaceID), so a 65 to
// 128 byte workspace that can be created can be granted, and one that
// cannot be created cannot be granted.
func TestGrantWorkspaceNamesFollowCreation(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.key(roleAdmin, "", nil)
	target := e.keyID(e.key("workspace_viewer", "acme", nil))
	long := strings.Repeat("w", 100)
	if w := e.send("POST", "/api/v1/workspaces", admin, `{"id":"`+long+`"}`); w.Code != http.StatusCreated {
		t.Fatalf("creating a 100-byte workspace: %d %s", w.Code, w.Body)
	}
	for _, tt := range []struct {
		ws     string
		status int
		detail string
	}{
		{long, 201, ""},
		{storage.AuditWorkspace, 201, ""},
		{strings.Repeat("w", 129), 400, "longer than 128"},
		{"a b", 400, "only letters, digits"},
		{"a/b", 400, "only letters, digits"},
		{"_other", 400, "are reserved; only \"_audit\" may be granted"},
	} {
		w := e.send("POST", "/api/v1/bindings", admin, `{"principal":"`+target+`","role":"workspace_viewer","workspace":"`+tt.ws+`"}`)
		if tt.status == 201 {
			if b := decode[storage.RoleBinding](t, w, 201); b.Workspace != tt.ws {
				t.Errorf("bound in %q, want %q", b.Workspace, tt.ws)
			}
			continue
		}
		wantProblem(t, w, tt.status, "field \"workspace\": ")
		wantProblem(t, w, tt.status, tt.detail)
		w = e.send("POST", "/api/v1/keys", admin, `{"name":"n","role":"workspace_viewer","workspace":"`+tt.ws+`"}`)
		wantProblem(t, w, tt.status, tt.detail)
	}
}
