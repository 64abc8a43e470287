package adminapi

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/storage"
)

// ScoreReport is the body of GET /api/v1/reports/score.
type ScoreReport struct {
	ReportEnvelope
	// Score is the security score, 0-100: the sum of the components'
	// values, rounded to the nearest integer.
	Score int `json:"score"`
	// Components are the parts of the score, in a fixed order.
	Components []ScoreComponent `json:"components"`
}

// ScoreComponent is one part of the security score.
type ScoreComponent struct {
	// Name identifies the component.
	Name string `json:"name"`
	// Weight is the most the component contributes.
	Weight float64 `json:"weight"`
	// Value is what it contributes, 0 to Weight (two decimals).
	Value float64 `json:"value"`
	// Explanation says which figures gave the value.
	Explanation string `json:"explanation"`
}

// Score thresholds, named so the doc comment of scoreComponents and the
// code cannot disagree.
const (
	scoreFailedAuthZero   = 0.20 // a 401 share this high zeroes failed_auth
	scoreSuspiciousZero   = 0.10 // a suspicious share this high zeroes suspicious_events
	scoreVerifyWindow     = 7 * 24 * time.Hour
	scoreCheckpointFresh  = time.Hour      // full checkpoint_freshness up to this age
	scoreCheckpointStale  = 24 * time.Hour // half up to this age, nothing beyond
	scorePenaltyCritical  = 10
	scorePenaltyHigh      = 5
	scorePenaltyMedium    = 2
	actionIntegrityVerify = "integrity.verify"
)

// scoreInputs are the figures the score is computed from.
type scoreInputs struct {
	openCritical, openHigh, openMedium int64
	proxied, failedAuth, suspicious    int64
	// verified: a verification ran in the window; verifyOK: the latest
	// one found the chain intact.
	verified, verifyOK               bool
	checkpoint                       CheckpointSummary
	privileged, privilegedUnverified int64
	detectorsOn                      int
	dropsCounted                     bool
	dropped                          int64
}

// scoreComponents computes the security score's components. The score
// is deterministic: the same data and clock give the same score. Weights
// sum to 100:
//
//   - open_alerts (25): 25 - 10 per critical - 5 per high - 2 per medium
//     alert last seen in the range and still open or acknowledged, at
//     least 0.
//   - failed_auth (15): 15 x (1 - s/0.20), at least 0, where s is the
//     share of proxied requests answered 401 (full without traffic).
//   - suspicious_events (15): 15 x (1 - s/0.10), at least 0, where s is the
//     share of proxied requests scored suspicious (risk >= 40).
//   - integrity_verified (10): 10 when the integrity chain was verified
//     through the API in the 7 days before the report and the latest
//     verification found it intact; 0 otherwise.
//   - checkpoint_freshness (10): 10 when the latest signed checkpoint is
//     at most 1 hour old, 5 when at most 24 hours, 0 when older, unsigned
//     or absent.
//   - privileged_identity (10): 10 x (1 - u/p), where p is the proxied
//     requests to privileged routes and u those without a verified
//     identity (full when p is 0).
//   - detector_coverage (10): 10 x enabled detectors / 6.
//   - drops (5): 5 when the pipeline dropped no event in the range, 0
//     otherwise; full, and said so, in a report confined to one workspace,
//     which cannot see pipeline-wide drops.
func scoreComponents(in scoreInputs) []ScoreComponent {
	c := make([]ScoreComponent, 0, 8)
	add := func(name string, weight, value float64, format string, args ...any) {
		value = math.Max(0, math.Min(weight, value))
		c = append(c, ScoreComponent{Name: name, Weight: weight, Value: round(value, 2), Explanation: fmt.Sprintf(format, args...)})
	}
	add("open_alerts", 25, 25-float64(scorePenaltyCritical*in.openCritical+scorePenaltyHigh*in.openHigh+scorePenaltyMedium*in.openMedium),
		"%d critical, %d high and %d medium alert(s) still open; each costs %d, %d and %d points", in.openCritical, in.openHigh, in.openMedium,
		scorePenaltyCritical, scorePenaltyHigh, scorePenaltyMedium)
	fa := ratio(in.failedAuth, in.proxied)
	add("failed_auth", 15, 15*(1-fa/scoreFailedAuthZero),
		"%d of %d proxied requests answered 401 (%.2f%%); a share of %.0f%% or more scores 0", in.failedAuth, in.proxied, 100*fa, 100*scoreFailedAuthZero)
	su := ratio(in.suspicious, in.proxied)
	add("suspicious_events", 15, 15*(1-su/scoreSuspiciousZero),
		"%d of %d proxied requests were scored suspicious (%.2f%%); a share of %.0f%% or more scores 0", in.suspicious, in.proxied, 100*su, 100*scoreSuspiciousZero)
	switch {
	case !in.verified:
		add("integrity_verified", 10, 0, "the integrity chain was not verified through the API in the last 7 days")
	case !in.verifyOK:
		add("integrity_verified", 10, 0, "the latest verification in the last 7 days found problems in the integrity chain")
	default:
		add("integrity_verified", 10, 10, "the latest verification in the last 7 days found the integrity chain intact")
	}
	cp := in.checkpoint
	age := time.Duration(cp.AgeSeconds) * time.Second
	switch {
	case !cp.Present:
		add("checkpoint_freshness", 10, 0, "no signed checkpoint exists")
	case !cp.Signed:
		add("checkpoint_freshness", 10, 0, "the latest checkpoint's signature does not verify")
	case age <= scoreCheckpointFresh:
		add("checkpoint_freshness", 10, 10, "the latest checkpoint is %s old (at most 1h scores 10)", age)
	case age <= scoreCheckpointStale:
		add("checkpoint_freshness", 10, 5, "the latest checkpoint is %s old (at most 24h scores 5)", age)
	default:
		add("checkpoint_freshness", 10, 0, "the latest checkpoint is %s old (over 24h scores 0)", age)
	}
	add("privileged_identity", 10, 10*(1-ratio(in.privilegedUnverified, in.privileged)),
		"%d of %d requests to privileged routes carried no verified identity", in.privilegedUnverified, in.privileged)
	add("detector_coverage", 10, 10*float64(in.detectorsOn)/float64(len(detectors.Detectors)),
		"%d of %d detectors enabled", in.detectorsOn, len(detectors.Detectors))
	switch {
	case !in.dropsCounted:
		add("drops", 5, 5, "not measured: drops are pipeline-wide and this report is confined to one workspace")
	case in.dropped > 0:
		add("drops", 5, 0, "the pipeline dropped %d event(s) in the range", in.dropped)
	default:
		add("drops", 5, 5, "no event was dropped in the range")
	}
	return c
}

// ratio is n/of, 0 when of is 0.
func ratio(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// errStopScan ends a Scan early once the answer is known.
var errStopScan = errors.New("scan stopped")

// latestVerification finds the latest successful call of the integrity
// verification in the window before now. It reads the reserved audit
// workspace even for a workspace-scoped report: the answer is a yes or no
// about the whole trail, not a record of anyone's workspace.
func (a *api) latestVerification(rc *reportCtx) (ran, ok bool, err error) {
	f := storage.Filter{
		From: rc.now.Add(-scoreVerifyWindow), To: rc.now.Add(time.Nanosecond),
		Workspace: storage.AuditWorkspace, Kind: storage.KindAdmin, PathPrefix: "/api/v1/integrity/verify",
	}
	var rows int64
	err = a.store.Scan(rc.ctx, f, func(ev *storage.Event) error {
		rows++
		if ev.Action != actionIntegrityVerify || ev.Status != http.StatusOK {
			return nil
		}
		ran = true
		ok, _ = ev.Details["ok"].(bool)
		return errStopScan // newest first: this is the latest
	})
	if errors.Is(err, errStopScan) {
		err = nil
	}
	note := "the latest successful verification call in the 7 days before generated_at, whatever the report's range and workspace"
	if !rc.global() {
		// The admin trail spans every workspace's callers: a report
		// confined to one says whether a verification ran, not how many
		// calls the trail holds.
		rows = 0
		if ran {
			rows = 1
		}
		note += "; in a report confined to one workspace, rows is only 1 (found) or 0 (none)"
	}
	rc.addQuery("integrity_verifications", filterDetails(f), rows, note)
	return ran, ok, err
}

// scoreReport serves GET /api/v1/reports/score.
func (a *api) scoreReport(w http.ResponseWriter, r *http.Request) {
	const name = "score"
	rc, ok := a.startReport(w, r, name, nil)
	if !ok {
		return
	}
	t, err := a.tallyRange(rc)
	if err != nil {
		a.storeError(w, r, "counting events for the security score", err)
		return
	}
	lt, err := a.tallyLifecycle(rc)
	if err != nil {
		a.storeError(w, r, "counting lifecycle events for the security score", err)
		return
	}
	at, err := a.tallyAlerts(rc)
	if err != nil {
		a.storeError(w, r, "reading alerts for the security score", err)
		return
	}
	ran, verifyOK, err := a.latestVerification(rc)
	if err != nil {
		a.storeError(w, r, "looking for integrity verifications", err)
		return
	}
	on, _ := a.enabledDetectors()
	comps := scoreComponents(scoreInputs{
		openCritical: at.openBySeverity[storage.SeverityCritical], openHigh: at.openBySeverity[storage.SeverityHigh],
		openMedium: at.openBySeverity[storage.SeverityMedium],
		proxied:    t.http, failedAuth: t.httpStatus401, suspicious: t.suspicious,
		verified: ran, verifyOK: verifyOK, checkpoint: rc.env.Checkpoint,
		privileged: t.privileged, privilegedUnverified: t.privilegedUnverified,
		detectorsOn: len(on), dropsCounted: lt.seen, dropped: lt.dropped,
	})
	total := 0.0
	for _, c := range comps {
		total += c.Value
	}
	rep := ScoreReport{ReportEnvelope: rc.env, Score: int(math.Round(total)), Components: comps}
	details := reportDetails(name, rc)
	details["score"] = rep.Score
	a.record(r, rc.key, "reports."+name, http.StatusOK, details)
	writeJSON(w, http.StatusOK, rep)
}
