package adminapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

func TestGenerateKey(t *testing.T) {
	secret, rec, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(secret, "cka_"))
	if !strings.HasPrefix(secret, "cka_") || err != nil || len(raw) != 32 {
		t.Errorf("secret %q is not cka_ + base64url of 32 bytes (%v)", secret, err)
	}
	if rec.Prefix != secret[:12] || rec.Hash != HashKey(secret) || rec.ID == "" || rec.CreatedAt.IsZero() {
		t.Errorf("record = %+v", rec)
	}
	if strings.Contains(rec.Hash, secret[4:]) {
		t.Error("record holds the secret")
	}
	other, _, _ := GenerateKey()
	if other == secret {
		t.Error("two keys are equal")
	}
}

func TestHashKey(t *testing.T) {
	// SHA-256("abc") from FIPS 180-2.
	if got := HashKey("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashKey(abc) = %s", got)
	}
}

// readKeyFile returns the secret in a bootstrap file and checks its mode.
func readKeyFile(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
		t.Errorf("file %q: want the secret and one newline", s)
	}
	return strings.TrimSuffix(s, "\n")
}

func TestBootstrap(t *testing.T) {
	e := newEnv(t, nil)
	path := filepath.Join(t.TempDir(), "data", "bootstrap-admin.key")

	created, err := Bootstrap(e.store, path)
	if err != nil || !created {
		t.Fatalf("first Bootstrap = %v, %v; want created", created, err)
	}
	secret := readKeyFile(t, path)
	if w := e.get("/api/v1/events", secret); w.Code != http.StatusOK {
		t.Fatalf("bootstrap key answered %d: %s", w.Code, w.Body)
	}
	key, err := e.store.APIKeyByHash(HashKey(secret))
	if err != nil || key.Role != "admin" || key.Name != "bootstrap admin" || key.Workspace != "" {
		t.Errorf("stored key = %+v, %v", key, err)
	}

	created, err = Bootstrap(e.store, path)
	if err != nil || created {
		t.Fatalf("second Bootstrap = %v, %v; want nothing done", created, err)
	}
	if again := readKeyFile(t, path); again != secret {
		t.Error("second Bootstrap changed the file")
	}
	if n, _ := e.store.CountAPIKeys(); n != 1 {
		t.Errorf("%d keys after two bootstraps, want 1", n)
	}
}

func TestBootstrapReplacesStaleFile(t *testing.T) {
	// A crash after writing the file but before committing the key leaves
	// a file whose secret works nowhere; the next start must replace it.
	e := newEnv(t, nil)
	path := filepath.Join(t.TempDir(), "bootstrap-admin.key")
	if err := os.WriteFile(path, []byte("cka_stale\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	created, err := Bootstrap(e.store, path)
	if err != nil || !created {
		t.Fatalf("Bootstrap = %v, %v; want created", created, err)
	}
	secret := readKeyFile(t, path)
	if secret == "cka_stale" {
		t.Fatal("stale file kept")
	}
	if w := e.get("/api/v1/events", secret); w.Code != http.StatusOK {
		t.Fatalf("replacement key answered %d", w.Code)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key file (no temp leftovers)", len(entries))
	}
}

func TestBootstrapWithExistingKeys(t *testing.T) {
	e := newEnv(t, nil)
	e.key("auditor", "", nil)
	path := filepath.Join(t.TempDir(), "bootstrap-admin.key")
	created, err := Bootstrap(e.store, path)
	if err != nil || created {
		t.Fatalf("Bootstrap = %v, %v; want nothing done", created, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("file written although a key exists (stat: %v)", err)
	}
}

func TestKeyEndpoints(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.key("admin", "", nil)
	adminID := e.keyID(admin)

	w := e.send("POST", "/api/v1/keys", admin, `{"name":"siem export","role":"auditor","workspace":"acme","expires_in":"720h"}`)
	created := decode[keyCreated](t, w, http.StatusCreated)
	k := created.Key
	if !strings.HasPrefix(created.Secret, "cka_") || k.Prefix != created.Secret[:12] || k.Name != "siem export" || k.Role != "auditor" ||
		k.Workspace != "acme" || k.Status != keyActive || !k.CreatedAt.Equal(t0) || k.ExpiresAt == nil || !k.ExpiresAt.Equal(t0.Add(720*time.Hour)) {
		t.Errorf("created = %+v", created)
	}
	if loc := w.Header().Get("Location"); loc != "/api/v1/keys/"+k.ID {
		t.Errorf("Location = %q", loc)
	}
	// The new secret works, with the role and workspace asked for.
	if w := e.get("/api/v1/events?workspace=acme", created.Secret); w.Code != 200 {
		t.Errorf("new key: %d", w.Code)
	}
	wantProblem(t, e.get("/api/v1/events?workspace=globex", created.Secret), 403, "scoped to workspace")
	// The audit event names the key by id and prefix, never the secret.
	var ev *storage.Event
	for _, x := range e.rec.recorded() {
		if x.Action == "rbac.keys.create" {
			ev = x
		}
	}
	if ev == nil || ev.Details["key_id"] != k.ID || ev.Details["prefix"] != k.Prefix || ev.Status != 201 {
		t.Fatalf("creation recorded as %+v", ev)
	}
	for _, x := range e.rec.recorded() {
		if data, _ := json.Marshal(x); strings.Contains(string(data), created.Secret[12:]) || strings.Contains(string(data), HashKey(created.Secret)) {
			t.Errorf("audit event %s holds the secret or its hash", x.Action)
		}
	}

	// Shown once: listings and reads carry neither the secret nor the hash.
	for _, target := range []string{"/api/v1/keys", "/api/v1/keys/" + k.ID} {
		w := e.get(target, admin)
		if w.Code != 200 {
			t.Fatalf("%s: %d", target, w.Code)
		}
		body := w.Body.String()
		if strings.Contains(body, created.Secret[12:]) || strings.Contains(body, HashKey(created.Secret)) || strings.Contains(body, `"hash"`) || strings.Contains(body, `"secret"`) {
			t.Errorf("%s reveals the key: %s", target, body)
		}
	}
	list := decode[keysResponse](t, e.get("/api/v1/keys", admin), 200)
	// Oldest first: the test helper's admin key carries the wall clock's
	// creation time, later than t0.
	if len(list.Keys) != 2 || list.Keys[0].ID != k.ID || list.Keys[1].ID != adminID || list.Keys[1].LastUsedAt == nil || list.Keys[0].Workspace != "acme" {
		t.Errorf("keys = %+v", list.Keys)
	}
	wantProblem(t, e.get("/api/v1/keys?all=1", admin), 400, "no query parameters")

	// Expiry by date, custom roles, and the ways a request can be wrong.
	if err := e.store.CreateRole(storage.Role{Name: "triage", Permissions: []string{permAlertsRead}}); err != nil {
		t.Fatal(err)
	}
	dated := decode[keyCreated](t, e.send("POST", "/api/v1/keys", admin, `{"name":"t","role":"triage","expires_at":"2025-04-01T00:00:00Z"}`), 201)
	if dated.Key.ExpiresAt == nil || !dated.Key.ExpiresAt.Equal(time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)) || dated.Key.Role != "triage" {
		t.Errorf("dated = %+v", dated.Key)
	}
	if d := decode[keyCreated](t, e.send("POST", "/api/v1/keys", admin, `{"name":"d","role":"auditor","expires_in":"90d"}`), 201); !d.Key.ExpiresAt.Equal(t0.Add(90 * 24 * time.Hour)) {
		t.Errorf("90d expires at %v", d.Key.ExpiresAt)
	}
	bad := []struct {
		body   string
		status int
		detail string
	}{
		{`{"role":"auditor"}`, 400, `field "name"`},
		{`{"name":"   ","role":"auditor"}`, 400, `field "name"`},
		{`{"name":"a\u0007","role":"auditor"}`, 400, "control characters"},
		{`{"name":"n","role":"ghost"}`, 404, `field "role": no role named "ghost"`},
		{`{"name":"n","role":"Admin"}`, 400, `field "role"`},
		{`{"name":"n","role":"auditor","workspace":"_x"}`, 400, `field "workspace"`},
		{`{"name":"n","role":"auditor","expires_in":"soon"}`, 400, `field "expires_in"`},
		{`{"name":"n","role":"auditor","expires_in":"-1h"}`, 400, `field "expires_in"`},
		{`{"name":"n","role":"auditor","expires_in":"87601h"}`, 400, "at most ten years"},
		{`{"name":"n","role":"auditor","expires_at":"2025-03-14T15:09:26Z"}`, 400, `field "expires_at": must be in the future`},
		{`{"name":"n","role":"auditor","expires_at":"2025-04-01T00:00:00Z","expires_in":"1h"}`, 400, "give at most one"},
		{`{"name":"n","role":"auditor","expires_at":"tomorrow"}`, 400, "is not valid"},
	}
	for _, c := range bad {
		wantProblem(t, e.send("POST", "/api/v1/keys", admin, c.body), c.status, c.detail)
	}
	req := httptest.NewRequest("POST", "/api/v1/keys", strings.NewReader(`{"name":"n","role":"auditor"}`))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "text/plain")
	rw := httptest.NewRecorder()
	e.h.ServeHTTP(rw, req)
	wantProblem(t, rw, http.StatusUnsupportedMediaType, "must be JSON")
	wantProblem(t, e.get("/api/v1/keys/nope", admin), 404, `no API key with id "nope"`)

	// Revocation: the key stops working at once; a second revoke is 409.
	e.clock = t0.Add(time.Minute)
	rev := decode[KeyView](t, e.send("POST", "/api/v1/keys/"+k.ID+"/revoke", admin, ""), 200)
	if rev.Status != keyRevoked || rev.RevokedAt == nil || !rev.RevokedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("revoked = %+v", rev)
	}
	if ev := e.lastEvent(); ev.Action != "rbac.keys.revoke" || ev.Details["key_id"] != k.ID || ev.Details["prefix"] != k.Prefix || ev.Details["own_key"] != false {
		t.Errorf("revocation recorded as %+v", ev)
	}
	wantProblem(t, e.get("/api/v1/me", created.Secret), 401, errInvalidKey)
	wantProblem(t, e.send("POST", "/api/v1/keys/"+k.ID+"/revoke", admin, ""), 409, "already revoked")
	wantProblem(t, e.send("POST", "/api/v1/keys/nope/revoke", admin, ""), 404, "no API key")
	if got := decode[KeyView](t, e.get("/api/v1/keys/"+k.ID, admin), 200); got.Status != keyRevoked {
		t.Errorf("status after revoke = %s", got.Status)
	}
}

func TestRevokingTheLastAdminKeyIsRefused(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.key("admin", "", nil)
	id := e.keyID(admin)
	// Keys that cannot manage access globally do not count.
	e.key("admin", "acme", nil)
	e.key("admin", "", func(k *storage.APIKey) { k.ExpiresAt = new(t0) })
	e.key("admin", "", func(k *storage.APIKey) { k.RevokedAt = new(t0) })
	e.key("auditor", "", nil)

	wantProblem(t, e.send("POST", "/api/v1/keys/"+id+"/revoke", admin, ""), 409, "last active key that manages access")
	if ev := e.lastEvent(); ev.Action != "rbac.keys.revoke" || ev.Status != 409 || ev.Details["reason"] != "lockout" || ev.Details["own_key"] != true {
		t.Errorf("refusal recorded as %+v", ev)
	}
	if k, _ := e.store.GetAPIKey(id); k.RevokedAt != nil {
		t.Fatal("the last admin key was revoked")
	}
	// With a second manager, each may revoke the other but not both.
	second := decode[keyCreated](t, e.send("POST", "/api/v1/keys", admin, `{"name":"rotation","role":"admin"}`), 201)
	if w := e.send("POST", "/api/v1/keys/"+id+"/revoke", admin, ""); w.Code != 200 {
		t.Fatalf("revoking own key with a successor: %d %s", w.Code, w.Body)
	}
	wantProblem(t, e.send("POST", "/api/v1/keys/"+second.Key.ID+"/revoke", second.Secret, ""), 409, "last active key")
}
