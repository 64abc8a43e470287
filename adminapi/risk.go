package adminapi

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// topFactorCount is how many risk factors the risk views list.
const topFactorCount = 10

// RiskSummary is the body of GET /api/v1/risk/summary, over the proxied
// requests of the range (only they are risk-scored).
type RiskSummary struct {
	ReportEnvelope
	// ScoredEvents is how many proxied requests were scored.
	ScoredEvents int64 `json:"scored_events"`
	// ByLevel counts them by risk level (low, medium, high, critical).
	ByLevel map[string]int64 `json:"by_level"`
	// Suspicious is how many were flagged suspicious (risk >= 40), and
	// SuspiciousShare their share (0-1).
	Suspicious      int64   `json:"suspicious"`
	SuspiciousShare float64 `json:"suspicious_share"`
	// AverageScore is the mean risk score (two decimals); P95Score the
	// 95th percentile (nearest rank).
	AverageScore float64 `json:"average_score"`
	P95Score     int     `json:"p95_score"`
	// TopFactors are the risk factors seen most, most first.
	TopFactors []FactorCount `json:"top_factors"`
}

// FactorCount is how many events carried one risk factor.
type FactorCount struct {
	// Name is the factor, such as "failed_auth".
	Name string `json:"name"`
	// Events is how many events carried it.
	Events int64 `json:"events"`
}

// RiskUserProfile is the body of GET /api/v1/risk/users/{user}.
type RiskUserProfile struct {
	ReportEnvelope
	// User is the user, as recorded.
	User string `json:"user"`
	// Events is how many events of the user the range holds.
	Events int64 `json:"events"`
	// DistinctIPs and DistinctUserAgents are where the user came from.
	DistinctIPs        int64 `json:"distinct_ips"`
	DistinctUserAgents int64 `json:"distinct_user_agents"`
	// FailedAuth counts 401 answers, Denied 403 answers.
	FailedAuth int64 `json:"failed_auth"`
	Denied     int64 `json:"denied"`
	// Suspicious is how many of the user's requests were suspicious.
	Suspicious int64 `json:"suspicious"`
	// ByLevel counts the user's proxied requests by risk level.
	ByLevel map[string]int64 `json:"by_level"`
	// AverageScore and MaxScore summarize their risk scores.
	AverageScore float64 `json:"average_score"`
	MaxScore     int     `json:"max_score"`
	// TopFactors are the user's most frequent risk factors.
	TopFactors []FactorCount `json:"top_factors"`
	// OpenAlerts are the alerts about the user not yet closed, whenever
	// they were last seen; empty for a caller who does not hold
	// alerts:read in the report's scope (see the alerts query's note).
	OpenAlerts []AlertRef `json:"open_alerts"`
	// FirstSeen and LastSeen bound the user's events in the range; null
	// without events.
	FirstSeen *time.Time `json:"first_seen"`
	LastSeen  *time.Time `json:"last_seen"`
}

// AlertRef is an alert named in a profile.
type AlertRef struct {
	// ID is the alert id (GET /api/v1/alerts/{id}).
	ID string `json:"id"`
	// Detector, Rule, Severity and Status are the alert's.
	Detector string `json:"detector"`
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	Status   string `json:"status"`
	// LastSeen is the time of its last event.
	LastSeen time.Time `json:"last_seen"`
}

// RiskTop is the body of GET /api/v1/risk/top.
type RiskTop struct {
	ReportEnvelope
	// By is user or ip.
	By string `json:"by"`
	// Items are the riskiest subjects, by summed risk score, then maximum
	// score, then name.
	Items []RiskTopItem `json:"items"`
	// Approximate is true when more distinct subjects were seen than are
	// counted exactly (over a million).
	Approximate bool `json:"approximate"`
}

// RiskTopItem is one user or client IP and its risk.
type RiskTopItem struct {
	// Key is the user id or client IP.
	Key string `json:"key"`
	// Events is how many proxied requests it made in the range.
	Events int64 `json:"events"`
	// SumScore and MaxScore are its summed and highest risk scores.
	SumScore int64 `json:"sum_score"`
	MaxScore int   `json:"max_score"`
	// Suspicious is how many of its requests were suspicious.
	Suspicious int64 `json:"suspicious"`
}

// topFactors lists the counted factors, most first, then by name.
func topFactors(m map[string]int64, n int) []FactorCount {
	out := make([]FactorCount, 0, len(m))
	for name, c := range m {
		out = append(out, FactorCount{Name: name, Events: c})
	}
	slices.SortFunc(out, func(x, y FactorCount) int {
		return cmp.Or(cmp.Compare(y.Events, x.Events), cmp.Compare(x.Name, y.Name))
	})
	return out[:min(n, len(out))]
}

// levelCounts is the risk level counts with every level present.
func levelCounts(m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for _, l := range storage.Severities {
		out[l] = m[l]
	}
	return out
}

// riskSummary serves GET /api/v1/risk/summary.
func (a *api) riskSummary(w http.ResponseWriter, r *http.Request) {
	const name = "risk_summary"
	rc, ok := a.startReport(w, r, name, nil)
	if !ok {
		return
	}
	t, err := a.tallyRange(rc)
	if err != nil {
		a.storeError(w, r, "counting events for the risk summary", err)
		return
	}
	rep := RiskSummary{
		ReportEnvelope: rc.env, ScoredEvents: t.http, ByLevel: levelCounts(t.levels),
		Suspicious: t.suspicious, SuspiciousShare: share(t.suspicious, t.http),
		AverageScore: round(ratio(t.scoreSum, t.http), 2), P95Score: t.percentile(0.95),
		TopFactors: topFactors(t.factors, topFactorCount),
	}
	a.record(r, rc.key, "risk.summary", http.StatusOK, reportDetails(name, rc))
	writeJSON(w, http.StatusOK, rep)
}

// riskUser serves GET /api/v1/risk/users/{user}: the user's events in
// the caller's scope, and the open alerts about them.
func (a *api) riskUser(w http.ResponseWriter, r *http.Request) {
	const name = "risk_user"
	user := r.PathValue("user")
	if err := checkSubject(user); err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	rc, ok := a.startReport(w, r, name, nil)
	if !ok {
		return
	}
	rc.filter.User = user
	t, err := a.tallyRange(rc)
	if err != nil {
		a.storeError(w, r, "reading the user's events", err)
		return
	}

	af := storage.AlertFilter{SubjectValue: user, Workspace: rc.filter.Workspace}
	refs := []AlertRef{}
	// The route needs events:read; alerts are listed only to callers who
	// may also read those.
	if scopeFrom(r).acc.holds(permAlertsRead, rc.filter.Workspace) {
		n, err := a.scanAlerts(af, func(al *storage.Alert) {
			if al.Subject.Kind == storage.SubjectUser && (al.Status == storage.StatusOpen || al.Status == storage.StatusAcknowledged) {
				refs = append(refs, AlertRef{ID: al.ID, Detector: al.Detector, Rule: al.Rule, Severity: al.Severity, Status: al.Status, LastSeen: al.LastSeen})
			}
		})
		if err != nil {
			a.storeError(w, r, "reading alerts about the user", err)
			return
		}
		rc.env.Totals.Alerts = int64(len(refs))
		rc.addQuery("alerts", alertFilterDetails(af), n, "alerts about the user at any time; open and acknowledged ones are listed")
	} else {
		rc.addQuery("alerts", alertFilterDetails(af), 0, "not run: the caller does not hold "+permAlertsRead+" here, so open_alerts is empty")
	}

	p := RiskUserProfile{
		ReportEnvelope: rc.env, User: user, Events: t.events,
		DistinctIPs: int64(len(t.ips)), DistinctUserAgents: int64(len(t.agents)),
		FailedAuth: t.status401, Denied: t.status403, Suspicious: t.suspicious,
		ByLevel: levelCounts(t.levels), AverageScore: round(ratio(t.scoreSum, t.http), 2), MaxScore: t.maxScore,
		TopFactors: topFactors(t.factors, topFactorCount), OpenAlerts: refs,
	}
	if t.events > 0 {
		p.FirstSeen, p.LastSeen = &t.first, &t.last
	}
	details := reportDetails(name, rc)
	details["user"] = user
	a.record(r, rc.key, "risk.user", http.StatusOK, details)
	writeJSON(w, http.StatusOK, p)
}

// riskTopQuery is a parsed GET /api/v1/risk/top query string.
type riskTopQuery struct {
	reportQuery
	by    string
	limit int
}

// maxRiskTop bounds the limit of GET /api/v1/risk/top.
const maxRiskTop = 100

// riskTopParams are the report's parameters plus by and limit.
var riskTopParams = liftParams(reportParams, func(q *riskTopQuery) *reportQuery { return &q.reportQuery }, params[riskTopQuery]{
	"by": {doc: "user (default) or ip.",
		parse: func(q *riskTopQuery, v string) error {
			if v != "user" && v != "ip" {
				return errors.New("expects user or ip")
			}
			q.by = v
			return nil
		}},
	"limit": {doc: fmt.Sprintf("How many to list, 1-%d (default 10).", maxRiskTop), typ: "integer",
		parse: func(q *riskTopQuery, v string) error { return intIn(v, 1, maxRiskTop, &q.limit, "a number") }},
})

// riskTop serves GET /api/v1/risk/top?by=user|ip&limit=N.
func (a *api) riskTop(w http.ResponseWriter, r *http.Request) {
	const name = "risk_top"
	q := riskTopQuery{by: "user", limit: 10}
	rc, ok := a.startReport(w, r, name, func(raw string) (reportQuery, error) {
		err := parseParams(raw, &q, riskTopParams)
		return q.reportQuery, err
	})
	if !ok {
		return
	}
	f := rc.filter
	f.Kind = storage.KindHTTP
	aggs := map[string]*RiskTopItem{}
	approximate := false
	var rows int64
	err := a.store.Scan(rc.ctx, f, func(ev *storage.Event) error {
		rows++
		k := ev.User
		if q.by == "ip" {
			k = ev.ClientIP
		}
		if k == "" {
			return nil
		}
		g := aggs[k]
		if g == nil {
			if len(aggs) >= maxDistinct {
				approximate = true
				return nil
			}
			g = &RiskTopItem{Key: k}
			aggs[k] = g
		}
		g.Events++
		g.SumScore += int64(ev.RiskScore)
		g.MaxScore = max(g.MaxScore, ev.RiskScore)
		if ev.Suspicious {
			g.Suspicious++
		}
		return nil
	})
	if err != nil {
		a.storeError(w, r, "ranking risky subjects", err)
		return
	}
	rc.env.Totals.Events = rows
	rc.addQuery("events", filterDetails(f), rows, "")
	items := make([]RiskTopItem, 0, len(aggs))
	for _, g := range aggs {
		items = append(items, *g)
	}
	slices.SortFunc(items, func(x, y RiskTopItem) int {
		return cmp.Or(cmp.Compare(y.SumScore, x.SumScore), cmp.Compare(y.MaxScore, x.MaxScore), cmp.Compare(x.Key, y.Key))
	})
	items = items[:min(q.limit, len(items))]
	details := reportDetails(name, rc)
	details["by"], details["returned"] = q.by, len(items)
	a.record(r, rc.key, "risk.top", http.StatusOK, details)
	writeJSON(w, http.StatusOK, RiskTop{ReportEnvelope: rc.env, By: q.by, Items: items, Approximate: approximate})
}
