package detectors

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/caddy-audit/caddy-audit/storage"
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

// The techniques the detectors use.
var (
	mitreBruteForce       = storage.Mitre{ID: "T1110", Name: "Brute Force", Tactic: "Credential Access"}
	mitrePasswordGuessing = storage.Mitre{ID: "T1110.001", Name: "Brute Force: Password Guessing", Tactic: "Credential Access"}
	mitreStuffing         = storage.Mitre{ID: "T1110.004", Name: "Brute Force: Credential Stuffing", Tactic: "Credential Access"}
	mitreValidAccounts    = storage.Mitre{ID: "T1078", Name: "Valid Accounts", Tactic: "Initial Access"}
	// Data leaves through the application's own HTTPS API, an existing
	// legitimate web service: T1567 fits; T1048 is about protocols other
	// than the main channel, which this sidecar never sees.
	mitreExfilWeb        = storage.Mitre{ID: "T1567", Name: "Exfiltration Over Web Service", Tactic: "Exfiltration"}
	mitreAccountManip    = storage.Mitre{ID: "T1098", Name: "Account Manipulation", Tactic: "Persistence"}
	mitreExploitPrivEsc  = storage.Mitre{ID: "T1068", Name: "Exploitation for Privilege Escalation", Tactic: "Privilege Escalation"}
	mitreDataDestruction = storage.Mitre{ID: "T1485", Name: "Data Destruction", Tactic: "Impact"}
	mitreWordlistScan    = storage.Mitre{ID: "T1595.003", Name: "Active Scanning: Wordlist Scanning", Tactic: "Reconnaissance"}
	mitreActiveScanning  = storage.Mitre{ID: "T1595", Name: "Active Scanning", Tactic: "Reconnaissance"}
	// A protected route answering 2xx to nobody is a broken access control
	// in the public-facing application being used: T1190.
	mitreExploitPublic = storage.Mitre{ID: "T1190", Name: "Exploit Public-Facing Application", Tactic: "Initial Access"}
)

// AlertUpdate is what the engine emits: a snapshot of an alert that was
// opened or changed. The snapshot is the caller's to keep; the engine does
// not touch it again.
type AlertUpdate struct {
	// Alert is the alert as it stands after the event.
	Alert storage.Alert `json:"alert"`
	// New is true for the update that opened the alert.
	New bool `json:"new"`
	// Escalated is true when this update raised the severity.
	Escalated bool `json:"escalated,omitempty"`
}

// alertID hashes what identifies an alert across replays. The workspace is
// in it as it is in the suppression key: two tenants' alerts on one subject
// are two alerts, never one id.
func alertID(workspace, detector, family string, subj storage.Subject, firstEventID string) string {
	h := sha256.New()
	for _, s := range []string{workspace, detector, family, subj.Kind, subj.Value, firstEventID} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	sum := h.Sum(nil)
	return "alr_" + hex.EncodeToString(sum[:12])
}

// cloneAlert returns a deep copy, for handing out snapshots.
func cloneAlert(a *storage.Alert) storage.Alert {
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

// AlertID is the engine's alert id scheme for alerts raised outside it
// (the admin API's bad-key throttle), so their repeats update one alert
// the same way: workspace is the alert's, first names what starts an
// occurrence.
func AlertID(workspace, detector, family string, subj storage.Subject, first string) string {
	return alertID(workspace, detector, family, subj, first)
}
