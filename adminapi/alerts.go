package adminapi

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/storage"
)

// alertRoutes are the alert workflow endpoints.
func (a *api) alertRoutes() []route {
	id := "/api/v1/alerts/{id}"
	return []route{
		{method: http.MethodGet, path: "/api/v1/alerts", perm: permAlertsRead, h: a.listAlerts,
			summary: "List alerts, newest first, with cursor pagination", query: alertParams.docs(), resp: AlertsPage{}},
		{method: http.MethodGet, path: id, perm: permAlertsRead, h: a.getAlert,
			summary: "Read one alert with its evidence and history", resp: storage.Alert{}},
		{method: http.MethodPost, path: id + "/acknowledge", perm: permAlertsManage, h: a.transition(storage.StatusAcknowledged),
			summary: "Acknowledge an alert (someone is looking at it)", body: commentBody{}, resp: storage.Alert{}},
		{method: http.MethodPost, path: id + "/resolve", perm: permAlertsManage, h: a.transition(storage.StatusResolved),
			summary: "Resolve an alert", body: commentBody{}, resp: storage.Alert{}},
		{method: http.MethodPost, path: id + "/false_positive", perm: permAlertsManage, h: a.transition(storage.StatusFalsePositive),
			summary: "Mark an alert a false positive", body: commentBody{}, resp: storage.Alert{}},
		{method: http.MethodPost, path: id + "/comments", perm: permAlertsManage, h: a.comment,
			summary: "Comment on an alert", body: commentBody{}, resp: storage.Alert{}, created: true},
	}
}

// AlertsPage is the body of GET /api/v1/alerts.
type AlertsPage struct {
	Alerts     []storage.Alert `json:"alerts"`
	NextCursor string          `json:"next_cursor,omitempty"`
}

// alertsQuery is a parsed GET /api/v1/alerts query string.
type alertsQuery struct {
	filter storage.AlertFilter
	limit  int
	cursor string
}

var alertStatuses = []string{
	storage.StatusOpen, storage.StatusAcknowledged, storage.StatusResolved, storage.StatusFalsePositive,
}

func oneOf(allowed []string) func(string) error {
	return func(v string) error {
		if !slices.Contains(allowed, v) {
			return fmt.Errorf("expects one of %s", strings.Join(allowed, ", "))
		}
		return nil
	}
}

// alertParams are the filters of GET /api/v1/alerts.
var alertParams = params[alertsQuery]{
	"detector": {doc: "One of " + strings.Join(detectors.Detectors, ", ") + ".",
		parse: func(q *alertsQuery, v string) error {
			q.filter.Detector = v
			return oneOf(detectors.Detectors)(v)
		}},
	"severity": {doc: "One of " + strings.Join(storage.Severities, ", ") + ".",
		parse: func(q *alertsQuery, v string) error {
			q.filter.Severity = v
			return oneOf(storage.Severities)(v)
		}},
	"status": {doc: "One of " + strings.Join(alertStatuses, ", ") + ".",
		parse: func(q *alertsQuery, v string) error {
			q.filter.Status = v
			return oneOf(alertStatuses)(v)
		}},
	"workspace": {doc: "Alerts of this workspace.",
		parse: func(q *alertsQuery, v string) error { q.filter.Workspace = v; return nil }},
	"subject": {doc: "Alerts about this subject (user, IP or API key).",
		parse: func(q *alertsQuery, v string) error { q.filter.SubjectValue = v; return nil }},
	"from": {doc: "Alerts last seen at or after this time (RFC 3339).", format: "date-time",
		parse: func(q *alertsQuery, v string) (err error) { q.filter.From, err = parseTime(v); return err }},
	"to": {doc: "Alerts first seen before this time (RFC 3339).", format: "date-time",
		parse: func(q *alertsQuery, v string) (err error) { q.filter.To, err = parseTime(v); return err }},
	"cursor": {doc: "next_cursor of the previous page, unchanged.",
		parse: func(q *alertsQuery, v string) error { q.cursor = v; return nil }},
	"limit": {doc: fmt.Sprintf("Page size, 1-%d (default %d).", storage.MaxPageSize, defaultPageSize), typ: "integer",
		parse: func(q *alertsQuery, v string) error {
			return intIn(v, 1, storage.MaxPageSize, &q.limit, "a number of alerts")
		}},
}

// parseAlertsQuery parses a raw query string, as strictly as the events
// search: an unknown or repeated parameter is an error.
func parseAlertsQuery(raw string) (alertsQuery, error) {
	q := alertsQuery{limit: defaultPageSize}
	if err := parseParams(raw, &q, alertParams); err != nil {
		return q, err
	}
	return q, checkTimeRange(q.filter.From, q.filter.To)
}

// scopeAlerts confines an alert filter to the key's workspace by the same
// rule as scopeFilter for events.
func (a *api) scopeAlerts(w http.ResponseWriter, r *http.Request, key storage.APIKey, f *storage.AlertFilter) bool {
	ef := storage.Filter{Workspace: f.Workspace}
	if !a.scopeFilter(w, r, key, &ef) {
		return false
	}
	f.Workspace = ef.Workspace
	return true
}

// listAlerts serves GET /api/v1/alerts.
func (a *api) listAlerts(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	q, err := parseAlertsQuery(r.URL.RawQuery)
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if !a.scopeAlerts(w, r, key, &q.filter) {
		return
	}
	page, err := a.store.ListAlerts(q.filter, q.limit, q.cursor)
	switch {
	case errors.Is(err, storage.ErrBadCursor):
		writeProblem(w, r, http.StatusBadRequest, "query parameter cursor: not a cursor this API issued; pass next_cursor from the previous page unchanged")
		return
	case err != nil:
		a.storeError(w, r, "listing alerts", err)
		return
	}
	if page.Alerts == nil {
		page.Alerts = []storage.Alert{}
	}
	a.record(r, key, "alerts.list", http.StatusOK, map[string]any{
		"returned": len(page.Alerts),
		"filter":   alertFilterDetails(q.filter),
	})
	writeJSON(w, http.StatusOK, AlertsPage{Alerts: page.Alerts, NextCursor: page.NextCursor})
}

func alertFilterDetails(f storage.AlertFilter) map[string]any {
	d := make(map[string]any)
	for name, v := range map[string]string{
		"detector": f.Detector, "severity": f.Severity, "status": f.Status,
		"workspace": f.Workspace, "subject": f.SubjectValue,
	} {
		if v != "" {
			d[name] = v
		}
	}
	if !f.From.IsZero() {
		d["from"] = f.From.UTC().Format(time.RFC3339Nano)
	}
	if !f.To.IsZero() {
		d["to"] = f.To.UTC().Format(time.RFC3339Nano)
	}
	return d
}

// loadAlert fetches the alert named in the path and checks that the key
// may see it. A workspace-scoped key asking for another workspace's alert
// gets 404, not 403: the answer must not confirm that the id exists.
func (a *api) loadAlert(w http.ResponseWriter, r *http.Request, key storage.APIKey, action string) (storage.Alert, bool) {
	id := r.PathValue("id")
	al, err := a.store.GetAlert(id)
	if err == nil && !inScope(r, al.Workspace) {
		err = storage.ErrNotFound
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		a.record(r, key, action, http.StatusNotFound, map[string]any{"alert_id": truncate(id, 64)})
		writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("no alert with id %q", truncate(id, 64)))
		return al, false
	case err != nil:
		a.storeError(w, r, "reading an alert", err)
		return al, false
	}
	return al, true
}

// getAlert serves GET /api/v1/alerts/{id}.
func (a *api) getAlert(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	al, ok := a.loadAlert(w, r, key, "alerts.get")
	if !ok {
		return
	}
	a.record(r, key, "alerts.get", http.StatusOK, map[string]any{"alert_id": al.ID})
	writeJSON(w, http.StatusOK, al)
}

// commentBody is the body of the alert workflow calls.
type commentBody struct {
	// Comment is the analyst's note. Optional on the status changes (an
	// empty body is no comment), required by POST .../comments.
	Comment string `json:"comment,omitempty"`
}

// maxCommentBody bounds the request body of the alert workflow calls.
const maxCommentBody = 16 << 10

// readComment reads the optional {"comment": "..."} body with readJSON,
// the one body reader (415 for a body that is not JSON, 413 for one too
// large, 400 for a malformed one), and records a refusal itself. An empty
// body is no comment.
func (a *api) readComment(w http.ResponseWriter, r *http.Request, key storage.APIKey, action string) (string, bool) {
	var b commentBody
	sw := &statusWriter{ResponseWriter: w}
	if !readJSON(sw, r, maxCommentBody, &b, false, `{"comment": "..."}`) {
		a.record(r, key, action, sw.status(), map[string]any{"alert_id": truncate(r.PathValue("id"), 64)})
		return "", false
	}
	if len(b.Comment) > storage.MaxCommentLength {
		detail := fmt.Sprintf("body field comment: longer than %d bytes", storage.MaxCommentLength)
		a.record(r, key, action, http.StatusBadRequest, map[string]any{"alert_id": truncate(r.PathValue("id"), 64), "reason": detail})
		writeProblem(w, r, http.StatusBadRequest, detail)
		return "", false
	}
	return b.Comment, true
}

// transition serves POST /api/v1/alerts/{id}/acknowledge, /resolve and
// /false_positive.
func (a *api) transition(to string) http.HandlerFunc {
	action := "alerts." + to
	return func(w http.ResponseWriter, r *http.Request) {
		key, _ := principalFrom(r.Context())
		comment, ok := a.readComment(w, r, key, action)
		if !ok {
			return
		}
		al, ok := a.loadAlert(w, r, key, action)
		if !ok {
			return
		}
		updated, err := a.store.SetAlertStatus(al.ID, to, key.ID, comment, a.now())
		switch {
		case errors.Is(err, storage.ErrInvalidTransition):
			a.record(r, key, action, http.StatusConflict, map[string]any{"alert_id": al.ID, "from": al.Status, "to": to})
			writeProblem(w, r, http.StatusConflict, fmt.Sprintf("alert %s is %s and cannot become %s", al.ID, al.Status, to))
			return
		case errors.Is(err, storage.ErrNotFound):
			writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("no alert with id %q", al.ID))
			return
		case err != nil:
			a.storeError(w, r, "changing an alert's status", err)
			return
		}
		if (to == storage.StatusResolved || to == storage.StatusFalsePositive) && a.onAlertClosed != nil {
			a.onAlertClosed(al.ID)
		}
		details := map[string]any{"alert_id": al.ID, "from": al.Status, "to": to}
		if comment != "" {
			details["comment"] = comment
		}
		a.record(r, key, action, http.StatusOK, details)
		writeJSON(w, http.StatusOK, updated)
	}
}

// comment serves POST /api/v1/alerts/{id}/comments.
func (a *api) comment(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	const action = "alerts.comment"
	comment, ok := a.readComment(w, r, key, action)
	if !ok {
		return
	}
	if comment == "" {
		detail := `a comment is required: {"comment": "..."}`
		a.record(r, key, action, http.StatusBadRequest, map[string]any{"alert_id": truncate(r.PathValue("id"), 64), "reason": detail})
		writeProblem(w, r, http.StatusBadRequest, detail)
		return
	}
	al, ok := a.loadAlert(w, r, key, action)
	if !ok {
		return
	}
	updated, err := a.store.AddAlertComment(al.ID, key.ID, comment, a.now())
	if err != nil {
		a.storeError(w, r, "commenting on an alert", err)
		return
	}
	a.record(r, key, action, http.StatusCreated, map[string]any{"alert_id": al.ID, "comment": comment})
	writeJSON(w, http.StatusCreated, updated)
}
