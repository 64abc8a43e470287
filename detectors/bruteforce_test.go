package detectors

import (
	"fmt"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

func failures(s *stream, n int, every time.Duration, start time.Time, opts ...opt) *stream {
	for i := range n {
		s.add(start.Add(time.Duration(i)*every), "POST", "/login", 401, opts...)
	}
	return s
}

func TestBruteForce(t *testing.T) {
	attacker := ip("203.0.113.7")
	runCases(t, DetectorBruteForce, []detectorCase{
		{
			name: "burst of 6 failures from one IP",
			events: func() []storage.Event {
				return failures(&stream{}, 6, 200*time.Millisecond, t0, attacker, user("alice")).evs
			},
			rule: ruleLoginBurst, severity: storage.SeverityHigh,
			check: func(t *testing.T, a storage.Alert) {
				if a.Subject != (storage.Subject{Kind: storage.SubjectIP, Value: "203.0.113.7"}) || a.Count != 6 || len(a.Evidence.EventIDs) != 6 {
					t.Errorf("subject %v count %d ids %d", a.Subject, a.Count, len(a.Evidence.EventIDs))
				}
				f := a.Evidence.Figures
				if f["failures"] != 6 || f["capacity"] != 5 || f["leak_s"] != 10 {
					t.Errorf("figures %v", f)
				}
				if a.Mitre.ID != "T1110" || a.Evidence.Observed["target_user"] != "alice" {
					t.Errorf("mitre %v observed %v", a.Mitre, a.Evidence.Observed)
				}
			},
		},
		{
			name: "near miss: 5 failures in a burst",
			events: func() []storage.Event {
				return failures(&stream{}, 5, 200*time.Millisecond, t0, attacker, user("alice")).evs
			},
		},
		{
			name: "near miss: 12 failures paced at the leak speed",
			events: func() []storage.Event {
				return failures(&stream{}, 12, 10*time.Second, t0, attacker, user("alice")).evs
			},
		},
		{
			name: "near miss: 404 on the login route is not a failed login",
			events: func() []storage.Event {
				s := &stream{}
				for i := range 8 {
					s.add(sec(float64(i)/10), "POST", "/login", 404, attacker)
				}
				return s.evs
			},
		},
		{
			name: "403 and 400 on a login route count, a 401 elsewhere too",
			events: func() []storage.Event {
				s := &stream{}
				for i, st := range []int{403, 400, 429, 401, 403, 400} {
					path := "/api/login"
					if st == 401 {
						path = "/api/items"
					}
					s.add(sec(float64(i)/10), "POST", path, st, attacker)
				}
				return s.evs
			},
			rule: ruleLoginBurst, severity: storage.SeverityHigh,
		},
		{
			name: "success after the failures is critical",
			events: func() []storage.Event {
				s := failures(&stream{}, 8, 500*time.Millisecond, t0, attacker, user("alice"))
				return s.add(sec(10), "POST", "/login", 200, attacker, user("alice")).evs
			},
			rule: ruleLoginBurst, severity: storage.SeverityCritical,
			check: func(t *testing.T, a storage.Alert) {
				if a.Count != 9 || a.Evidence.Figures["successful_logins"] != 1 || a.Evidence.Observed["logged_in_user"] != "alice" {
					t.Errorf("count %d figures %v observed %v", a.Count, a.Evidence.Figures, a.Evidence.Observed)
				}
			},
		},
		{
			name: "near miss: success long after the failures stays high",
			events: func() []storage.Event {
				s := failures(&stream{}, 8, 500*time.Millisecond, t0, attacker, user("alice"))
				return s.add(sec(14*60), "POST", "/login", 200, attacker, user("alice")).evs
			},
			rule: ruleLoginBurst, severity: storage.SeverityHigh,
		},
		{
			name: "slow brute force: 30 failures in an hour",
			events: func() []storage.Event {
				return failures(&stream{}, 30, 100*time.Second, t0, attacker, user("alice")).evs
			},
			rule: ruleSlowBruteForce, severity: storage.SeverityMedium,
			check: func(t *testing.T, a storage.Alert) {
				if a.Count != 30 || a.Evidence.Figures["threshold"] != 30 || a.Evidence.Figures["window_s"] != 3600 {
					t.Errorf("count %d figures %v", a.Count, a.Evidence.Figures)
				}
			},
		},
		{
			name: "near miss: 29 failures in an hour",
			events: func() []storage.Event {
				return failures(&stream{}, 29, 120*time.Second, t0, attacker, user("alice")).evs
			},
		},
		{
			name: "credential stuffing: 10 users from one IP",
			events: func() []storage.Event {
				s := &stream{}
				for i := range 10 {
					s.add(sec(float64(i*30)), "POST", "/login", 401, attacker, user(fmt.Sprintf("user%d", i)))
				}
				return s.evs
			},
			rule: ruleCredentialStuffing, severity: storage.SeverityHigh,
			check: func(t *testing.T, a storage.Alert) {
				if a.Mitre.ID != "T1110.004" || a.Evidence.Figures["distinct_users"] != 10 || a.Count != 10 {
					t.Errorf("mitre %v figures %v count %d", a.Mitre, a.Evidence.Figures, a.Count)
				}
			},
		},
		{
			name: "near miss: 9 users from one IP",
			events: func() []storage.Event {
				s := &stream{}
				for i := range 9 {
					s.add(sec(float64(i*30)), "POST", "/login", 401, attacker, user(fmt.Sprintf("user%d", i)))
				}
				return s.evs
			},
		},
		{
			name: "distributed: one user from 10 IPs",
			events: func() []storage.Event {
				s := &stream{}
				for i := range 10 {
					s.add(sec(float64(i*30)), "POST", "/login", 401, ip(fmt.Sprintf("198.51.100.%d", i+1)), user("bob"))
				}
				return s.evs
			},
			rule: ruleDistributedBruteForce, severity: storage.SeverityHigh,
			check: func(t *testing.T, a storage.Alert) {
				if a.Subject != (storage.Subject{Kind: storage.SubjectUser, Value: "bob"}) || a.Evidence.Figures["distinct_ips"] != 10 {
					t.Errorf("subject %v figures %v", a.Subject, a.Evidence.Figures)
				}
			},
		},
		{
			name: "per-user burst from rotating IPs",
			events: func() []storage.Event {
				s := &stream{}
				for i := range 6 {
					s.add(sec(float64(i)/2), "POST", "/login", 401, ip(fmt.Sprintf("198.51.100.%d", i%3+1)), user("bob"))
				}
				return s.evs
			},
			rule: ruleLoginBurst, severity: storage.SeverityHigh,
			check: func(t *testing.T, a storage.Alert) {
				if a.Subject != (storage.Subject{Kind: storage.SubjectUser, Value: "bob"}) {
					t.Errorf("subject %v", a.Subject)
				}
			},
		},
	})
}

// A single source guessing one user's password is one alert, not one per
// IP and one per user.
func TestBruteForceOneAlertPerAttack(t *testing.T) {
	s := failures(&stream{}, 40, 500*time.Millisecond, t0, ip("203.0.113.7"), user("alice"))
	alerts := feed(t, Config{}, s.evs)
	a := expectOne(t, alerts, DetectorBruteForce, ruleLoginBurst, storage.SeverityHigh)
	if a.Count != 40 || len(a.Evidence.EventIDs) != storage.MaxFirstEvidence+storage.MaxLastEvidence {
		t.Errorf("count %d, %d event ids", a.Count, len(a.Evidence.EventIDs))
	}
	if a.Evidence.EventIDs[0] != "ev000001" || a.Evidence.EventIDs[24] != "ev000040" || a.Evidence.EventIDs[20] != "ev000036" {
		t.Errorf("evidence is not the first 20 and the last 5: %v", a.Evidence.EventIDs)
	}
	if !a.FirstSeen.Equal(t0) || !a.LastSeen.Equal(sec(19.5)) {
		t.Errorf("first %v last %v", a.FirstSeen, a.LastSeen)
	}
}
