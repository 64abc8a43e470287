package adminapi

import (
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// maxDistinct bounds the sets a tally keeps to count distinct users, IPs
// and user agents, so a report over a huge range stays in bounded memory;
// past it the count is a lower bound and the tally says so.
const maxDistinct = 1 << 20

// Risk factor names and details the reports classify events by; they are
// what detectors.Scorer writes.
const (
	factorPrivileged = "privileged_route"
	factorUnverified = "unverified_identity"
	detailRoleChange = "role or permission change"
)

// Lifecycle actions of the audit pipeline (caddymodule and storage).
const (
	actionDropped = "events_dropped"
	actionErased  = "subject_erased"
)

// lifecycleStartStop are the lifecycle actions that start, stop or change
// the audit trail (PCI DSS 10.2.1.6).
var lifecycleStartStop = []string{"audit_started", "audit_stopped", "config_reloaded", "config_reverted", actionDropped}

// fieldCounts counts the events that carry each field.
type fieldCounts struct {
	user, kind, time, outcome, clientIP, path                    int64
	userAgent, referer, forwardedFor, query, headers, clientPort int64
}

// eventTally is everything the reports count in one pass over the events
// of a range: one flat-memory Scan serves every section.
type eventTally struct {
	events int64
	byKind map[string]int64
	// first and last are the oldest and newest event times; maxScore the
	// highest risk score.
	first, last time.Time
	maxScore    int

	// Proxied traffic.
	http, httpWithUser, httpVerified int64
	httpStatus401                    int64
	privileged, privilegedUnverified int64
	roleChangeHTTP                   int64
	creates, deletes                 int64
	failures                         int64

	// Refusals, of any kind of event.
	status401, status403 int64

	// Use of the admin API.
	admin          int64
	adminByAction  map[string]int64
	adminKeyCreate int64
	adminKeyRevoke int64
	adminRBAC      int64

	// Risk.
	levels     map[string]int64
	suspicious int64
	scoreSum   int64
	scoreHist  [101]int64
	factors    map[string]int64

	// fields counts, over http and admin events, which fields they carry.
	requests int64
	fields   fieldCounts

	users, ips, agents map[string]struct{}
	distinctCapped     bool
}

func newTally() *eventTally {
	return &eventTally{
		byKind: map[string]int64{}, adminByAction: map[string]int64{}, levels: map[string]int64{},
		factors: map[string]int64{}, users: map[string]struct{}{}, ips: map[string]struct{}{}, agents: map[string]struct{}{},
	}
}

// distinct adds v to set unless the sets are full.
func (t *eventTally) distinct(set map[string]struct{}, v string) {
	if v == "" {
		return
	}
	if _, ok := set[v]; ok {
		return
	}
	if len(set) >= maxDistinct {
		t.distinctCapped = true
		return
	}
	set[v] = struct{}{}
}

// isKeyAction reports whether action is the key management call verb
// ("create", "revoke") of the RBAC endpoints (rbac.go, keys_api.go).
func isKeyAction(action, verb string) bool { return action == "rbac.keys."+verb }

// isRBACAction reports whether action changed a role or a binding; reads
// (list, get) change nothing and do not count.
func isRBACAction(action string) bool {
	switch action {
	case "rbac.roles.create", "rbac.roles.update", "rbac.roles.delete", "rbac.bindings.create", "rbac.bindings.delete":
		return true
	}
	return false
}

// hasFactor reports whether ev has the named risk factor (with the
// detail, when detail is not empty).
func hasFactor(ev *storage.Event, name, detail string) bool {
	return slices.ContainsFunc(ev.RiskFactors, func(f storage.RiskFactor) bool {
		return f.Name == name && (detail == "" || f.Detail == detail)
	})
}

// privilegedRoute reports whether ev reached a privileged route: the risk
// scorer flagged it, or its path is under one of the configured admin
// routes (the scorer files "/admin" under sensitive paths instead).
func (a *api) privilegedRoute(ev *storage.Event) bool {
	if hasFactor(ev, factorPrivileged, "") {
		return true
	}
	lower := strings.ToLower(ev.Path)
	for _, p := range a.detectors.Routes.Admin {
		p = strings.ToLower(p)
		if strings.ContainsAny(p, "* ") {
			continue // method lists and globs are the scorer's business
		}
		if lower == p || strings.HasPrefix(lower, strings.TrimSuffix(p, "/")+"/") {
			return true
		}
	}
	return false
}

// tallyEvent counts one event.
func (a *api) tallyEvent(t *eventTally, ev *storage.Event) {
	t.events++
	t.byKind[ev.Kind]++
	if t.first.IsZero() || ev.Time.Before(t.first) {
		t.first = ev.Time
	}
	if ev.Time.After(t.last) {
		t.last = ev.Time
	}
	t.maxScore = max(t.maxScore, ev.RiskScore)
	switch ev.Status {
	case 401:
		t.status401++
	case 403:
		t.status403++
	}
	if ev.Kind == storage.KindHTTP || ev.Kind == storage.KindAdmin {
		t.requests++
		f := &t.fields
		count := func(n *int64, present bool) {
			if present {
				*n++
			}
		}
		count(&f.user, ev.User != "")
		count(&f.kind, ev.Kind != "")
		count(&f.time, !ev.Time.IsZero())
		count(&f.outcome, ev.Outcome != "")
		count(&f.clientIP, ev.ClientIP != "")
		count(&f.path, ev.Path != "")
		count(&f.userAgent, ev.UserAgent != "")
		count(&f.referer, ev.Referer != "")
		count(&f.forwardedFor, len(ev.ForwardedFor) > 0)
		count(&f.query, ev.Query != "")
		count(&f.headers, len(ev.RequestHeaders)+len(ev.ResponseHeaders) > 0)
		count(&f.clientPort, ev.ClientPort != 0)
		t.distinct(t.users, ev.User)
		t.distinct(t.ips, ev.ClientIP)
		t.distinct(t.agents, ev.UserAgent)
	}
	switch ev.Kind {
	case storage.KindHTTP:
		t.http++
		if ev.User != "" {
			t.httpWithUser++
			if ev.UserVerified {
				t.httpVerified++
			}
		}
		if ev.Outcome == "failure" {
			t.failures++
		}
		if ev.Status == http.StatusUnauthorized {
			t.httpStatus401++
		}
		if a.privilegedRoute(ev) {
			t.privileged++
			if ev.User == "" || !ev.UserVerified {
				t.privilegedUnverified++
			}
		}
		if hasFactor(ev, factorPrivileged, detailRoleChange) {
			t.roleChangeHTTP++
		}
		if ev.Status < 400 && ev.Stage != storage.StageRequestReceived {
			switch ev.Method {
			case "POST", "PUT":
				t.creates++
			case "DELETE":
				t.deletes++
			}
		}
		t.levels[ev.RiskLevel]++
		if ev.Suspicious {
			t.suspicious++
		}
		score := min(max(ev.RiskScore, 0), 100)
		t.scoreSum += int64(score)
		t.scoreHist[score]++
		for _, f := range ev.RiskFactors {
			t.factors[f.Name]++
		}
	case storage.KindAdmin:
		t.admin++
		t.adminByAction[ev.Action]++
		// Only changes that happened count: a refused call (403, 404,
		// 409...) is recorded under the same action but changed nothing.
		switch {
		case ev.Status < 200 || ev.Status > 299:
		case isKeyAction(ev.Action, "create"):
			t.adminKeyCreate++
		case isKeyAction(ev.Action, "revoke"):
			t.adminKeyRevoke++
		case isRBACAction(ev.Action):
			t.adminRBAC++
		}
	}
}

// percentile is the smallest score at or below which p of the scored
// events fall (nearest rank), 0 without events.
func (t *eventTally) percentile(p float64) int {
	n := int64(0)
	for _, c := range t.scoreHist {
		n += c
	}
	if n == 0 {
		return 0
	}
	rank := int64(p*float64(n) + 0.999999999) // ceil, without float noise at exact ranks
	rank = max(rank, 1)
	seen := int64(0)
	for score, c := range t.scoreHist {
		seen += c
		if seen >= rank {
			return score
		}
	}
	return 100
}

// tallyRange scans the events of the report's range and workspace once
// and notes the query.
func (a *api) tallyRange(r *reportCtx) (*eventTally, error) {
	t := newTally()
	err := a.store.Scan(r.ctx, r.filter, func(ev *storage.Event) error { a.tallyEvent(t, ev); return nil })
	if err != nil {
		return nil, err
	}
	r.env.Totals.Events = t.events
	note := ""
	if t.distinctCapped {
		note = "distinct counts stopped at 1048576 values each and are lower bounds"
	}
	r.addQuery("events", filterDetails(r.filter), t.events, note)
	return t, nil
}

// lifecycleTally is what the lifecycle events of a range say about the
// audit pipeline.
type lifecycleTally struct {
	// seen is false when the query was skipped for a scoped report.
	seen         bool
	byAction     map[string]int64
	dropped      int64
	dropEvents   int64
	erasures     int64
	erasedEvents int64
	// lastPolicy holds default_days and floor_days of the latest
	// events_purged record, when there is one.
	lastPolicy map[string]any
}

// tallyLifecycle reads the lifecycle events of the range. They belong to
// no workspace (they describe the pipeline), so only a report over every
// workspace reads them; a confined report says it skipped them.
func (a *api) tallyLifecycle(r *reportCtx) (*lifecycleTally, error) {
	lt := &lifecycleTally{byAction: map[string]int64{}}
	f := storage.Filter{From: r.rng.From, To: r.rng.To, Kind: storage.KindLifecycle}
	if !r.global() {
		r.addQuery("lifecycle", filterDetails(f), 0, "skipped: lifecycle events (start, stop, drops, erasures) belong to no workspace and are counted only in reports over all workspaces")
		return lt, nil
	}
	lt.seen = true
	var n int64
	err := a.store.Scan(r.ctx, f, func(ev *storage.Event) error {
		n++
		lt.byAction[ev.Action]++
		switch ev.Action {
		case actionDropped:
			lt.dropEvents++
			lt.dropped += detailInt(ev.Details, "dropped")
		case actionErased:
			lt.erasures++
			lt.erasedEvents += detailInt(ev.Details, "erased_events")
		case "events_purged":
			if lt.lastPolicy == nil { // newest first: the first one is the latest
				lt.lastPolicy = map[string]any{"default_days": detailInt(ev.Details, "default_days"), "floor_days": detailInt(ev.Details, "floor_days")}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.addQuery("lifecycle", filterDetails(f), n, "")
	return lt, nil
}

// detailInt reads a numeric detail, as stored (int) or decoded (float64).
func detailInt(d map[string]any, k string) int64 {
	switch v := d[k].(type) {
	case int:
		return int64(v)
	case int64:
		return v
	case float64:
		return int64(v)
	}
	return 0
}

// share is n/of, 0 when of is 0, rounded to 4 decimals so reports are
// stable to compare.
func share(n, of int64) float64 { return round(ratio(n, of), 4) }

// round rounds v to the given number of decimals: the one rounding of
// the reports' shares, averages and score components.
func round(v float64, decimals int) float64 {
	p := math.Pow10(decimals)
	return math.Round(v*p) / p
}
