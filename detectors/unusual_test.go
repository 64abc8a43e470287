package detectors

import (
	"fmt"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

var monday = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)

// baseline gives alice `days` working days of 20 requests between 09:00 and
// 16:36 UTC, from one address and browser in workspace acme; friday is the
// day after.
func baseline(days, perDay int) (*stream, time.Time) {
	s := &stream{}
	for d := range days {
		for i := range perDay {
			t := monday.AddDate(0, 0, d).Add(9*time.Hour + time.Duration(i)*23*time.Minute)
			s.add(t, "GET", fmt.Sprintf("/api/items/%d", i+1), 200, user("alice"), ip("10.1.2.5"), ws("acme"))
		}
	}
	return s, monday.AddDate(0, 0, days)
}

func TestUnusualAccess(t *testing.T) {
	newIP, tool := ip("203.0.113.9"), agent("python-requests/2.31.0")
	after := func(days int, at time.Duration, opts ...opt) func() []storage.Event {
		return func() []storage.Event {
			s, next := baseline(days, 20)
			opts = append([]opt{user("alice"), ip("10.1.2.5"), ws("acme")}, opts...)
			return s.add(next.Add(at), "GET", "/api/items/7", 200, opts...).evs
		}
	}
	runCases(t, DetectorUnusualAccess, []detectorCase{
		{name: "new IP", events: after(4, 11*time.Hour, newIP), rule: NoveltyNewIP, severity: storage.SeverityLow,
			check: func(t *testing.T, a storage.Alert) {
				if a.Subject != (storage.Subject{Kind: storage.SubjectUser, Value: "alice"}) || a.Evidence.Observed["client_ip"] != "203.0.113.9" || a.Mitre.ID != "T1078" {
					t.Errorf("%+v", a)
				}
				if a.Evidence.Figures["history_events"] != 80 || a.Evidence.Figures["min_events"] != 50 {
					t.Errorf("figures %v", a.Evidence.Figures)
				}
			}},
		{name: "new user agent", events: after(4, 11*time.Hour, tool), rule: NoveltyNewUserAgent, severity: storage.SeverityLow},
		{name: "new IP and agent", events: after(4, 11*time.Hour, newIP, tool), rule: NoveltyNewIP, severity: storage.SeverityMedium},
		{name: "off hours", events: after(4, 3*time.Hour), rule: NoveltyOffHours, severity: storage.SeverityLow,
			check: func(t *testing.T, a storage.Alert) {
				if a.Evidence.Figures["hour_share"] != 0 || a.Evidence.Observed["local_time"] == "" {
					t.Errorf("figures %v observed %v", a.Evidence.Figures, a.Evidence.Observed)
				}
			}},
		{name: "new workspace", events: after(4, 11*time.Hour, ws("globex")), rule: NoveltyNewWorkspace, severity: storage.SeverityMedium},
		{name: "everything new at night", events: after(4, 3*time.Hour, newIP, tool, ws("globex")), rule: NoveltyNewWorkspace, severity: storage.SeverityHigh},
		{name: "near miss: not enough history (49 events)", events: func() []storage.Event {
			s, next := baseline(4, 20)
			s.evs = s.evs[len(s.evs)-49:]
			return s.add(next.Add(3*time.Hour), "GET", "/", 200, user("alice"), newIP, tool, ws("globex")).evs
		}},
		{name: "near miss: history over only 2 days", events: after(2, 3*time.Hour+24*time.Hour, newIP), rule: ""},
		{name: "near miss: same /24", events: after(4, 11*time.Hour, ip("10.1.2.77"))},
		{name: "near miss: browser update", events: after(4, 11*time.Hour,
			agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36"))},
		{name: "near miss: failed request from a new IP", events: func() []storage.Event {
			s, next := baseline(4, 20)
			return s.add(next.Add(11*time.Hour), "GET", "/api/items/1", 403, user("alice"), newIP, ws("acme")).evs
		}},
		{name: "near miss: a user who always works late", events: func() []storage.Event {
			s, next := baseline(4, 20)
			for d := range 4 {
				for i := range 5 {
					s.add(monday.AddDate(0, 0, d).Add(19*time.Hour+time.Duration(i)*5*time.Minute), "GET", "/api/items/1", 200, user("alice"), ip("10.1.2.5"), ws("acme"))
				}
			}
			return s.add(next.Add(19*time.Hour+30*time.Minute), "GET", "/api/items/7", 200, user("alice"), ip("10.1.2.5"), ws("acme")).sorted()
		}},
		{name: "near miss: the office network three colleagues use", events: func() []storage.Event {
			s, next := baseline(4, 20)
			for _, u := range []string{"bob", "carol", "dave"} {
				s.add(next.Add(9*time.Hour), "GET", "/api/items/1", 200, user(u), ip("198.18.1.10"), ws("acme"))
			}
			return s.add(next.Add(11*time.Hour), "GET", "/api/items/7", 200, user("alice"), ip("198.18.1.11"), ws("acme")).evs
		}},
	})
}

// One alert per user and suppression window, however many novel requests.
func TestUnusualAccessOneAlertPerSession(t *testing.T) {
	s, next := baseline(4, 20)
	for i := range 30 {
		s.add(next.Add(3*time.Hour+time.Duration(i)*time.Minute), "GET", "/api/items/7", 200,
			user("alice"), ip("203.0.113.9"), agent("curl/8.5.0"), ws("acme"))
	}
	a := expectOne(t, feed(t, Config{}, s.evs), DetectorUnusualAccess, NoveltyNewIP, storage.SeverityHigh)
	// The first request is new IP, new agent and off hours; the other 29
	// are off hours only (the address and agent are learnt).
	if a.Count != 30 || a.Evidence.Figures[NoveltyOffHours] != 1 || a.Evidence.Figures[NoveltyNewUserAgent] != 1 {
		t.Errorf("count %d figures %v", a.Count, a.Evidence.Figures)
	}
}

// Business hours are the event's workspace's: 03:00 UTC is 12:00 in Tokyo.
func TestUnusualAccessWorkspaceBusinessHours(t *testing.T) {
	cfg := Config{Workspaces: map[string]Settings{
		"tokyo": {BusinessHours: BusinessHours{Timezone: "Asia/Tokyo"}},
	}}
	s := &stream{}
	for d := range 4 {
		for i := range 20 {
			// 09:00-15:20 in Tokyo is 00:00-06:20 UTC.
			s.add(monday.AddDate(0, 0, d).Add(time.Duration(i)*20*time.Minute), "GET", "/api/items/1", 200, user("kenji"), ip("10.9.9.9"), ws("tokyo"))
		}
	}
	s.add(monday.AddDate(0, 0, 4).Add(3*time.Hour), "GET", "/api/items/1", 200, user("kenji"), ip("10.9.9.9"), ws("tokyo"))
	expectNone(t, feed(t, cfg, s.evs), DetectorUnusualAccess)
	// The same requests judged in UTC would be off hours, but they are the
	// user's habit, so still no alert.
	expectNone(t, feed(t, Config{}, s.evs), DetectorUnusualAccess)
	// Saturday at the same hour is a day off at home: unusual.
	s.add(monday.AddDate(0, 0, 5).Add(3*time.Hour), "GET", "/api/items/1", 200, user("kenji"), ip("10.9.9.9"), ws("tokyo"))
	expectOne(t, feed(t, cfg, s.evs), DetectorUnusualAccess, NoveltyOffHours, storage.SeverityLow)
}
