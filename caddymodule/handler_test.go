package caddymodule

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

// newTestHandler provisions h over a fresh pipeline without starting Caddy.
func newTestHandler(tb testing.TB, h *Handler) *Handler {
	tb.Helper()
	return newPolicyHandler(tb, h, nil)
}

// newPolicyHandler is newTestHandler with an audit policy in the app (nil
// for none). Close the pipeline early with closeTestPipeline.
func newPolicyHandler(tb testing.TB, h *Handler, pol *policy.Policy) *Handler {
	tb.Helper()
	dir := tb.TempDir()
	a := &App{DataDir: dir, QueueSize: 1 << 16, MaxBatch: 512, logger: zap.NewNop(),
		dbPath: filepath.Join(dir, "audit.db"), keyPath: filepath.Join(dir, "hmac.key"), policy: pol}
	p, err := openPipeline(a)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = closeTestPipeline(p) })
	a.usePipeline(p)
	h.app, h.logger = a, zap.NewNop()
	if err := h.setDefaults(); err != nil {
		tb.Fatal(err)
	}
	if err := h.prepare(); err != nil {
		tb.Fatal(err)
	}
	if _, _, err := h.ready(); err != nil { // what the first request would do
		tb.Fatal(err)
	}
	return h
}

var closedPipelines sync.Map // *pipeline -> struct{}

// closeTestPipeline destructs p once, however often it is called.
func closeTestPipeline(p *pipeline) error {
	if _, done := closedPipelines.LoadOrStore(p, struct{}{}); done {
		return nil
	}
	return p.Destruct()
}

// caddyRequest gives r the context Caddy's server would: a replacer and
// the client IP variable.
func caddyRequest(r *http.Request, clientIP string) *http.Request {
	repl := caddy.NewReplacer()
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: clientIP})
	return r.WithContext(ctx)
}

// httpEvents waits for n response_complete events and returns them newest
// first.
func httpEvents(t *testing.T, h *Handler, n int) []storage.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		page, err := h.app.pipe.store.Query(storage.Filter{Kind: storage.KindHTTP, Stage: storage.StageResponseComplete}, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) >= n || time.Now().After(deadline) {
			if len(page.Events) != n {
				t.Fatalf("got %d events, want %d", len(page.Events), n)
			}
			return page.Events
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHandlerRecordsOneRequest(t *testing.T) {
	h := newTestHandler(t, &Handler{Level: LevelHeaders,
		User:      &IdentitySource{Source: sourceHeader, Name: "X-User-ID"},
		Workspace: &IdentitySource{Source: sourcePathSegment, Name: "2"}})
	var upstreamID string
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		upstreamID = r.Header.Get(requestIDHeader)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Set-Cookie", "sid=SETCOOKIESECRET; Path=/")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(append(body, body...))
		return nil
	})
	req := httptest.NewRequest("POST", "http://app.example/t/acme/items?token=QUERYSECRET&page=2", strings.NewReader("hello"))
	req.Header.Set("X-User-ID", "alice")
	req.Header.Set("Authorization", "Bearer HEADERSECRET")
	req.Header.Set("X-Forwarded-For", "198.51.100.7, 10.0.0.1")
	req.Header.Set(requestIDHeader, "trace-42")
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, caddyRequest(req, "203.0.113.5"), next); err != nil {
		t.Fatal(err)
	}
	if upstreamID != "trace-42" || w.Header().Get(requestIDHeader) != "trace-42" {
		t.Fatalf("request id: upstream %q, response %q", upstreamID, w.Header().Get(requestIDHeader))
	}
	ev := httpEvents(t, h, 1)[0]
	checks := []struct {
		field     string
		got, want any
	}{
		{"status", ev.Status, 201},
		{"outcome", ev.Outcome, "success"},
		{"method", ev.Method, "POST"},
		{"path", ev.Path, "/t/acme/items"},
		{"query", ev.Query, "token=" + h.engine.Defaults().Redactor().Token("QUERYSECRET") + "&page=2"},
		{"bytes_in", ev.BytesIn, int64(5)},
		{"bytes_out", ev.BytesOut, int64(10)},
		{"client_ip", ev.ClientIP, "203.0.113.5"},
		{"forwarded_for", strings.Join(ev.ForwardedFor, ","), "198.51.100.7,10.0.0.1"},
		{"user", ev.User, "alice"},
		{"user_source", ev.UserSource, sourceHeader},
		{"user_verified", ev.UserVerified, false},
		{"workspace", ev.Workspace, "acme"},
		{"request_id", ev.RequestID, "trace-42"},
		{"authorization", ev.RequestHeaders["Authorization"][0], "Bearer " + h.engine.Defaults().Redactor().Token("HEADERSECRET")},
		{"set-cookie", ev.ResponseHeaders["Set-Cookie"][0], "sid=" + h.engine.Defaults().Redactor().Token("SETCOOKIESECRET") + "; Path=/"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.field, c.got, c.want)
		}
	}
	if ev.DurationNS <= 0 || ev.TTFBNS <= 0 || ev.TTFBNS > ev.DurationNS {
		t.Errorf("duration %d, ttfb %d", ev.DurationNS, ev.TTFBNS)
	}
}

func TestHandlerRequestID(t *testing.T) {
	h := newTestHandler(t, &Handler{})
	for _, in := range []string{"", "bad id!", strings.Repeat("a", 129), "ok\x00"} {
		req := httptest.NewRequest("GET", "/", nil)
		if in != "" {
			req.Header[requestIDHeader] = []string{in}
		}
		w := httptest.NewRecorder()
		var seen string
		_ = h.ServeHTTP(w, caddyRequest(req, "192.0.2.1"), caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			seen = r.Header.Get(requestIDHeader)
			return nil
		}))
		got := w.Header().Get(requestIDHeader)
		if got == in || len(got) != 26 || seen != got {
			t.Errorf("incoming %q: upstream got %q, response %q; want one fresh ULID", in, seen, got)
		}
	}
}

func TestHandlerErrorStatus(t *testing.T) {
	h := newTestHandler(t, &Handler{})
	boom := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		return caddyhttp.Error(http.StatusBadGateway, errors.New("dial tcp 127.0.0.1:9: connection refused"))
	})
	err := h.ServeHTTP(httptest.NewRecorder(), caddyRequest(httptest.NewRequest("GET", "/x", nil), "192.0.2.1"), boom)
	if err == nil {
		t.Fatal("the handler must pass the error on to Caddy")
	}
	ev := httpEvents(t, h, 1)[0]
	if ev.Status != 502 || ev.Outcome != "failure" || !strings.Contains(ev.UpstreamError, "connection refused") || strings.Contains(ev.UpstreamError, "{id=") {
		t.Fatalf("status %d outcome %s upstream_error %q", ev.Status, ev.Outcome, ev.UpstreamError)
	}
}

func TestHandlerIdentitySources(t *testing.T) {
	secret := "jwt-secret"
	token := signJWT("HS256", map[string]any{"sub": "carol", "org": "initech"}, func(in []byte) []byte {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(in)
		return m.Sum(nil)
	})
	tests := []struct {
		name          string
		h             Handler
		prepare       func(*http.Request)
		setAuthUser   string // what an authentication handler would set
		user, ws      string
		verified      bool
		wantUserSrc   string
		hostForWSTest string
	}{
		{"jwt verified", Handler{User: &IdentitySource{Source: sourceJWT}, Workspace: &IdentitySource{Source: sourceJWT, Name: "org"}, JWTSecret: secret},
			func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }, "", "carol", "initech", true, sourceJWT, ""},
		{"jwt unverified without key", Handler{User: &IdentitySource{Source: sourceJWT}},
			func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }, "", "carol", "", false, sourceJWT, ""},
		{"basic auth checked by caddy", Handler{User: &IdentitySource{Source: sourceBasicAuth}},
			func(r *http.Request) { r.SetBasicAuth("dave", "pw") }, "dave", "dave", "", true, sourceBasicAuth, ""},
		{"basic auth not checked", Handler{User: &IdentitySource{Source: sourceBasicAuth}},
			func(r *http.Request) { r.SetBasicAuth("dave", "pw") }, "", "dave", "", false, sourceBasicAuth, ""},
		{"default placeholder", Handler{Workspace: &IdentitySource{Source: sourceHost}},
			func(r *http.Request) {}, "erin", "erin", "tenant.example", true, sourcePlaceholder, ""},
		{"placeholder nobody set", Handler{}, func(r *http.Request) {}, "", "", "", false, "", ""},
		// A client must not write into the admin API's own workspace.
		{"reserved workspace refused", Handler{Workspace: &IdentitySource{Source: sourceHeader, Name: "X-Workspace-ID"}},
			func(r *http.Request) { r.Header.Set("X-Workspace-ID", storage.AuditWorkspace) }, "", "", "", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler(t, &tt.h)
			req := httptest.NewRequest("GET", "http://Tenant.Example:8080/", nil)
			tt.prepare(req)
			req = caddyRequest(req, "192.0.2.1")
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				if tt.setAuthUser != "" {
					r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer).Set("http.auth.user.id", tt.setAuthUser)
				}
				return nil
			})
			if err := h.ServeHTTP(httptest.NewRecorder(), req, next); err != nil {
				t.Fatal(err)
			}
			ev := httpEvents(t, h, 1)[0]
			if ev.User != tt.user || ev.Workspace != tt.ws || ev.UserVerified != tt.verified || ev.UserSource != tt.wantUserSrc {
				t.Fatalf("user %q (%s, verified %v), workspace %q", ev.User, ev.UserSource, ev.UserVerified, ev.Workspace)
			}
			if claimed, _ := ev.Details["reserved_workspace_claimed"].(string); claimed != "" && claimed != storage.AuditWorkspace {
				t.Errorf("claimed workspace kept as %q", claimed)
			}
		})
	}
}

func TestHandlerLevelNoneRecordsNothing(t *testing.T) {
	h := newTestHandler(t, &Handler{Level: LevelNone})
	called := false
	_ = h.ServeHTTP(httptest.NewRecorder(), caddyRequest(httptest.NewRequest("GET", "/", nil), "192.0.2.1"),
		caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { called = true; return nil }))
	h.app.pipe.writer.Close()
	page, _ := h.app.pipe.store.Query(storage.Filter{Kind: storage.KindHTTP}, 10, "")
	if !called || len(page.Events) != 0 {
		t.Fatalf("called %v, %d events", called, len(page.Events))
	}
}

func TestHandlerStrictRefusesWhenStoreFails(t *testing.T) {
	h := newTestHandler(t, &Handler{FailureMode: FailureStrict})
	// A closed writer stands for a store that cannot write.
	h.app.pipe.writer.Close()
	called := false
	err := h.ServeHTTP(httptest.NewRecorder(), caddyRequest(httptest.NewRequest("GET", "/", nil), "192.0.2.1"),
		caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { called = true; return nil }))
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable || called {
		t.Fatalf("err %v, upstream called %v; want 503 and no upstream call", err, called)
	}
}

func TestHandlerStrictRecordsBeforeForwarding(t *testing.T) {
	h := newTestHandler(t, &Handler{FailureMode: FailureStrict})
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		// By the time the upstream sees the request, its record is on disk.
		page, err := h.app.pipe.store.Query(storage.Filter{Stage: storage.StageRequestReceived, RequestID: r.Header.Get(requestIDHeader)}, 10, "")
		if err != nil || len(page.Events) != 1 {
			t.Errorf("request_received record before forwarding: %d, %v", len(page.Events), err)
		}
		return nil
	})
	if err := h.ServeHTTP(httptest.NewRecorder(), caddyRequest(httptest.NewRequest("GET", "/", nil), "192.0.2.1"), next); err != nil {
		t.Fatal(err)
	}
	httpEvents(t, h, 1)
}

// BenchmarkHandler measures the request-path cost of recording: building
// the event, redacting, scoring and enqueueing (the commit happens on the
// writer goroutine). "baseline" is the next handler alone.
func BenchmarkHandler(b *testing.B) {
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":42,"name":"widget"}`))
		return nil
	})
	newReq := func() *http.Request {
		r := httptest.NewRequest("GET", "http://app.example/api/items/42?page=2&token=abc", nil)
		r.Header.Set("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.sig")
		r.Header.Set("X-User-ID", "alice")
		r.Header.Set("X-Workspace-ID", "acme")
		r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
		r.Header.Set("Accept", "application/json")
		return caddyRequest(r, "203.0.113.5")
	}
	b.Run("baseline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = next.ServeHTTP(httptest.NewRecorder(), newReq())
		}
	})
	for _, level := range []string{LevelMetadata, LevelHeaders} {
		b.Run(level, func(b *testing.B) {
			h := newTestHandler(b, &Handler{Level: level,
				User:      &IdentitySource{Source: sourceHeader, Name: "X-User-ID"},
				Workspace: &IdentitySource{Source: sourceHeader, Name: "X-Workspace-ID"}})
			b.ReportAllocs()
			for b.Loop() {
				_ = h.ServeHTTP(httptest.NewRecorder(), newReq(), next)
			}
		})
	}
}

// At the body level the upstream gets the request body unchanged and as it
// streams, the client gets the response unchanged, and the event holds a
// bounded, redacted copy of both with their sizes.
func TestHandlerBodyCapture(t *testing.T) {
	h := newTestHandler(t, &Handler{Level: LevelBody})
	reqBody := `{"user":"alice","password":"BODYSECRET1","card":"4111 1111 1111 1111","items":[1,2,3]}`
	respBody := `{"token":"RESPSECRET2","ok":true}`
	var upstreamGot []byte
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		upstreamGot, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, respBody[:10])
		_ = http.NewResponseController(w).Flush() // streams through the capture
		_, _ = io.WriteString(w, respBody[10:])
		return nil
	})
	req := httptest.NewRequest("POST", "http://app.example/login", strings.NewReader(reqBody))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, caddyRequest(req, "192.0.2.1"), next); err != nil {
		t.Fatal(err)
	}
	if string(upstreamGot) != reqBody || w.Body.String() != respBody || !w.Flushed {
		t.Fatalf("upstream got %q, client got %q (flushed %v)", upstreamGot, w.Body.String(), w.Flushed)
	}
	ev := httpEvents(t, h, 1)[0]
	rb, sb := ev.RequestBody, ev.ResponseBody
	if rb == nil || sb == nil {
		t.Fatalf("bodies not recorded: %+v %+v", rb, sb)
	}
	wantReq := `{"user":"alice","password":"` + h.engine.Defaults().Redactor().Token("BODYSECRET1") + `","card":"` + h.engine.Defaults().Redactor().Token("4111111111111111") + `","items":[1,2,3]}`
	if rb.Text != wantReq || rb.Size != int64(len(reqBody)) || rb.Truncated || rb.ContentType != "application/json" {
		t.Errorf("request body %+v\nwant text %s", rb, wantReq)
	}
	if sb.Text != `{"token":"`+h.engine.Defaults().Redactor().Token("RESPSECRET2")+`","ok":true}` || sb.Size != int64(len(respBody)) {
		t.Errorf("response body %+v", sb)
	}
	if ev.Level != LevelBody || ev.RequestHeaders == nil {
		t.Errorf("level %s, request headers %v", ev.Level, ev.RequestHeaders)
	}
}

func TestHandlerBodyBounds(t *testing.T) {
	pol, err := (&policy.Policy{Defaults: policy.Defaults{Level: LevelBody,
		Body: &policy.Body{MaxBytes: 64, ContentTypes: []string{"application/json", "text/*"}}}}).Effective()
	if err != nil {
		t.Fatal(err)
	}
	h := newPolicyHandler(t, &Handler{}, pol)
	big := `{"data":"` + strings.Repeat("x", 10000) + `"}`
	tests := []struct {
		name, ct, encoding, body string
		check                    func(*storage.Body) bool
	}{
		{"truncated", "application/json", "", big, func(b *storage.Body) bool {
			return b.Truncated && b.Size == int64(len(big)) && len(b.Text) < 200 && strings.HasPrefix(b.Text, `{"data":"`+h.engine.Defaults().Redactor().Token(strings.Repeat("x", 55)))
		}},
		{"type not captured", "image/png", "", "\x89PNG....", func(b *storage.Body) bool {
			return b.Text == "" && b.Omitted == "content type not captured" && b.Size == 8
		}},
		{"compressed", "application/json", "gzip", "\x1f\x8b\x08garbage", func(b *storage.Body) bool {
			return b.Text == "" && strings.HasPrefix(b.Omitted, "encoded") && b.Size == 10
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got int
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				n, _ := io.Copy(io.Discard, r.Body)
				got = int(n)
				return nil
			})
			path := "/" + strings.ReplaceAll(tt.name, " ", "-")
			req := httptest.NewRequest("PUT", "http://app.example"+path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.ct)
			if tt.encoding != "" {
				req.Header.Set("Content-Encoding", tt.encoding)
			}
			if err := h.ServeHTTP(httptest.NewRecorder(), caddyRequest(req, "192.0.2.1"), next); err != nil {
				t.Fatal(err)
			}
			if got != len(tt.body) {
				t.Fatalf("upstream read %d of %d bytes", got, len(tt.body))
			}
			ev := eventAt(t, h, path)
			if ev.RequestBody == nil || !tt.check(ev.RequestBody) {
				t.Fatalf("recorded %+v", ev.RequestBody)
			}
		})
	}
}

// eventAt waits for the response_complete event of the request to path.
func eventAt(t *testing.T, h *Handler, path string) storage.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		page, err := h.app.pipe.store.Query(storage.Filter{Kind: storage.KindHTTP, Stage: storage.StageResponseComplete}, 1000, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Events {
			if ev.Path == path {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event for %s", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Rules decide per request: the level, the tags and the rule name in the
// event, none for a route, and a status rule decided after the response.
func TestHandlerFollowsPolicy(t *testing.T) {
	pol, err := policy.Parse("p.yaml", []byte(`
rules:
  - name: health
    match: {paths: [/healthz]}
    level: none
  - name: not-found
    match: {status: [404]}
    level: none
  - name: login
    match: {methods: [POST], routes: [/login]}
    level: headers
    failure_mode: strict
    tags: [auth]
  - name: items
    match: {routes: ["/api/items/{id}"]}
    level: body
    tags: [data]
`))
	if err != nil {
		t.Fatal(err)
	}
	eff, err := pol.Effective()
	if err != nil {
		t.Fatal(err)
	}
	h := newPolicyHandler(t, &Handler{}, eff)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if r.URL.Path == "/missing" {
			w.WriteHeader(http.StatusNotFound)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":7}`)
		return nil
	})
	for _, target := range []string{"GET /healthz", "GET /missing", "POST /login", "GET /api/items/7", "GET /other"} {
		method, path, _ := strings.Cut(target, " ")
		req := httptest.NewRequest(method, "http://app.example"+path, nil)
		if err := h.ServeHTTP(httptest.NewRecorder(), caddyRequest(req, "192.0.2.1"), next); err != nil {
			t.Fatal(err)
		}
	}
	evs := httpEvents(t, h, 3)
	got := map[string]storage.Event{}
	for _, ev := range evs {
		got[ev.Path] = ev
	}
	check := func(path, rule, level string, tags ...string) {
		t.Helper()
		ev, ok := got[path]
		if !ok {
			t.Errorf("%s not recorded", path)
			return
		}
		if ev.Rule != rule || ev.Level != level || strings.Join(ev.Tags, ",") != strings.Join(tags, ",") {
			t.Errorf("%s: rule %q level %s tags %v; want %q %s %v", path, ev.Rule, ev.Level, ev.Tags, rule, level, tags)
		}
	}
	check("/login", "login", LevelHeaders, "auth")
	check("/api/items/7", "items", LevelBody, "data")
	check("/other", "", LevelMetadata)
	if ev := got["/api/items/7"]; ev.ResponseBody == nil || ev.ResponseBody.Text != `{"id":7}` {
		t.Errorf("items response body %+v", ev.ResponseBody)
	}
	if ev := got["/other"]; ev.RequestHeaders != nil {
		t.Error("metadata level must not store headers")
	}
	received, err := h.app.pipe.store.Query(storage.Filter{Stage: storage.StageRequestReceived}, 10, "")
	if err != nil || len(received.Events) != 1 || received.Events[0].Path != "/login" || received.Events[0].Rule != "login" {
		t.Fatalf("the strict rule records the request before forwarding: %v %+v", err, received.Events)
	}
}

// With a policy file, level and failure mode belong to the policy.
func TestHandlerRejectsLevelWithPolicy(t *testing.T) {
	h := &Handler{Level: LevelHeaders, app: &App{policy: &policy.Policy{}, PolicyFile: "p.yaml"}}
	if err := h.setDefaults(); err == nil || !strings.Contains(err.Error(), "set by the audit policy file p.yaml") {
		t.Fatalf("got %v", err)
	}
}

// IP handling applies to the client address and the forwarded-for chain.
func TestHandlerIPHandling(t *testing.T) {
	for mode, want := range map[string]func(h *Handler, ev storage.Event) bool{
		policy.IPTruncate: func(_ *Handler, ev storage.Event) bool {
			return ev.ClientIP == "203.0.113.0" && ev.ForwardedFor[0] == "198.51.100.0" && ev.ClientPort == 0
		},
		policy.IPPseudonymize: func(h *Handler, ev storage.Event) bool {
			return ev.ClientIP == h.engine.Defaults().Redactor().Token("203.0.113.5") && ev.ForwardedFor[0] == h.engine.Defaults().Redactor().Token("198.51.100.7")
		},
	} {
		t.Run(mode, func(t *testing.T) {
			eff, err := (&policy.Policy{Defaults: policy.Defaults{IPHandling: mode}}).Effective()
			if err != nil {
				t.Fatal(err)
			}
			h := newPolicyHandler(t, &Handler{}, eff)
			req := httptest.NewRequest("GET", "http://app.example/", nil)
			req.Header.Set("X-Forwarded-For", "198.51.100.7")
			if err := h.ServeHTTP(httptest.NewRecorder(), caddyRequest(req, "203.0.113.5"), caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })); err != nil {
				t.Fatal(err)
			}
			if ev := httpEvents(t, h, 1)[0]; !want(h, ev) {
				t.Fatalf("client %q port %d forwarded %v", ev.ClientIP, ev.ClientPort, ev.ForwardedFor)
			}
		})
	}
}

// BenchmarkHandlerBody is the request-path cost of the body level: a POST
// with a 4 KiB JSON body and a small JSON response, at the headers level
// (body streamed and counted, not captured) and at the body level
// (captured, redacted). "baseline" is the upstream alone reading the body.
func BenchmarkHandlerBody(b *testing.B) {
	var body strings.Builder
	body.WriteString(`{"items":[`)
	for i := 0; body.Len() < 4000; i++ {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"id":%d,"name":"widget %d","price":%d.99,"owner":{"user":"user%d","token":"tok-%08d"}}`, i, i, i, i, i)
	}
	body.WriteString(`],"payment":{"card_number":"4111111111111111"}}`)
	payload := body.String()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":42,"status":"created"}`))
		return nil
	})
	newReq := func() *http.Request {
		r := httptest.NewRequest("POST", "http://app.example/api/items?page=2", strings.NewReader(payload))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.sig")
		r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
		return caddyRequest(r, "203.0.113.5")
	}
	b.Run("baseline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = next.ServeHTTP(httptest.NewRecorder(), newReq())
		}
	})
	for _, level := range []string{LevelHeaders, LevelBody} {
		b.Run(level, func(b *testing.B) {
			h := newTestHandler(b, &Handler{Level: level})
			b.ReportAllocs()
			for b.Loop() {
				_ = h.ServeHTTP(httptest.NewRecorder(), newReq(), next)
			}
		})
	}
}
