package adminapi

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

// eventRoutes are the event search, read, statistics and export
// endpoints. The literal paths (/export, /stats, /timeseries,
// /suspicious) win over /{id} in the mux, so no id can shadow them.
func (a *api) eventRoutes() []route {
	return []route{
		{method: http.MethodGet, path: "/api/v1/events", perm: permEventsRead, h: a.searchEvents,
			summary: "Search audit events, newest first, with cursor pagination", query: eventParams.docs(), resp: EventsPage{}},
		{method: http.MethodGet, path: "/api/v1/events/suspicious", perm: permEventsRead, h: a.suspiciousEvents,
			summary: "Suspicious events (risk score 40 or more), newest first, with cursor pagination: the search with suspicious=true forced", query: suspiciousParams.docs(), resp: EventsPage{}},
		{method: http.MethodGet, path: "/api/v1/events/{id}", perm: permEventsRead, h: a.getEvent,
			summary: "Read one audit event by its id (a ULID)", resp: storage.Event{}},
		{method: http.MethodGet, path: "/api/v1/events/stats", perm: permEventsRead, h: a.eventStats,
			summary: "Counts of the matching events: total, by status class, risk level and outcome, top users, paths and client addresses", query: statsParams.docs(), resp: eventStats{}},
		{method: http.MethodGet, path: "/api/v1/events/timeseries", perm: permEventsRead, h: a.eventTimeseries,
			summary: "Counts of the matching events per minute, hour or day", query: timeseriesParams.docs(), resp: timeseries{}},
		{method: http.MethodGet, path: "/api/v1/events/export", perm: permEventsExport, h: a.exportEvents,
			summary: "Export the matching events, streamed, as NDJSON (verifiable when unfiltered), CSV, JSON, OCSF HTTP Activity or ECS; row count and SHA-256 in trailers", query: exportParams.docs(), resp: "application/x-ndjson"},
	}
}

// filtered is a query type Q whose filters are an eventsQuery, its own or
// embedded: events finds it, so each query type states that once.
type filtered[Q any] interface {
	*Q
	events() *eventsQuery
}

func (q *eventsQuery) events() *eventsQuery { return q }

// filterParams are eventParams without paging (limit, cursor) and
// without the names in drop, lifted onto a query type Q that embeds an
// eventsQuery, plus extra: the filters of the exports, statistics and
// time series, from the one table that parses the search's, so every
// endpoint filters alike.
func filterParams[Q any, P filtered[Q]](extra params[Q], drop ...string) params[Q] {
	get := func(q *Q) *eventsQuery { return P(q).events() }
	return liftParams(eventParams, get, extra, slices.Concat(drop, []string{"limit", "cursor"})...)
}

// defaultPageSize is the page size when the client names none: enough for
// a screen, small enough that a forgotten limit does not pull the store.
const defaultPageSize = 100

// EventsPage is the body of GET /api/v1/events.
type EventsPage struct {
	Events     []storage.Event `json:"events"`
	NextCursor string          `json:"next_cursor,omitempty"`
}

// eventsQuery is a parsed GET /api/v1/events query string.
type eventsQuery struct {
	filter storage.Filter
	limit  int
	cursor string
}

// eventParams are the filters of GET /api/v1/events (and, without limit
// and cursor, of the exports and reports).
var eventParams = params[eventsQuery]{
	"from": {doc: "Start of the time range, inclusive (RFC 3339).", format: "date-time",
		parse: func(q *eventsQuery, v string) (err error) { q.filter.From, err = parseTime(v); return err }},
	"to": {doc: "End of the time range, exclusive (RFC 3339).", format: "date-time",
		parse: func(q *eventsQuery, v string) (err error) { q.filter.To, err = parseTime(v); return err }},
	"user": {doc: "Events of this user, exactly as recorded.",
		parse: func(q *eventsQuery, v string) error { q.filter.User = v; return nil }},
	"workspace": {doc: "Events of this workspace.",
		parse: func(q *eventsQuery, v string) error { q.filter.Workspace = v; return nil }},
	"request_id": {doc: "The event(s) of one request, by its X-Request-ID.",
		parse: func(q *eventsQuery, v string) error { q.filter.RequestID = v; return nil }},
	"cursor": {doc: "next_cursor of the previous page, unchanged.",
		parse: func(q *eventsQuery, v string) error { q.cursor = v; return nil }},
	"client_ip": {doc: "Events from this client address (IPv4 or IPv6).",
		parse: func(q *eventsQuery, v string) error {
			// Canonical form, because that is how the audit handler stores
			// addresses: 2001:DB8::1 must find 2001:db8::1.
			ip, err := netip.ParseAddr(v)
			if err != nil {
				return errors.New("expects an IP address such as 192.0.2.10 or 2001:db8::1")
			}
			q.filter.ClientIP = ip.String()
			return nil
		}},
	"method": {doc: "HTTP method, such as DELETE.",
		parse: func(q *eventsQuery, v string) error {
			if len(v) > 32 || !policy.IsToken(v) {
				return errors.New("expects an HTTP method such as GET or DELETE")
			}
			q.filter.Method = strings.ToUpper(v)
			return nil
		}},
	"status": {doc: "Response status code.", typ: "integer",
		parse: func(q *eventsQuery, v string) error {
			return intIn(v, 100, 599, &q.filter.Status, "an HTTP status code")
		}},
	"path_prefix": {doc: "Events whose path starts with this, such as /api/.",
		parse: func(q *eventsQuery, v string) error {
			// Event paths are stored as received, so they all start with "/";
			// a prefix without one would silently match nothing.
			if !strings.HasPrefix(v, "/") {
				return errors.New("expects a path starting with /, such as /api/")
			}
			q.filter.PathPrefix = v
			return nil
		}},
	"kind": {doc: "http (proxied traffic), admin (use of this API) or lifecycle (start, stop, drops).",
		parse: func(q *eventsQuery, v string) error {
			if v != storage.KindHTTP && v != storage.KindAdmin && v != storage.KindLifecycle {
				return fmt.Errorf("expects one of %s, %s, %s", storage.KindHTTP, storage.KindAdmin, storage.KindLifecycle)
			}
			q.filter.Kind = v
			return nil
		}},
	"stage": {doc: "request_received (strict mode's pre-forward record) or response_complete.",
		parse: func(q *eventsQuery, v string) error {
			if v != storage.StageRequestReceived && v != storage.StageResponseComplete {
				return fmt.Errorf("expects %s or %s", storage.StageRequestReceived, storage.StageResponseComplete)
			}
			q.filter.Stage = v
			return nil
		}},
	"status_class": {doc: "Status class 1-5, or 1xx-5xx.",
		parse: func(q *eventsQuery, v string) error {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.ToLower(v), "xx"))
			if err != nil || n < 1 || n > 5 {
				return errors.New("expects a status class from 1 to 5, such as 4 or 4xx")
			}
			q.filter.StatusClass = n
			return nil
		}},
	"risk_level": {doc: "low, medium, high or critical.",
		parse: func(q *eventsQuery, v string) error {
			switch v {
			case "low", "medium", "high", "critical":
				q.filter.RiskLevel = v
				return nil
			}
			return errors.New("expects low, medium, high or critical")
		}},
	"min_risk": {doc: "Events with at least this risk score (0-100).", typ: "integer",
		parse: func(q *eventsQuery, v string) error { return intIn(v, 0, 100, &q.filter.MinRisk, "a risk score") }},
	"suspicious": {doc: "true: only events scored suspicious (risk >= 40); false: only the others.", typ: "boolean",
		parse: func(q *eventsQuery, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return errors.New("expects true or false")
			}
			q.filter.Suspicious = &b
			return nil
		}},
	"limit": {doc: fmt.Sprintf("Page size, 1-%d (default %d).", storage.MaxPageSize, defaultPageSize), typ: "integer",
		parse: func(q *eventsQuery, v string) error {
			return intIn(v, 1, storage.MaxPageSize, &q.limit, "a number of events")
		}},
}

// parseEventsQuery parses a raw query string.
func parseEventsQuery(raw string) (eventsQuery, error) {
	q := eventsQuery{limit: defaultPageSize}
	err := parseFilterQuery(raw, &q, eventParams)
	return q, err
}

// searchEvents serves GET /api/v1/events.
func (a *api) searchEvents(w http.ResponseWriter, r *http.Request) {
	q, err := parseEventsQuery(r.URL.RawQuery)
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	a.answerPage(w, r, "events.search", q)
}

// parseFilterQuery parses raw into q with ps, then checks the time range
// of q's filter.
func parseFilterQuery[Q any, P filtered[Q]](raw string, q P, ps params[Q]) error {
	if err := parseParams(raw, (*Q)(q), ps); err != nil {
		return err
	}
	f := q.events().filter
	return checkTimeRange(f.From, f.To)
}

// suspiciousParams are the search's parameters without suspicious, which
// GET /api/v1/events/suspicious forces to true.
var suspiciousParams = func() params[eventsQuery] {
	ps := maps.Clone(eventParams)
	delete(ps, "suspicious")
	return ps
}()

// suspiciousEvents serves GET /api/v1/events/suspicious: the search with
// suspicious=true forced, in the same order (newest first) and with the
// same cursors. Ordering by risk instead would need a sort of every match
// before the first page, which the store's time-ordered cursors cannot
// page; min_risk narrows to the riskiest instead.
func (a *api) suspiciousEvents(w http.ResponseWriter, r *http.Request) {
	q := eventsQuery{limit: defaultPageSize}
	if err := parseFilterQuery(r.URL.RawQuery, &q, suspiciousParams); err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	yes := true
	q.filter.Suspicious = &yes
	a.answerPage(w, r, "events.suspicious", q)
}

// answerPage answers one page of q, scoped to the caller's workspace, and
// records it as action.
func (a *api) answerPage(w http.ResponseWriter, r *http.Request, action string, q eventsQuery) {
	key, _ := principalFrom(r.Context())
	if !a.scopeFilter(w, r, key, &q.filter) {
		return
	}

	page, err := a.store.Query(q.filter, q.limit, q.cursor)
	switch {
	case errors.Is(err, storage.ErrBadCursor):
		writeProblem(w, r, http.StatusBadRequest, "query parameter cursor: not a cursor this API issued; pass next_cursor from the previous page unchanged")
		return
	case errors.Is(err, storage.ErrBadFilter):
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		a.storeError(w, r, "querying audit events", err)
		return
	}
	if page.Events == nil {
		page.Events = []storage.Event{} // clients iterate "events"; null would break them
	}

	a.record(r, key, action, http.StatusOK, map[string]any{
		"returned": len(page.Events),
		"filter":   filterDetails(q.filter),
	})
	writeJSON(w, http.StatusOK, EventsPage{Events: page.Events, NextCursor: page.NextCursor})
}

// getEvent serves GET /api/v1/events/{id}. An event of a workspace the
// caller may not see is answered 404 like a missing one, so the answer
// does not confirm the id exists.
func (a *api) getEvent(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	id := r.PathValue("id")
	if _, ok := storage.IDTime(id); !ok {
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("path parameter id: expects an event id, a 26-character ULID such as 01JPBW3N2Q8V4XG7M5K9T0RZ6C (got %q)", truncate(id, 64)))
		return
	}
	ev, err := a.store.EventByID(r.Context(), id)
	if err == nil && !inScope(r, ev.Workspace) {
		err = storage.ErrNotFound
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		a.record(r, key, "events.get", http.StatusNotFound, map[string]any{"event_id": id})
		writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("no event with id %q", id))
		return
	case err != nil:
		a.storeError(w, r, "reading an audit event", err)
		return
	}
	a.record(r, key, "events.get", http.StatusOK, map[string]any{"event_id": ev.ID, "seq": ev.Seq})
	writeJSON(w, http.StatusOK, ev)
}

// filterDetails names the filter's set fields with the API's parameter
// names, so the audit record reads like the request that was answered.
func filterDetails(f storage.Filter) map[string]any {
	d := make(map[string]any)
	set := func(name, v string) {
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
	if f.Status != 0 {
		d["status"] = f.Status
	}
	set("user", f.User)
	set("client_ip", f.ClientIP)
	set("workspace", f.Workspace)
	set("method", f.Method)
	set("path_prefix", f.PathPrefix)
	set("kind", f.Kind)
	set("stage", f.Stage)
	set("request_id", f.RequestID)
	set("risk_level", f.RiskLevel)
	if f.StatusClass != 0 {
		d["status_class"] = f.StatusClass
	}
	if f.MinRisk != 0 {
		d["min_risk"] = f.MinRisk
	}
	if f.Suspicious != nil {
		d["suspicious"] = *f.Suspicious
	}
	return d
}
