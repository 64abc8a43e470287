package detectors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// t0 is a Thursday, 14:00 UTC: inside the default business hours.
var t0 = time.Date(2025, 3, 6, 14, 0, 0, 0, time.UTC)

// stream builds events with sequential ids.
type stream struct {
	evs []storage.Event
}

type opt func(*storage.Event)

func user(u string) opt       { return func(e *storage.Event) { e.User = u } }
func ip(a string) opt         { return func(e *storage.Event) { e.ClientIP = a } }
func ws(w string) opt         { return func(e *storage.Event) { e.Workspace = w } }
func agent(a string) opt      { return func(e *storage.Event) { e.UserAgent = a } }
func bytesOut(n int64) opt    { return func(e *storage.Event) { e.BytesOut = n } }
func query(q string) opt      { return func(e *storage.Event) { e.Query = q } }
func stage(s string) opt      { return func(e *storage.Event) { e.Stage = s } }
func kind(k string) opt       { return func(e *storage.Event) { e.Kind = k } }
func sec(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

const browser = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36"

func (s *stream) add(t time.Time, method, path string, status int, opts ...opt) *stream {
	ev := storage.Event{
		ID: fmt.Sprintf("ev%06d", len(s.evs)+1), Time: t, Kind: storage.KindHTTP, Stage: storage.StageResponseComplete,
		Method: method, Path: path, Status: status, ClientIP: "192.0.2.1", UserAgent: browser, BytesOut: 1024,
	}
	for _, o := range opts {
		o(&ev)
	}
	s.evs = append(s.evs, ev)
	return s
}

// sorted orders the events by time (stable), for streams built out of
// order.
func (s *stream) sorted() []storage.Event {
	slices.SortStableFunc(s.evs, func(a, b storage.Event) int { return a.Time.Compare(b.Time) })
	return s.evs
}

// feed runs the events through a fresh engine and returns the final state
// of every alert.
func feed(t *testing.T, cfg Config, evs []storage.Event) []storage.Alert {
	t.Helper()
	_, alerts := run(cfg, evs)
	return alerts
}

// only returns the alerts of one detector.
func only(alerts []storage.Alert, detector string) []storage.Alert {
	var out []storage.Alert
	for _, a := range alerts {
		if a.Detector == detector {
			out = append(out, a)
		}
	}
	return out
}

// expectOne checks there is exactly one alert of the detector, with the rule
// and severity given, and returns it.
func expectOne(t *testing.T, alerts []storage.Alert, detector, rule, severity string) storage.Alert {
	t.Helper()
	got := only(alerts, detector)
	if len(got) != 1 {
		t.Fatalf("%d %s alerts, want 1: %s", len(got), detector, dump(alerts))
	}
	a := got[0]
	if a.Rule != rule || a.Severity != severity {
		t.Fatalf("alert %s/%s, want %s/%s: %s", a.Rule, a.Severity, rule, severity, dump(alerts))
	}
	checkAlert(t, a)
	return a
}

func expectNone(t *testing.T, alerts []storage.Alert, detector string) {
	t.Helper()
	if got := only(alerts, detector); len(got) != 0 {
		t.Fatalf("%d %s alerts, want none: %s", len(got), detector, dump(got))
	}
}

// checkAlert checks what every alert must have.
func checkAlert(t *testing.T, a storage.Alert) {
	t.Helper()
	switch {
	case a.ID == "" || a.Detector == "" || a.Rule == "":
		t.Errorf("alert without id, detector or rule: %+v", a)
	case storage.SeverityRank(a.Severity) == 0:
		t.Errorf("alert severity %q", a.Severity)
	case a.Subject.Kind == "":
		t.Errorf("alert without subject: %+v", a)
	case a.Count < 1 || len(a.Evidence.EventIDs) == 0 || len(a.Evidence.EventIDs) > storage.MaxFirstEvidence+storage.MaxLastEvidence:
		t.Errorf("alert count %d with %d event ids", a.Count, len(a.Evidence.EventIDs))
	case len(a.Evidence.EventIDs) > a.Count:
		t.Errorf("alert has %d event ids for %d events", len(a.Evidence.EventIDs), a.Count)
	case a.Evidence.Summary == "" || len(a.Evidence.Figures) == 0:
		t.Errorf("alert without summary or figures: %+v", a.Evidence)
	case a.Mitre.ID == "" || a.Mitre.Name == "":
		t.Errorf("alert without MITRE technique")
	case len(a.RecommendedActions) == 0:
		t.Errorf("alert without recommended actions")
	case a.Status != storage.StatusOpen:
		t.Errorf("alert status %q", a.Status)
	case a.LastSeen.Before(a.FirstSeen):
		t.Errorf("alert last seen %v before first seen %v", a.LastSeen, a.FirstSeen)
	}
}

func dump(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// checkReplay runs the events through two fresh engines and requires the
// same updates, byte for byte.
func checkReplay(t *testing.T, cfg Config, evs []storage.Event) {
	t.Helper()
	a, _ := run(cfg, evs)
	b, _ := run(cfg, evs)
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		t.Fatalf("replay differs:\n%s\n%s", ja, jb)
	}
}

// detectorCase is one scenario for one detector.
type detectorCase struct {
	name     string
	cfg      Config
	events   func() []storage.Event
	rule     string // empty: the detector must stay quiet
	severity string
	check    func(t *testing.T, a storage.Alert)
}

func runCases(t *testing.T, detector string, cases []detectorCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs := tc.events()
			alerts := feed(t, tc.cfg, evs)
			if tc.rule == "" {
				expectNone(t, alerts, detector)
				return
			}
			a := expectOne(t, alerts, detector, tc.rule, tc.severity)
			if tc.check != nil {
				tc.check(t, a)
			}
			checkReplay(t, tc.cfg, evs)
		})
	}
}
