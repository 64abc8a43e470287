package detectors

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/detectors/scenario"
	"github.com/caddy-audit/caddy-audit/storage"
)

// FuzzEngineProcess feeds arbitrary field values (and arbitrary time steps,
// backwards included) to an engine that already knows an established user,
// and checks that nothing panics and every update is a well-formed alert.
func FuzzEngineProcess(f *testing.F) {
	f.Add("POST", "/login", "", 401, "alice", "", "203.0.113.7", "python-requests/2.31.0", int64(64), int64(100), uint8(10))
	f.Add("GET", "/.env", "a=1", 404, "", "", "192.0.2.66", "zgrab", int64(0), int64(50), uint8(20))
	f.Add("GET", "/api/items/1", "page=1", 200, "alice", "acme", "10.1.2.5", browser, int64(1<<20), int64(300), uint8(60))
	f.Add("DELETE", "/api/v1/items/9", "", 204, "alice", "globex", "::1", "", int64(0), int64(1000), uint8(30))
	f.Add("PUT", "/api/users/alice/roles", "", 200, "alice", "acme", "10.1.2.5", browser, int64(10), int64(-5000), uint8(3))
	f.Add("GET", "/admin//../%2e%2e/", "page=-1&page=99999999999999999999", 403, "\x00", "\xff", "not-an-ip", "\n", int64(-1), int64(-1<<40), uint8(255))
	f.Add("", "", "", 0, "", "", "", "", int64(0), int64(0), uint8(0))
	f.Fuzz(func(t *testing.T, method, path, query string, status int, usr, workspace, addr, ua string, bytes, stepMS int64, repeat uint8) {
		cfg := Config{Workspaces: map[string]Settings{"acme": {BusinessHours: BusinessHours{Timezone: "Europe/Berlin"}}}}
		cfg.AdminUsers = []string{"root"}
		e := NewEngine(cfg)
		prime(e)
		var ups []AlertUpdate
		tm := monday.AddDate(0, 0, 4)
		for i := range int(repeat)%64 + 1 {
			ev := storage.Event{
				ID: fmt.Sprintf("f%d", i), Time: tm, Kind: storage.KindHTTP, Method: method, Path: path, Query: query,
				Status: status, User: usr, Workspace: workspace, ClientIP: addr, UserAgent: ua, BytesOut: bytes,
			}
			Score(&ev)
			ups = append(ups, e.Process(&ev)...)
			tm = tm.Add(time.Duration(stepMS) * time.Millisecond)
			if i%2 == 1 {
				path += fmt.Sprint(i) // distinct paths and ids too
			}
		}
		ups = append(ups, e.Flush()...)
		for _, u := range ups {
			a := u.Alert
			if a.ID == "" || !slices.Contains(Detectors, a.Detector) || storage.SeverityRank(a.Severity) == 0 || a.Count < 1 ||
				len(a.Evidence.EventIDs) == 0 || len(a.Evidence.EventIDs) > storage.MaxFirstEvidence+storage.MaxLastEvidence ||
				a.LastSeen.Before(a.FirstSeen) || a.Status != storage.StatusOpen || len(a.RecommendedActions) == 0 {
				t.Fatalf("malformed alert: %s", dump(a))
			}
			if _, err := json.Marshal(u); err != nil {
				t.Fatalf("alert does not marshal: %v", err)
			}
		}
	})
}

// prime gives alice an established baseline, so the fuzzer reaches the
// stateful paths.
func prime(e *Engine) {
	s, _ := baseline(4, 15)
	for i := range s.evs {
		e.Process(&s.evs[i])
	}
}

// BenchmarkEngineProcess measures the engine on simulated traffic. The
// events are replayed in a loop, each lap a week later, so time never runs
// backwards.
func BenchmarkEngineProcess(b *testing.B) {
	for _, tc := range []struct {
		name string
		gen  func(scenario.Options) *scenario.Scenario
	}{
		{"benign", scenario.Benign},
		{"mixed", scenario.Mixed},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := tc.gen(scenario.Options{UsersPerWorkspace: 20})
			e := NewEngine(scenarioConfig(s))
			evs := s.Events
			times := make([]time.Time, len(evs))
			for i := range evs {
				times[i] = evs[i].Time
			}
			week := 7 * 24 * time.Hour
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				ev := &evs[i%len(evs)]
				ev.Time = times[i%len(evs)].Add(time.Duration(i/len(evs)) * week)
				e.Process(ev)
				i++
			}
		})
	}
}
