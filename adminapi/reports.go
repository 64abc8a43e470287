package adminapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// reportRoutes are the compliance reports, the GDPR subject rights and the
// risk views. Every report answers with a ReportEnvelope followed by its
// own sections.
func (a *api) reportRoutes() []route {
	return []route{
		{method: http.MethodGet, path: "/api/v1/reports/soc2", perm: permReportsRead, h: a.soc2Report,
			summary: "SOC 2 evidence for CC6.1, CC6.2, CC6.3, CC7.2 and CC7.3", query: reportParams.docs(), resp: SOC2Report{}},
		{method: http.MethodGet, path: "/api/v1/reports/gdpr", perm: permReportsRead, h: a.gdprReport,
			summary: "GDPR Art. 30 record of the processing this sidecar does, with figures", query: reportParams.docs(), resp: GDPRReport{}},
		{method: http.MethodGet, path: "/api/v1/reports/pci", perm: permReportsRead, h: a.pciReport,
			summary: "PCI DSS v4 requirement 10 coverage (10.2.1.x, 10.2.2, 10.3, 10.5, 10.7)", query: reportParams.docs(), resp: PCIReport{}},
		{method: http.MethodGet, path: "/api/v1/reports/score", perm: permReportsRead, h: a.scoreReport,
			summary: "Security score 0-100 with its breakdown", query: reportParams.docs(), resp: ScoreReport{}},
		{method: http.MethodGet, path: "/api/v1/gdpr/subjects/{user}/export", perm: permGDPRManage, h: a.subjectExport,
			summary: "Subject access export: every event of one user, streamed; row count and SHA-256 in trailers", query: subjectExportParams.docs(), resp: "application/x-ndjson"},
		{method: http.MethodPost, path: "/api/v1/gdpr/subjects/{user}/erase", perm: permGDPRManage, h: a.subjectErase,
			summary: "Pseudonymize every event of one user (GDPR Art. 17); the chain stays verifiable", body: EraseRequest{}, resp: EraseResult{}},
		{method: http.MethodGet, path: "/api/v1/risk/summary", perm: permReportsRead, h: a.riskSummary,
			summary: "Events by risk level, suspicious share, top risk factors, average and p95 risk", query: reportParams.docs(), resp: RiskSummary{}},
		{method: http.MethodGet, path: "/api/v1/risk/users/{user}", perm: permEventsRead, h: a.riskUser,
			summary: "Risk profile of one user", query: reportParams.docs(), resp: RiskUserProfile{}},
		{method: http.MethodGet, path: "/api/v1/risk/top", perm: permReportsRead, h: a.riskTop,
			summary: "Top risky users or client IPs by summed risk score", query: riskTopParams.docs(), resp: RiskTop{}},
	}
}

// reportVersion is the version of every report's shape; it changes when
// a field changes meaning, so archived reports can be read correctly.
const reportVersion = 1

// defaultReportDays is the range of a report that names none.
const defaultReportDays = 30

// allWorkspaces is what ReportEnvelope.Workspace says for an unscoped report.
const allWorkspaces = "all"

// ReportEnvelope is what every report states before its own sections:
// which report, over what, from which queries, and the integrity
// checkpoint an auditor can check its figures against.
type ReportEnvelope struct {
	// Report names the report, such as "soc2".
	Report string `json:"report"`
	// Version is the version of the report's shape.
	Version int `json:"version"`
	// GeneratedAt is when the report was computed, UTC.
	GeneratedAt time.Time `json:"generated_at"`
	// TimeRange is the range of event time the report covers.
	TimeRange TimeRange `json:"time_range"`
	// Workspace is the workspace the report is confined to, or "all".
	Workspace string `json:"workspace"`
	// Queries are the reads the figures come from, in the order they ran.
	Queries []ReportQuery `json:"queries"`
	// Checkpoint is the latest signed integrity checkpoint.
	Checkpoint CheckpointSummary `json:"checkpoint"`
	// Totals are the headline counts.
	Totals ReportTotals `json:"totals"`
}

// TimeRange is a half-open range of event time: from <= time < to.
type TimeRange struct {
	// From is the start, inclusive.
	From time.Time `json:"from"`
	// To is the end, exclusive.
	To time.Time `json:"to"`
}

// ReportQuery is one read a report ran.
type ReportQuery struct {
	// Name says what the query is for, such as "events" or "alerts".
	Name string `json:"name"`
	// Filter is the query's filter in the API's parameter names (those of
	// GET /api/v1/events or /api/v1/alerts).
	Filter map[string]any `json:"filter"`
	// Rows is how many records the query counted.
	Rows int64 `json:"rows"`
	// Note says what a reader must know about the query, such as why it
	// was skipped.
	Note string `json:"note,omitempty"`
}

// CheckpointSummary is the latest integrity checkpoint, or the statement
// that there is none.
type CheckpointSummary struct {
	// Present is false when no checkpoint was ever made.
	Present bool `json:"present"`
	// Seq is the chain head's sequence number the checkpoint covers;
	// left out of one-workspace reports, as it counts every workspace.
	Seq uint64 `json:"seq,omitempty"`
	// Time is when it was made.
	Time *time.Time `json:"time,omitempty"`
	// HeadHash is the chain link (hex SHA-256) at Seq.
	HeadHash string `json:"head_hash,omitempty"`
	// Signed is true when the checkpoint carries an Ed25519 signature that
	// verifies with the store's checkpoint key.
	Signed bool `json:"signed"`
	// KeyID names the signing key.
	KeyID string `json:"key_id,omitempty"`
	// AgeSeconds is how old it was when the report was generated (0 if it
	// is younger than the report's clock).
	AgeSeconds int64 `json:"age_seconds,omitempty"`
	// Note says why there is none, or why the signature is not trusted.
	Note string `json:"note,omitempty"`
}

// ReportTotals are the headline counts of a report.
type ReportTotals struct {
	// Events is how many events of the range and workspace were read.
	Events int64 `json:"events"`
	// Alerts is how many alerts were last seen in the range.
	Alerts int64 `json:"alerts"`
}

// reportQuery is a parsed report query string.
type reportQuery struct {
	from, to  time.Time
	workspace string
}

// reportParams are the query parameters every report accepts.
var reportParams = params[reportQuery]{
	"from": {doc: "Start of the range, inclusive (RFC 3339). Default: 30 days before to.", format: "date-time",
		parse: func(q *reportQuery, v string) (err error) { q.from, err = parseTime(v); return err }},
	"to": {doc: "End of the range, exclusive (RFC 3339). Default: now.", format: "date-time",
		parse: func(q *reportQuery, v string) (err error) { q.to, err = parseTime(v); return err }},
	"workspace": {doc: "Confine the report to this workspace. A workspace-scoped key is always confined to its own.",
		parse: func(q *reportQuery, v string) error { q.workspace = v; return nil }},
}

// reportCtx is what a report handler works with once the request is
// parsed and scoped.
type reportCtx struct {
	ctx    context.Context
	key    storage.APIKey
	now    time.Time
	rng    TimeRange
	filter storage.Filter // range and workspace, scoped
	env    ReportEnvelope
}

// rangeDefaults fills a missing end with now and a missing start with
// defaultReportDays before the end, then refuses an empty or inverted
// range.
func (a *api) rangeDefaults(from, to time.Time) (time.Time, time.Time, error) {
	if to.IsZero() {
		to = a.now()
	}
	if from.IsZero() {
		from = to.AddDate(0, 0, -defaultReportDays)
	}
	if !from.Before(to) {
		return from, to, &paramError{name: "from", problem: `must be earlier than "to" (default: now)`}
	}
	return from.UTC(), to.UTC(), nil
}

// startReport parses and scopes a report request, answering the problem
// itself when it cannot go on. extra, when not nil, parses the query
// string instead of reportParams (for endpoints with more parameters);
// it returns the range and workspace it read.
func (a *api) startReport(w http.ResponseWriter, r *http.Request, name string, extra func(raw string) (reportQuery, error)) (*reportCtx, bool) {
	key, _ := principalFrom(r.Context())
	var q reportQuery
	var err error
	if extra != nil {
		q, err = extra(r.URL.RawQuery)
	} else {
		err = parseParams(r.URL.RawQuery, &q, reportParams)
	}
	if err == nil {
		q.from, q.to, err = a.rangeDefaults(q.from, q.to)
	}
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return nil, false
	}
	rc := &reportCtx{ctx: r.Context(), key: key, now: a.now().UTC(), rng: TimeRange{From: q.from, To: q.to}}
	rc.filter = storage.Filter{From: q.from, To: q.to, Workspace: q.workspace}
	if !a.scopeFilter(w, r, key, &rc.filter) {
		return nil, false
	}
	ws := rc.filter.Workspace
	if ws == "" {
		ws = allWorkspaces
	}
	rc.env = ReportEnvelope{
		Report: name, Version: reportVersion, GeneratedAt: rc.now,
		TimeRange: rc.rng, Workspace: ws, Queries: []ReportQuery{},
	}
	if rc.env.Checkpoint, err = a.checkpointSummary(rc.now); err != nil {
		a.storeError(w, r, "reading the latest checkpoint", err)
		return nil, false
	}
	if !rc.global() {
		// The chain spans every workspace: its seq counts their events,
		// which a one-workspace report must not reveal. Time, head and
		// signature still tie the report to the chain.
		rc.env.Checkpoint.Seq = 0
	}
	return rc, true
}

// global reports whether the report spans every workspace, so that
// pipeline-wide records (lifecycle events, the API key inventory) may be
// counted in it. scopeFilter has set the workspace of a scoped caller,
// so an empty one means an unscoped caller who asked for no workspace.
func (rc *reportCtx) global() bool { return rc.filter.Workspace == "" }

// addQuery notes a query the report ran.
func (rc *reportCtx) addQuery(name string, filter map[string]any, rows int64, note string) {
	rc.env.Queries = append(rc.env.Queries, ReportQuery{Name: name, Filter: filter, Rows: rows, Note: note})
}

// checkpointSummary describes the latest checkpoint as of now. None is a
// statement in the report, not an error.
func (a *api) checkpointSummary(now time.Time) (CheckpointSummary, error) {
	cp, err := a.store.LatestCheckpoint()
	if errors.Is(err, storage.ErrNotFound) {
		return CheckpointSummary{Note: "no integrity checkpoint has been made yet"}, nil
	}
	if err != nil {
		return CheckpointSummary{}, err
	}
	t := cp.Time.UTC()
	s := CheckpointSummary{Present: true, Seq: cp.Seq, Time: &t, HeadHash: cp.Link, KeyID: cp.KeyID}
	if age := now.Sub(t); age > 0 {
		s.AgeSeconds = int64(age / time.Second)
	}
	// Verified with the store's own key when it has one: the checkpoint's
	// embedded key alone would accept a forgery signed with any key.
	pub, err := a.store.CheckpointPublicKey()
	switch {
	case err != nil:
		err = cp.Verify(nil)
		s.Note = "checked against the key embedded in the checkpoint only: this store has no checkpoint key configured"
	default:
		err = cp.Verify(pub)
	}
	s.Signed = len(cp.Signature) > 0 && err == nil
	if err != nil {
		s.Note = "the signature does not verify: " + err.Error()
	}
	return s, nil
}

// reportDetails are the audit details of a report call.
func reportDetails(name string, rc *reportCtx) map[string]any {
	rows := int64(0)
	for _, q := range rc.env.Queries {
		rows += q.Rows
	}
	return map[string]any{
		"report":    name,
		"from":      rc.rng.From.Format(time.RFC3339Nano),
		"to":        rc.rng.To.Format(time.RFC3339Nano),
		"workspace": rc.env.Workspace,
		"rows":      rows,
	}
}

// scanAlerts calls fn for every alert last seen in f's range, newest
// first, page by page.
func (a *api) scanAlerts(f storage.AlertFilter, fn func(*storage.Alert)) (int64, error) {
	var n int64
	cursor := ""
	for {
		page, err := a.store.ListAlerts(f, storage.MaxPageSize, cursor)
		if err != nil {
			return n, err
		}
		for i := range page.Alerts {
			n++
			fn(&page.Alerts[i])
		}
		if page.NextCursor == "" {
			return n, nil
		}
		cursor = page.NextCursor
	}
}

// rangeAlerts reads the alerts of the report's range and workspace and
// notes the query.
func (a *api) rangeAlerts(rc *reportCtx, fn func(*storage.Alert)) error {
	f := storage.AlertFilter{From: rc.rng.From, To: rc.rng.To, Workspace: rc.filter.Workspace}
	n, err := a.scanAlerts(f, fn)
	if err != nil {
		return err
	}
	rc.env.Totals.Alerts = n
	rc.addQuery("alerts", alertFilterDetails(f), n, "alerts last seen in the range")
	return nil
}
