package adminapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

func TestAuthentication(t *testing.T) {
	e := newEnv(t, nil)
	valid := e.key("admin", "", nil)
	revoked := e.key("admin", "", func(k *storage.APIKey) { k.RevokedAt = new(t0.Add(-time.Hour)) })
	expired := e.key("admin", "", func(k *storage.APIKey) { k.ExpiresAt = new(t0.Add(-time.Second)) })
	expiresNow := e.key("admin", "", func(k *storage.APIKey) { k.ExpiresAt = new(t0) })
	notYetExpired := e.key("admin", "", func(k *storage.APIKey) { k.ExpiresAt = new(t0.Add(time.Hour)) })
	unknown, _, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		header []string // Authorization header values
		status int
		detail string
	}{
		{"no header", nil, 401, "API key is required"},
		{"empty header", []string{""}, 401, "malformed"},
		{"basic scheme", []string{"Basic YWxpY2U6cGFzcw=="}, 401, "malformed"},
		{"bearer without key", []string{"Bearer "}, 401, "malformed"},
		{"bare key", []string{valid}, 401, "malformed"},
		{"two headers", []string{"Bearer " + valid, "Bearer " + valid}, 401, "malformed"},
		{"key with trailing junk", []string{"Bearer " + valid + " x"}, 401, "malformed"},
		{"unknown key", []string{"Bearer " + unknown}, 401, errInvalidKey},
		{"not our format", []string{"Bearer abc"}, 401, errInvalidKey},
		{"wrong key by one char", []string{"Bearer " + flipLast(valid)}, 401, errInvalidKey},
		{"revoked", []string{"Bearer " + revoked}, 401, errInvalidKey},
		{"expired", []string{"Bearer " + expired}, 401, errInvalidKey},
		{"expires at this instant", []string{"Bearer " + expiresNow}, 401, errInvalidKey},
		{"valid", []string{"Bearer " + valid}, 200, ""},
		{"scheme is case-insensitive", []string{"bearer " + valid}, 200, ""},
		{"not yet expired", []string{"Bearer " + notYetExpired}, 200, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/api/v1/events", nil)
			// One address per case: more than five bad keys from one
			// address would be throttled (throttle_test.go covers that).
			req.RemoteAddr = fmt.Sprintf("198.51.100.%d:4711", i+1)
			for _, v := range tt.header {
				req.Header.Add("Authorization", v)
			}
			w := httptest.NewRecorder()
			before := len(e.rec.recorded())
			e.h.ServeHTTP(w, req)
			if tt.status == 200 {
				if w.Code != 200 {
					t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
				}
				return
			}
			wantProblem(t, w, tt.status, tt.detail)
			if got := w.Header().Get("WWW-Authenticate"); got != `Bearer realm="caddy-audit"` {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			// Invalid access attempts are audit events (PCI DSS 10.2.1.4),
			// and the presented key never appears in them.
			got := e.rec.recorded()
			if len(got) != before+1 {
				t.Fatalf("refusal not recorded: %d events", len(got))
			}
			if ev := got[len(got)-1]; ev.Action != "auth.denied" || ev.Status != 401 || ev.Outcome != "failure" || ev.User != "" {
				t.Errorf("refusal recorded as %+v", ev)
			} else if data, _ := json.Marshal(ev); len(tt.header) > 0 && len(tt.header[0]) > 12 && strings.Contains(string(data), tt.header[0][7:]) {
				t.Errorf("recorded refusal contains the presented key: %s", data)
			}
		})
	}
}

func TestUnknownRoleIsForbidden(t *testing.T) {
	e := newEnv(t, nil)
	secret := e.key("intern", "", nil)
	wantProblem(t, e.get("/api/v1/events", secret), http.StatusForbidden, `role "intern" does not grant events:read`)
}

func TestBuiltinRoles(t *testing.T) {
	all := builtinRoles[roleAdmin]
	for role, perms := range builtinRoles {
		if !hasPermission(role, permEventsRead) {
			t.Errorf("role %s cannot read events", role)
		}
		for _, p := range perms {
			if !slices.Contains(all, p) {
				t.Errorf("role %s has %s, which admin lacks", role, p)
			}
		}
	}
	// Separation of duties: only admin manages access and erases data.
	for _, role := range []string{"security_analyst", "auditor", "workspace_viewer"} {
		for _, p := range []string{permRBACManage, permGDPRManage, permWorkspacesManage} {
			if hasPermission(role, p) {
				t.Errorf("role %s has %s", role, p)
			}
		}
	}
	if hasPermission("auditor", permAlertsManage) {
		t.Error("auditors must not change alerts")
	}
}

func TestLastUsedIsWrittenAtMostOncePerMinute(t *testing.T) {
	e := newEnv(t, nil)
	secret := e.key("auditor", "", nil)
	lastUsed := func() *time.Time {
		t.Helper()
		k, err := e.store.APIKeyByHash(HashKey(secret))
		if err != nil {
			t.Fatal(err)
		}
		return k.LastUsedAt
	}
	if lastUsed() != nil {
		t.Fatal("new key already has a last-used time")
	}

	steps := []struct {
		advance time.Duration
		want    time.Time // last-used time expected after the request
	}{
		{0, t0},
		{30 * time.Second, t0},
		{29 * time.Second, t0},
		{time.Second, t0.Add(time.Minute)},
		{10 * time.Second, t0.Add(time.Minute)},
	}
	for i, s := range steps {
		e.clock = e.clock.Add(s.advance)
		if w := e.get("/api/v1/events", secret); w.Code != 200 {
			t.Fatalf("step %d: status %d", i, w.Code)
		}
		if got := lastUsed(); got == nil || !got.Equal(s.want) {
			t.Errorf("step %d: last used = %v, want %v", i, got, s.want)
		}
	}
}

// flipLast changes the key's last character to a different one.
func flipLast(key string) string {
	last := "A"
	if strings.HasSuffix(key, "A") {
		last = "B"
	}
	return key[:len(key)-1] + last
}
