package detectors

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Detector names, as they appear in alerts, config and metrics labels.
const (
	DetectorBruteForce          = "brute_force"
	DetectorUnusualAccess       = "unusual_access"
	DetectorDataExfiltration    = "data_exfiltration"
	DetectorPrivilegeEscalation = "privilege_escalation"
	DetectorMassDeletion        = "mass_deletion"
	DetectorUnauthorizedAccess  = "unauthorized_access"
)

// Detectors lists the detector names in a stable order (for metrics and
// documentation).
var Detectors = []string{
	DetectorBruteForce, DetectorUnusualAccess, DetectorDataExfiltration,
	DetectorPrivilegeEscalation, DetectorMassDeletion, DetectorUnauthorizedAccess,
}

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

// severityRank orders severities; unknown names rank below low.
func severityRank(s string) int {
	switch s {
	case SeverityLow:
		return 1
	case SeverityMedium:
		return 2
	case SeverityHigh:
		return 3
	case SeverityCritical:
		return 4
	}
	return 0
}

// Alert statuses. The engine only ever emits open alerts; the admin API
// moves them along with ValidTransition.
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

// The techniques the detectors use.
var (
	mitreBruteForce       = Mitre{"T1110", "Brute Force", "Credential Access"}
	mitrePasswordGuessing = Mitre{"T1110.001", "Brute Force: Password Guessing", "Credential Access"}
	mitreStuffing         = Mitre{"T1110.004", "Brute Force: Credential Stuffing", "Credential Access"}
	mitreValidAccounts    = Mitre{"T1078", "Valid Accounts", "Initial Access"}
	// Data leaves through the application's own HTTPS API, an existing
	// legitimate web service: T1567 fits; T1048 is about protocols other
	// than the main channel, which this sidecar never sees.
	mitreExfilWeb        = Mitre{"T1567", "Exfiltration Over Web Service", "Exfiltration"}
	mitreAccountManip    = Mitre{"T1098", "Account Manipulation", "Persistence"}
	mitreExploitPrivEsc  = Mitre{"T1068", "Exploitation for Privilege Escalation", "Privilege Escalation"}
	mitreDataDestruction = Mitre{"T1485", "Data Destruction", "Impact"}
	mitreWordlistScan    = Mitre{"T1595.003", "Active Scanning: Wordlist Scanning", "Reconnaissance"}
	mitreActiveScanning  = Mitre{"T1595", "Active Scanning", "Reconnaissance"}
	// A protected route answering 2xx to nobody is a broken access control
	// in the public-facing application being used: T1190.
	mitreExploitPublic = Mitre{"T1190", "Exploit Public-Facing Application", "Initial Access"}
)

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
}

// AlertUpdate is what the engine emits: a snapshot of an alert that was
// opened or changed. The snapshot is the caller's to keep; the engine does
// not touch it again.
type AlertUpdate struct {
	// Alert is the alert as it stands after the event.
	Alert Alert `json:"alert"`
	// New is true for the update that opened the alert.
	New bool `json:"new"`
	// Escalated is true when this update raised the severity.
	Escalated bool `json:"escalated,omitempty"`
}

// alertID hashes what identifies an alert across replays.
func alertID(detector, family string, subj Subject, firstEventID string) string {
	h := sha256.New()
	for _, s := range []string{detector, family, subj.Kind, subj.Value, firstEventID} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	sum := h.Sum(nil)
	return "alr_" + hex.EncodeToString(sum[:12])
}

// clone returns a deep copy, for handing out snapshots.
func (a *Alert) clone() Alert {
	c := *a
	c.Evidence.EventIDs = append([]string(nil), a.Evidence.EventIDs...)
	if a.Evidence.Figures != nil {
		c.Evidence.Figures = make(map[string]float64, len(a.Evidence.Figures))
		for k, v := range a.Evidence.Figures {
			c.Evidence.Figures[k] = v
		}
	}
	if a.Evidence.Observed != nil {
		c.Evidence.Observed = make(map[string]string, len(a.Evidence.Observed))
		for k, v := range a.Evidence.Observed {
			c.Evidence.Observed[k] = v
		}
	}
	c.RecommendedActions = append([]string(nil), a.RecommendedActions...)
	return c
}
