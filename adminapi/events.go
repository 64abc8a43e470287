package adminapi

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

// defaultPageSize is the page size when the client names none: enough for
// a screen, small enough that a forgotten limit does not pull the store.
const defaultPageSize = 100

// eventsPage is the body of GET /api/v1/events.
type eventsPage struct {
	Events     []storage.Event `json:"events"`
	NextCursor string          `json:"next_cursor,omitempty"`
}

// eventsQuery is a parsed GET /api/v1/events query string.
type eventsQuery struct {
	filter storage.Filter
	limit  int
	cursor string
}

// eventParams parses each accepted query parameter into q. A returned
// error says what the parameter expects; the caller names the parameter.
var eventParams = map[string]func(q *eventsQuery, v string) error{
	"from":       func(q *eventsQuery, v string) (err error) { q.filter.From, err = parseTime(v); return err },
	"to":         func(q *eventsQuery, v string) (err error) { q.filter.To, err = parseTime(v); return err },
	"user":       func(q *eventsQuery, v string) error { q.filter.User = v; return nil },
	"workspace":  func(q *eventsQuery, v string) error { q.filter.Workspace = v; return nil },
	"request_id": func(q *eventsQuery, v string) error { q.filter.RequestID = v; return nil },
	"cursor":     func(q *eventsQuery, v string) error { q.cursor = v; return nil },
	"client_ip": func(q *eventsQuery, v string) error {
		// Canonical form, because that is how the audit handler stores
		// addresses: 2001:DB8::1 must find 2001:db8::1.
		ip, err := netip.ParseAddr(v)
		if err != nil {
			return errors.New("expects an IP address such as 192.0.2.10 or 2001:db8::1")
		}
		q.filter.ClientIP = ip.String()
		return nil
	},
	"method": func(q *eventsQuery, v string) error {
		if len(v) > 32 || !policy.IsToken(v) {
			return errors.New("expects an HTTP method such as GET or DELETE")
		}
		q.filter.Method = strings.ToUpper(v)
		return nil
	},
	"status": func(q *eventsQuery, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 || n > 599 {
			return errors.New("expects an HTTP status code between 100 and 599")
		}
		q.filter.Status = n
		return nil
	},
	"path_prefix": func(q *eventsQuery, v string) error {
		// Event paths are stored as received, so they all start with "/";
		// a prefix without one would silently match nothing.
		if !strings.HasPrefix(v, "/") {
			return errors.New("expects a path starting with /, such as /api/")
		}
		q.filter.PathPrefix = v
		return nil
	},
	"kind": func(q *eventsQuery, v string) error {
		if v != storage.KindHTTP && v != storage.KindAdmin && v != storage.KindLifecycle {
			return fmt.Errorf("expects one of %s, %s, %s", storage.KindHTTP, storage.KindAdmin, storage.KindLifecycle)
		}
		q.filter.Kind = v
		return nil
	},
	"stage": func(q *eventsQuery, v string) error {
		if v != storage.StageRequestReceived && v != storage.StageResponseComplete {
			return fmt.Errorf("expects %s or %s", storage.StageRequestReceived, storage.StageResponseComplete)
		}
		q.filter.Stage = v
		return nil
	},
	"status_class": func(q *eventsQuery, v string) error {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.ToLower(v), "xx"))
		if err != nil || n < 1 || n > 5 {
			return errors.New("expects a status class from 1 to 5, such as 4 or 4xx")
		}
		q.filter.StatusClass = n
		return nil
	},
	"risk_level": func(q *eventsQuery, v string) error {
		switch v {
		case "low", "medium", "high", "critical":
			q.filter.RiskLevel = v
			return nil
		}
		return errors.New("expects low, medium, high or critical")
	},
	"min_risk": func(q *eventsQuery, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 100 {
			return errors.New("expects a risk score from 0 to 100")
		}
		q.filter.MinRisk = n
		return nil
	},
	"suspicious": func(q *eventsQuery, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("expects true or false")
		}
		q.filter.Suspicious = &b
		return nil
	},
	"limit": func(q *eventsQuery, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > storage.MaxPageSize {
			return fmt.Errorf("expects a number of events between 1 and %d", storage.MaxPageSize)
		}
		q.limit = n
		return nil
	},
}

// paramError is a query parameter the API cannot use.
type paramError struct {
	name, value, problem string
}

func (e *paramError) Error() string {
	if e.value == "" {
		return fmt.Sprintf("query parameter %q: %s", e.name, e.problem)
	}
	return fmt.Sprintf("query parameter %q: %s (got %q)", e.name, e.problem, truncate(e.value, 64))
}

// parseEventsQuery parses a raw query string.
func parseEventsQuery(raw string) (eventsQuery, error) {
	q := eventsQuery{limit: defaultPageSize}
	if err := parseParams(raw, &q, eventParams); err != nil {
		return q, err
	}
	return q, checkTimeRange(q.filter.From, q.filter.To)
}

// parseParams parses a raw query string into q with one parser per
// accepted parameter. It is strict: an unknown or repeated parameter is an
// error, because a typo such as "usr=alice" would otherwise answer with
// everyone's events and look like a result. An empty value means no
// filter, as an empty HTML form field does.
func parseParams[Q any](raw string, q *Q, params map[string]func(*Q, string) error) error {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return fmt.Errorf("malformed query string: %v", err)
	}
	// Sorted, so the same bad request always gets the same answer.
	for _, name := range slices.Sorted(maps.Keys(vals)) {
		parse, ok := params[name]
		if !ok {
			accepted := strings.Join(slices.Sorted(maps.Keys(params)), ", ")
			return &paramError{name: truncate(name, 64), problem: "unknown parameter; accepted: " + accepted}
		}
		vs := vals[name]
		if len(vs) > 1 {
			return &paramError{name: name, problem: "given more than once"}
		}
		if vs[0] == "" {
			continue
		}
		if err := parse(q, vs[0]); err != nil {
			return &paramError{name: name, value: vs[0], problem: err.Error()}
		}
	}
	return nil
}

// checkTimeRange refuses an empty or inverted from/to range.
func checkTimeRange(from, to time.Time) error {
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return &paramError{name: "from", problem: `must be earlier than "to"`}
	}
	return nil
}

func parseTime(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, errors.New("expects an RFC 3339 time such as 2024-05-01T12:00:00Z")
	}
	return t, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

// searchEvents serves GET /api/v1/events.
func (a *api) searchEvents(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	q, err := parseEventsQuery(r.URL.RawQuery)
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
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

	a.record(r, key, "events.search", http.StatusOK, map[string]any{
		"returned": len(page.Events),
		"filter":   filterDetails(q.filter),
	})
	writeJSON(w, http.StatusOK, eventsPage{Events: page.Events, NextCursor: page.NextCursor})
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

// scopeFilter confines f to the key's workspace, if it has one. Asking for
// another workspace is refused (and recorded) rather than silently
// narrowed, so a client never mistakes an empty answer for the truth.
func (a *api) scopeFilter(w http.ResponseWriter, r *http.Request, key storage.APIKey, f *storage.Filter) bool {
	if key.Workspace == "" {
		return true
	}
	if f.Workspace != "" && f.Workspace != key.Workspace {
		a.forbidden(w, r, key, fmt.Sprintf("this API key is scoped to workspace %q and cannot read others", key.Workspace))
		return false
	}
	f.Workspace = key.Workspace
	return true
}
