package adminapi

import (
	"net/http"
	"slices"
	"strings"
)

// GDPRReport is the body of GET /api/v1/reports/gdpr: the Art. 30 record
// of the processing this sidecar does, with the figures of the range.
type GDPRReport struct {
	ReportEnvelope
	// Record is the Art. 30(1) record of processing activities.
	Record ProcessingRecord `json:"record"`
	// Figures are the range's counts.
	Figures GDPRFigures `json:"figures"`
}

// ProcessingRecord is the record of processing activities (GDPR Art.
// 30(1)) for the audit trail.
type ProcessingRecord struct {
	// Controller is who the controller is; the sidecar does not know, so
	// the fields are left for the operator to fill in.
	Controller ControllerInfo `json:"controller"`
	// Purposes of the processing (Art. 30(1)(b)).
	Purposes []string `json:"purposes"`
	// LegalBasis is the usual basis for security logging; the controller
	// confirms it.
	LegalBasis string `json:"legal_basis"`
	// DataSubjects are the categories of data subjects (Art. 30(1)(c)).
	DataSubjects []string `json:"data_subjects"`
	// PersonalData are the categories of personal data actually stored,
	// with how many events of the range carry each.
	PersonalData []DataCategory `json:"personal_data"`
	// Recipients are who can receive the data (Art. 30(1)(d)).
	Recipients []string `json:"recipients"`
	// Transfers to third countries (Art. 30(1)(e)).
	Transfers string `json:"transfers"`
	// Retention is how long events are kept (Art. 30(1)(f)).
	Retention RetentionInfo `json:"retention"`
	// SecurityMeasures are the technical measures (Art. 30(1)(g), Art. 32).
	SecurityMeasures []string `json:"security_measures"`
}

// ControllerInfo are the controller's details, to fill in.
type ControllerInfo struct {
	// Name, Contact and DPO are empty placeholders: the sidecar's
	// configuration does not carry them.
	Name    string `json:"name"`
	Contact string `json:"contact"`
	DPO     string `json:"dpo"`
	// Note says where they come from.
	Note string `json:"note"`
}

// DataCategory is one category of personal data in the trail.
type DataCategory struct {
	// Field is the event field, such as "client_ip".
	Field string `json:"field"`
	// Description says what it is.
	Description string `json:"description"`
	// Events is how many events of the range carry it.
	Events int64 `json:"events"`
}

// RetentionInfo is the retention in force.
type RetentionInfo struct {
	// DefaultDays is the retention of workspaces without their own, from
	// the latest retention pass (null when none ran in the range; 0 keeps
	// events forever).
	DefaultDays *int64 `json:"default_days"`
	// FloorDays is the least any workspace keeps, from the same record.
	FloorDays *int64 `json:"floor_days"`
	// Workspaces are the workspaces with settings of their own.
	Workspaces []WorkspaceRetention `json:"workspaces"`
	// Note says where the figures come from.
	Note string `json:"note"`
}

// WorkspaceRetention is one workspace's retention setting.
type WorkspaceRetention struct {
	// Workspace is its id.
	Workspace string `json:"workspace"`
	// Days is its retention; 0 means the default.
	Days int `json:"days"`
	// LegalHold suspends purging.
	LegalHold bool `json:"legal_hold"`
}

// GDPRFigures are the GDPR-relevant counts of the range.
type GDPRFigures struct {
	// DistinctUsers and DistinctIPs are the data subjects seen (lower
	// bounds past a million each).
	DistinctUsers int64 `json:"distinct_users"`
	DistinctIPs   int64 `json:"distinct_ips"`
	// DistinctUserAgents is how many user agent strings were stored.
	DistinctUserAgents int64 `json:"distinct_user_agents"`
	// ErasureRequests is how many subject_erased records the range holds
	// (one per erasure transaction), ErasedEvents the events they rewrote.
	ErasureRequests int64 `json:"erasure_records"`
	ErasedEvents    int64 `json:"erased_events"`
	// ErasureCalls counts erasure requests through the admin API.
	ErasureCalls int64 `json:"erasure_calls"`
	// SubjectExports counts subject access exports through the admin API.
	SubjectExports int64 `json:"subject_exports"`
}

// retentionInfo reads the workspace settings (only the report's own
// workspace in a confined report) and the latest retention policy the
// lifecycle records show.
func (a *api) retentionInfo(rc *reportCtx, lt *lifecycleTally) (RetentionInfo, error) {
	ri := RetentionInfo{Workspaces: []WorkspaceRetention{}}
	wss, err := a.store.Workspaces()
	if err != nil {
		return ri, err
	}
	for _, ws := range wss {
		if rc.filter.Workspace != "" && ws.ID != rc.filter.Workspace {
			continue
		}
		ri.Workspaces = append(ri.Workspaces, WorkspaceRetention{Workspace: ws.ID, Days: ws.RetentionDays, LegalHold: ws.LegalHold})
	}
	filter := map[string]any{}
	if rc.filter.Workspace != "" {
		filter["workspace"] = rc.filter.Workspace
	}
	rc.addQuery("workspaces", filter, int64(len(ri.Workspaces)), "workspace settings as of generated_at")
	if lt.lastPolicy != nil {
		d, f := lt.lastPolicy["default_days"].(int64), lt.lastPolicy["floor_days"].(int64)
		ri.DefaultDays, ri.FloorDays = &d, &f
		ri.Note = "default and floor from the latest events_purged record of the range"
	} else {
		ri.Note = "no retention pass purged anything in the range, so the default retention (the audit app's retention_days) is not evidenced here"
	}
	return ri, nil
}

// gdprReport serves GET /api/v1/reports/gdpr.
func (a *api) gdprReport(w http.ResponseWriter, r *http.Request) {
	const name = "gdpr"
	rc, ok := a.startReport(w, r, name, nil)
	if !ok {
		return
	}
	t, err := a.tallyRange(rc)
	if err != nil {
		a.storeError(w, r, "counting events for the GDPR report", err)
		return
	}
	lt, err := a.tallyLifecycle(rc)
	if err != nil {
		a.storeError(w, r, "counting lifecycle events for the GDPR report", err)
		return
	}
	ret, err := a.retentionInfo(rc, lt)
	if err != nil {
		a.storeError(w, r, "reading workspace settings for the GDPR report", err)
		return
	}
	f := t.fields
	rep := GDPRReport{ReportEnvelope: rc.env}
	rep.Record = ProcessingRecord{
		Controller: ControllerInfo{Note: "the sidecar's configuration does not name the controller; fill these in for the record"},
		Purposes: []string{
			"security monitoring of access to the protected application (detection of brute force, scanning, exfiltration, privilege misuse)",
			"audit trail of who did what, when, from where and with what outcome, for compliance (PCI DSS 10, SOC 2 CC6/CC7, HIPAA 164.312(b))",
			"investigation of security incidents",
		},
		LegalBasis: "Art. 6(1)(c) legal obligation or 6(1)(f) legitimate interest in network and information security (Recital 49); to be confirmed by the controller",
		DataSubjects: []string{
			"users of the protected application, as identified by the configured user source",
			"clients of the application, by IP address, including unauthenticated ones",
			"operators of the admin API, by API key id",
		},
		PersonalData: []DataCategory{
			{Field: "user", Description: "user id as the application identifies the user", Events: f.user},
			{Field: "client_ip", Description: "client IP address", Events: f.clientIP},
			{Field: "client_port", Description: "client TCP port", Events: f.clientPort},
			{Field: "user_agent", Description: "browser or client software string", Events: f.userAgent},
			{Field: "referer", Description: "page the request came from", Events: f.referer},
			{Field: "forwarded_for_untrusted", Description: "X-Forwarded-For chain as sent", Events: f.forwardedFor},
			{Field: "query", Description: "query string, secrets replaced by keyed hashes", Events: f.query},
			{Field: "headers", Description: "request and response headers (audit level headers or body), credentials replaced by keyed hashes", Events: f.headers},
		},
		Recipients: []string{
			"holders of admin API keys whose role grants events:read or events:export (" + strings.Join(rolesWith(permEventsRead, permEventsExport), ", ") + ")",
			"systems that ingest the exports (SIEM), as the controller configures them",
		},
		Transfers: "none by the sidecar itself: data stays in the local store unless exported",
		Retention: ret,
		SecurityMeasures: []string{
			"credentials in headers and query strings are replaced by keyed HMAC-SHA256 tokens before storage; secrets never reach disk in clear",
			"every event is linked into a SHA-256 hash chain; personal fields are chained as a salted commitment, so erasure keeps the chain verifiable",
			"signed Ed25519 checkpoints of the chain head detect truncation and rollback",
			"admin API behind 256-bit API keys stored as hashes, with role-based access and per-workspace scoping",
			"every use of the admin API is itself recorded",
			"erasure replaces a subject's personal fields with keyed pseudonyms (Art. 17 / Art. 4(5))",
		},
	}
	rep.Figures = GDPRFigures{
		DistinctUsers: int64(len(t.users)), DistinctIPs: int64(len(t.ips)), DistinctUserAgents: int64(len(t.agents)),
		ErasureRequests: lt.erasures, ErasedEvents: lt.erasedEvents,
		ErasureCalls: t.adminByAction[actionSubjectErase], SubjectExports: t.adminByAction[actionSubjectExport],
	}
	a.record(r, rc.key, "reports."+name, http.StatusOK, reportDetails(name, rc))
	writeJSON(w, http.StatusOK, rep)
}

// rolesWith lists the built-in roles granting any of perms, sorted.
func rolesWith(perms ...string) []string {
	var out []string
	for role, granted := range builtinRoles {
		for _, p := range perms {
			if slices.Contains(granted, p) {
				out = append(out, role)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}
