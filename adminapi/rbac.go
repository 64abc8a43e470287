package adminapi

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/caddy-audit/caddy-audit/storage"
)

// rbacRoutes are the RBAC endpoints: who am I, which permissions exist,
// custom roles, role bindings, and the API keys (keys_api.go).
func (a *api) rbacRoutes() []route {
	get, post, put, del := http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete
	return slices.Concat(a.keyRoutes(), []route{
		{method: get, path: "/api/v1/me", perm: permAnyKey, h: a.getMe,
			summary: "The calling API key: its roles, bindings and effective permissions with their scope", resp: meResponse{}},
		// settings:read, not rbac:manage: the vocabulary reveals nothing
		// about any workspace, and analysts writing a custom role request
		// need to read it without being able to grant anything.
		{method: get, path: "/api/v1/permissions", perm: permSettingsRead, h: a.listPermissions,
			summary: "The permissions custom roles may use, with a description each", resp: permissionsResponse{}},
		{method: get, path: "/api/v1/roles", perm: permRBACManage, h: a.rbacGlobal(a.listRoles),
			summary: "List built-in and custom roles", resp: rolesResponse{}},
		{method: post, path: "/api/v1/roles", perm: permRBACManage, h: a.rbacGlobal(a.createRole),
			summary: "Create a custom role", body: roleCreateRequest{}, resp: roleView{}, created: true},
		{method: get, path: "/api/v1/roles/{name}", perm: permRBACManage, h: a.rbacGlobal(a.getRole),
			summary: "Get one role", resp: roleView{}},
		{method: put, path: "/api/v1/roles/{name}", perm: permRBACManage, h: a.rbacGlobal(a.updateRole),
			summary: "Replace a custom role's description and permissions (built-in roles are immutable)", body: roleUpdateRequest{}, resp: roleView{}},
		{method: del, path: "/api/v1/roles/{name}", perm: permRBACManage, h: a.rbacGlobal(a.deleteRole),
			summary: "Delete a custom role no key or binding uses; answers the deleted role", resp: roleView{}},
		{method: get, path: "/api/v1/bindings", perm: permRBACManage, h: a.rbacGlobal(a.listBindings),
			summary: "List role bindings", query: bindingParams.docs(), resp: bindingsResponse{}},
		{method: post, path: "/api/v1/bindings", perm: permRBACManage, h: a.rbacGlobal(a.createBinding),
			summary: "Grant an API key a role, globally or in one workspace", body: bindingRequest{}, resp: storage.RoleBinding{}, created: true},
		{method: del, path: "/api/v1/bindings/{id}", perm: permRBACManage, h: a.rbacGlobal(a.deleteBinding),
			summary: "Remove a role binding; answers the deleted binding", resp: storage.RoleBinding{}},
	})
}

// rbacMu serialises the RBAC changes that can take access away (revoking
// a key, deleting a binding, changing a role) with the check that some
// key keeps managing RBAC: two admins revoking each other at once must
// not both succeed. bbolt's file lock keeps other processes out, so a
// process-wide lock is enough.
var rbacMu sync.Mutex

// rbacGlobal lets only a principal that holds rbac:manage globally
// through: a grant confined to a workspace could otherwise bind itself
// anything anywhere.
func (a *api) rbacGlobal(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.requireGlobal(w, r, "managing keys, roles and bindings changes access to every workspace, so it needs a global grant") {
			h(w, r)
		}
	}
}

// meResponse answers GET /api/v1/me.
type meResponse struct {
	// ID is the key's id.
	ID string `json:"id"`
	// Name is the key's label.
	Name string `json:"name"`
	// Prefix is the key's first characters, as shown in listings.
	Prefix string `json:"prefix"`
	// Role is the key's own role.
	Role string `json:"role"`
	// Workspace is the workspace of the key's own role; empty means all.
	Workspace string `json:"workspace,omitempty"`
	// Bindings are the roles granted to the key on top of its own.
	Bindings []storage.RoleBinding `json:"bindings"`
	// Permissions are what the key may do, and where, sorted by name.
	Permissions []effectivePermission `json:"permissions"`
	// CreatedAt is when the key was issued.
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is the first instant the key is refused, if it expires.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// LastUsedAt is when the key last authenticated, to the minute.
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// effectivePermission is one permission a principal holds and where.
type effectivePermission struct {
	// Permission is the permission's name.
	Permission string `json:"permission"`
	// Global is true when it holds in every workspace.
	Global bool `json:"global"`
	// Workspaces are where it holds when not global.
	Workspaces []string `json:"workspaces,omitempty"`
}

// getMe serves GET /api/v1/me.
func (a *api) getMe(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	acc, err := a.resolve(key)
	if err != nil {
		a.storeError(w, r, "resolving the API key's roles", err)
		return
	}
	// The context holds the key as it was authenticated; the store has
	// the last-used time as written since.
	if cur, err := a.store.GetAPIKey(key.ID); err == nil {
		key.LastUsedAt = cur.LastUsedAt
	}
	out := meResponse{
		ID: key.ID, Name: key.Name, Prefix: key.Prefix, Role: key.Role, Workspace: key.Workspace,
		Bindings: nonNil(acc.bindings), Permissions: []effectivePermission{},
		CreatedAt: key.CreatedAt, ExpiresAt: key.ExpiresAt, LastUsedAt: key.LastUsedAt,
	}
	for _, p := range slices.Sorted(maps.Keys(acc.perms)) {
		sc := acc.perms[p]
		out.Permissions = append(out.Permissions, effectivePermission{Permission: p, Global: sc.Global, Workspaces: sc.Workspaces})
	}
	a.record(r, key, "rbac.me", http.StatusOK, map[string]any{"permissions": len(out.Permissions), "bindings": len(out.Bindings)})
	writeJSON(w, http.StatusOK, out)
}

// permissionsResponse answers GET /api/v1/permissions.
type permissionsResponse struct {
	// Permissions are every permission this build knows.
	Permissions []permissionDoc `json:"permissions"`
}

// listPermissions serves GET /api/v1/permissions.
func (a *api) listPermissions(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	a.record(r, key, "rbac.permissions", http.StatusOK, map[string]any{"returned": len(permissions)})
	writeJSON(w, http.StatusOK, permissionsResponse{Permissions: permissions})
}

// roleView is a role as the API shows it.
type roleView struct {
	// Name identifies the role.
	Name string `json:"name"`
	// Description says what the role is for.
	Description string `json:"description,omitempty"`
	// Permissions are what the role grants.
	Permissions []string `json:"permissions"`
	// Builtin roles are defined by caddy-audit and cannot change.
	Builtin bool `json:"builtin"`
	// CreatedAt and UpdatedAt are set for custom roles.
	CreatedAt *time.Time `json:"created_at,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

// builtinDescriptions say what each built-in role is for.
var builtinDescriptions = map[string]string{
	roleAdmin:          "Everything, including keys, roles, workspaces and erasure.",
	"security_analyst": "Investigates: reads and exports events, works alerts, reads reports.",
	"auditor":          "Reads and exports events, alerts and reports; changes nothing.",
	"workspace_viewer": "Reads events, usually bound to one workspace.",
}

func builtinView(name string) roleView {
	return roleView{Name: name, Description: builtinDescriptions[name], Permissions: builtinRoles[name], Builtin: true}
}

func customView(r storage.Role) roleView {
	return roleView{Name: r.Name, Description: r.Description, Permissions: nonNil(r.Permissions), CreatedAt: &r.CreatedAt, UpdatedAt: &r.UpdatedAt}
}

// rolesResponse answers GET /api/v1/roles.
type rolesResponse struct {
	// Roles are the built-in roles, then the custom ones, each by name.
	Roles []roleView `json:"roles"`
}

// listRoles serves GET /api/v1/roles.
func (a *api) listRoles(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	custom, err := a.store.ListRoles()
	if err != nil {
		a.storeError(w, r, "listing roles", err)
		return
	}
	out := rolesResponse{Roles: []roleView{}}
	for _, name := range slices.Sorted(maps.Keys(builtinRoles)) {
		out.Roles = append(out.Roles, builtinView(name))
	}
	for _, c := range custom {
		out.Roles = append(out.Roles, customView(c))
	}
	a.record(r, key, "rbac.roles.list", http.StatusOK, map[string]any{"returned": len(out.Roles)})
	writeJSON(w, http.StatusOK, out)
}

// roleCreateRequest is the body of POST /api/v1/roles.
type roleCreateRequest struct {
	// Name is 1 to 64 of a-z, 0-9, '_', ':' and '-', not a built-in name.
	Name string `json:"name"`
	// Description says what the role is for (at most 500 characters).
	Description string `json:"description,omitempty"`
	// Permissions are what the role grants: at least one, each listed by
	// GET /api/v1/permissions.
	Permissions []string `json:"permissions"`
}

// roleUpdateRequest is the body of PUT /api/v1/roles/{name}: the role's
// new description and permissions, replacing the old ones.
type roleUpdateRequest struct {
	// Description says what the role is for (at most 500 characters).
	Description string `json:"description,omitempty"`
	// Permissions are what the role grants: at least one, each listed by
	// GET /api/v1/permissions.
	Permissions []string `json:"permissions"`
}

// maxRBACBody bounds RBAC request bodies, which are a few fields.
const maxRBACBody = 16 << 10

// checkRoleBody validates a role's description and permissions and
// returns the permissions sorted without repeats, or a problem detail.
func checkRoleBody(description string, perms []string) ([]string, string) {
	if len(description) > 500 {
		return nil, "field \"description\": at most 500 characters"
	}
	if hasControl(description) {
		return nil, "field \"description\": control characters are not allowed"
	}
	if len(perms) == 0 {
		return nil, "field \"permissions\": a role needs at least one permission (see GET /api/v1/permissions)"
	}
	for _, p := range perms {
		if !knownPermission(p) {
			return nil, fmt.Sprintf("field \"permissions\": unknown permission %q; known: %s", truncate(p, 64), knownPermissionList())
		}
	}
	out := slices.Clone(perms)
	slices.Sort(out)
	return slices.Compact(out), ""
}

// knownPermissionList names the known permissions for messages.
func knownPermissionList() string {
	names := make([]string, len(permissions))
	for i, d := range permissions {
		names[i] = d.Name
	}
	return strings.Join(names, ", ")
}

// createRole serves POST /api/v1/roles.
func (a *api) createRole(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	var req roleCreateRequest
	if !readJSON(w, r, maxRBACBody, &req, true, "the role to create") {
		return
	}
	if err := storage.ValidRoleName(req.Name); err != nil {
		writeProblem(w, r, http.StatusBadRequest, "field \"name\": "+err.Error())
		return
	}
	if _, ok := builtinRoles[req.Name]; ok {
		writeProblem(w, r, http.StatusConflict, fmt.Sprintf("field \"name\": %q is a built-in role", req.Name))
		return
	}
	perms, detail := checkRoleBody(req.Description, req.Permissions)
	if detail != "" {
		writeProblem(w, r, http.StatusBadRequest, detail)
		return
	}
	// A role can later be bound globally, so it may hold only what the
	// caller holds globally.
	if !a.mayGrant(w, r, perms, "", fmt.Sprintf("role %q", req.Name)) {
		return
	}
	now := a.now().UTC()
	role := storage.Role{Name: req.Name, Description: req.Description, Permissions: perms, CreatedAt: now, UpdatedAt: now}
	err := a.store.CreateRole(role)
	switch {
	case errors.Is(err, storage.ErrExists):
		writeProblem(w, r, http.StatusConflict, fmt.Sprintf("field \"name\": a role named %q already exists", req.Name))
		return
	case err != nil:
		a.storeError(w, r, "creating a role", err)
		return
	}
	a.record(r, key, "rbac.roles.create", http.StatusCreated, map[string]any{"role": role.Name, "permissions": perms})
	w.Header().Set("Location", "/api/v1/roles/"+role.Name)
	writeJSON(w, http.StatusCreated, customView(role))
}

// roleName returns the {name} path value if it is a valid role name, or
// answers 404 (an invalid name names no role).
func roleName(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("name")
	if storage.ValidRoleName(name) != nil {
		writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("no role named %q", truncate(name, 64)))
		return "", false
	}
	return name, true
}

// getRole serves GET /api/v1/roles/{name}.
func (a *api) getRole(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	name, ok := roleName(w, r)
	if !ok {
		return
	}
	view := builtinView(name)
	if _, builtin := builtinRoles[name]; !builtin {
		role, ok := a.loadRole(w, r, name)
		if !ok {
			return
		}
		view = customView(role)
	}
	a.record(r, key, "rbac.roles.get", http.StatusOK, map[string]any{"role": name})
	writeJSON(w, http.StatusOK, view)
}

// loadRole reads the custom role name, answering 404 (or the store's
// failure) itself; it reports whether the handler may go on.
func (a *api) loadRole(w http.ResponseWriter, r *http.Request, name string) (storage.Role, bool) {
	role, err := a.store.GetRole(name)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("no role named %q", name))
		return role, false
	case err != nil:
		a.storeError(w, r, "reading a role", err)
		return role, false
	}
	return role, true
}

// updateRole serves PUT /api/v1/roles/{name}.
func (a *api) updateRole(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	name, ok := roleName(w, r)
	if !ok {
		return
	}
	if _, builtin := builtinRoles[name]; builtin {
		writeProblem(w, r, http.StatusConflict, fmt.Sprintf("role %q is built in and cannot change; create a custom role instead", name))
		return
	}
	var req roleUpdateRequest
	if !readJSON(w, r, maxRBACBody, &req, true, "the role's new description and permissions") {
		return
	}
	perms, detail := checkRoleBody(req.Description, req.Permissions)
	if detail != "" {
		writeProblem(w, r, http.StatusBadRequest, detail)
		return
	}
	rbacMu.Lock()
	defer rbacMu.Unlock()
	old, ok := a.loadRole(w, r, name)
	if !ok {
		return
	}
	// The role's keys and bindings get whatever is added at once, some of
	// them globally, so each added permission must be one the caller holds
	// globally. Keeping or dropping what the role already grants gives
	// nobody anything new.
	added := slices.DeleteFunc(slices.Clone(perms), func(p string) bool { return slices.Contains(old.Permissions, p) })
	if !a.mayGrant(w, r, added, "", fmt.Sprintf("role %q", name)) {
		return
	}
	if !slices.Contains(perms, permRBACManage) {
		locked, err := a.leavesNoManager(rbacChange{role: name, perms: perms})
		if err != nil {
			a.storeError(w, r, "checking who manages access", err)
			return
		}
		if locked {
			a.record(r, key, "rbac.roles.update", http.StatusConflict, map[string]any{"role": name, "reason": "lockout"})
			writeProblem(w, r, http.StatusConflict, fmt.Sprintf("removing %s from role %q would leave no active key that manages access; grant it to another key first", permRBACManage, name))
			return
		}
	}
	role, err := a.store.UpdateRole(name, req.Description, perms, a.now())
	switch {
	case errors.Is(err, storage.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("no role named %q", name))
		return
	case err != nil:
		a.storeError(w, r, "updating a role", err)
		return
	}
	a.record(r, key, "rbac.roles.update", http.StatusOK, map[string]any{"role": name, "permissions": perms})
	writeJSON(w, http.StatusOK, customView(role))
}

// deleteRole serves DELETE /api/v1/roles/{name}.
func (a *api) deleteRole(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	name, ok := roleName(w, r)
	if !ok {
		return
	}
	if _, builtin := builtinRoles[name]; builtin {
		writeProblem(w, r, http.StatusConflict, fmt.Sprintf("role %q is built in and cannot be deleted", name))
		return
	}
	role, err := a.store.GetRole(name)
	if err == nil {
		err = a.store.DeleteRole(name)
	}
	var inUse *storage.RoleInUseError
	switch {
	case errors.As(err, &inUse):
		a.record(r, key, "rbac.roles.delete", http.StatusConflict, map[string]any{"role": name, "keys": inUse.Keys, "bindings": inUse.Bindings})
		var parts []string
		if len(inUse.Keys) > 0 {
			parts = append(parts, "keys "+strings.Join(inUse.Keys, ", "))
		}
		if len(inUse.Bindings) > 0 {
			parts = append(parts, "bindings "+strings.Join(inUse.Bindings, ", "))
		}
		writeProblem(w, r, http.StatusConflict, fmt.Sprintf("role %q is still used by %s; revoke or rebind them first", name, strings.Join(parts, " and ")))
		return
	case errors.Is(err, storage.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("no role named %q", name))
		return
	case err != nil:
		a.storeError(w, r, "deleting a role", err)
		return
	}
	a.record(r, key, "rbac.roles.delete", http.StatusOK, map[string]any{"role": name, "permissions": role.Permissions})
	writeJSON(w, http.StatusOK, customView(role))
}

// bindingsQuery is the parsed query of GET /api/v1/bindings.
type bindingsQuery struct {
	principal, role, workspace string
}

var bindingParams = params[bindingsQuery]{
	"principal": {doc: "Only bindings of this API key id.", parse: func(q *bindingsQuery, v string) error { q.principal = v; return nil }},
	"role":      {doc: "Only bindings granting this role.", parse: func(q *bindingsQuery, v string) error { q.role = v; return nil }},
	"workspace": {doc: "Only bindings in this workspace.", parse: func(q *bindingsQuery, v string) error { q.workspace = v; return nil }},
}

// bindingsResponse answers GET /api/v1/bindings.
type bindingsResponse struct {
	// Bindings match the filter, oldest first.
	Bindings []storage.RoleBinding `json:"bindings"`
}

// listBindings serves GET /api/v1/bindings.
func (a *api) listBindings(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	var q bindingsQuery
	if err := parseParams(r.URL.RawQuery, &q, bindingParams); err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	all, err := a.store.ListBindings(q.principal)
	if err != nil {
		a.storeError(w, r, "listing role bindings", err)
		return
	}
	out := slices.DeleteFunc(all, func(b storage.RoleBinding) bool {
		return q.role != "" && b.Role != q.role || q.workspace != "" && b.Workspace != q.workspace
	})
	details := map[string]any{"returned": len(out)}
	for name, v := range map[string]string{"principal": q.principal, "role": q.role, "workspace": q.workspace} {
		if v != "" {
			details[name] = truncate(v, 64)
		}
	}
	a.record(r, key, "rbac.bindings.list", http.StatusOK, details)
	writeJSON(w, http.StatusOK, bindingsResponse{Bindings: nonNil(out)})
}

// bindingRequest is the body of POST /api/v1/bindings.
type bindingRequest struct {
	// Principal is the id of the API key to grant the role to.
	Principal string `json:"principal"`
	// Role is a built-in or custom role name.
	Role string `json:"role"`
	// Workspace confines the grant to one workspace; omit it for a
	// global grant. Reserved names (a leading '_') are refused except
	// _audit, the admin API's own events.
	Workspace string `json:"workspace,omitempty"`
}

// createBinding serves POST /api/v1/bindings.
func (a *api) createBinding(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	var req bindingRequest
	if !readJSON(w, r, maxRBACBody, &req, true, "the role binding to create") {
		return
	}
	if req.Principal == "" || len(req.Principal) > 64 {
		writeProblem(w, r, http.StatusBadRequest, "field \"principal\": the id of an API key is required")
		return
	}
	custom, ok := a.checkGrant(w, r, req.Role, req.Workspace)
	if !ok {
		return
	}
	now := a.now()
	b := storage.RoleBinding{
		ID: storage.NewID(now), Principal: req.Principal, Role: req.Role, Workspace: req.Workspace,
		CreatedAt: now.UTC(), CreatedBy: key.ID,
	}
	err := a.store.CreateBinding(b, custom)
	switch {
	case errors.Is(err, storage.ErrUnknownRole):
		writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("field \"role\": no role named %q", req.Role))
		return
	case errors.Is(err, storage.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("field \"principal\": no API key with id %q", truncate(req.Principal, 64)))
		return
	case errors.Is(err, storage.ErrRevoked):
		writeProblem(w, r, http.StatusConflict, fmt.Sprintf("field \"principal\": API key %q is revoked", req.Principal))
		return
	case errors.Is(err, storage.ErrExists):
		writeProblem(w, r, http.StatusConflict, "a binding with the same principal, role and workspace exists: "+err.Error())
		return
	case err != nil:
		a.storeError(w, r, "creating a role binding", err)
		return
	}
	a.record(r, key, "rbac.bindings.create", http.StatusCreated, map[string]any{
		"binding_id": b.ID, "principal": b.Principal, "role": b.Role, "workspace": b.Workspace,
	})
	w.Header().Set("Location", "/api/v1/bindings/"+b.ID)
	writeJSON(w, http.StatusCreated, b)
}

// deleteBinding serves DELETE /api/v1/bindings/{id}.
func (a *api) deleteBinding(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	id := r.PathValue("id")
	rbacMu.Lock()
	defer rbacMu.Unlock()
	b, err := a.store.GetBinding(id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("no role binding with id %q", truncate(id, 64)))
		return
	case err != nil:
		a.storeError(w, r, "reading a role binding", err)
		return
	}
	locked, err := a.leavesNoManager(rbacChange{binding: id})
	if err != nil {
		a.storeError(w, r, "checking who manages access", err)
		return
	}
	if locked {
		a.record(r, key, "rbac.bindings.delete", http.StatusConflict, map[string]any{"binding_id": id, "reason": "lockout"})
		writeProblem(w, r, http.StatusConflict, "deleting this binding would leave no active key that manages access; grant "+permRBACManage+" to another key first")
		return
	}
	if _, err := a.store.DeleteBinding(id); errors.Is(err, storage.ErrNotFound) {
		writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("no role binding with id %q", truncate(id, 64)))
		return
	} else if err != nil {
		a.storeError(w, r, "deleting a role binding", err)
		return
	}
	a.record(r, key, "rbac.bindings.delete", http.StatusOK, map[string]any{
		"binding_id": b.ID, "principal": b.Principal, "role": b.Role, "workspace": b.Workspace,
	})
	writeJSON(w, http.StatusOK, b)
}

// checkGrant checks the role and workspace a request body grants (a new
// key's or a binding's): a built-in or stored custom role, a workspace
// name checkWorkspaceName accepts, and a role whose every permission the
// caller holds itself at that workspace (mayGrant). It answers the
// problem, naming the field, itself; custom says whether the role is
// custom.
func (a *api) checkGrant(w http.ResponseWriter, r *http.Request, role, ws string) (custom, ok bool) {
	perms := builtinRoles[role]
	if perms == nil {
		if err := storage.ValidRoleName(role); err != nil {
			writeProblem(w, r, http.StatusBadRequest, "field \"role\": "+err.Error())
			return false, false
		}
		stored, err := a.store.GetRole(role)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("field \"role\": no role named %q (see GET /api/v1/roles)", role))
			return false, false
		case err != nil:
			a.storeError(w, r, "reading a role", err)
			return false, false
		}
		custom, perms = true, knownPerms(stored.Permissions)
	}
	if detail := checkWorkspaceName(ws); detail != "" {
		writeProblem(w, r, http.StatusBadRequest, detail)
		return false, false
	}
	return custom, a.mayGrant(w, r, perms, ws, fmt.Sprintf("role %q", role))
}

// mayGrant refuses (403, recorded) a grant of perms in workspace ws ("" =
// every workspace) unless the caller holds every one of them there
// itself, naming those it lacks; what names the grant for the message.
// This is Kubernetes' escalate/bind rule: rbac:manage lets a principal
// hand out what it has, never more, or a key manager could make itself
// admin. Admin holds everything globally, so admins may grant anything.
func (a *api) mayGrant(w http.ResponseWriter, r *http.Request, perms []string, ws, what string) bool {
	key, _ := principalFrom(r.Context())
	lacking := scopeFrom(r).acc.lacking(perms, ws)
	if len(lacking) == 0 {
		return true
	}
	where := "globally"
	if ws != "" {
		where = fmt.Sprintf("in workspace %q", ws)
	}
	a.forbidden(w, r, key, fmt.Sprintf("granting %s %s needs permissions this API key does not hold %s: %s; a key may only grant what it holds itself",
		what, where, where, strings.Join(lacking, ", ")))
	return false
}

// checkWorkspaceName checks the workspace of a grant: empty (global), the
// audit workspace (a principal may be bound to it explicitly to read the
// admin API's own events), or a name storage.ValidWorkspaceID accepts, the
// rule workspace creation uses, so every workspace that can be created
// can be granted.
func checkWorkspaceName(ws string) string {
	switch {
	case ws == "" || ws == storage.AuditWorkspace:
		return ""
	case storage.ReservedWorkspace(ws):
		return fmt.Sprintf("field \"workspace\": names starting with '_' are reserved; only %q may be granted", storage.AuditWorkspace)
	}
	if err := storage.ValidWorkspaceID(ws); err != nil {
		return "field \"workspace\": " + err.Error()
	}
	return ""
}

// hasControl reports whether s holds a control character.
func hasControl(s string) bool { return strings.ContainsFunc(s, unicode.IsControl) }

// rbacChange is a change that may take access away, for leavesNoManager:
// a key revoked, a binding deleted, or a custom role's new permissions.
type rbacChange struct {
	key, binding, role string
	perms              []string
}

// leavesNoManager reports whether, after ch, no active key would hold
// rbac:manage globally, which would leave nobody able to issue keys short
// of editing the database. Callers hold rbacMu.
func (a *api) leavesNoManager(ch rbacChange) (bool, error) {
	keys, err := a.store.ListAPIKeys()
	if err != nil {
		return false, err
	}
	bindings, err := a.store.ListBindings("")
	if err != nil {
		return false, err
	}
	now := a.now()
	manages := make(map[string]bool)
	grants := func(role string) (bool, error) {
		if ch.role != "" && role == ch.role {
			return slices.Contains(ch.perms, permRBACManage), nil
		}
		if m, ok := manages[role]; ok {
			return m, nil
		}
		perms, err := a.rolePermissions(role)
		manages[role] = slices.Contains(perms, permRBACManage)
		return manages[role], err
	}
	active := make(map[string]bool)
	for _, k := range keys {
		if k.ID == ch.key || keyStatus(k, now) != keyActive {
			continue
		}
		active[k.ID] = true
		if k.Workspace == "" {
			if ok, err := grants(k.Role); err != nil || ok {
				return false, err
			}
		}
	}
	for _, b := range bindings {
		if b.ID == ch.binding || !active[b.Principal] || b.Workspace != "" {
			continue
		}
		if ok, err := grants(b.Role); err != nil || ok {
			return false, err
		}
	}
	return true, nil
}

// nonNil returns s, or an empty slice for nil, so JSON shows [] not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
