package adminapi

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/storage"
)

// workspaceRoutes are the workspace settings endpoints.
func (a *api) workspaceRoutes() []route {
	return []route{
		{method: http.MethodGet, path: "/api/v1/workspaces", perm: permSettingsRead, h: a.listWorkspaces,
			summary: "List workspaces: stored records and workspaces seen only in events", resp: workspacesList{}},
		{method: http.MethodPost, path: "/api/v1/workspaces", perm: permWorkspacesManage, h: a.createWorkspace,
			summary: "Create a workspace record (global principals only)", body: workspaceCreate{}, resp: workspaceView{}, created: true, problems: []int{http.StatusConflict}},
		{method: http.MethodGet, path: "/api/v1/workspaces/{id}", perm: permSettingsRead, h: a.getWorkspace,
			summary: "Read one workspace's settings", resp: workspaceView{}},
		{method: http.MethodPatch, path: "/api/v1/workspaces/{id}", perm: permWorkspacesManage, h: a.patchWorkspace,
			summary: "Change a workspace's name, retention, business hours or legal hold", body: workspacePatch{}, resp: workspaceView{}},
	}
}

// workspaceView is a workspace as the API shows it: its record, if any,
// and whether it has one and events.
type workspaceView struct {
	storage.Workspace
	// HasRecord is false for a workspace seen only in events: it runs on
	// the defaults until someone stores settings for it.
	HasRecord bool `json:"has_record"`
	// HasEvents says whether any stored event names the workspace.
	HasEvents bool `json:"has_events"`
}

// workspacesList is the body of GET /api/v1/workspaces.
type workspacesList struct {
	// Workspaces are sorted by id.
	Workspaces []workspaceView `json:"workspaces"`
}

// workspaceCreate is the body of POST /api/v1/workspaces.
type workspaceCreate struct {
	// ID is the value events carry in their workspace field: 1-128
	// letters, digits, '.', '-', '_', ':' or '@', not starting with '_'
	// (storage.ValidWorkspaceID, the rule grants use too).
	ID string `json:"id"`
	// Name is a human label.
	Name string `json:"name,omitempty"`
	// RetentionDays keeps the workspace's events that many days; 0 (the
	// default) means the configured retention.
	RetentionDays int `json:"retention_days,omitempty"`
	// BusinessHours override the detector config's for this workspace.
	BusinessHours *storage.BusinessHours `json:"business_hours,omitempty"`
	// LegalHold suspends purging of the workspace's events.
	LegalHold bool `json:"legal_hold,omitempty"`
	// LegalHoldReason is required with legal_hold.
	LegalHoldReason string `json:"legal_hold_reason,omitempty"`
}

// workspacePatch is the body of PATCH /api/v1/workspaces/{id}: absent
// fields stay as they are.
type workspacePatch struct {
	// Name replaces the label; "" removes it.
	Name *string `json:"name,omitempty"`
	// RetentionDays replaces the retention; 0 returns to the configured
	// default. It applies from the next retention pass.
	RetentionDays *int `json:"retention_days,omitempty"`
	// BusinessHours replace the stored business hours; {} removes them so
	// the detector config's apply again.
	BusinessHours *storage.BusinessHours `json:"business_hours,omitempty"`
	// LegalHold sets or lifts the legal hold.
	LegalHold *bool `json:"legal_hold,omitempty"`
	// LegalHoldReason says why; required when setting a legal hold.
	LegalHoldReason *string `json:"legal_hold_reason,omitempty"`
}

// Limits of the workspace endpoints.
const (
	maxWorkspaceBody   = 16 << 10
	maxWorkspaceName   = 256
	maxLegalHoldReason = 1024
	// maxRetentionDays is 100 years: more is a typo, not a policy.
	maxRetentionDays = 36500
)

// checkBusinessHours validates business hours by the detectors' rules,
// naming the field.
func checkBusinessHours(b *storage.BusinessHours) error {
	if b == nil {
		return nil
	}
	err := detectors.ValidateBusinessHours(detectors.BusinessHours{Timezone: b.Timezone, Days: b.Days, Start: b.Start, End: b.End})
	if err == nil {
		return nil
	}
	var msgs []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			msgs = append(msgs, "business_hours."+e.Error())
		}
	} else {
		msgs = append(msgs, "business_hours."+err.Error())
	}
	return errors.New(strings.Join(msgs, "; "))
}

// checkSettings validates the settings every workspace record must meet.
func checkSettings(w storage.Workspace) error {
	switch {
	case len(w.Name) > maxWorkspaceName:
		return fmt.Errorf("name is longer than %d bytes", maxWorkspaceName)
	case w.RetentionDays < 0 || w.RetentionDays > maxRetentionDays:
		return fmt.Errorf("retention_days must be between 0 (the configured default) and %d, got %d", maxRetentionDays, w.RetentionDays)
	case len(w.LegalHoldReason) > maxLegalHoldReason:
		return fmt.Errorf("legal_hold_reason is longer than %d bytes", maxLegalHoldReason)
	case w.LegalHold && strings.TrimSpace(w.LegalHoldReason) == "":
		return errors.New("legal_hold_reason is required with a legal hold: an auditor will ask why purging stopped")
	}
	return checkBusinessHours(w.BusinessHours)
}

// eventWorkspaces lists the workspaces stored events name ("" left out).
func (a *api) eventWorkspaces() ([]string, error) {
	ws, err := a.store.EventWorkspaces()
	return slices.DeleteFunc(ws, func(s string) bool { return s == "" }), err
}

// listWorkspaces serves GET /api/v1/workspaces.
func (a *api) listWorkspaces(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	records, err := a.store.Workspaces()
	if err != nil {
		a.storeError(w, r, "listing workspaces", err)
		return
	}
	seen, err := a.eventWorkspaces()
	if err != nil {
		a.storeError(w, r, "listing the workspaces of events", err)
		return
	}
	views := make(map[string]*workspaceView)
	for _, rec := range records {
		views[rec.ID] = &workspaceView{Workspace: rec, HasRecord: true}
	}
	for _, id := range seen {
		if v, ok := views[id]; ok {
			v.HasEvents = true
		} else {
			views[id] = &workspaceView{Workspace: storage.Workspace{ID: id}, HasEvents: true}
		}
	}
	out := workspacesList{Workspaces: []workspaceView{}}
	for _, id := range slices.Sorted(maps.Keys(views)) {
		// inScope also keeps the reserved audit workspace from scoped
		// principals: no tenant is scoped to it.
		if inScope(r, id) {
			out.Workspaces = append(out.Workspaces, *views[id])
		}
	}
	a.record(r, key, "workspaces.list", http.StatusOK, map[string]any{"returned": len(out.Workspaces)})
	writeJSON(w, http.StatusOK, out)
}

// loadWorkspace finds the workspace named in the path, record or not. A
// workspace out of the caller's scope is as absent as an unknown one.
func (a *api) loadWorkspace(w http.ResponseWriter, r *http.Request, key storage.APIKey, action string) (workspaceView, bool) {
	id := r.PathValue("id")
	v := workspaceView{Workspace: storage.Workspace{ID: id}}
	if inScope(r, id) {
		rec, err := a.store.GetWorkspace(id)
		switch {
		case err == nil:
			v.Workspace, v.HasRecord = rec, true
		case !errors.Is(err, storage.ErrNotFound):
			a.storeError(w, r, "reading a workspace", err)
			return v, false
		}
		seen, err := a.eventWorkspaces()
		if err != nil {
			a.storeError(w, r, "listing the workspaces of events", err)
			return v, false
		}
		v.HasEvents = slices.Contains(seen, id)
	}
	if !v.HasRecord && !v.HasEvents {
		a.record(r, key, action, http.StatusNotFound, map[string]any{"workspace": truncate(id, 64)})
		writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("no workspace %q", truncate(id, 64)))
		return v, false
	}
	return v, true
}

// getWorkspace serves GET /api/v1/workspaces/{id}.
func (a *api) getWorkspace(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	v, ok := a.loadWorkspace(w, r, key, "workspaces.get")
	if !ok {
		return
	}
	a.record(r, key, "workspaces.get", http.StatusOK, map[string]any{"workspace": v.ID})
	writeJSON(w, http.StatusOK, v)
}

// refuseWorkspace answers 400 for a bad body or setting, and records it.
func (a *api) refuseWorkspace(w http.ResponseWriter, r *http.Request, key storage.APIKey, action, id string, err error) {
	a.record(r, key, action, http.StatusBadRequest, map[string]any{"workspace": truncate(id, 64), "reason": err.Error()})
	writeProblem(w, r, http.StatusBadRequest, err.Error())
}

// createWorkspace serves POST /api/v1/workspaces.
func (a *api) createWorkspace(w http.ResponseWriter, r *http.Request) {
	const action = "workspaces.create"
	key, _ := principalFrom(r.Context())
	if !a.requireGlobal(w, r, "only a global principal creates workspaces") {
		return
	}
	var body workspaceCreate
	if !readJSON(w, r, maxWorkspaceBody, &body, true, `the workspace to create, {"id": "..."}`) {
		return
	}
	if err := storage.ValidWorkspaceID(body.ID); err != nil {
		a.refuseWorkspace(w, r, key, action, body.ID, err)
		return
	}
	now := a.now().UTC()
	ws := storage.Workspace{
		ID: body.ID, Name: body.Name, RetentionDays: body.RetentionDays,
		LegalHold: body.LegalHold, LegalHoldReason: body.LegalHoldReason,
		CreatedAt: now, UpdatedAt: now,
	}
	if body.BusinessHours != nil && !body.BusinessHours.IsZero() {
		ws.BusinessHours = body.BusinessHours
	}
	if err := checkSettings(ws); err != nil {
		a.refuseWorkspace(w, r, key, action, body.ID, err)
		return
	}
	err := a.store.CreateWorkspace(ws)
	switch {
	case errors.Is(err, storage.ErrExists):
		a.record(r, key, action, http.StatusConflict, map[string]any{"workspace": ws.ID})
		writeProblem(w, r, http.StatusConflict, fmt.Sprintf("workspace %q already exists; change it with PATCH /api/v1/workspaces/%s", ws.ID, ws.ID))
		return
	case err != nil:
		a.storeError(w, r, "creating a workspace", err)
		return
	}
	a.workspaceChanged(ws)
	a.record(r, key, action, http.StatusCreated, map[string]any{"workspace": ws.ID, "settings": workspaceSettings(ws)})
	w.Header().Set("Location", "/api/v1/workspaces/"+ws.ID)
	writeJSON(w, http.StatusCreated, workspaceView{Workspace: ws, HasRecord: true, HasEvents: a.hasEvents(ws.ID)})
}

// hasEvents reports whether stored events name workspace id; a failing
// store reads as no (the answer is informational).
func (a *api) hasEvents(id string) bool {
	seen, err := a.eventWorkspaces()
	return err == nil && slices.Contains(seen, id)
}

// workspaceChanged tells the listener (the detector worker) about a
// stored workspace's new settings.
func (a *api) workspaceChanged(ws storage.Workspace) {
	if a.onWorkspaceChanged != nil {
		a.onWorkspaceChanged(ws)
	}
}

// workspaceSettings are the settings of ws for audit details.
func workspaceSettings(ws storage.Workspace) map[string]any {
	return map[string]any{
		"name": ws.Name, "retention_days": ws.RetentionDays, "business_hours": ws.BusinessHours,
		"legal_hold": ws.LegalHold, "legal_hold_reason": ws.LegalHoldReason,
	}
}

// patchWorkspace serves PATCH /api/v1/workspaces/{id}. A workspace seen
// in events but without a record gets one.
func (a *api) patchWorkspace(w http.ResponseWriter, r *http.Request) {
	const action = "workspaces.update"
	key, _ := principalFrom(r.Context())
	var p workspacePatch
	if !readJSON(w, r, maxWorkspaceBody, &p, true, `the settings to change, such as {"retention_days": 90}`) {
		return
	}
	v, ok := a.loadWorkspace(w, r, key, action)
	if !ok {
		return
	}
	if storage.ReservedWorkspace(v.ID) {
		// The audit workspace holds the evidence of what admins did, the
		// caller included: its retention and holds come from the config
		// file (change-controlled, PCI DSS 10.5.1 keeps it 12 months),
		// never from the API it audits.
		a.forbidden(w, r, key, fmt.Sprintf("workspace %q is reserved to the sidecar; its settings come from the configuration, not the API", v.ID))
		return
	}
	if p == (workspacePatch{}) {
		a.refuseWorkspace(w, r, key, action, v.ID, errors.New("nothing to change: send name, retention_days, business_hours, legal_hold or legal_hold_reason"))
		return
	}
	now := a.now().UTC()
	global := scopeFrom(r).Global
	var invalid error
	var needGlobal []string
	before, after, err := a.store.UpdateWorkspace(v.ID, true, func(ws *storage.Workspace) error {
		old := *ws
		applyPatch(ws, p)
		if ws.CreatedAt.IsZero() {
			ws.CreatedAt = now
		}
		ws.UpdatedAt = now
		if invalid = checkSettings(*ws); invalid != nil {
			return invalid
		}
		// Judged against the stored record in the same transaction, so a
		// concurrent change cannot slip a lift past the check.
		if needGlobal = globalOnlyChanges(old, *ws); len(needGlobal) > 0 && !global {
			return errNeedsGlobal
		}
		return nil
	})
	switch {
	case errors.Is(err, errNeedsGlobal):
		a.forbidden(w, r, key, fmt.Sprintf(
			"this API key holds %s only in workspace %s; %s needs a global grant, so a tenant cannot undo what a global admin set for it",
			permWorkspacesManage, scopeFrom(r), strings.Join(needGlobal, ", ")))
		return
	case invalid != nil:
		a.refuseWorkspace(w, r, key, action, v.ID, invalid)
		return
	case err != nil:
		a.storeError(w, r, "changing a workspace", err)
		return
	}
	changes := diffSettings(workspaceSettings(before), workspaceSettings(after))
	if len(changes) > 0 {
		a.workspaceChanged(after)
	}
	a.record(r, key, action, http.StatusOK, map[string]any{"workspace": after.ID, "created_record": !v.HasRecord, "changes": changes})
	writeJSON(w, http.StatusOK, workspaceView{Workspace: after, HasRecord: true, HasEvents: v.HasEvents})
}

// errNeedsGlobal aborts a workspace update a scoped principal may not make.
var errNeedsGlobal = errors.New("the change needs a global grant")

// globalOnlyChanges lists the changes from before to after that only a
// principal holding workspaces:manage globally may make:
//   - lifting a legal hold, or rewording the reason of one: a hold is set
//     for litigation or an investigation, often by a global admin above
//     the tenant, and the tenant may be its subject;
//   - shortening retention, which purges evidence early. 0 means the
//     configured default, which the API does not know, so moving to or
//     from it counts as shortening; a scoped principal may only raise an
//     explicit retention;
//   - business hours (C11): they decide what the off-hours detectors call
//     unusual, so a tenant admin, whom those detectors watch, must not be
//     able to redefine them, and each change replays the workspace's
//     history through the detectors, so alternating them is a cheap way
//     to make the sidecar rebuild again and again. A global grant rather
//     than a rate limit: one rule, no state, and the people it leaves
//     able to do it are the ones trusted with every workspace anyway.
//
// Setting a hold, raising retention and renaming stay open to a scoped
// principal: they destroy nothing.
func globalOnlyChanges(before, after storage.Workspace) []string {
	var out []string
	switch {
	case before.LegalHold && !after.LegalHold:
		out = append(out, "lifting the legal hold")
	case before.LegalHold && after.LegalHoldReason != before.LegalHoldReason:
		out = append(out, "changing the legal hold's reason")
	}
	if after.RetentionDays != before.RetentionDays && (before.RetentionDays == 0 || after.RetentionDays < before.RetentionDays) {
		out = append(out, "shortening retention (or returning it to the configured default)")
	}
	if fmt.Sprint(deref(before.BusinessHours)) != fmt.Sprint(deref(after.BusinessHours)) {
		out = append(out, "changing business hours")
	}
	return out
}

// applyPatch applies the fields p sets to ws. Lifting a legal hold
// forgets its reason; the audit event keeps it.
func applyPatch(ws *storage.Workspace, p workspacePatch) {
	if p.Name != nil {
		ws.Name = *p.Name
	}
	if p.RetentionDays != nil {
		ws.RetentionDays = *p.RetentionDays
	}
	if p.BusinessHours != nil {
		ws.BusinessHours = p.BusinessHours
		if p.BusinessHours.IsZero() {
			ws.BusinessHours = nil
		}
	}
	if p.LegalHoldReason != nil {
		ws.LegalHoldReason = *p.LegalHoldReason
	}
	if p.LegalHold != nil {
		ws.LegalHold = *p.LegalHold
		if !ws.LegalHold && p.LegalHoldReason == nil {
			ws.LegalHoldReason = ""
		}
	}
}

// settingChange is one changed setting in an audit event.
type settingChange struct {
	Old any `json:"old"`
	New any `json:"new"`
}

// diffSettings returns old and new value of every setting that differs.
func diffSettings(before, after map[string]any) map[string]settingChange {
	out := make(map[string]settingChange)
	for k, nv := range after {
		ov := before[k]
		if fmt.Sprint(deref(ov)) != fmt.Sprint(deref(nv)) {
			out[k] = settingChange{Old: ov, New: nv}
		}
	}
	return out
}

// deref makes business hours compare by value.
func deref(v any) any {
	if b, ok := v.(*storage.BusinessHours); ok {
		if b == nil {
			return nil
		}
		return *b
	}
	return v
}
