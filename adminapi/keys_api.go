package adminapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// keyRoutes are the API key endpoints. Listing keys shows who can do what
// in every workspace, so they all need rbac:manage globally.
func (a *api) keyRoutes() []route {
	get, post := http.MethodGet, http.MethodPost
	return []route{
		{method: get, path: "/api/v1/keys", perm: permRBACManage, h: a.rbacGlobal(a.listKeys),
			summary: "List API keys (never their secrets or hashes), revoked and expired ones included", resp: keysResponse{}},
		{method: post, path: "/api/v1/keys", perm: permRBACManage, h: a.rbacGlobal(a.createKey),
			summary: "Issue an API key; the answer shows its secret, once", body: keyCreateRequest{}, resp: keyCreated{}, created: true},
		{method: get, path: "/api/v1/keys/{id}", perm: permRBACManage, h: a.rbacGlobal(a.getKey),
			summary: "Get one API key with its bindings", resp: KeyView{}},
		{method: post, path: "/api/v1/keys/{id}/revoke", perm: permRBACManage, h: a.rbacGlobal(a.revokeKey),
			summary: "Revoke an API key for good (refused if no other key could then manage access)", resp: KeyView{}},
	}
}

// Key states, as KeyView.Status shows them.
const (
	keyActive  = "active"
	keyExpired = "expired"
	keyRevoked = "revoked"
)

// maxKeyLifetime bounds expiry: a key meant to live longer than this
// should be rotated, not forgotten.
const maxKeyLifetime = 10 * 365 * 24 * time.Hour

// KeyView is an API key as the API shows it: the stored record without
// its hash.
type KeyView struct {
	// ID is the key's public identifier, used as principal in bindings.
	ID string `json:"id"`
	// Name is a human label.
	Name string `json:"name"`
	// Prefix is the first characters of the secret, to recognise it.
	Prefix string `json:"prefix"`
	// Role is the key's own role.
	Role string `json:"role"`
	// Workspace scopes the key's own role; empty means all.
	Workspace string `json:"workspace,omitempty"`
	// Status is active, expired or revoked.
	Status string `json:"status"`
	// CreatedAt is when the key was issued.
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is the first instant the key is refused, if it expires.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// RevokedAt is when the key was revoked.
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// LastUsedAt is when the key last authenticated, to the minute.
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	// Bindings are the roles granted to the key on top of its own.
	Bindings []storage.RoleBinding `json:"bindings"`
}

// keyStatus is k's state at now: the one rule that authentication, the
// listings, the last-manager check and the SOC 2 inventory share.
func keyStatus(k storage.APIKey, now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return keyRevoked
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return keyExpired
	}
	return keyActive
}

// viewKey turns a stored key into its view at now, dropping the hash.
func viewKey(k storage.APIKey, bindings []storage.RoleBinding, now time.Time) KeyView {
	return KeyView{
		ID: k.ID, Name: k.Name, Prefix: k.Prefix, Role: k.Role, Workspace: k.Workspace, Status: keyStatus(k, now),
		CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, LastUsedAt: k.LastUsedAt,
		Bindings: nonNil(bindings),
	}
}

// keysResponse answers GET /api/v1/keys.
type keysResponse struct {
	// Keys are every key, oldest first.
	Keys []KeyView `json:"keys"`
}

// listKeys serves GET /api/v1/keys.
func (a *api) listKeys(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	keys, err := a.store.ListAPIKeys()
	if err != nil {
		a.storeError(w, r, "listing API keys", err)
		return
	}
	bindings, err := a.store.ListBindings("")
	if err != nil {
		a.storeError(w, r, "listing role bindings", err)
		return
	}
	byKey := make(map[string][]storage.RoleBinding)
	for _, b := range bindings {
		byKey[b.Principal] = append(byKey[b.Principal], b)
	}
	now := a.now()
	out := keysResponse{Keys: make([]KeyView, 0, len(keys))}
	for _, k := range keys {
		out.Keys = append(out.Keys, viewKey(k, byKey[k.ID], now))
	}
	a.record(r, key, "rbac.keys.list", http.StatusOK, map[string]any{"returned": len(out.Keys)})
	writeJSON(w, http.StatusOK, out)
}

// keyCreateRequest is the body of POST /api/v1/keys.
type keyCreateRequest struct {
	// Name is a human label, 1 to 100 characters ("siem export").
	Name string `json:"name"`
	// Role is a built-in or custom role name.
	Role string `json:"role"`
	// Workspace confines the key's role to one workspace; omit it for a
	// global key.
	Workspace string `json:"workspace,omitempty"`
	// ExpiresAt is when the key stops working (RFC 3339). At most one of
	// expires_at and expires_in; neither means the key never expires.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// ExpiresIn is the key's lifetime: a Go duration ("720h") or whole
	// days ("90d"), at most ten years.
	ExpiresIn string `json:"expires_in,omitempty"`
}

// keyCreated answers POST /api/v1/keys.
type keyCreated struct {
	// Secret is the key itself. It is shown this once and stored only as
	// a hash: keep it now or issue another key.
	Secret string `json:"secret"`
	// Key is the stored record.
	Key KeyView `json:"key"`
}

// parseLifetime parses expires_in: a Go duration or whole days.
func parseLifetime(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > int(maxKeyLifetime/(24*time.Hour)) {
			return 0, errors.New("expects a duration such as \"720h\" or \"90d\", at most ten years")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > maxKeyLifetime {
		return 0, errors.New("expects a positive duration such as \"720h\" or \"90d\", at most ten years")
	}
	return d, nil
}

// createKey serves POST /api/v1/keys.
func (a *api) createKey(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	var req keyCreateRequest
	if !readJSON(w, r, maxRBACBody, &req, true, "the API key to issue") {
		return
	}
	now := a.now().UTC()
	switch name := strings.TrimSpace(req.Name); {
	case name == "" || len(req.Name) > 100:
		writeProblem(w, r, http.StatusBadRequest, "field \"name\": a label of 1 to 100 characters is required")
		return
	case hasControl(req.Name):
		writeProblem(w, r, http.StatusBadRequest, "field \"name\": control characters are not allowed")
		return
	}
	custom, ok := a.checkGrant(w, r, req.Role, req.Workspace)
	if !ok {
		return
	}
	var expires *time.Time
	switch {
	case req.ExpiresAt != nil && req.ExpiresIn != "":
		writeProblem(w, r, http.StatusBadRequest, "fields \"expires_at\" and \"expires_in\": give at most one")
		return
	case req.ExpiresAt != nil:
		at := req.ExpiresAt.UTC()
		if !at.After(now) || at.Sub(now) > maxKeyLifetime {
			writeProblem(w, r, http.StatusBadRequest, "field \"expires_at\": must be in the future and at most ten years away")
			return
		}
		expires = &at
	case req.ExpiresIn != "":
		d, err := parseLifetime(req.ExpiresIn)
		if err != nil {
			writeProblem(w, r, http.StatusBadRequest, "field \"expires_in\": "+err.Error())
			return
		}
		at := now.Add(d)
		expires = &at
	}

	secret, rec, err := GenerateKey()
	if err != nil {
		a.log.Error("issuing an API key", "error", err)
		writeProblem(w, r, http.StatusInternalServerError, "generating the key failed; see the server log")
		return
	}
	rec.ID, rec.CreatedAt = storage.NewID(now), now
	rec.Name, rec.Role, rec.Workspace, rec.ExpiresAt = req.Name, req.Role, req.Workspace, expires
	err = a.store.CreateAPIKey(rec, custom)
	switch {
	case errors.Is(err, storage.ErrUnknownRole):
		writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("field \"role\": no role named %q", req.Role))
		return
	case err != nil:
		a.storeError(w, r, "storing the API key", err)
		return
	}
	details := map[string]any{"key_id": rec.ID, "prefix": rec.Prefix, "name": rec.Name, "role": rec.Role, "workspace": rec.Workspace}
	if expires != nil {
		details["expires_at"] = expires.Format(time.RFC3339)
	}
	a.record(r, key, "rbac.keys.create", http.StatusCreated, details)
	w.Header().Set("Location", "/api/v1/keys/"+rec.ID)
	writeJSON(w, http.StatusCreated, keyCreated{Secret: secret, Key: viewKey(rec, nil, now)})
}

// loadKey returns the key named by the {id} path value, or answers 404.
func (a *api) loadKey(w http.ResponseWriter, r *http.Request) (storage.APIKey, bool) {
	id := r.PathValue("id")
	k, err := a.store.GetAPIKey(id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("no API key with id %q", truncate(id, 64)))
		return k, false
	case err != nil:
		a.storeError(w, r, "reading an API key", err)
		return k, false
	}
	return k, true
}

// getKey serves GET /api/v1/keys/{id}.
func (a *api) getKey(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	k, ok := a.loadKey(w, r)
	if !ok {
		return
	}
	bindings, err := a.store.ListBindings(k.ID)
	if err != nil {
		a.storeError(w, r, "listing role bindings", err)
		return
	}
	a.record(r, key, "rbac.keys.get", http.StatusOK, map[string]any{"key_id": k.ID, "prefix": k.Prefix})
	writeJSON(w, http.StatusOK, viewKey(k, bindings, a.now()))
}

// revokeKey serves POST /api/v1/keys/{id}/revoke. It refuses to revoke
// the last active key that manages access globally (the caller's own, in
// practice): nobody could issue a key afterwards short of editing the
// database by hand.
func (a *api) revokeKey(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	rbacMu.Lock()
	defer rbacMu.Unlock()
	k, ok := a.loadKey(w, r)
	if !ok {
		return
	}
	details := map[string]any{"key_id": k.ID, "prefix": k.Prefix, "own_key": k.ID == key.ID}
	if k.RevokedAt != nil {
		a.record(r, key, "rbac.keys.revoke", http.StatusConflict, details)
		writeProblem(w, r, http.StatusConflict, fmt.Sprintf("API key %q was already revoked at %s", k.ID, k.RevokedAt.Format(time.RFC3339)))
		return
	}
	locked, err := a.leavesNoManager(rbacChange{key: k.ID})
	if err != nil {
		a.storeError(w, r, "checking who manages access", err)
		return
	}
	if locked {
		details["reason"] = "lockout"
		a.record(r, key, "rbac.keys.revoke", http.StatusConflict, details)
		writeProblem(w, r, http.StatusConflict, fmt.Sprintf(
			"API key %q is the last active key that manages access globally; issue another with %s first, then revoke this one", k.ID, permRBACManage))
		return
	}
	k, err = a.store.RevokeAPIKey(k.ID, a.now())
	switch {
	case errors.Is(err, storage.ErrRevoked):
		writeProblem(w, r, http.StatusConflict, fmt.Sprintf("API key %q was already revoked", k.ID))
		return
	case err != nil:
		a.storeError(w, r, "revoking an API key", err)
		return
	}
	bindings, err := a.store.ListBindings(k.ID)
	if err != nil {
		a.storeError(w, r, "listing role bindings", err)
		return
	}
	a.record(r, key, "rbac.keys.revoke", http.StatusOK, details)
	writeJSON(w, http.StatusOK, viewKey(k, bindings, a.now()))
}
