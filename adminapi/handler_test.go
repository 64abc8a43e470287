package adminapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// t0 is the fixed "now" of the tests.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// testEnv is an admin API over a real store in a temporary directory.
type testEnv struct {
	t     testing.TB
	store *storage.Store
	rec   *fakeRecorder
	h     http.Handler
	clock time.Time

	verifyMu sync.Mutex
	verified []storage.VerifyReport // what OnVerify was told
}

func newEnv(t testing.TB, metrics http.Handler) *testEnv {
	t.Helper()
	dir := t.TempDir()
	store, err := storage.Open(filepath.Join(dir, "audit.db"), storage.Options{CheckpointKeyPath: filepath.Join(dir, "checkpoint.key")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	e := &testEnv{t: t, store: store, rec: &fakeRecorder{}, clock: t0}
	e.h, err = New(Config{
		Store:    store,
		Recorder: e.rec,
		Metrics:  metrics,
		Now:      func() time.Time { return e.clock },
		OnVerify: func(rep storage.VerifyReport) {
			e.verifyMu.Lock()
			defer e.verifyMu.Unlock()
			e.verified = append(e.verified, rep)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// newHookedEnv is newEnv with its handler rebuilt from a Config on the
// same store, recorder and clock that edit completes.
func newHookedEnv(t *testing.T, edit func(*Config)) *testEnv {
	t.Helper()
	e := newEnv(t, nil)
	cfg := Config{Store: e.store, Recorder: e.rec, Now: func() time.Time { return e.clock }}
	edit(&cfg)
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	return e
}

// key stores a key with role and workspace, lets edit adjust the record
// first, and returns the secret.
func (e *testEnv) key(role, workspace string, edit func(*storage.APIKey)) string {
	e.t.Helper()
	secret, rec, err := GenerateKey()
	if err != nil {
		e.t.Fatal(err)
	}
	rec.Name, rec.Role, rec.Workspace = "test", role, workspace
	if edit != nil {
		edit(&rec)
	}
	if err := e.store.PutAPIKey(rec); err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// do sends method target with secret as bearer key (none if empty).
func (e *testEnv) do(method, target, secret string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.send(method, target, secret, "")
}

// send is do with a request body.
func (e *testEnv) send(method, target, secret, body string) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

func (e *testEnv) get(target, secret string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.do(http.MethodGet, target, secret)
}

// fakeRecorder keeps what the API records.
type fakeRecorder struct {
	mu     sync.Mutex
	events []*storage.Event
}

func (f *fakeRecorder) Enqueue(ev *storage.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, ev)
	return nil
}

func (f *fakeRecorder) recorded() []*storage.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*storage.Event(nil), f.events...)
}

// wantProblem checks that w is a problem document with status and a detail
// containing detailPart.
func wantProblem(t testing.TB, w *httptest.ResponseRecorder, status int, detailPart string) problem {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json", ct)
	}
	var p problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("decoding problem: %v; body %s", err, w.Body)
	}
	if p.Status != status || p.Title != http.StatusText(status) || p.Type != "about:blank" {
		t.Errorf("problem = %+v, want status %d", p, status)
	}
	if !strings.Contains(p.Detail, detailPart) {
		t.Errorf("detail = %q, want it to mention %q", p.Detail, detailPart)
	}
	return p
}

func TestNewRequiresStore(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a store succeeded")
	}
}

func TestHealthz(t *testing.T) {
	e := newEnv(t, nil)
	w := e.get("/healthz", "")
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if got := strings.TrimSpace(w.Body.String()); got != `{"status":"ok"}` {
		t.Errorf("body = %s", got)
	}
}

func TestMetrics(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("audit_events_total 3\n"))
	})
	e := newEnv(t, metrics)
	if w := e.get("/metrics", ""); w.Code != http.StatusOK || w.Body.String() != "audit_events_total 3\n" {
		t.Errorf("GET /metrics = %d %q", w.Code, w.Body)
	}

	e = newEnv(t, nil)
	wantProblem(t, e.get("/metrics", ""), http.StatusNotFound, "no such endpoint")
}

func TestRouting(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.key("admin", "", nil)
	tests := []struct {
		method, target string
		status         int
		allow          string
	}{
		{http.MethodGet, "/", http.StatusNotFound, ""},
		{http.MethodGet, "/api/v1/nope", http.StatusNotFound, ""},
		{http.MethodGet, "/api/v1/events/", http.StatusNotFound, ""},
		{http.MethodPost, "/api/v1/events", http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodDelete, "/healthz", http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodHead, "/healthz", http.StatusOK, ""},
		{http.MethodHead, "/api/v1/events", http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			w := e.do(tt.method, tt.target, admin)
			if tt.status == http.StatusOK {
				if w.Code != http.StatusOK {
					t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
				}
				return
			}
			p := wantProblem(t, w, tt.status, "")
			if p.Instance != tt.target {
				t.Errorf("instance = %q, want %q", p.Instance, tt.target)
			}
			if got := w.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
		})
	}
}

// hasPermission reports whether the built-in role grants perm.
func hasPermission(role, perm string) bool {
	return slices.Contains(builtinRoles[role], perm)
}
