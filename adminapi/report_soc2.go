package adminapi

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/storage"
)

// Criterion statuses.
const (
	statusEvidence = "evidence_present"
	statusGaps     = "gaps"
)

// staleKeyAge is how long a key may go unused before a CC6.2 review
// should ask whether it is still needed.
const staleKeyAge = 90 * 24 * time.Hour

// SOC2Report is the body of GET /api/v1/reports/soc2: evidence for the
// Trust Services Criteria an audit trail in front of an application
// speaks to.
type SOC2Report struct {
	ReportEnvelope
	// CC61 is CC6.1, logical access security.
	CC61 SOC2CC61 `json:"cc6_1"`
	// CC62 is CC6.2, registration and removal of principals.
	CC62 SOC2CC62 `json:"cc6_2"`
	// CC63 is CC6.3, role-based access and its changes.
	CC63 SOC2CC63 `json:"cc6_3"`
	// CC72 is CC7.2, monitoring for anomalies.
	CC72 SOC2CC72 `json:"cc7_2"`
	// CC73 is CC7.3, evaluation of and response to security events.
	CC73 SOC2CC73 `json:"cc7_3"`
}

// Criterion is what every criterion section states first.
type Criterion struct {
	// Status is evidence_present, or gaps when Gaps is not empty.
	Status string `json:"status"`
	// Gaps say in words what an auditor would question.
	Gaps []string `json:"gaps"`
}

// settle sets Status from Gaps.
func (c *Criterion) settle() {
	if c.Gaps == nil {
		c.Gaps = []string{}
	}
	c.Status = statusEvidence
	if len(c.Gaps) > 0 {
		c.Status = statusGaps
	}
}

// gap adds a gap, formatted.
func (c *Criterion) gap(format string, args ...any) {
	c.Gaps = append(c.Gaps, fmt.Sprintf(format, args...))
}

// SOC2CC61 is the CC6.1 evidence: who is authenticated, and how.
type SOC2CC61 struct {
	Criterion
	// ProxiedRequests is how many proxied requests were recorded.
	ProxiedRequests int64 `json:"proxied_requests"`
	// RequestsWithUser is how many of them carried a user identity.
	RequestsWithUser int64 `json:"requests_with_user"`
	// VerifiedRequests is how many carried an identity something verified.
	VerifiedRequests int64 `json:"verified_requests"`
	// AuthenticationInUse is true when any request carried a user.
	AuthenticationInUse bool `json:"authentication_in_use"`
	// VerifiedShare is VerifiedRequests / RequestsWithUser (0-1).
	VerifiedShare float64 `json:"verified_share"`
	// ActiveAPIKeysByRole counts the admin API keys neither revoked nor
	// expired, by role (reports over all workspaces, or the workspace's
	// own keys).
	ActiveAPIKeysByRole map[string]int64 `json:"active_api_keys_by_role"`
	// AdminAPICalls is how many admin API calls were recorded (they live
	// in the reserved workspace _audit, so only reports over all
	// workspaces count them).
	AdminAPICalls int64 `json:"admin_api_calls"`
	// AdminAPIDenied is how many of them were refused (401 or 403).
	AdminAPIDenied int64 `json:"admin_api_denied"`
}

// SOC2CC62 is the CC6.2 evidence: principals issued and removed.
type SOC2CC62 struct {
	Criterion
	// KeysCreatedInRange and KeysRevokedInRange come from the key records.
	KeysCreatedInRange int64 `json:"keys_created_in_range"`
	KeysRevokedInRange int64 `json:"keys_revoked_in_range"`
	// KeyCreationEvents and KeyRevocationEvents are the admin API events
	// that recorded those changes.
	KeyCreationEvents   int64 `json:"key_creation_events"`
	KeyRevocationEvents int64 `json:"key_revocation_events"`
	// KeysNeverUsed are active keys that never authenticated.
	KeysNeverUsed []string `json:"keys_never_used"`
	// KeysUnused90Days are active keys last used more than 90 days ago.
	KeysUnused90Days []string `json:"keys_unused_90_days"`
	// KeysExpired are keys past their expiry (refused, but not revoked).
	KeysExpired []string `json:"keys_expired"`
}

// SOC2CC63 is the CC6.3 evidence: roles, their changes and their use.
type SOC2CC63 struct {
	Criterion
	// RoleChangeEvents are admin API calls on roles, bindings or
	// permissions.
	RoleChangeEvents int64 `json:"role_change_events"`
	// AppRoleChanges are proxied calls to the application's role or
	// permission routes.
	AppRoleChanges int64 `json:"app_role_changes"`
	// PrivilegedRouteRequests are proxied requests to privileged routes.
	PrivilegedRouteRequests int64 `json:"privileged_route_requests"`
	// PrivilegedUnverified are those whose identity was missing or not
	// verified.
	PrivilegedUnverified int64 `json:"privileged_unverified"`
	// Forbidden counts 403 answers (access refused by role).
	Forbidden int64 `json:"forbidden"`
}

// SOC2CC72 is the CC7.2 evidence: the monitoring in place and its yield.
type SOC2CC72 struct {
	Criterion
	// DetectorsEnabled and DetectorsDisabled name the detectors.
	DetectorsEnabled  []string `json:"detectors_enabled"`
	DetectorsDisabled []string `json:"detectors_disabled"`
	// AlertsByDetector counts the range's alerts: detector -> severity -> n.
	AlertsByDetector map[string]map[string]int64 `json:"alerts_by_detector"`
	// EventsByKind counts the recorded events by kind.
	EventsByKind map[string]int64 `json:"events_by_kind"`
	// DroppedEvents is the sum of events the pipeline reported dropping.
	DroppedEvents int64 `json:"dropped_events"`
	// DropRecords is how many events_dropped lifecycle records say so.
	DropRecords int64 `json:"drop_records"`
}

// SOC2CC73 is the CC7.3 evidence: how alerts were handled.
type SOC2CC73 struct {
	Criterion
	// Alerts is how many alerts were last seen in the range.
	Alerts int64 `json:"alerts"`
	// ByStatus counts them by their current status.
	ByStatus map[string]int64 `json:"by_status"`
	// Acknowledged, Resolved and FalsePositive count alerts that ever
	// reached that status.
	Acknowledged  int64 `json:"acknowledged"`
	Resolved      int64 `json:"resolved"`
	FalsePositive int64 `json:"false_positive"`
	// MeanTimeToAcknowledgeSeconds is from first_seen to the first
	// acknowledgement; MeanTimeToResolveSeconds from first_seen to the
	// first resolution or false-positive call. 0 when none.
	MeanTimeToAcknowledgeSeconds int64 `json:"mean_time_to_acknowledge_seconds"`
	MeanTimeToResolveSeconds     int64 `json:"mean_time_to_resolve_seconds"`
	// OpenCritical counts critical alerts not yet closed.
	OpenCritical int64 `json:"open_critical"`
}

// keyInventory is what the API key records say, as of now.
type keyInventory struct {
	counted                        bool
	keys                           int64
	activeByRole                   map[string]int64
	createdInRange, revokedInRange int64
	neverUsed, stale, expired      []string
}

// readKeys reads the key inventory for the report: every key for a
// report over all workspaces, the keys scoped to the workspace otherwise
// (global keys belong to no workspace).
func (a *api) readKeys(rc *reportCtx) (*keyInventory, error) {
	inv := &keyInventory{activeByRole: map[string]int64{}, neverUsed: []string{}, stale: []string{}, expired: []string{}}
	in := func(t *time.Time) bool {
		return t != nil && !t.Before(rc.rng.From) && t.Before(rc.rng.To)
	}
	keys, err := a.store.ListAPIKeys()
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if rc.filter.Workspace != "" && k.Workspace != rc.filter.Workspace {
			continue
		}
		inv.keys++
		created := k.CreatedAt
		if in(&created) {
			inv.createdInRange++
		}
		if in(k.RevokedAt) {
			inv.revokedInRange++
		}
		switch keyStatus(k, rc.now) {
		case keyExpired:
			inv.expired = append(inv.expired, k.ID)
		case keyActive:
			inv.activeByRole[k.Role]++
			if k.LastUsedAt == nil {
				inv.neverUsed = append(inv.neverUsed, k.ID)
			} else if rc.now.Sub(*k.LastUsedAt) > staleKeyAge {
				inv.stale = append(inv.stale, k.ID)
			}
		}
	}
	inv.counted = true
	filter := map[string]any{}
	if rc.filter.Workspace != "" {
		filter["workspace"] = rc.filter.Workspace
	}
	rc.addQuery("api_keys", filter, inv.keys, "the key inventory as of generated_at")
	return inv, nil
}

// alertTally counts the range's alerts for CC7.2, CC7.3 and the score.
type alertTally struct {
	n                         int64
	byDetector                map[string]map[string]int64
	byStatus                  map[string]int64
	openBySeverity            map[string]int64
	acked, resolved, falsePos int64
	ackSum, resolveSum        time.Duration
	ackN, resolveN            int64
}

// tallyAlerts reads and counts the range's alerts.
func (a *api) tallyAlerts(rc *reportCtx) (*alertTally, error) {
	t := &alertTally{byDetector: map[string]map[string]int64{}, byStatus: map[string]int64{}, openBySeverity: map[string]int64{}}
	err := a.rangeAlerts(rc, func(al *storage.Alert) {
		t.n++
		m := t.byDetector[al.Detector]
		if m == nil {
			m = map[string]int64{}
			t.byDetector[al.Detector] = m
		}
		m[al.Severity]++
		t.byStatus[al.Status]++
		if al.Status == storage.StatusOpen || al.Status == storage.StatusAcknowledged {
			t.openBySeverity[al.Severity]++
		}
		var acked, closed bool
		for _, h := range al.History {
			switch {
			case h.To == storage.StatusAcknowledged && !acked:
				acked = true
				t.ackSum += h.At.Sub(al.FirstSeen)
				t.ackN++
			case (h.To == storage.StatusResolved || h.To == storage.StatusFalsePositive) && !closed:
				closed = true
				t.resolveSum += h.At.Sub(al.FirstSeen)
				t.resolveN++
				if h.To == storage.StatusResolved {
					t.resolved++
				} else {
					t.falsePos++
				}
			}
		}
		if acked {
			t.acked++
		}
	})
	return t, err
}

// meanSeconds is sum/n in whole seconds, 0 when n is 0.
func meanSeconds(sum time.Duration, n int64) int64 {
	if n == 0 {
		return 0
	}
	return int64(sum / time.Duration(n) / time.Second)
}

// enabledDetectors splits the detector names by whether the global
// configuration turns them on (a workspace override may differ).
func (a *api) enabledDetectors() (on, off []string) {
	s := a.detectors.Settings
	flags := map[string]*bool{
		detectors.DetectorBruteForce: s.BruteForce.Enabled, detectors.DetectorUnusualAccess: s.UnusualAccess.Enabled,
		detectors.DetectorDataExfiltration: s.DataExfiltration.Enabled, detectors.DetectorPrivilegeEscalation: s.PrivilegeEscalation.Enabled,
		detectors.DetectorMassDeletion: s.MassDeletion.Enabled, detectors.DetectorUnauthorizedAccess: s.UnauthorizedAccess.Enabled,
	}
	on, off = []string{}, []string{}
	for _, name := range slices.Sorted(maps.Keys(flags)) {
		if f := flags[name]; f == nil || *f {
			on = append(on, name)
		} else {
			off = append(off, name)
		}
	}
	return on, off
}

// soc2Report serves GET /api/v1/reports/soc2.
func (a *api) soc2Report(w http.ResponseWriter, r *http.Request) {
	const name = "soc2"
	rc, ok := a.startReport(w, r, name, nil)
	if !ok {
		return
	}
	t, err := a.tallyRange(rc)
	if err != nil {
		a.storeError(w, r, "counting events for the SOC 2 report", err)
		return
	}
	lt, err := a.tallyLifecycle(rc)
	if err != nil {
		a.storeError(w, r, "counting lifecycle events for the SOC 2 report", err)
		return
	}
	inv, err := a.readKeys(rc)
	if err != nil {
		a.storeError(w, r, "reading the API keys for the SOC 2 report", err)
		return
	}
	at, err := a.tallyAlerts(rc)
	if err != nil {
		a.storeError(w, r, "reading alerts for the SOC 2 report", err)
		return
	}
	rep := SOC2Report{ReportEnvelope: rc.env}
	rep.CC61 = a.soc2CC61(rc, t, inv)
	rep.CC62 = soc2CC62(t, inv)
	rep.CC63 = soc2CC63(t)
	rep.CC72 = a.soc2CC72(t, lt, at)
	rep.CC73 = soc2CC73(at)
	a.record(r, rc.key, "reports."+name, http.StatusOK, reportDetails(name, rc))
	writeJSON(w, http.StatusOK, rep)
}

func (a *api) soc2CC61(rc *reportCtx, t *eventTally, inv *keyInventory) SOC2CC61 {
	c := SOC2CC61{
		ProxiedRequests: t.http, RequestsWithUser: t.httpWithUser, VerifiedRequests: t.httpVerified,
		AuthenticationInUse: t.httpWithUser > 0, VerifiedShare: share(t.httpVerified, t.httpWithUser),
		ActiveAPIKeysByRole: inv.activeByRole, AdminAPICalls: t.admin,
	}
	for action, n := range t.adminByAction {
		if action == "auth.denied" || action == "auth.forbidden" {
			c.AdminAPIDenied += n
		}
	}
	switch {
	case t.http == 0:
		c.gap("no proxied request was recorded in the range, so access to the application is not evidenced")
	case t.httpWithUser == 0:
		c.gap("none of the %d proxied requests carried a user identity: configure the user source (header, JWT or basic auth)", t.http)
	case t.httpVerified < t.httpWithUser:
		c.gap("%d of %d requests with a user carried a claimed identity nothing verified", t.httpWithUser-t.httpVerified, t.httpWithUser)
	}
	if inv.activeByRole[roleAdmin] == 0 && rc.global() {
		c.gap("no active admin API key exists")
	}
	c.settle()
	return c
}

func soc2CC62(t *eventTally, inv *keyInventory) SOC2CC62 {
	c := SOC2CC62{
		KeysCreatedInRange: inv.createdInRange, KeysRevokedInRange: inv.revokedInRange,
		KeyCreationEvents: t.adminKeyCreate, KeyRevocationEvents: t.adminKeyRevoke,
		KeysNeverUsed: inv.neverUsed, KeysUnused90Days: inv.stale, KeysExpired: inv.expired,
	}
	if n := len(inv.neverUsed); n > 0 {
		c.gap("%d active API key(s) never used: revoke keys nobody needs", n)
	}
	if n := len(inv.stale); n > 0 {
		c.gap("%d active API key(s) unused for more than 90 days", n)
	}
	if n := len(inv.expired); n > 0 {
		c.gap("%d expired API key(s) not revoked: revoke them so the inventory shows the removal", n)
	}
	c.settle()
	return c
}

func soc2CC63(t *eventTally) SOC2CC63 {
	c := SOC2CC63{
		RoleChangeEvents: t.adminRBAC, AppRoleChanges: t.roleChangeHTTP,
		PrivilegedRouteRequests: t.privileged, PrivilegedUnverified: t.privilegedUnverified,
		Forbidden: t.status403,
	}
	if t.privilegedUnverified > 0 {
		c.gap("%d of %d requests to privileged routes carried no verified identity", t.privilegedUnverified, t.privileged)
	}
	c.settle()
	return c
}

func (a *api) soc2CC72(t *eventTally, lt *lifecycleTally, at *alertTally) SOC2CC72 {
	on, off := a.enabledDetectors()
	c := SOC2CC72{
		DetectorsEnabled: on, DetectorsDisabled: off, AlertsByDetector: at.byDetector,
		EventsByKind: t.byKind, DroppedEvents: lt.dropped, DropRecords: lt.dropEvents,
	}
	if len(off) > 0 {
		c.gap("detectors turned off: %v", off)
	}
	if t.events == 0 {
		c.gap("no event was recorded in the range")
	}
	if lt.dropped > 0 {
		c.gap("the pipeline dropped %d event(s) in the range (%d drop record(s)); the trail has gaps there", lt.dropped, lt.dropEvents)
	}
	if !lt.seen {
		c.gap("drops are counted only in reports over all workspaces")
	}
	c.settle()
	return c
}

func soc2CC73(at *alertTally) SOC2CC73 {
	c := SOC2CC73{
		Alerts: at.n, ByStatus: at.byStatus, Acknowledged: at.acked, Resolved: at.resolved, FalsePositive: at.falsePos,
		MeanTimeToAcknowledgeSeconds: meanSeconds(at.ackSum, at.ackN),
		MeanTimeToResolveSeconds:     meanSeconds(at.resolveSum, at.resolveN),
		OpenCritical:                 at.openBySeverity[storage.SeverityCritical],
	}
	if c.OpenCritical > 0 {
		c.gap("%d critical alert(s) still open", c.OpenCritical)
	}
	if n := at.byStatus[storage.StatusOpen]; n > 0 {
		c.gap("%d alert(s) never acknowledged", n)
	}
	c.settle()
	return c
}
