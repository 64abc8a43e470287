package detectors

import (
	"fmt"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

func deletes(n int, every time.Duration, kinds []string, status int, opts ...opt) func() []storage.Event {
	return func() []storage.Event {
		s := &stream{}
		for i := range n {
			s.add(t0.Add(time.Duration(i)*every), "DELETE", fmt.Sprintf("/api/%s/%d", kinds[i%len(kinds)], 100+i), status, opts...)
		}
		return s.evs
	}
}

func TestMassDeletion(t *testing.T) {
	dave, items := user("dave"), []string{"items"}
	runCases(t, DetectorMassDeletion, []detectorCase{
		{name: "20 deletes in 4 minutes", events: deletes(20, 12*time.Second, items, 204, dave),
			rule: ruleBulkDelete, severity: storage.SeverityHigh, check: func(t *testing.T, a storage.Alert) {
				f := a.Evidence.Figures
				if a.Count != 20 || f["deletes"] != 20 || f["threshold"] != 20 || f["window_s"] != 300 || a.Mitre.ID != "T1485" {
					t.Errorf("count %d figures %v", a.Count, f)
				}
				if a.Evidence.Observed["resource_types"] != "items" || a.Subject != (storage.Subject{Kind: storage.SubjectUser, Value: "dave"}) {
					t.Errorf("observed %v subject %v", a.Evidence.Observed, a.Subject)
				}
			}},
		{name: "near miss: 19 deletes", events: deletes(19, 12*time.Second, items, 204, dave)},
		{name: "near miss: 30 deletes over 10 minutes", events: deletes(30, 20*time.Second, items, 204, dave)},
		{name: "near miss: 40 failed deletes", events: deletes(40, time.Second, items, 404, dave)},
		{name: "100 deletes is 5 times the threshold", events: deletes(100, 2*time.Second, items, 200, dave),
			rule: ruleBulkDelete, severity: storage.SeverityCritical, check: func(t *testing.T, a storage.Alert) {
				if a.Count != 100 || a.Evidence.Figures["deletes"] != 100 {
					t.Errorf("count %d figures %v", a.Count, a.Evidence.Figures)
				}
			}},
		{name: "20 deletes across 3 resource types", events: deletes(20, 5*time.Second, []string{"items", "v2/projects", "documents"}, 204, dave),
			rule: ruleBulkDelete, severity: storage.SeverityCritical, check: func(t *testing.T, a storage.Alert) {
				if a.Evidence.Observed["resource_types"] != "documents, items, projects" {
					t.Errorf("observed %v", a.Evidence.Observed)
				}
			}},
		{name: "by client IP when there is no user", events: deletes(25, time.Second, items, 204, ip("203.0.113.8")),
			rule: ruleBulkDelete, severity: storage.SeverityHigh},
	})
}

func TestMassDeletionWorkspaceOverride(t *testing.T) {
	cfg := Config{Workspaces: map[string]Settings{
		"cleanup": {MassDeletion: MassDeletionConfig{Deletes: Window{Threshold: 200}}},
		"quiet":   {MassDeletion: MassDeletionConfig{Enabled: new(bool)}},
	}}
	for _, tc := range []struct {
		workspace string
		fires     bool
	}{{"acme", true}, {"cleanup", false}, {"quiet", false}} {
		evs := deletes(30, time.Second, []string{"items"}, 204, user("dave"), ws(tc.workspace))()
		got := only(feed(t, cfg, evs), DetectorMassDeletion)
		if (len(got) > 0) != tc.fires {
			t.Errorf("workspace %s: %d alerts, want fired=%v", tc.workspace, len(got), tc.fires)
		}
	}
}
