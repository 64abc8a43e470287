package policy

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-audit/caddy-audit/storage"
)

const precedencePolicy = `
profile: production
defaults:
  level: metadata
rules:
  - name: health
    match: {paths: [/healthz]}
    level: none
  - name: login-failures
    match: {routes: [/login], status: [401, 403]}
    level: body
    tags: [auth, failed]
  - name: login
    match: {methods: [POST], routes: [/login]}
    level: headers
    failure_mode: strict
    tags: [auth]
  - name: item-delete
    match: {methods: [DELETE], routes: ["/api/items/{id}"]}
    failure_mode: strict
    tags: [delete]
  - name: items
    match: {routes: ["/api/items/{id}", "/api/items"]}
    level: headers
  - name: acme-admin
    match: {paths: ["/admin/**"], workspaces: [acme]}
    level: body
    tags: [admin]
  - name: tenant-host
    match: {hosts: ["*.tenant.example"], paths: ["/reports/*.csv"]}
    level: headers
    tags: [export]
  - name: server-errors
    match: {status: [5xx]}
    level: headers
  - name: carol
    match: {users: [carol]}
    level: body
`

// TestRulePrecedence: first match wins, in file order, then the
// profile's rules, then the defaults. The table and its decisions are in
// testdata/precedence.golden.
func TestRulePrecedence(t *testing.T) {
	eng, err := Compile(mustParse(t, precedencePolicy), testKey, Redact{})
	if err != nil {
		t.Fatal(err)
	}
	reqs := []Request{
		{Method: "GET", Host: "app", Path: "/healthz", Status: 200},
		{Method: "POST", Host: "app", Path: "/login", Status: 401},
		{Method: "POST", Host: "app", Path: "/login", Status: 200},
		{Method: "GET", Host: "app", Path: "/login", Status: 200},
		{Method: "DELETE", Host: "app", Path: "/api/items/7", Status: 204},
		{Method: "DELETE", Host: "app", Path: "/API/Items/7/", Status: 204},
		{Method: "GET", Host: "app", Path: "/api/items/7", Status: 200},
		{Method: "GET", Host: "app", Path: "/api/items", Status: 200},
		{Method: "GET", Host: "app", Path: "/api/items/7/parts", Status: 200},
		{Method: "GET", Host: "app", Path: "/admin/users", Workspace: "acme", Status: 200},
		{Method: "GET", Host: "app", Path: "/admin", Workspace: "acme", Status: 200},
		{Method: "GET", Host: "app", Path: "/admin/users", Workspace: "initech", Status: 200},
		{Method: "GET", Host: "app", Path: "/x/../admin/users", Workspace: "initech", Status: 200},
		{Method: "GET", Host: "a.tenant.example:8443", Path: "/reports/q1.csv", Status: 200},
		{Method: "GET", Host: "tenant.example", Path: "/reports/q1.csv", Status: 200},
		{Method: "GET", Host: "a.tenant.example", Path: "/reports/2024/q1.csv", Status: 200},
		{Method: "GET", Host: "app", Path: "/anything", Status: 502},
		{Method: "GET", Host: "app", Path: "/anything", User: "carol", Status: 200},
		{Method: "GET", Host: "app", Path: "/logout", Status: 200},
		{Method: "GET", Host: "app", Path: "/anything", Status: 200},
	}
	var b strings.Builder
	for _, r := range reqs {
		line := fmt.Sprintf("%s %s %s ws=%q user=%q status=%d", r.Method, r.Host, r.Path, r.Workspace, r.User, r.Status)
		d := eng.Match(&r)
		j, _ := json.Marshal(struct {
			Rule  string   `json:"rule"`
			Index int      `json:"index"`
			Level string   `json:"level"`
			Mode  string   `json:"failure_mode"`
			Tags  []string `json:"tags,omitempty"`
		}{d.Rule, d.Index, d.Level, d.FailureMode, d.Tags})
		fmt.Fprintf(&b, "%s\n\t-> %s\n", line, j)
	}
	golden(t, "precedence.golden", []byte(b.String()))
}

// Before the response, a rule on status is undecided: the plan records
// what that rule may need, and the failure mode of the first rule that
// certainly matches.
func TestPlanBeforeResponse(t *testing.T) {
	eng, err := Compile(mustParse(t, precedencePolicy), testKey, Redact{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		req                 Request
		rule, capture, mode string
		final               bool
	}{
		{Request{Method: "POST", Path: "/login", Unknown: UnknownStatus}, "login", LevelBody, FailureStrict, false},
		{Request{Method: "GET", Path: "/healthz", Unknown: UnknownStatus}, "health", LevelNone, FailureBestEffort, true},
		{Request{Method: "DELETE", Path: "/api/items/1", Unknown: UnknownStatus}, "item-delete", LevelMetadata, FailureStrict, true},
		{Request{Method: "GET", Path: "/admin/x", Unknown: UnknownStatus | UnknownWorkspace}, "production:admin", LevelBody, FailureBestEffort, false},
		{Request{Method: "GET", Path: "/other", Unknown: UnknownStatus | UnknownUser}, "", LevelBody, FailureBestEffort, false},
		{Request{Method: "GET", Path: "/other", User: "dave", Unknown: UnknownStatus}, "", LevelHeaders, FailureBestEffort, false},
	}
	for _, tt := range tests {
		p := eng.Plan(&tt.req)
		if p.Rule != tt.rule || p.Capture != tt.capture || p.FailureMode != tt.mode || p.Final != tt.final {
			t.Errorf("%s %s: rule %q capture %s mode %s final %v; want %q %s %s %v",
				tt.req.Method, tt.req.Path, p.Rule, p.Capture, p.FailureMode, p.Final, tt.rule, tt.capture, tt.mode, tt.final)
		}
		if p.Capture == LevelBody && p.CaptureBytes != DefaultBodyMaxBytes {
			t.Errorf("%s: capture bytes %d", tt.req.Path, p.CaptureBytes)
		}
	}
}

func TestGlobsAndRoutes(t *testing.T) {
	tests := []struct {
		pattern string
		route   bool
		yes, no []string
	}{
		{"/admin/**", false, []string{"/admin", "/admin/x", "/admin/x/y"}, []string{"/administrator", "/x/admin"}},
		{"/files/*.pdf", false, []string{"/files/a.pdf"}, []string{"/files/a/b.pdf", "/files/a.pdfx"}},
		{"/v?/items", false, []string{"/v1/items"}, []string{"/v10/items", "/v/items"}},
		{"/**/secret", false, []string{"/a/b/secret", "/x/secret"}, []string{"/secret/x"}},
		{"/api/items/{id}", true, []string{"/api/items/7", "/API/ITEMS/x"}, []string{"/api/items", "/api/items/7/parts"}},
		{"/files/{rest...}", true, []string{"/files", "/files/a", "/files/a/b"}, []string{"/filesx"}},
		{"/", true, []string{"/"}, []string{"/a"}},
		{"/a.b/{id}", true, []string{"/a.b/1"}, []string{"/axb/1"}},
	}
	for _, tt := range tests {
		compile := compileGlob
		if tt.route {
			compile = compileRoute
		}
		re, err := compile(tt.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tt.pattern, err)
		}
		for _, p := range tt.yes {
			if !re.MatchString(strings.ToLower(cleanPath(p))) {
				t.Errorf("%s should match %s", tt.pattern, p)
			}
		}
		for _, p := range tt.no {
			if re.MatchString(strings.ToLower(cleanPath(p))) {
				t.Errorf("%s should not match %s", tt.pattern, p)
			}
		}
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"404", 404, 404, true}, {"4xx", 400, 499, true}, {"5XX", 500, 599, true}, {"500-503", 500, 503, true},
		{"99", 0, 0, false}, {"600", 0, 0, false}, {"6xx", 0, 0, false}, {"503-500", 0, 0, false}, {"abc", 0, 0, false}, {"", 0, 0, false},
	}
	for _, tt := range tests {
		r, err := parseStatus(tt.in)
		if (err == nil) != tt.ok || tt.ok && (r.lo != tt.lo || r.hi != tt.hi) {
			t.Errorf("%q: %v %v", tt.in, r, err)
		}
	}
}

// BenchmarkDecideAndRecord is the policy's share of a request at the
// metadata level: the plan over the precedence policy's rules (or none),
// the sanitized request line and the client address.
func BenchmarkDecideAndRecord(b *testing.B) {
	r := httptest.NewRequest("GET", "http://app.example/api/items/42?page=2&token=abc", nil)
	r.Header.Set("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.sig")
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
	for _, tc := range []struct {
		name string
		p    *Policy
	}{{"no_rules", &Policy{}}, {"precedence_policy", mustParse(b, precedencePolicy)}} {
		eng, err := Compile(tc.p, testKey, Redact{})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := Request{Method: "GET", Host: "app.example", Path: "/api/items/42/parts", Unknown: UnknownStatus}
				p := eng.Plan(&req)
				var ev storage.Event
				p.RecordRequest(&ev, r)
				ev.ClientIP = p.IP("203.0.113.5")
			}
		})
	}
}
