package detectors

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/detectors/scenario"
	"github.com/caddy-audit/caddy-audit/storage"
)

// A repeat within the suppression window updates the open alert; after it,
// a new alert opens with a new id.
func TestSuppression(t *testing.T) {
	attacker := ip("203.0.113.7")
	s := failures(&stream{}, 6, 100*time.Millisecond, t0, attacker)
	failures(s, 4, time.Minute, sec(60), attacker)                  // repeats: counted into the alert
	failures(s, 6, 100*time.Millisecond, sec(5*60+14*60), attacker) // 14 min after the last: still open
	failures(s, 6, 100*time.Millisecond, sec(3600), attacker)       // long after: a new alert
	alerts := only(feed(t, Config{}, s.evs), DetectorBruteForce)
	if len(alerts) != 2 {
		t.Fatalf("%d alerts, want 2: %s", len(alerts), dump(alerts))
	}
	if alerts[0].Count != 16 || alerts[1].Count != 6 || alerts[0].ID == alerts[1].ID {
		t.Errorf("counts %d, %d, ids %s %s", alerts[0].Count, alerts[1].Count, alerts[0].ID, alerts[1].ID)
	}
	if !alerts[0].LastSeen.Equal(sec(19*60 + 0.5)) {
		t.Errorf("last seen %v", alerts[0].LastSeen)
	}
}

// Repeats are throttled to one update per UpdateInterval; Flush emits the
// rest; a severity change is emitted at once.
func TestUpdates(t *testing.T) {
	attacker := ip("203.0.113.7")
	s := failures(&stream{}, 30, 100*time.Millisecond, t0, attacker)
	s.add(sec(5), "POST", "/login", 200, attacker, user("alice"))
	e := NewEngine(Config{})
	var ups []AlertUpdate
	for i := range s.evs {
		ups = append(ups, e.Process(&s.evs[i])...)
	}
	if len(ups) != 2 || !ups[0].New || ups[0].Alert.Count != 6 || !ups[1].Escalated || ups[1].Alert.Severity != storage.SeverityCritical {
		t.Fatalf("updates: %s", dump(ups))
	}
	if ups[1].Alert.Count != 31 || ups[0].Alert.ID != ups[1].Alert.ID {
		t.Errorf("escalation update count %d", ups[1].Alert.Count)
	}
	if f := e.Flush(); len(f) != 0 {
		t.Errorf("flush after an up-to-date update: %s", dump(f))
	}
	// The snapshot is the caller's: later changes do not show through.
	ups[0].Alert.Evidence.EventIDs[0] = "mutated"
	ups[0].Alert.Evidence.Figures["x"] = 1
	e.Process(&storage.Event{ID: "late", Time: sec(6), Method: "POST", Path: "/login", Status: 401, ClientIP: "203.0.113.7"})
	f := e.Flush()
	if len(f) != 1 || f[0].Alert.Count != 32 || f[0].Alert.Evidence.EventIDs[0] != "ev000001" || f[0].Alert.Evidence.Figures["x"] != 0 {
		t.Errorf("flush: %s", dump(f))
	}
}

func TestRelease(t *testing.T) {
	attacker := ip("203.0.113.7")
	s := failures(&stream{}, 6, 100*time.Millisecond, t0, attacker)
	e := NewEngine(Config{})
	var first AlertUpdate
	for i := range s.evs {
		if ups := e.Process(&s.evs[i]); len(ups) > 0 {
			first = ups[0]
		}
	}
	if !e.Release(first.Alert.ID) || e.Release(first.Alert.ID) || e.Release("nope") {
		t.Fatal("Release should succeed once for an open alert")
	}
	s2 := failures(&stream{}, 6, 100*time.Millisecond, sec(2), attacker)
	var next []AlertUpdate
	for i := range s2.evs {
		s2.evs[i].ID = fmt.Sprintf("ev2-%d", i)
		next = append(next, e.Process(&s2.evs[i])...)
	}
	if len(next) != 1 || !next[0].New || next[0].Alert.ID == first.Alert.ID {
		t.Errorf("after Release the next burst should open a new alert: %s", dump(next))
	}
}

// Ids depend on the detector, family, subject and first event, not on the
// engine instance or the wall clock.
func TestAlertIDsAreStable(t *testing.T) {
	a := alertID("acme", DetectorBruteForce, famGuessing, storage.Subject{Kind: storage.SubjectIP, Value: "203.0.113.7"}, "ev1")
	if a != alertID("acme", DetectorBruteForce, famGuessing, storage.Subject{Kind: storage.SubjectIP, Value: "203.0.113.7"}, "ev1") || !strings.HasPrefix(a, "alr_") || len(a) != 28 {
		t.Errorf("id %q", a)
	}
	for _, other := range []string{
		alertID("acme", DetectorBruteForce, famGuessing, storage.Subject{Kind: storage.SubjectIP, Value: "203.0.113.7"}, "ev2"),
		alertID("acme", DetectorBruteForce, famGuessing, storage.Subject{Kind: storage.SubjectUser, Value: "203.0.113.7"}, "ev1"),
		alertID("acme", DetectorBruteForce, ruleCredentialStuffing, storage.Subject{Kind: storage.SubjectIP, Value: "203.0.113.7"}, "ev1"),
		alertID("acme", DetectorUnauthorizedAccess, famGuessing, storage.Subject{Kind: storage.SubjectIP, Value: "203.0.113.7"}, "ev1"),
	} {
		if other == a {
			t.Errorf("id collision %s", a)
		}
	}
}

// Replaying a whole mixed run gives the same updates, byte for byte.
func TestReplayMixed(t *testing.T) {
	s := scenario.Mixed(scenario.Options{Seed: 7, UsersPerWorkspace: 8})
	checkReplay(t, scenarioConfig(s), s.Events)
}

// Only response_complete HTTP events are judged.
func TestIgnoredEvents(t *testing.T) {
	s := &stream{}
	for i := range 10 {
		s.add(sec(float64(i)/10), "POST", "/login", 401, ip("203.0.113.7"), stage(storage.StageRequestReceived))
		s.add(sec(float64(i)/10), "POST", "/login", 401, ip("203.0.113.8"), kind(storage.KindAdmin))
		s.add(sec(float64(i)/10), "POST", "/login", 401, ip("203.0.113.9"), kind(storage.KindLifecycle))
	}
	e := NewEngine(Config{})
	for i := range s.evs {
		if ups := e.Process(&s.evs[i]); ups != nil {
			t.Fatalf("ignored event raised %s", dump(ups))
		}
	}
	if e.Process(nil) != nil {
		t.Fatal("nil event")
	}
	if st := e.Stats(); st.Events != 0 || st.Ignored != 31 || st.Keys != 0 {
		t.Errorf("stats %+v", st)
	}
}

// Events slightly out of order still count, and per-key state does not go
// back in time.
func TestOutOfOrder(t *testing.T) {
	s := &stream{}
	for _, d := range []float64{0.5, 0.1, 0.3, 0.2, 0.6, 0.4} {
		s.add(sec(d), "POST", "/login", 401, ip("203.0.113.7"))
	}
	a := expectOne(t, feed(t, Config{}, s.evs), DetectorBruteForce, ruleLoginBurst, storage.SeverityHigh)
	if !a.FirstSeen.Equal(sec(0.1)) || !a.LastSeen.Equal(sec(0.6)) {
		t.Errorf("first %v last %v", a.FirstSeen, a.LastSeen)
	}
	// A wildly old event and events without a time do not panic or rewind.
	e := NewEngine(Config{})
	for i := range s.evs {
		e.Process(&s.evs[i])
	}
	e.Process(&storage.Event{ID: "old", Time: t0.Add(-48 * time.Hour), Method: "POST", Path: "/login", Status: 401, ClientIP: "203.0.113.7"})
	e.Process(&storage.Event{ID: "zero", Method: "POST", Path: "/login", Status: 401, ClientIP: "203.0.113.7"})
	e.Process(&storage.Event{ID: "ancient", Time: time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), Status: 401})
	if w := e.Stats().Watermark; !w.Equal(sec(0.6)) {
		t.Errorf("watermark %v", w)
	}
}

// Traffic a week late (a backfill behind live traffic) neither rewinds state
// nor inflates the current windows: it raises nothing.
func TestLateTrafficIsQuiet(t *testing.T) {
	s := scenario.Benign(scenario.Options{UsersPerWorkspace: 8})
	evs := s.Events
	half := len(evs) / 2
	for i := range half {
		evs[i].Time = evs[i].Time.Add(7 * 24 * time.Hour)
	}
	e := NewEngine(scenarioConfig(s))
	for _, part := range [][]storage.Event{evs[half:], evs[:half], evs[half:]} {
		for i := range part {
			if ups := e.Process(&part[i]); len(ups) > 0 {
				t.Fatalf("late traffic raised %s", dump(ups[0].Alert))
			}
		}
	}
}

// Memory stays bounded under a flood of distinct keys: tables drop the
// least recently used key at MaxKeys.
func TestMemoryBounded(t *testing.T) {
	cfg := Config{Limits: Limits{MaxKeys: 500, MaxProfiles: 300, MaxAlerts: 50}}
	e := NewEngine(cfg)
	for i := range 20000 {
		ev := storage.Event{
			ID: fmt.Sprintf("e%d", i), Time: sec(float64(i) / 1000), Method: "GET",
			Path: fmt.Sprintf("/.env%d", i%7), Status: 404, UserAgent: "zgrab",
			ClientIP: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), User: fmt.Sprintf("u%d", i),
		}
		e.Process(&ev)
		// Each key sees one failed login too.
		ev.ID, ev.Method, ev.Path, ev.Status = ev.ID+"l", "POST", "/login", 401
		e.Process(&ev)
	}
	st := e.Stats()
	// 8 short-window tables of at most 500 keys, 2 baseline tables of at
	// most 300, and the peer table.
	if max := 8*500 + 2*300 + maxPeerWorkspaces; st.Keys > max {
		t.Errorf("%d keys held, cap %d", st.Keys, max)
	}
	if st.Evictions == 0 || st.OpenAlerts > 50 {
		t.Errorf("stats %+v", st)
	}
}

// Keys idle for longer than their table's windows are dropped as event time
// advances.
func TestTTLEviction(t *testing.T) {
	e := NewEngine(Config{})
	for i := range 100 {
		ev := storage.Event{ID: fmt.Sprint(i), Time: sec(float64(i)), Method: "POST", Path: "/login", Status: 401, ClientIP: fmt.Sprintf("10.0.0.%d", i)}
		e.Process(&ev)
	}
	if n := e.bf.ip.len(); n != 100 {
		t.Fatalf("%d keys", n)
	}
	ev := storage.Event{ID: "later", Time: sec(3 * 3600), Method: "POST", Path: "/login", Status: 401, ClientIP: "10.9.9.9"}
	e.Process(&ev)
	if n := e.bf.ip.len(); n != 1 {
		t.Errorf("%d keys after 3h, want only the new one", n)
	}
}

func TestAlertJSON(t *testing.T) {
	s := failures(&stream{}, 6, 100*time.Millisecond, t0, ip("203.0.113.7"), user("alice"))
	a := expectOne(t, feed(t, Config{}, s.evs), DetectorBruteForce, ruleLoginBurst, storage.SeverityHigh)
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"id", "detector", "rule", "severity", "subject", "first_seen", "last_seen", "count", "evidence", "mitre", "recommended_actions", "status"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, b)
		}
	}
	if _, ok := m["status_at"]; ok {
		t.Errorf("zero status_at should be omitted: %s", b)
	}
	ev := m["evidence"].(map[string]any)
	for _, k := range []string{"event_ids", "figures", "summary"} {
		if _, ok := ev[k]; !ok {
			t.Errorf("no evidence.%s in %s", k, b)
		}
	}
	if sub := m["subject"].(map[string]any); sub["kind"] != "ip" || sub["value"] != "203.0.113.7" {
		t.Errorf("subject %v", sub)
	}
	if !strings.Contains(a.RecommendedActions[0], "Block client IP 203.0.113.7") {
		t.Errorf("actions %v", a.RecommendedActions)
	}
	var back storage.Alert
	if err := json.Unmarshal(b, &back); err != nil || back.ID != a.ID || !back.FirstSeen.Equal(a.FirstSeen) {
		t.Errorf("round trip: %v %+v", err, back)
	}
}

func TestValidTransition(t *testing.T) {
	ok := map[[2]string]bool{
		{storage.StatusOpen, storage.StatusAcknowledged}: true, {storage.StatusOpen, storage.StatusResolved}: true, {storage.StatusOpen, storage.StatusFalsePositive}: true,
		{storage.StatusAcknowledged, storage.StatusOpen}: true, {storage.StatusAcknowledged, storage.StatusResolved}: true, {storage.StatusAcknowledged, storage.StatusFalsePositive}: true,
		{storage.StatusResolved, storage.StatusOpen}: true, {storage.StatusFalsePositive, storage.StatusOpen}: true,
	}
	all := []string{storage.StatusOpen, storage.StatusAcknowledged, storage.StatusResolved, storage.StatusFalsePositive, "", "closed"}
	for _, from := range all {
		for _, to := range all {
			if got := storage.ValidTransition(from, to); got != ok[[2]string{from, to}] {
				t.Errorf("storage.ValidTransition(%q, %q) = %v", from, to, got)
			}
		}
	}
}

// Every detector can be turned off, globally or per workspace.
func TestDisabled(t *testing.T) {
	s := failures(&stream{}, 10, 100*time.Millisecond, t0, ip("203.0.113.7"))
	cfg := Config{}
	cfg.BruteForce.Enabled = new(bool)
	expectNone(t, feed(t, cfg, s.evs), DetectorBruteForce)
	yes := true
	cfg.Workspaces = map[string]Settings{"on": {BruteForce: BruteForceConfig{Enabled: &yes}}}
	for i := range s.evs {
		s.evs[i].Workspace = "on"
	}
	expectOne(t, feed(t, cfg, s.evs), DetectorBruteForce, ruleLoginBurst, storage.SeverityHigh)
}
