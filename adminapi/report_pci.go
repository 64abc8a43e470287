package adminapi

import (
	"fmt"
	"net/http"
)

// PCI DSS 10.5.1: a year of history, the latest three months online.
const (
	pciRetentionDays = 365
	pciOnlineDays    = 90
)

// pciCheckpointMaxAge is how old the latest checkpoint may be before 10.3
// calls the tail of the trail unprotected.
const pciCheckpointMaxAgeSeconds = 24 * 3600

// PCIReport is the body of GET /api/v1/reports/pci: PCI DSS v4.0
// requirement 10 as this trail covers it.
type PCIReport struct {
	ReportEnvelope
	// EventClasses are 10.2.1.1 to 10.2.1.7, in order.
	EventClasses []PCIEventClass `json:"event_classes"`
	// Fields is 10.2.2: the share of request events carrying each field.
	Fields PCIFields `json:"fields_10_2_2"`
	// Protection is 10.3: how the trail is protected from change.
	Protection PCIProtection `json:"protection_10_3"`
	// Retention is 10.5: how long the trail is kept.
	Retention PCIRetention `json:"retention_10_5"`
	// Failures is 10.7: failures of the logging itself.
	Failures PCIFailures `json:"failures_10_7"`
}

// PCIEventClass is one 10.2.1.x event class.
type PCIEventClass struct {
	// Requirement is the number, such as "10.2.1.4".
	Requirement string `json:"requirement"`
	// Title is what the requirement asks to be logged.
	Title string `json:"title"`
	// Count is how many events of the range belong to the class.
	Count int64 `json:"count"`
	// Status is "seen" or "not seen".
	Status string `json:"status"`
	// Source says which events are counted, and so what would produce one.
	Source string `json:"source"`
}

// PCIFields is the 10.2.2 field coverage over the range's request events
// (proxied and admin API): each share is 0-1.
type PCIFields struct {
	// Events is how many request events were checked.
	Events int64 `json:"events"`
	// User is 10.2.2.1 user identification.
	User float64 `json:"user"`
	// Type is 10.2.2.2 type of event.
	Type float64 `json:"type"`
	// Time is 10.2.2.3 date and time.
	Time float64 `json:"time"`
	// Outcome is 10.2.2.4 success or failure indication.
	Outcome float64 `json:"outcome"`
	// Origin is 10.2.2.5 origination of the event (client IP).
	Origin float64 `json:"origin"`
	// Resource is 10.2.2.6 identity of the affected resource (path).
	Resource float64 `json:"resource"`
}

// PCIProtection is the 10.3 evidence.
type PCIProtection struct {
	// HashChain is true: every event is chained (SHA-256) as it is stored.
	HashChain bool `json:"hash_chain"`
	// CheckpointPresent, CheckpointSigned and CheckpointAgeSeconds
	// describe the latest signed checkpoint (10.3.4 change detection).
	CheckpointPresent    bool  `json:"checkpoint_present"`
	CheckpointSigned     bool  `json:"checkpoint_signed"`
	CheckpointAgeSeconds int64 `json:"checkpoint_age_seconds"`
	// Status is "met" or "gaps"; Gaps say why.
	Status string   `json:"status"`
	Gaps   []string `json:"gaps"`
}

// PCIRetention is the 10.5 evidence.
type PCIRetention struct {
	// RequiredDays and OnlineDays are what 10.5.1 asks.
	RequiredDays int `json:"required_days"`
	OnlineDays   int `json:"online_days"`
	// Retention is what is configured.
	Retention RetentionInfo `json:"retention"`
	// Status is "met", "gaps" or "unknown"; Gaps say why.
	Status string   `json:"status"`
	Gaps   []string `json:"gaps"`
}

// PCIFailures is the 10.7 evidence.
type PCIFailures struct {
	// DroppedEvents and DropRecords come from events_dropped records.
	DroppedEvents int64 `json:"dropped_events"`
	DropRecords   int64 `json:"drop_records"`
	// Counted is false in a report confined to one workspace: drops are
	// pipeline-wide.
	Counted bool `json:"counted"`
	// Status is "met", "gaps" or "unknown".
	Status string `json:"status"`
}

// Statuses of the PCI sections.
const (
	pciMet     = "met"
	pciGaps    = "gaps"
	pciUnknown = "unknown"
)

// pciReport serves GET /api/v1/reports/pci.
func (a *api) pciReport(w http.ResponseWriter, r *http.Request) {
	const name = "pci"
	rc, ok := a.startReport(w, r, name, nil)
	if !ok {
		return
	}
	t, err := a.tallyRange(rc)
	if err != nil {
		a.storeError(w, r, "counting events for the PCI report", err)
		return
	}
	lt, err := a.tallyLifecycle(rc)
	if err != nil {
		a.storeError(w, r, "counting lifecycle events for the PCI report", err)
		return
	}
	ret, err := a.retentionInfo(rc, lt)
	if err != nil {
		a.storeError(w, r, "reading workspace settings for the PCI report", err)
		return
	}
	var startStop int64
	for _, action := range lifecycleStartStop {
		startStop += lt.byAction[action]
	}
	lifecycleSource := "lifecycle events audit_started, audit_stopped, config_reloaded, config_reverted, events_dropped"
	if !lt.seen {
		lifecycleSource += " (not counted: a report confined to one workspace does not read pipeline-wide events)"
	}
	classes := []PCIEventClass{
		{Requirement: "10.2.1.1", Title: "All individual user accesses to cardholder data", Count: t.httpVerified,
			Source: "proxied requests by a verified user; configure a verified user source (Caddy authentication, verified JWT)"},
		{Requirement: "10.2.1.2", Title: "All actions taken by any individual with administrative access", Count: t.privileged + t.admin,
			Source: "proxied requests to privileged routes, plus admin API calls (counted only in reports over all workspaces)"},
		{Requirement: "10.2.1.3", Title: "All access to all audit logs", Count: t.admin,
			Source: "admin API calls: every read, export and report of the trail is recorded (reserved workspace _audit)"},
		{Requirement: "10.2.1.4", Title: "Invalid logical access attempts", Count: t.status401 + t.status403,
			Source: "requests answered 401 or 403, proxied or to the admin API"},
		{Requirement: "10.2.1.5", Title: "Changes to identification and authentication credentials", Count: t.adminKeyCreate + t.adminKeyRevoke + t.adminRBAC + t.roleChangeHTTP,
			Source: "admin API key creations and revocations, role and binding changes, and proxied calls to the application's role or permission routes"},
		{Requirement: "10.2.1.6", Title: "Initialization, stopping or pausing of the audit logs", Count: startStop,
			Source: lifecycleSource},
		{Requirement: "10.2.1.7", Title: "Creation and deletion of system-level objects", Count: t.creates + t.deletes,
			Source: "successful proxied POST, PUT and DELETE requests"},
	}
	for i := range classes {
		classes[i].Status = "not seen"
		if classes[i].Count > 0 {
			classes[i].Status = "seen"
		}
	}
	f := t.fields
	rep := PCIReport{ReportEnvelope: rc.env, EventClasses: classes}
	rep.Fields = PCIFields{
		Events: t.requests, User: share(f.user, t.requests), Type: share(f.kind, t.requests), Time: share(f.time, t.requests),
		Outcome: share(f.outcome, t.requests), Origin: share(f.clientIP, t.requests), Resource: share(f.path, t.requests),
	}
	rep.Protection = pciProtection(rc.env.Checkpoint)
	rep.Retention = pciRetention(ret)
	rep.Failures = PCIFailures{DroppedEvents: lt.dropped, DropRecords: lt.dropEvents, Counted: lt.seen, Status: pciUnknown}
	if lt.seen {
		rep.Failures.Status = pciMet
		if lt.dropped > 0 {
			rep.Failures.Status = pciGaps
		}
	}
	a.record(r, rc.key, "reports."+name, http.StatusOK, reportDetails(name, rc))
	writeJSON(w, http.StatusOK, rep)
}

func pciProtection(cp CheckpointSummary) PCIProtection {
	p := PCIProtection{HashChain: true, CheckpointPresent: cp.Present, CheckpointSigned: cp.Signed, CheckpointAgeSeconds: cp.AgeSeconds, Gaps: []string{}}
	switch {
	case !cp.Present:
		p.Gaps = append(p.Gaps, "no signed checkpoint: a truncated or rolled-back trail would go unnoticed; enable checkpoints")
	case !cp.Signed:
		p.Gaps = append(p.Gaps, "the latest checkpoint's signature does not verify")
	case cp.AgeSeconds > pciCheckpointMaxAgeSeconds:
		p.Gaps = append(p.Gaps, fmt.Sprintf("the latest checkpoint is %d hours old: events since then are protected by the chain alone", cp.AgeSeconds/3600))
	}
	p.Status = pciMet
	if len(p.Gaps) > 0 {
		p.Status = pciGaps
	}
	return p
}

// pciRetention judges the retention against 10.5.1. A workspace setting
// shorter than a year is raised by a floor of at least a year; a default
// of 0 keeps events forever.
func pciRetention(ret RetentionInfo) PCIRetention {
	p := PCIRetention{RequiredDays: pciRetentionDays, OnlineDays: pciOnlineDays, Retention: ret, Gaps: []string{}}
	floor := int64(0)
	if ret.FloorDays != nil {
		floor = *ret.FloorDays
	}
	short := func(days int64) bool { return days > 0 && max(days, floor) < pciRetentionDays }
	if ret.DefaultDays != nil && short(*ret.DefaultDays) {
		p.Gaps = append(p.Gaps, fmt.Sprintf("the default retention keeps %d days, less than the %d required", max(*ret.DefaultDays, floor), pciRetentionDays))
	}
	for _, ws := range ret.Workspaces {
		if !ws.LegalHold && short(int64(ws.Days)) {
			p.Gaps = append(p.Gaps, fmt.Sprintf("workspace %q keeps %d days, less than the %d required", ws.Workspace, max(int64(ws.Days), floor), pciRetentionDays))
		}
	}
	switch {
	case len(p.Gaps) > 0:
		p.Status = pciGaps
	case ret.DefaultDays == nil:
		p.Status = pciUnknown
	default:
		p.Status = pciMet
	}
	return p
}
