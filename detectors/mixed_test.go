package detectors

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/detectors/scenario"
	"github.com/caddy-audit/caddy-audit/storage"
)

// scenarioConfig is the configuration a team would write for the simulated
// application: its administrators and each workspace's business hours.
func scenarioConfig(s *scenario.Scenario) Config {
	cfg := Config{}
	cfg.AdminUsers = s.Admins()
	cfg.Workspaces = map[string]Settings{}
	for _, w := range s.Workspaces {
		cfg.Workspaces[w.Name] = Settings{BusinessHours: BusinessHours{Timezone: w.Timezone, Days: w.Days, Start: w.Start, End: w.End}}
	}
	return cfg
}

// run feeds events to a fresh engine and returns every update and the final
// state of every alert, in the order the alerts opened.
func run(cfg Config, events []storage.Event) ([]AlertUpdate, []storage.Alert) {
	e := NewEngine(cfg)
	var ups []AlertUpdate
	for i := range events {
		ups = append(ups, e.Process(&events[i])...)
	}
	ups = append(ups, e.Flush()...)
	return ups, finalAlerts(ups)
}

func finalAlerts(ups []AlertUpdate) []storage.Alert {
	var order []string
	last := map[string]storage.Alert{}
	for _, u := range ups {
		if _, ok := last[u.Alert.ID]; !ok {
			order = append(order, u.Alert.ID)
		}
		last[u.Alert.ID] = u.Alert
	}
	out := make([]storage.Alert, 0, len(order))
	for _, id := range order {
		out = append(out, last[id])
	}
	return out
}

// attribute returns the index of the attack an alert is about (its subject
// is one of the attack's addresses or users, and its events overlap the
// attack's; an alert's evidence may start with the subject's own events
// just before the attack, such as a benign delete in the same window), or
// -1.
func attribute(a storage.Alert, attacks []scenario.Attack) int {
	for i, at := range attacks {
		if !slices.Contains(at.IPs, a.Subject.Value) && !slices.Contains(at.Users, a.Subject.Value) {
			continue
		}
		if a.LastSeen.Before(at.Start) || a.FirstSeen.After(at.End.Add(time.Minute)) {
			continue
		}
		return i
	}
	return -1
}

func TestMixedRun(t *testing.T) {
	// The full run takes about 2s (12s with -race), so -short does not
	// shrink it: a smaller population would also weaken the peer baselines
	// it is meant to exercise.
	start := time.Now()
	s := scenario.Mixed(scenario.Options{Seed: 42})
	gen := time.Since(start)
	if s.Benign < 100000 {
		t.Fatalf("only %d benign events; the mixed run needs at least 100k", s.Benign)
	}
	start = time.Now()
	_, alerts := run(scenarioConfig(s), s.Events)
	took := time.Since(start)

	type row struct {
		found     int
		severity  string
		rules     []string
		alsoFired []string
	}
	rows := make([]row, len(s.Attacks))
	var fps []storage.Alert
	for _, a := range alerts {
		i := attribute(a, s.Attacks)
		if i < 0 {
			fps = append(fps, a)
			continue
		}
		at := s.Attacks[i]
		r := &rows[i]
		if a.Detector != at.Detector {
			r.alsoFired = append(r.alsoFired, fmt.Sprintf("%s/%s(%s)", a.Detector, a.Rule, a.Severity))
			continue
		}
		r.found++
		r.rules = append(r.rules, a.Rule)
		if storage.SeverityRank(a.Severity) > storage.SeverityRank(r.severity) {
			r.severity = a.Severity
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\nmixed run: %d benign + %d attack events, %d users in %d workspaces; generated in %v, detected in %v (%.0f ns/event)\n",
		s.Benign, len(s.Events)-s.Benign, len(s.Users), len(s.Workspaces), gen.Round(time.Millisecond), took.Round(time.Millisecond),
		float64(took.Nanoseconds())/float64(len(s.Events)))
	fmt.Fprintf(&b, "%-22s %-21s %-9s %-6s %-9s %-36s %s\n", "attack", "detector", "expected", "found", "severity", "rules", "also fired")
	for i, at := range s.Attacks {
		r := rows[i]
		fmt.Fprintf(&b, "%-22s %-21s %-9s %-6d %-9s %-36s %s\n", at.Name, at.Detector, at.Severity, r.found, r.severity,
			strings.Join(r.rules, ","), strings.Join(r.alsoFired, " "))
	}
	per100k := float64(len(fps)) * 100000 / float64(s.Benign)
	fmt.Fprintf(&b, "\n%-21s %-8s %-6s %s\n", "detector", "expected", "found", "false positives")
	for _, d := range Detectors {
		expected, found, fp := 0, 0, 0
		for i, at := range s.Attacks {
			if at.Detector == d {
				expected++
				if rows[i].found > 0 && rows[i].severity == at.Severity {
					found++
				}
			}
		}
		for _, a := range fps {
			if a.Detector == d {
				fp++
			}
		}
		fmt.Fprintf(&b, "%-21s %-8d %-6d %d\n", d, expected, found, fp)
	}
	fmt.Fprintf(&b, "false positives: %d (%.2f per 100k benign events)\n", len(fps), per100k)
	for _, a := range fps {
		fmt.Fprintf(&b, "  FP %s/%s %s %s %s: %s\n", a.Detector, a.Rule, a.Severity, a.Subject.Kind, a.Subject.Value, a.Evidence.Summary)
	}
	t.Log(b.String())

	for i, at := range s.Attacks {
		r := rows[i]
		if r.found == 0 {
			t.Errorf("%s: not detected by %s", at.Name, at.Detector)
		} else if r.severity != at.Severity {
			t.Errorf("%s: severity %s, want %s", at.Name, r.severity, at.Severity)
		}
	}
	if per100k > 1 {
		t.Errorf("%d false positives in %d benign events: more than 1 per 100k", len(fps), s.Benign)
	}
}
