package storage

import "time"

// Alert severities, lowest first. They share their names with the risk
// levels of single events.
const (
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// Severities lists the severities, lowest first.
var Severities = []string{SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}

// Alert statuses. The detector engine only ever emits open
// alerts; analysts move them along (SetAlertStatus) as ValidTransition
// allows.
const (
	StatusOpen          = "open"
	StatusAcknowledged  = "acknowledged"
	StatusResolved      = "resolved"
	StatusFalsePositive = "false_positive"
)

// ValidTransition reports whether an analyst may move an alert from one
// status to another: open alerts can be acknowledged, resolved or marked a
// false positive; acknowledged ones resolved, marked a false positive or
// handed back (open); closed ones (resolved, false_positive) only reopened.
// Staying in the same status is not a transition.
func ValidTransition(from, to string) bool {
	switch from {
	case StatusOpen:
		return to == StatusAcknowledged || to == StatusResolved || to == StatusFalsePositive
	case StatusAcknowledged:
		return to == StatusOpen || to == StatusResolved || to == StatusFalsePositive
	case StatusResolved, StatusFalsePositive:
		return to == StatusOpen
	}
	return false
}

// Subject kinds: what an alert is about.
const (
	SubjectIP        = "ip"
	SubjectUser      = "user"
	SubjectWorkspace = "workspace" // reserved for workspace-wide rules
)

// Subject is who or what an alert is about.
type Subject struct {
	// Kind is ip, user or workspace.
	Kind string `json:"kind"`
	// Value is the client IP, user id or workspace name.
	Value string `json:"value"`
}

// Evidence explains an alert: which events, which figures against which
// thresholds, in one sentence.
type Evidence struct {
	// EventIDs are the ids of the events counted into the alert, bounded:
	// the first MaxFirstEvidence and the last MaxLastEvidence (Count says how
	// many there were in all).
	EventIDs []string `json:"event_ids"`
	// Figures are the observed values and the thresholds they were compared
	// with, such as {"failures": 6, "capacity": 5, "leak_s": 10}.
	Figures map[string]float64 `json:"figures"`
	// Observed are the non-numeric observations, such as the new user agent
	// or the targeted route.
	Observed map[string]string `json:"observed,omitempty"`
	// Summary says in one sentence what was seen.
	Summary string `json:"summary"`
}

// Bounds of Evidence.EventIDs.
const (
	MaxFirstEvidence = 20
	MaxLastEvidence  = 5
)

// Mitre is the MITRE ATT&CK technique an alert maps to.
type Mitre struct {
	// ID is the technique id, such as "T1110.004".
	ID string `json:"id"`
	// Name is the technique name.
	Name string `json:"name"`
	// Tactic is the ATT&CK tactic the technique serves.
	Tactic string `json:"tactic"`
}

// Alert is one detection: what fired, about whom, on which evidence, and
// what to do about it. Field names are the JSON contract of the admin API.
type Alert struct {
	// ID is derived from the detector, the rule family, the subject and the
	// first event, so replaying the same events yields the same ids.
	ID string `json:"id"`
	// Detector is one of the six detector names.
	Detector string `json:"detector"`
	// Rule is the detector's rule that opened the alert, such as
	// "credential_stuffing".
	Rule string `json:"rule"`
	// Severity is low, medium, high or critical. It only ever rises while
	// the alert is open.
	Severity string `json:"severity"`
	// Subject is the client IP, user or workspace the alert is about.
	Subject Subject `json:"subject"`
	// Workspace is the workspace of the first event, if it had one.
	Workspace string `json:"workspace,omitempty"`
	// FirstSeen is the event time of the first event counted into the
	// alert.
	FirstSeen time.Time `json:"first_seen"`
	// LastSeen is the event time of the last event counted into the alert.
	LastSeen time.Time `json:"last_seen"`
	// Count is how many events were counted into the alert.
	Count int `json:"count"`
	// Evidence explains the alert.
	Evidence Evidence `json:"evidence"`
	// Mitre is the ATT&CK technique.
	Mitre Mitre `json:"mitre"`
	// RecommendedActions are concrete next steps for an analyst.
	RecommendedActions []string `json:"recommended_actions"`
	// Status is open, acknowledged, resolved or false_positive.
	Status string `json:"status"`
	// StatusBy is the principal that last changed Status.
	StatusBy string `json:"status_by,omitempty"`
	// StatusAt is when Status last changed.
	StatusAt time.Time `json:"status_at,omitzero"`
	// History lists the status changes and comments, oldest first, at
	// most MaxAlertHistory of them.
	History []AlertChange `json:"history,omitempty"`
	// HistoryDropped counts the oldest history entries that gave way to
	// the MaxAlertHistory bound.
	HistoryDropped int `json:"history_dropped,omitempty"`
}
