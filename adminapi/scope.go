package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/caddy-audit/caddy-audit/storage"
)

// scope is where a principal holds one permission: everywhere, or in a
// set of workspaces. The zero value is nowhere.
type scope struct {
	// Global is true when a grant without a workspace holds the
	// permission; Workspaces is then empty.
	Global bool
	// Workspaces are the workspaces the permission holds in, sorted, when
	// it is not global.
	Workspaces []string
}

// none reports whether the scope grants nothing.
func (s scope) none() bool { return !s.Global && len(s.Workspaces) == 0 }

// add widens the scope by a grant in workspace ws ("" = global).
func (s *scope) add(ws string) {
	switch {
	case s.Global:
	case ws == "":
		s.Global, s.Workspaces = true, nil
	default:
		if i, found := slices.BinarySearch(s.Workspaces, ws); !found {
			s.Workspaces = slices.Insert(s.Workspaces, i, ws)
		}
	}
}

// has reports whether the scope covers workspace ws.
func (s scope) has(ws string) bool {
	_, found := slices.BinarySearch(s.Workspaces, ws)
	return s.Global || found
}

// String describes the scope for messages: "every workspace" or the
// quoted workspace names.
func (s scope) String() string {
	if s.Global {
		return "every workspace"
	}
	q := make([]string, len(s.Workspaces))
	for i, ws := range s.Workspaces {
		q[i] = fmt.Sprintf("%q", ws)
	}
	return strings.Join(q, ", ")
}

// access is what one principal may do: every permission it holds and
// where, from its key's own role plus its bindings.
type access struct {
	// perms maps each held permission to its scope.
	perms map[string]scope
	// bindings are the principal's role bindings.
	bindings []storage.RoleBinding
}

// lacking returns the permissions of perms that acc does not hold in
// workspace ws, in the order given: a global grant covers every
// workspace, a grant in one workspace only that one, and ws "" (every
// workspace) needs a global grant.
func (acc access) lacking(perms []string, ws string) []string {
	var out []string
	for _, p := range perms {
		sc := acc.perms[p]
		if !sc.Global && (ws == "" || !sc.has(ws)) {
			out = append(out, p)
		}
	}
	return out
}

// rolePermissions returns what role grants: a built-in role's list, or a
// stored custom role's permissions that this build knows (one written by
// a newer version or by hand grants only what is known). A deleted or
// unknown role grants nothing.
func (a *api) rolePermissions(role string) ([]string, error) {
	if perms, ok := builtinRoles[role]; ok {
		return perms, nil
	}
	if storage.ValidRoleName(role) != nil {
		return nil, nil
	}
	custom, err := a.store.GetRole(role)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return knownPerms(custom.Permissions), nil
}

// knownPerms keeps the permissions of a stored custom role that this
// build knows: one written by a newer version or by hand grants only
// what is known.
func knownPerms(perms []string) []string {
	return slices.DeleteFunc(slices.Clone(perms), func(p string) bool { return !knownPermission(p) })
}

// resolve computes the access of key: its own role in its own workspace,
// plus each of its bindings. Each role is read once.
func (a *api) resolve(key storage.APIKey) (access, error) {
	bindings, err := a.store.ListBindings(key.ID)
	if err != nil {
		return access{}, err
	}
	acc := access{perms: make(map[string]scope), bindings: bindings}
	roles := make(map[string][]string)
	grant := func(role, ws string) error {
		perms, ok := roles[role]
		if !ok {
			if perms, err = a.rolePermissions(role); err != nil {
				return err
			}
			roles[role] = perms
		}
		for _, p := range perms {
			sc := acc.perms[p]
			sc.add(ws)
			acc.perms[p] = sc
		}
		return nil
	}
	if err := grant(key.Role, key.Workspace); err != nil {
		return access{}, err
	}
	for _, b := range bindings {
		if err := grant(b.Role, b.Workspace); err != nil {
			return access{}, err
		}
	}
	return acc, nil
}

// scopeKey carries the requestScope of the permission a route required.
type scopeKey struct{}

// requestScope is the scope a request's route permission resolved to,
// and the caller's whole access it was resolved from, so a handler that
// checks more (what the caller may grant, whether it may read alerts too)
// does not read the store for it again.
type requestScope struct {
	perm string
	scope
	acc access
}

// holds reports whether acc holds perm in workspace ws, or everywhere
// when ws is "".
func (acc access) holds(perm, ws string) bool {
	sc := acc.perms[perm]
	if ws == "" {
		return sc.Global
	}
	return sc.has(ws)
}

// scopeFrom returns the resolved scope of r's route permission; a request
// that went through no require has none, which every helper treats as
// nowhere (fail closed).
func scopeFrom(r *http.Request) requestScope {
	sc, _ := r.Context().Value(scopeKey{}).(requestScope)
	return sc
}

// require lets the request through only if the authenticated key holds
// perm somewhere, through its own role or a binding, and puts where it
// holds it in the request context for scopeFilter, inScope and
// requireGlobal. permAnyKey lets any valid key through, with no scope.
func (a *api) require(perm string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, ok := principalFrom(r.Context())
		if !ok {
			// Only reachable if a route forgot authenticate; fail closed.
			a.unauthorized(w, r, "an API key is required")
			return
		}
		rs := requestScope{perm: perm}
		if perm != permAnyKey {
			acc, err := a.resolve(key)
			if err != nil {
				a.storeError(w, r, "resolving the API key's roles", err)
				return
			}
			rs.scope, rs.acc = acc.perms[perm], acc
			if rs.none() {
				detail := fmt.Sprintf("role %q does not grant %s", key.Role, perm)
				if n := len(acc.bindings); n > 0 {
					detail += fmt.Sprintf(", nor does any of the key's %d role bindings", n)
				}
				a.forbidden(w, r, key, detail)
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), scopeKey{}, rs)))
	}
}

// scopeFilter confines f to where the caller holds the route's
// permission. A global grant leaves f as it is. A grant in one workspace
// forces f to it. A grant in several needs f to name one of them (the
// store filters on one workspace), else 400 listing them. Naming a
// workspace outside the scope is refused (403, recorded) rather than
// silently narrowed, so a client never mistakes an empty answer for the
// truth. The reserved audit workspace is in a scoped principal's reach
// only when a grant names it explicitly.
func (a *api) scopeFilter(w http.ResponseWriter, r *http.Request, key storage.APIKey, f *storage.Filter) bool {
	rs := scopeFrom(r)
	switch {
	case rs.Global:
		return true
	case rs.none():
		a.forbidden(w, r, key, fmt.Sprintf("this API key holds %s nowhere", rs.perm))
		return false
	case f.Workspace != "" && !rs.has(f.Workspace):
		a.forbidden(w, r, key, fmt.Sprintf("this API key is scoped to workspace %s for %s and cannot read others", rs, rs.perm))
		return false
	case f.Workspace != "":
		return true
	case len(rs.Workspaces) == 1:
		f.Workspace = rs.Workspaces[0]
		return true
	}
	writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf(
		"query parameter \"workspace\": this API key holds %s in several workspaces; name one of them: %s",
		rs.perm, strings.Join(rs.Workspaces, ", ")))
	return false
}

// inScope reports whether the caller of r may see records of workspace
// ws under the route's permission. Single-record endpoints use it (and
// answer 404 when it says no, so the answer does not confirm the id
// exists); filters use scopeFilter.
func inScope(r *http.Request, ws string) bool {
	rs := scopeFrom(r)
	return rs.has(ws)
}

// requireGlobal refuses (and records) a call from a principal that holds
// the route's permission only in some workspaces to an endpoint whose
// answer spans every workspace; why says what the answer would reveal. It
// reports whether the call may go on.
func (a *api) requireGlobal(w http.ResponseWriter, r *http.Request, why string) bool {
	rs := scopeFrom(r)
	if rs.Global {
		return true
	}
	key, _ := principalFrom(r.Context())
	a.forbidden(w, r, key, fmt.Sprintf("this API key is scoped to workspace %s for %s; %s", rs, rs.perm, why))
	return false
}
