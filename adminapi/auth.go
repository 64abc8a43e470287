package adminapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// Permissions, named resource:verb like Kubernetes RBAC so custom roles can
// later be written in the same vocabulary.
const (
	permEventsRead       = "events:read"
	permEventsExport     = "events:export"
	permAlertsRead       = "alerts:read"
	permAlertsManage     = "alerts:manage"
	permReportsRead      = "reports:read"
	permRBACManage       = "rbac:manage"
	permWorkspacesManage = "workspaces:manage"
	permIntegrityVerify  = "integrity:verify"
	permGDPRManage       = "gdpr:manage"
	permSettingsRead     = "settings:read"
	permBackupRead       = "backup:read"
	permEventsImport     = "events:import"
)

// roleAdmin is the role of the bootstrap key.
const roleAdmin = "admin"

// builtinRoles maps each built-in role to what it may do. Separation of
// duties: only admin changes who can do what, erases personal data or
// manages workspaces; auditors read but never touch alerts.
var builtinRoles = map[string][]string{
	roleAdmin: {
		permEventsRead, permEventsExport, permAlertsRead, permAlertsManage,
		permReportsRead, permRBACManage, permWorkspacesManage,
		permIntegrityVerify, permGDPRManage, permSettingsRead, permBackupRead,
		permEventsImport,
	},
	"security_analyst": {
		permEventsRead, permEventsExport, permAlertsRead, permAlertsManage,
		permReportsRead, permIntegrityVerify, permSettingsRead,
	},
	"auditor": {
		permEventsRead, permEventsExport, permAlertsRead, permReportsRead,
		permIntegrityVerify, permSettingsRead,
	},
	"workspace_viewer": {permEventsRead},
}

// authChallenge goes with every 401 (RFC 9110 requires a challenge there).
const authChallenge = `Bearer realm="caddy-audit"`

// errInvalidKey is the single message for unknown, revoked and expired
// keys: telling them apart would confirm to a thief that a stolen key was
// once valid.
const errInvalidKey = "the API key is invalid, expired or revoked"

// touchInterval bounds how often a key's last-used time is written: often
// enough for "unused for 90 days" reviews, rare enough that reads never
// turn into a write per request.
const touchInterval = time.Minute

type principalKey struct{}

// principalFrom returns the API key that authenticated the request.
func principalFrom(ctx context.Context) (storage.APIKey, bool) {
	k, ok := ctx.Value(principalKey{}).(storage.APIKey)
	return k, ok
}

// authenticate lets a request through only with a valid bearer API key,
// which it puts in the request context.
func (a *api) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vals := r.Header.Values("Authorization")
		if len(vals) == 0 {
			a.unauthorized(w, r, "an API key is required: send it as 'Authorization: Bearer <key>'")
			return
		}
		token, ok := bearerToken(vals)
		if !ok {
			a.unauthorized(w, r, "malformed Authorization header: expected 'Bearer <key>'")
			return
		}
		now := a.now()
		key, err := a.lookupKey(token, now)
		switch {
		case errors.Is(err, errUnknownKey):
			a.unauthorized(w, r, errInvalidKey)
			return
		case err != nil:
			a.storeError(w, r, "checking the API key", err)
			return
		}
		if a.touches.due(key.ID, now) {
			if err := a.store.TouchAPIKey(key.ID, now); err != nil {
				a.log.Warn("recording API key use", "key_id", key.ID, "error", err)
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, key)))
	})
}

// errUnknownKey covers every reason a well-formed key is refused.
var errUnknownKey = errors.New("unknown API key")

func (a *api) lookupKey(token string, now time.Time) (storage.APIKey, error) {
	// Only our own keys can match; refusing anything else early spares the
	// store a lookup for scanners' junk.
	if !strings.HasPrefix(token, keyPrefix) || len(token) > 128 {
		return storage.APIKey{}, errUnknownKey
	}
	hash := HashKey(token)
	key, err := a.store.APIKeyByHash(hash)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.APIKey{}, errUnknownKey
	}
	if err != nil {
		return storage.APIKey{}, err
	}
	// The lookup already matched the hash; comparing again guards against
	// a hash index that points at the wrong record, and does it in constant
	// time so the comparison leaks nothing.
	if subtle.ConstantTimeCompare([]byte(key.Hash), []byte(hash)) != 1 ||
		key.RevokedAt != nil ||
		key.ExpiresAt != nil && !now.Before(*key.ExpiresAt) {
		return storage.APIKey{}, errUnknownKey
	}
	return key, nil
}

// bearerToken extracts the credentials of a Bearer Authorization header
// (the scheme is case-insensitive, RFC 9110 11.1). More than one header is
// refused rather than guessing which one the client meant.
func bearerToken(vals []string) (string, bool) {
	if len(vals) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	token = strings.TrimLeft(token, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

// unauthorized refuses a request without a valid key, and records the
// attempt: invalid access attempts are audit events too (PCI DSS 10.2.1.4).
func (a *api) unauthorized(w http.ResponseWriter, r *http.Request, detail string) {
	a.record(r, storage.APIKey{}, "auth.denied", http.StatusUnauthorized, map[string]any{"reason": detail})
	w.Header().Set("WWW-Authenticate", authChallenge)
	writeProblem(w, r, http.StatusUnauthorized, detail)
}

// require lets the request through only if the authenticated key's role
// grants perm. A role this build does not know grants nothing.
func (a *api) require(perm string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, ok := principalFrom(r.Context())
		if !ok {
			// Only reachable if a route forgot authenticate; fail closed.
			a.unauthorized(w, r, "an API key is required")
			return
		}
		if !hasPermission(key.Role, perm) {
			a.forbidden(w, r, key, fmt.Sprintf("role %q does not grant %s", key.Role, perm))
			return
		}
		h(w, r)
	}
}

func hasPermission(role, perm string) bool {
	return slices.Contains(builtinRoles[role], perm)
}

// inScope reports whether the caller of r may see records of workspace
// ws. Single-record endpoints use it (and answer 404 when it says no, so
// the answer does not confirm the id exists); filters use scopeFilter.
func inScope(r *http.Request, ws string) bool {
	key, ok := principalFrom(r.Context())
	return ok && (key.Workspace == "" || key.Workspace == ws)
}

// requireGlobal refuses (and records) a call from a workspace-scoped
// principal to an endpoint whose answer spans every workspace; why says
// what the answer would reveal. It reports whether the call may go on.
func (a *api) requireGlobal(w http.ResponseWriter, r *http.Request, why string) bool {
	key, _ := principalFrom(r.Context())
	if key.Workspace == "" {
		return true
	}
	a.forbidden(w, r, key, fmt.Sprintf("this API key is scoped to workspace %q; %s", key.Workspace, why))
	return false
}

// touchLimiter remembers when each key's last use was last written.
type touchLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// due reports whether key id's last-used time should be written now, and
// if so counts it as written: a failing store is then retried a minute
// later instead of on every request.
func (t *touchLimiter) due(id string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, ok := t.last[id]; ok && now.Sub(last) < touchInterval && !now.Before(last) {
		return false
	}
	t.last[id] = now
	return true
}

// forbidden refuses an authenticated request and records the attempt.
func (a *api) forbidden(w http.ResponseWriter, r *http.Request, key storage.APIKey, detail string) {
	a.record(r, key, "auth.forbidden", http.StatusForbidden, map[string]any{"reason": detail})
	writeProblem(w, r, http.StatusForbidden, detail)
}
