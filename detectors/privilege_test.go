package detectors

import (
	"testing"

	"github.com/caddy-audit/caddy-audit/storage"
)

func TestPrivilegeEscalation(t *testing.T) {
	admins := Config{}
	admins.AdminUsers = []string{"root"}
	bob, office := user("bob"), ip("198.18.1.10")
	runCases(t, DetectorPrivilegeEscalation, []detectorCase{
		{name: "403 then 200 on the same admin route", events: func() []storage.Event {
			s := &stream{}
			s.add(sec(0), "GET", "/admin/users/7", 403, bob, office)
			return s.add(sec(30), "GET", "/admin/users/8/", 200, bob, office).evs
		}, rule: ruleDeniedThenAllowed, severity: storage.SeverityHigh, check: func(t *testing.T, a storage.Alert) {
			if a.Subject != (storage.Subject{Kind: storage.SubjectUser, Value: "bob"}) || a.Count != 2 || a.Mitre.ID != "T1068" ||
				a.Evidence.Figures["seconds_between"] != 30 || !a.FirstSeen.Equal(t0) {
				t.Errorf("%s", dump(a))
			}
		}},
		{name: "anonymous 403, then 200 with a claimed identity from the same IP", events: func() []storage.Event {
			s := &stream{}
			s.add(sec(0), "GET", "/admin/settings", 403, office)
			return s.add(sec(20), "GET", "/admin/settings", 200, user("root"), office).evs
		}, cfg: admins, rule: ruleDeniedThenAllowed, severity: storage.SeverityHigh},
		{name: "near miss: colleagues behind one office IP", events: func() []storage.Event {
			s := &stream{}
			s.add(sec(0), "GET", "/admin/users", 403, bob, office)
			return s.add(sec(30), "GET", "/admin/users", 200, user("root"), office).evs
		}},
		{name: "near miss: allowed two hours later", events: func() []storage.Event {
			s := &stream{}
			s.add(sec(0), "GET", "/admin/users", 403, bob, office)
			return s.add(sec(7200), "GET", "/admin/users", 200, bob, office).evs
		}},
		{name: "near miss: denied on one route, allowed on another", events: func() []storage.Event {
			s := &stream{}
			s.add(sec(0), "GET", "/admin/users", 403, bob, office)
			return s.add(sec(30), "GET", "/admin/help", 200, bob, office).evs
		}},
		{name: "non-admin succeeds on an admin route", cfg: admins, events: func() []storage.Event {
			return (&stream{}).add(sec(0), "GET", "/admin/users", 200, bob).evs
		}, rule: ruleAdminRouteAccess, severity: storage.SeverityHigh},
		{name: "near miss: an admin on an admin route", cfg: admins, events: func() []storage.Event {
			return (&stream{}).add(sec(0), "GET", "/admin/users", 200, user("root")).evs
		}},
		{name: "near miss: no admin list, no denial", events: func() []storage.Event {
			return (&stream{}).add(sec(0), "GET", "/admin/users", 200, bob).evs
		}},
		{name: "a user changes their own roles", cfg: admins, events: func() []storage.Event {
			return (&stream{}).add(sec(0), "PUT", "/api/users/bob/roles", 200, bob).evs
		}, rule: ruleRoleChange, severity: storage.SeverityCritical, check: func(t *testing.T, a storage.Alert) {
			if a.Evidence.Figures["self_change"] != 1 || a.Mitre.ID != "T1098" {
				t.Errorf("figures %v mitre %v", a.Evidence.Figures, a.Mitre)
			}
		}},
		{name: "a non-admin changes someone's permissions", cfg: admins, events: func() []storage.Event {
			return (&stream{}).add(sec(0), "POST", "/api/workspaces/acme/permissions", 201, bob).evs
		}, rule: ruleRoleChange, severity: storage.SeverityHigh},
		{name: "role change without an admin list is for review", events: func() []storage.Event {
			return (&stream{}).add(sec(0), "PATCH", "/api/users/carol/roles", 200, user("root")).evs
		}, rule: ruleRoleChange, severity: storage.SeverityMedium},
		{name: "near miss: an admin changes someone else's roles", cfg: admins, events: func() []storage.Event {
			return (&stream{}).add(sec(0), "PUT", "/api/users/carol/roles", 200, user("root")).evs
		}},
		{name: "near miss: a failed role change", cfg: admins, events: func() []storage.Event {
			return (&stream{}).add(sec(0), "PUT", "/api/users/bob/roles", 403, bob).evs
		}},
		{name: "near miss: reading roles", cfg: admins, events: func() []storage.Event {
			return (&stream{}).add(sec(0), "GET", "/api/users/bob/roles", 200, bob).evs
		}},
	})
}

// The simulator's escalation: denied, spoofed in, self-granted role. The
// admin-route rules share one alert; the role change is another.
func TestPrivilegeEscalationStory(t *testing.T) {
	cfg := Config{}
	cfg.AdminUsers = []string{"root"}
	s := &stream{}
	m := user("mallory")
	s.add(sec(0), "GET", "/admin/users", 403, m)
	s.add(sec(40), "GET", "/admin/users", 200, m)
	s.add(sec(55), "GET", "/admin/settings", 200, m)
	s.add(sec(80), "PUT", "/api/users/mallory/roles", 200, m)
	alerts := only(feed(t, cfg, s.evs), DetectorPrivilegeEscalation)
	if len(alerts) != 2 {
		t.Fatalf("%d alerts: %s", len(alerts), dump(alerts))
	}
	if a := alerts[0]; a.Rule != ruleDeniedThenAllowed || a.Severity != storage.SeverityHigh || a.Count != 3 {
		t.Errorf("admin access alert %s/%s count %d", a.Rule, a.Severity, a.Count)
	}
	if a := alerts[1]; a.Rule != ruleRoleChange || a.Severity != storage.SeverityCritical {
		t.Errorf("role alert %s/%s", a.Rule, a.Severity)
	}
	checkReplay(t, cfg, s.evs)
}
