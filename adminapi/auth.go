package adminapi

import (
	"context"
	"crypto/subtle"
	"errors"
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

// permAnyKey marks a route that any valid API key may call, whatever its
// roles (GET /api/v1/me). It is not a permission: no role grants it and
// GET /api/v1/permissions does not list it.
const permAnyKey = "any_valid_key"

// permissionDoc describes one permission for GET /api/v1/permissions.
type permissionDoc struct {
	// Name is the permission, resource:verb.
	Name string `json:"name"`
	// Description says what it allows.
	Description string `json:"description"`
}

// permissions are the permissions this build knows, in the order they are
// listed. Custom roles may use these and no others.
var permissions = []permissionDoc{
	{permEventsRead, "Search, read and count audit events, and read risk figures derived from them."},
	{permEventsExport, "Export audit events (CSV, JSON, NDJSON, OCSF, ECS)."},
	{permEventsImport, "Import access logs as audit events; needs a global grant."},
	{permAlertsRead, "List and read alerts."},
	{permAlertsManage, "Acknowledge, resolve, comment on alerts and mark them false positives."},
	{permReportsRead, "Generate compliance reports (SOC 2, GDPR, PCI DSS, security score)."},
	{permRBACManage, "Manage API keys, custom roles and role bindings; needs a global grant."},
	{permWorkspacesManage, "Create workspaces and change their retention and business hours."},
	{permIntegrityVerify, "Verify the integrity chain and read checkpoints."},
	{permGDPRManage, "Export and erase or pseudonymize a data subject's events."},
	{permSettingsRead, "Read settings: detectors and their configuration, the permission list."},
	{permBackupRead, "Download a consistent backup of the whole store; needs a global grant."},
}

// knownPermission reports whether this build knows perm.
func knownPermission(perm string) bool {
	return slices.ContainsFunc(permissions, func(d permissionDoc) bool { return d.Name == perm })
}

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
		now := a.now()
		// A blocked client is refused everything but a key that verifies
		// (throttle.go says why); what it sends while blocked is not
		// counted again.
		client := throttleKey(r.RemoteAddr)
		blocked := a.throttle.wait(client, now)
		refuse := func(wait time.Duration, detail string) {
			if wait > 0 {
				a.throttled(w, r, wait)
				return
			}
			a.unauthorized(w, r, detail)
		}
		vals := r.Header.Values("Authorization")
		if len(vals) == 0 {
			// Not a guess, so not counted: a browser or a probe that
			// sends nothing is not trying keys.
			refuse(blocked, "an API key is required: send it as 'Authorization: Bearer <key>'")
			return
		}
		token, ok := bearerToken(vals)
		if !ok {
			if blocked == 0 {
				blocked = a.badKey(client, now)
			}
			refuse(blocked, "malformed Authorization header: expected 'Bearer <key>'")
			return
		}
		if blocked > 0 && !plausibleKey(token) {
			// Cannot be one of ours: refused without a store lookup.
			a.throttled(w, r, blocked)
			return
		}
		key, err := a.lookupKey(token, now)
		switch {
		case errors.Is(err, errUnknownKey):
			if blocked == 0 {
				blocked = a.badKey(client, now)
			}
			refuse(blocked, errInvalidKey)
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
	if !plausibleKey(token) {
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
	if subtle.ConstantTimeCompare([]byte(key.Hash), []byte(hash)) != 1 || keyStatus(key, now) != keyActive {
		return storage.APIKey{}, errUnknownKey
	}
	return key, nil
}

// plausibleKey reports whether token could be one of our keys. Only our
// own keys can match; refusing anything else early spares the store a
// lookup for scanners' junk.
func plausibleKey(token string) bool {
	return strings.HasPrefix(token, keyPrefix) && len(token) <= 128
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
