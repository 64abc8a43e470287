package adminapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

// The authorization matrix calls every route of the API as every kind of
// principal, and checks the status and that a workspace-scoped principal
// never gets a byte of another workspace's data back. The route table is
// the list of routes, so a route added without a case here fails the test.

// matrixFixture is the data every matrix call runs against: two
// workspaces whose records carry markers (outsideMarkers) that must never
// reach a principal scoped to acme.
type matrixFixture struct {
	// acmeAlert is the id of an alert in acme, the workspace of the scoped
	// principal, so single-alert routes succeed for it too.
	acmeAlert string
	// acmeEvent is the id of an event in acme.
	acmeEvent string
	// keyID is a key other than the caller's, bindingID a binding of it to
	// the custom role "reviewer"; "unused" is a custom role nobody holds.
	keyID, bindingID string
}

// outsideMarkers appear only in globex's records.
var outsideMarkers = []string{"globex", "zed-outsider", "198.51.100.77", "/outsider-only"}

func newMatrixFixture(e *testEnv) matrixFixture {
	e.t.Helper()
	at := func(min int) time.Time { return t0.Add(time.Duration(min-120) * time.Minute) }
	acme := &storage.Event{ID: storage.NewID(at(1)), Time: at(1), Kind: storage.KindHTTP, Stage: storage.StageResponseComplete, Method: "GET", Path: "/api/items", Status: 200, User: "alice", Workspace: "acme", ClientIP: "192.0.2.1", RequestID: "req-acme", RiskScore: 45, RiskLevel: "medium", Suspicious: true}
	e.seed(
		acme,
		&storage.Event{Time: at(2), Kind: storage.KindHTTP, Stage: storage.StageResponseComplete, Method: "POST", Path: "/login", Status: 401, User: "bob", Workspace: "acme", ClientIP: "192.0.2.2", RequestID: "req-acme-2"},
		&storage.Event{Time: at(3), Kind: storage.KindHTTP, Stage: storage.StageResponseComplete, Method: "DELETE", Path: "/outsider-only/7", Status: 204, User: "zed-outsider", Workspace: "globex", ClientIP: "198.51.100.77", RequestID: "req-globex", RiskScore: 80, RiskLevel: "critical", Suspicious: true},
		&storage.Event{Time: at(4), Kind: storage.KindHTTP, Stage: storage.StageResponseComplete, Method: "GET", Path: "/outsider-only/admin", Status: 403, User: "zed-outsider", Workspace: "globex", ClientIP: "198.51.100.77", RequestID: "req-globex-2", RiskScore: 60, RiskLevel: "high", Suspicious: true},
	)
	var f matrixFixture
	f.acmeEvent = acme.ID
	for i, ws := range []string{"acme", "globex"} {
		subject := "192.0.2.1"
		if ws == "globex" {
			subject = "198.51.100.77"
		}
		al := storage.Alert{
			ID: fmt.Sprintf("alr_matrix_%d", i), Detector: "brute_force", Rule: "r", Status: storage.StatusOpen,
			Severity: storage.SeverityHigh, Workspace: ws,
			Subject:   storage.Subject{Kind: storage.SubjectIP, Value: subject},
			FirstSeen: at(1), LastSeen: at(4), Count: 3,
		}
		if _, _, err := e.store.PutAlert(al); err != nil {
			e.t.Fatal(err)
		}
		if ws == "acme" {
			f.acmeAlert = al.ID
		}
	}
	for _, name := range []string{"reviewer", "unused"} {
		if err := e.store.CreateRole(storage.Role{Name: name, Permissions: []string{permEventsRead}, CreatedAt: t0, UpdatedAt: t0}); err != nil {
			e.t.Fatal(err)
		}
	}
	_, target, err := GenerateKey()
	if err != nil {
		e.t.Fatal(err)
	}
	target.Name, target.Role = "matrix target", "auditor"
	if err := e.store.PutAPIKey(target); err != nil {
		e.t.Fatal(err)
	}
	f.keyID, f.bindingID = target.ID, "rb_matrix"
	if err := e.store.CreateBinding(storage.RoleBinding{ID: f.bindingID, Principal: target.ID, Role: "reviewer", Workspace: "acme", CreatedAt: t0}, true); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.store.Checkpoint(); err != nil {
		e.t.Fatal(err)
	}
	return f
}

// matrixCase is how the matrix calls one route.
type matrixCase struct {
	// target is the request target (path with parameters filled in, and
	// query); body is sent with "{key_id}" replaced by the fixture's key.
	target func(f matrixFixture) string
	body   string
	// want is the status an unscoped admin gets.
	want int
	// global marks a route whose answer spans every workspace: a scoped
	// principal gets 403 whatever its role.
	global bool
}

func static(target string) func(matrixFixture) string {
	return func(matrixFixture) string { return target }
}

// matrixCases has one case per route, keyed "METHOD /path pattern".
var matrixCases = map[string]matrixCase{
	"GET /healthz":                     {target: static("/healthz"), want: http.StatusOK},
	"GET /api/v1/events":               {target: static("/api/v1/events"), want: http.StatusOK},
	"GET /api/v1/events/export":        {target: static("/api/v1/events/export"), want: http.StatusOK},
	"GET /api/v1/backup":               {target: static("/api/v1/backup"), want: http.StatusOK, global: true},
	"GET /api/v1/integrity/checkpoint": {target: static("/api/v1/integrity/checkpoint"), want: http.StatusOK, global: true},
	"POST /api/v1/integrity/verify":    {target: static("/api/v1/integrity/verify"), want: http.StatusOK, global: true},
	"GET /api/v1/alerts":               {target: static("/api/v1/alerts"), want: http.StatusOK},
	"GET /api/v1/alerts/{id}":          {target: func(f matrixFixture) string { return "/api/v1/alerts/" + f.acmeAlert }, want: http.StatusOK},
	"POST /api/v1/alerts/{id}/acknowledge": {
		target: func(f matrixFixture) string { return "/api/v1/alerts/" + f.acmeAlert + "/acknowledge" }, want: http.StatusOK},
	"POST /api/v1/alerts/{id}/resolve": {
		target: func(f matrixFixture) string { return "/api/v1/alerts/" + f.acmeAlert + "/resolve" }, want: http.StatusOK},
	"POST /api/v1/alerts/{id}/false_positive": {
		target: func(f matrixFixture) string { return "/api/v1/alerts/" + f.acmeAlert + "/false_positive" }, want: http.StatusOK},
	"POST /api/v1/alerts/{id}/comments": {
		target: func(f matrixFixture) string { return "/api/v1/alerts/" + f.acmeAlert + "/comments" }, body: `{"comment":"looking"}`, want: http.StatusCreated},
	"GET /api/v1/openapi.json":                {target: static("/api/v1/openapi.json"), want: http.StatusOK},
	"GET /api/v1/workspaces":                  {target: static("/api/v1/workspaces"), want: http.StatusOK},
	"POST /api/v1/workspaces":                 {target: static("/api/v1/workspaces"), body: `{"id":"initech"}`, want: http.StatusCreated, global: true},
	"GET /api/v1/workspaces/{id}":             {target: static("/api/v1/workspaces/acme"), want: http.StatusOK},
	"PATCH /api/v1/workspaces/{id}":           {target: static("/api/v1/workspaces/acme"), body: `{"name":"Acme Corp"}`, want: http.StatusOK},
	"GET /api/v1/detectors":                   {target: static("/api/v1/detectors"), want: http.StatusOK},
	"POST /api/v1/detectors/sweep":            {target: static("/api/v1/detectors/sweep"), want: http.StatusOK, global: true},
	"GET /api/v1/events/{id}":                 {target: func(f matrixFixture) string { return "/api/v1/events/" + f.acmeEvent }, want: http.StatusOK},
	"GET /api/v1/events/stats":                {target: static("/api/v1/events/stats"), want: http.StatusOK},
	"GET /api/v1/events/timeseries":           {target: static("/api/v1/events/timeseries?interval=hour"), want: http.StatusOK},
	"GET /api/v1/events/suspicious":           {target: static("/api/v1/events/suspicious"), want: http.StatusOK},
	"GET /api/v1/me":                          {target: static("/api/v1/me"), want: http.StatusOK},
	"GET /api/v1/permissions":                 {target: static("/api/v1/permissions"), want: http.StatusOK},
	"GET /api/v1/keys":                        {target: static("/api/v1/keys"), want: http.StatusOK, global: true},
	"POST /api/v1/keys":                       {target: static("/api/v1/keys"), body: `{"name":"ci","role":"auditor","expires_in":"24h"}`, want: http.StatusCreated, global: true},
	"GET /api/v1/keys/{id}":                   {target: func(f matrixFixture) string { return "/api/v1/keys/" + f.keyID }, want: http.StatusOK, global: true},
	"POST /api/v1/keys/{id}/revoke":           {target: func(f matrixFixture) string { return "/api/v1/keys/" + f.keyID + "/revoke" }, want: http.StatusOK, global: true},
	"GET /api/v1/roles":                       {target: static("/api/v1/roles"), want: http.StatusOK, global: true},
	"POST /api/v1/roles":                      {target: static("/api/v1/roles"), body: `{"name":"triage","permissions":["alerts:read"]}`, want: http.StatusCreated, global: true},
	"GET /api/v1/roles/{name}":                {target: static("/api/v1/roles/reviewer"), want: http.StatusOK, global: true},
	"PUT /api/v1/roles/{name}":                {target: static("/api/v1/roles/reviewer"), body: `{"permissions":["events:read","alerts:read"]}`, want: http.StatusOK, global: true},
	"DELETE /api/v1/roles/{name}":             {target: static("/api/v1/roles/unused"), want: http.StatusOK, global: true},
	"GET /api/v1/bindings":                    {target: static("/api/v1/bindings"), want: http.StatusOK, global: true},
	"POST /api/v1/bindings":                   {target: static("/api/v1/bindings"), body: `{"principal":"{key_id}","role":"auditor","workspace":"acme"}`, want: http.StatusCreated, global: true},
	"DELETE /api/v1/bindings/{id}":            {target: func(f matrixFixture) string { return "/api/v1/bindings/" + f.bindingID }, want: http.StatusOK, global: true},
	"GET /api/v1/reports/soc2":                {target: static("/api/v1/reports/soc2"), want: http.StatusOK},
	"GET /api/v1/reports/gdpr":                {target: static("/api/v1/reports/gdpr"), want: http.StatusOK},
	"GET /api/v1/reports/pci":                 {target: static("/api/v1/reports/pci"), want: http.StatusOK},
	"GET /api/v1/reports/score":               {target: static("/api/v1/reports/score"), want: http.StatusOK},
	"GET /api/v1/risk/summary":                {target: static("/api/v1/risk/summary"), want: http.StatusOK},
	"GET /api/v1/risk/users/{user}":           {target: static("/api/v1/risk/users/alice"), want: http.StatusOK},
	"GET /api/v1/risk/top":                    {target: static("/api/v1/risk/top?by=ip"), want: http.StatusOK},
	"GET /api/v1/gdpr/subjects/{user}/export": {target: static("/api/v1/gdpr/subjects/alice/export"), want: http.StatusOK},
	"POST /api/v1/gdpr/subjects/{user}/erase": {target: static("/api/v1/gdpr/subjects/alice/erase"), body: `{"reason":"subject request 42"}`, want: http.StatusOK, global: true},
	"POST /api/v1/import": {target: static("/api/v1/import?source=matrix.log&format=common"),
		body: `192.0.2.9 - - [01/May/2024:10:00:00 +0000] "GET /api/items HTTP/1.1" 200 12` + "\n", want: http.StatusOK, global: true},
}

// matrixPrincipal is one kind of caller.
type matrixPrincipal struct {
	name string
	// role and workspace of the key; role "" means no key at all.
	role, workspace string
	// edit adjusts the key record (revoked, expired).
	edit func(*storage.APIKey)
	// valid is false for callers the API must not authenticate.
	valid bool
}

var matrixPrincipals = []matrixPrincipal{
	{name: "admin", role: "admin", valid: true},
	{name: "security_analyst", role: "security_analyst", valid: true},
	{name: "auditor", role: "auditor", valid: true},
	{name: "workspace_viewer", role: "workspace_viewer", valid: true},
	// The most powerful scoped principal: if it leaks, every scoped one could.
	{name: "admin scoped to acme", role: "admin", workspace: "acme", valid: true},
	{name: "revoked admin", role: "admin", edit: func(k *storage.APIKey) {
		at := t0.Add(-time.Hour)
		k.RevokedAt = &at
	}},
	{name: "expired admin", role: "admin", edit: func(k *storage.APIKey) {
		at := t0.Add(-time.Minute)
		k.ExpiresAt = &at
	}},
	{name: "no key"},
}

// matrixConfig turns on every optional part of the API, with detector
// settings for both workspaces, so scoping is tested on them too.
func matrixConfig(e *testEnv) Config {
	dcfg := detectors.Config{Workspaces: map[string]detectors.Settings{
		"acme":   {BusinessHours: detectors.BusinessHours{Timezone: "Europe/Berlin"}},
		"globex": {BusinessHours: detectors.BusinessHours{Timezone: "Asia/Tokyo"}},
	}}
	return Config{
		Store: e.store, Recorder: e.rec, Now: func() time.Time { return e.clock },
		Redactor:  policy.NewRedactor([]byte("0123456789abcdef0123456789abcdef"), nil, nil),
		Detectors: dcfg,
		Sweep:     func(context.Context) (SweepResult, error) { return SweepResult{}, nil },
		DetectorStatus: func() DetectorRuntime {
			return DetectorRuntime{Running: true, Config: dcfg.WithDefaults(), JudgedSeq: 4, EventsJudged: 4}
		},
		OnWorkspaceChanged: func(storage.Workspace) {},
	}
}

func TestAuthorizationMatrix(t *testing.T) {
	probe := newEnv(t, nil)
	routes := probe.h.(*api).routes()
	doc := openAPIResponses(t, probe)
	seen := make(map[string]bool)
	for _, rt := range routes {
		seen[rt.method+" "+rt.path] = true
	}
	for name := range matrixCases {
		if !seen[name] {
			t.Errorf("matrix case %q names no route", name)
		}
	}

	for _, rt := range routes {
		name := rt.method + " " + rt.path
		c, ok := matrixCases[name]
		if !ok {
			t.Errorf("route %s has no authorization matrix case", name)
			continue
		}
		for _, p := range matrixPrincipals {
			t.Run(name+"/"+p.name, func(t *testing.T) {
				e := newEnv(t, nil)
				e.h, _ = New(matrixConfig(e))
				f := newMatrixFixture(e)
				var secret string
				if p.role != "" {
					secret = e.key(p.role, p.workspace, p.edit)
				}
				w := e.send(rt.method, c.target(f), secret, strings.ReplaceAll(c.body, "{key_id}", f.keyID))

				want := c.want
				switch {
				case rt.perm == "":
				case !p.valid:
					want = http.StatusUnauthorized
				case rt.perm == permAnyKey:
				case !hasPermission(p.role, rt.perm):
					want = http.StatusForbidden
				case p.workspace != "" && c.global:
					want = http.StatusForbidden
				}
				if w.Code != want {
					t.Fatalf("status %d, want %d: %.300s", w.Code, want, w.Body)
				}
				if !doc.documents(rt.method, rt.path, w.Code) {
					t.Errorf("status %d is not documented for %s in the OpenAPI document", w.Code, name)
				}
				if p.workspace == "" {
					return
				}
				body := w.Body.String()
				for _, m := range outsideMarkers {
					if strings.Contains(body, m) {
						t.Fatalf("a principal scoped to %s got %q of another workspace: %.500s", p.workspace, m, body)
					}
				}
			})
		}
	}
}

// TestAuthorizationMatrixSeesOutsideData keeps the leak check honest: an
// unscoped admin does get the outside markers from the data routes, so
// their absence for the scoped principal means something. It also runs
// the leak check over every export format and aggregate, which the
// matrix (one call per route) does not.
func TestAuthorizationMatrixSeesOutsideData(t *testing.T) {
	e := newEnv(t, nil)
	e.h, _ = New(matrixConfig(e))
	newMatrixFixture(e)
	admin := e.key("admin", "", nil)
	scoped := e.key("admin", "acme", nil)
	for _, target := range []string{
		"/api/v1/events", "/api/v1/alerts", "/api/v1/workspaces", "/api/v1/detectors",
		"/api/v1/events/export", "/api/v1/events/export?format=csv", "/api/v1/events/export?format=json",
		"/api/v1/events/export?format=ocsf", "/api/v1/events/export?format=ecs",
		"/api/v1/events/stats", "/api/v1/events/suspicious", "/api/v1/risk/top?by=ip", "/api/v1/risk/top?by=user",
	} {
		body := e.get(target, admin).Body.String()
		if !slices.ContainsFunc(outsideMarkers, func(m string) bool { return strings.Contains(body, m) }) {
			t.Errorf("%s: the unscoped admin sees no outside marker: %.300s", target, body)
		}
		w := e.get(target, scoped)
		if w.Code != http.StatusOK {
			t.Errorf("%s: scoped admin got %d", target, w.Code)
		}
		for _, m := range outsideMarkers {
			if strings.Contains(w.Body.String(), m) {
				t.Errorf("%s: the scoped admin got %q: %.300s", target, m, w.Body)
			}
		}
	}
	// Asking for the outsider by name finds nothing, rather than their data.
	for _, target := range []string{"/api/v1/gdpr/subjects/zed-outsider/export", "/api/v1/risk/users/zed-outsider"} {
		w := e.get(target, scoped)
		for _, m := range outsideMarkers[2:] {
			if strings.Contains(w.Body.String(), m) {
				t.Errorf("%s: the scoped admin got %q (status %d): %.300s", target, m, w.Code, w.Body)
			}
		}
	}
}
