package detectors

import (
	"fmt"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// checkTenancy fails unless every alert only holds events of its own
// workspace: evidence ids, count and first/last seen.
func checkTenancy(t *testing.T, evs []storage.Event, alerts []storage.Alert) {
	t.Helper()
	wsOf := map[string]storage.Event{}
	perWS := map[string]int{}
	for _, ev := range evs {
		wsOf[ev.ID] = ev
		perWS[ev.Workspace]++
	}
	for _, a := range alerts {
		for _, id := range a.Evidence.EventIDs {
			if ev := wsOf[id]; ev.Workspace != a.Workspace {
				t.Errorf("%s alert %s in %q holds event %s of %q", a.Rule, a.ID, a.Workspace, id, ev.Workspace)
			} else if ev.Time.Before(a.FirstSeen) || ev.Time.After(a.LastSeen) {
				t.Errorf("%s alert %s: event %s at %v outside %v..%v", a.Rule, a.ID, id, ev.Time, a.FirstSeen, a.LastSeen)
			}
		}
		if a.Count > perWS[a.Workspace] {
			t.Errorf("%s alert %s in %q counts %d events, the workspace has %d", a.Rule, a.ID, a.Workspace, a.Count, perWS[a.Workspace])
		}
	}
}

// failedLogins adds n failed logins from one address, one user each.
func failedLogins(s *stream, from time.Time, workspace string, n int) {
	for i := range n {
		s.add(from.Add(time.Duration(i)*time.Second), "POST", "/login", 401,
			ip("203.0.113.9"), ws(workspace), user(fmt.Sprintf("%s-user%d", workspace, i)))
	}
}

// The review's scenario: 9 failed logins from one address in globex, then
// 3 in acme. acme saw 3 failures, too few for any rule, so it gets no
// alert; globex's alerts hold globex's events only.
func TestAlertsStayInTheirWorkspace(t *testing.T) {
	s := &stream{}
	failedLogins(s, t0, "globex", 9)
	failedLogins(s, t0.Add(9*time.Second), "acme", 3)
	alerts := feed(t, Config{}, s.evs)
	checkTenancy(t, s.evs, alerts)
	for _, a := range alerts {
		if a.Workspace == "acme" {
			t.Errorf("acme got an alert from 3 failures: %s", dump(a))
		}
	}
	expectOne(t, alerts, DetectorBruteForce, ruleLoginBurst, storage.SeverityHigh)
}

// Both workspaces cross the credential stuffing threshold from the same
// address: two alerts with distinct ids, each with its own figures.
func TestCredentialStuffingPerWorkspace(t *testing.T) {
	s := &stream{}
	failedLogins(s, t0, "globex", 12)
	failedLogins(s, t0.Add(12*time.Second), "acme", 10)
	alerts := feed(t, Config{}, s.evs)
	checkTenancy(t, s.evs, alerts)
	stuffing := map[string]storage.Alert{}
	for _, a := range only(alerts, DetectorBruteForce) {
		if a.Rule == ruleCredentialStuffing {
			if _, dup := stuffing[a.Workspace]; dup {
				t.Errorf("two stuffing alerts in %q", a.Workspace)
			}
			stuffing[a.Workspace] = a
		}
	}
	for wsName, want := range map[string]struct {
		count int
		first time.Time
	}{"globex": {12, t0}, "acme": {10, t0.Add(12 * time.Second)}} {
		a, ok := stuffing[wsName]
		if !ok {
			t.Fatalf("no credential stuffing alert in %q: %s", wsName, dump(alerts))
		}
		// The alert opens at the 10th distinct user with the 10 events that
		// made it fire; globex's next two failures are counted into it.
		if a.Evidence.Figures["distinct_users"] != 10 || a.Count != want.count || !a.FirstSeen.Equal(want.first) {
			t.Errorf("%s: count %d figures %v first %v", wsName, a.Count, a.Evidence.Figures, a.FirstSeen)
		}
	}
	if stuffing["globex"].ID == stuffing["acme"].ID {
		t.Errorf("both workspaces share alert id %s", stuffing["acme"].ID)
	}
}

// Ids differ by workspace, and stay the same across replays.
func TestAlertIDIncludesWorkspace(t *testing.T) {
	subj := storage.Subject{Kind: storage.SubjectIP, Value: "203.0.113.9"}
	if AlertID("acme", DetectorBruteForce, famGuessing, subj, "ev1") == AlertID("globex", DetectorBruteForce, famGuessing, subj, "ev1") {
		t.Error("two workspaces' alerts share an id")
	}
}
