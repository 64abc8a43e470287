package adminapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// Event statistics and time series: GET /api/v1/events/stats and
// GET /api/v1/events/timeseries. Both take the search's filters (without
// paging), scoped to the caller's workspace like every filter, and echo
// the filter they answered.

// defaultTop and maxTop bound the top lists of the statistics.
const (
	defaultTop = 10
	maxTop     = 100
)

// statsQuery is a parsed GET /api/v1/events/stats query string.
type statsQuery struct {
	eventsQuery
	top int
}

// statsParams are the filters plus the length of the top lists.
var statsParams = filterParams(params[statsQuery]{
	"top": {doc: fmt.Sprintf("Length of the top lists (users, paths, client addresses), 1-%d (default %d).", maxTop, defaultTop), typ: "integer",
		parse: func(q *statsQuery, v string) error { return intIn(v, 1, maxTop, &q.top, "a number") }},
})

// eventStats is the body of GET /api/v1/events/stats.
type eventStats struct {
	// Filter is the filter the counts answer, after workspace scoping,
	// with the search's parameter names.
	Filter map[string]any `json:"filter"`
	// Total is the number of matching events: the sum of ByStatusClass.
	// Each breakdown is its own read of the store, so while events are
	// being written the other breakdowns may count a few more (their own
	// total is in each); Total always equals the sum of ByStatusClass.
	Total int64 `json:"total"`
	// ByStatusClass counts them per HTTP status class.
	ByStatusClass storage.StatusClassCounts `json:"by_status_class"`
	// ByRiskLevel counts them per risk level (low, medium, high,
	// critical); missing counts unscored events.
	ByRiskLevel storage.TopCounts `json:"by_risk_level"`
	// ByOutcome counts them per outcome (success, failure); missing
	// counts events without one (lifecycle events).
	ByOutcome storage.TopCounts `json:"by_outcome"`
	// TopUsers, TopPaths and TopClientIPs are the values with the most
	// events, most first; see TopCounts for when counts are approximate.
	TopUsers     storage.TopCounts `json:"top_users"`
	TopPaths     storage.TopCounts `json:"top_paths"`
	TopClientIPs storage.TopCounts `json:"top_client_ips"`
}

// badFilterOrStoreError answers a failed aggregation: a filter the store
// refuses is the client's error, anything else the server's.
func (a *api) badFilterOrStoreError(w http.ResponseWriter, r *http.Request, doing string, err error) {
	if errors.Is(err, storage.ErrBadFilter) {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	a.storeError(w, r, doing, err)
}

// eventStats serves GET /api/v1/events/stats.
func (a *api) eventStats(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	q := statsQuery{top: defaultTop}
	if err := parseFilterQuery(r.URL.RawQuery, &q, statsParams); err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if !a.scopeFilter(w, r, key, &q.filter) {
		return
	}
	ctx, f := r.Context(), q.filter
	out := eventStats{Filter: filterDetails(f)}
	steps := []func() error{
		func() (err error) { out.ByStatusClass, err = a.store.CountByStatusClass(ctx, f); return err },
		func() (err error) { out.ByRiskLevel, err = a.store.CountByRiskLevel(ctx, f); return err },
		func() (err error) { out.ByOutcome, err = a.store.CountByOutcome(ctx, f); return err },
		func() (err error) { out.TopUsers, err = a.store.CountByUser(ctx, f, q.top); return err },
		func() (err error) { out.TopPaths, err = a.store.TopPaths(ctx, f, q.top); return err },
		func() (err error) { out.TopClientIPs, err = a.store.TopClientIPs(ctx, f, q.top); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			a.badFilterOrStoreError(w, r, "counting audit events", err)
			return
		}
	}
	c := out.ByStatusClass
	out.Total = c.Informational + c.Success + c.Redirection + c.ClientError + c.ServerError + c.Other
	a.record(r, key, "events.stats", http.StatusOK, map[string]any{"total": out.Total, "top": q.top, "filter": out.Filter})
	writeJSON(w, http.StatusOK, out)
}

// maxTimeseriesBuckets bounds a time series: a chart has no use for more
// points, and the answer stays small.
const maxTimeseriesBuckets = 10_000

// seriesIntervals are the widths of the interval parameter, and the
// range a series covers when the client gives no from.
var seriesIntervals = map[string]struct {
	width, span time.Duration
}{
	"minute": {time.Minute, time.Hour},
	"hour":   {time.Hour, 24 * time.Hour},
	"day":    {24 * time.Hour, 30 * 24 * time.Hour},
}

// timeseriesQuery is a parsed GET /api/v1/events/timeseries query string.
type timeseriesQuery struct {
	eventsQuery
	interval string
	loc      *time.Location
}

// timeseriesParams are the filters plus interval and tz.
var timeseriesParams = filterParams(params[timeseriesQuery]{
	"interval": {doc: "Bucket width: minute, hour (default) or day. Without from, the series covers the last hour, day or 30 days respectively; " +
		fmt.Sprintf("a range of more than %d buckets is refused.", maxTimeseriesBuckets),
		parse: func(q *timeseriesQuery, v string) error {
			if _, ok := seriesIntervals[v]; !ok {
				return errors.New("expects minute, hour or day")
			}
			q.interval = v
			return nil
		}},
	"tz": {doc: "IANA time zone the hours and days are counted in, such as Europe/Paris (default UTC).",
		parse: func(q *timeseriesQuery, v string) error {
			loc, err := time.LoadLocation(v)
			if err != nil || v == "Local" {
				return errors.New("expects an IANA time zone name such as UTC or Europe/Paris")
			}
			q.loc = loc
			return nil
		}},
})

// timeseries is the body of GET /api/v1/events/timeseries.
type timeseries struct {
	// Interval is the bucket width: minute, hour or day.
	Interval string `json:"interval"`
	// TZ is the time zone of the buckets.
	TZ string `json:"tz"`
	// From and To are the range counted: From <= time < To.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Total is the number of matching events in the range.
	Total int64 `json:"total"`
	// Buckets are the counts, oldest first, empty buckets included; each
	// starts at Start, in TZ.
	Buckets []storage.TimeCount `json:"buckets"`
	// Filter is the filter answered, after workspace scoping and with
	// the range filled in.
	Filter map[string]any `json:"filter"`
}

// eventTimeseries serves GET /api/v1/events/timeseries.
func (a *api) eventTimeseries(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	q := timeseriesQuery{interval: "hour", loc: time.UTC}
	if err := parseFilterQuery(r.URL.RawQuery, &q, timeseriesParams); err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	iv := seriesIntervals[q.interval]
	if q.filter.To.IsZero() {
		q.filter.To = a.now().UTC()
	}
	if q.filter.From.IsZero() {
		q.filter.From = q.filter.To.Add(-iv.span)
	}
	if !q.filter.From.Before(q.filter.To) {
		writeProblem(w, r, http.StatusBadRequest, `query parameter "from": must be earlier than "to" (which defaults to now)`)
		return
	}
	if n := q.filter.To.Sub(q.filter.From) / iv.width; n > maxTimeseriesBuckets {
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf(`query parameters "from"/"to": the range spans %d %s buckets, more than %d; narrow it or use a wider interval`, n, q.interval, maxTimeseriesBuckets))
		return
	}
	if !a.scopeFilter(w, r, key, &q.filter) {
		return
	}
	var buckets []storage.TimeCount
	var err error
	switch q.interval {
	case "minute":
		buckets, err = a.store.CountByStep(r.Context(), q.filter, time.Minute, q.loc)
	case "hour":
		buckets, err = a.store.CountByTime(r.Context(), q.filter, storage.Hourly, q.loc)
	default:
		buckets, err = a.store.CountByTime(r.Context(), q.filter, storage.Daily, q.loc)
	}
	if err != nil {
		a.badFilterOrStoreError(w, r, "counting audit events over time", err)
		return
	}
	out := timeseries{Interval: q.interval, TZ: q.loc.String(), From: q.filter.From, To: q.filter.To, Buckets: buckets, Filter: filterDetails(q.filter)}
	for _, b := range buckets {
		out.Total += b.Count
	}
	a.record(r, key, "events.timeseries", http.StatusOK, map[string]any{
		"interval": q.interval, "tz": out.TZ, "buckets": len(buckets), "total": out.Total, "filter": out.Filter,
	})
	writeJSON(w, http.StatusOK, out)
}
