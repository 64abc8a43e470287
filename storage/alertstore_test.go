package storage

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var alertT0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func testAlert(id, detector, severity string, lastSeen time.Time) Alert {
	return Alert{
		ID: id, Detector: detector, Rule: "rule", Severity: severity,
		Subject:   Subject{Kind: SubjectIP, Value: "203.0.113.7"},
		FirstSeen: lastSeen.Add(-time.Minute), LastSeen: lastSeen, Count: 6,
		Evidence: Evidence{EventIDs: []string{"e1"}, Summary: "six failures"},
		Status:   StatusOpen,
	}
}

func TestPutAlertMerge(t *testing.T) {
	tests := []struct {
		name       string
		prepare    func(s *Store) // after the first PutAlert
		update     func(a *Alert)
		wantWrite  AlertWrite
		wantStatus string
		wantSev    string
		wantCount  int
		wantFirst  time.Time
	}{
		{
			name:       "repeat updates count and last_seen",
			update:     func(a *Alert) { a.Count = 9; a.LastSeen = a.LastSeen.Add(time.Minute) },
			wantStatus: StatusOpen, wantSev: SeverityHigh, wantCount: 9, wantFirst: alertT0.Add(-time.Minute),
		},
		{
			name:       "escalation",
			update:     func(a *Alert) { a.Severity = SeverityCritical; a.Count = 7 },
			wantWrite:  AlertWrite{Escalated: true},
			wantStatus: StatusOpen, wantSev: SeverityCritical, wantCount: 7, wantFirst: alertT0.Add(-time.Minute),
		},
		{
			name:       "severity never falls",
			update:     func(a *Alert) { a.Severity = SeverityLow },
			wantStatus: StatusOpen, wantSev: SeverityHigh, wantCount: 6, wantFirst: alertT0.Add(-time.Minute),
		},
		{
			name: "analyst status survives an engine update",
			prepare: func(s *Store) {
				if _, err := s.SetAlertStatus("a1", StatusResolved, "key1", "handled", alertT0); err != nil {
					panic(err)
				}
			},
			update:     func(a *Alert) { a.Count = 8; a.Status = StatusOpen },
			wantStatus: StatusResolved, wantSev: SeverityHigh, wantCount: 8, wantFirst: alertT0.Add(-time.Minute),
		},
		{
			name:       "partial replay keeps the larger count and earlier first_seen",
			update:     func(a *Alert) { a.Count = 2; a.FirstSeen = alertT0 },
			wantStatus: StatusOpen, wantSev: SeverityHigh, wantCount: 6, wantFirst: alertT0.Add(-time.Minute),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t, Options{})
			first := testAlert("a1", "brute_force", SeverityHigh, alertT0)
			_, w, err := s.PutAlert(first)
			if err != nil || !w.Created {
				t.Fatalf("first put: %v %+v", err, w)
			}
			if tt.prepare != nil {
				tt.prepare(s)
			}
			next := testAlert("a1", "brute_force", SeverityHigh, alertT0)
			tt.update(&next)
			got, w, err := s.PutAlert(next)
			if err != nil {
				t.Fatal(err)
			}
			if w != tt.wantWrite {
				t.Errorf("write = %+v, want %+v", w, tt.wantWrite)
			}
			stored, err := s.GetAlert("a1")
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range []Alert{got, stored} {
				if a.Status != tt.wantStatus || a.Severity != tt.wantSev || a.Count != tt.wantCount || !a.FirstSeen.Equal(tt.wantFirst) {
					t.Errorf("alert = status %s severity %s count %d first %s", a.Status, a.Severity, a.Count, a.FirstSeen)
				}
			}
			// One index entry per alert, whatever the updates did.
			page, err := s.ListAlerts(AlertFilter{}, 10, "")
			if err != nil || len(page.Alerts) != 1 {
				t.Fatalf("list: %v, %d alerts", err, len(page.Alerts))
			}
		})
	}
}

func TestSetAlertStatus(t *testing.T) {
	tests := []struct {
		name    string
		steps   []string
		wantErr error
		final   string
	}{
		{"acknowledge", []string{StatusAcknowledged}, nil, StatusAcknowledged},
		{"acknowledge then resolve", []string{StatusAcknowledged, StatusResolved}, nil, StatusResolved},
		{"false positive", []string{StatusFalsePositive}, nil, StatusFalsePositive},
		{"reopen", []string{StatusResolved, StatusOpen}, nil, StatusOpen},
		{"resolve twice", []string{StatusResolved, StatusResolved}, ErrInvalidTransition, StatusResolved},
		{"acknowledge a closed alert", []string{StatusFalsePositive, StatusAcknowledged}, ErrInvalidTransition, StatusFalsePositive},
		{"unknown status", []string{"closed"}, ErrInvalidTransition, StatusOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t, Options{})
			if _, _, err := s.PutAlert(testAlert("a1", "brute_force", SeverityHigh, alertT0)); err != nil {
				t.Fatal(err)
			}
			var err error
			for i, to := range tt.steps {
				_, err = s.SetAlertStatus("a1", to, "key1", fmt.Sprintf("step %d", i), alertT0.Add(time.Duration(i)*time.Minute))
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			a, _ := s.GetAlert("a1")
			if a.Status != tt.final {
				t.Errorf("status = %s, want %s", a.Status, tt.final)
			}
			wantHist := len(tt.steps)
			if tt.wantErr != nil {
				wantHist--
			}
			if len(a.History) != wantHist {
				t.Fatalf("history = %+v, want %d entries", a.History, wantHist)
			}
			if wantHist > 0 {
				h := a.History[0]
				if h.By != "key1" || h.From != StatusOpen || h.To != tt.steps[0] || h.Comment != "step 0" || !h.At.Equal(alertT0) {
					t.Errorf("history[0] = %+v", h)
				}
				if a.StatusBy != "key1" {
					t.Errorf("status_by = %q", a.StatusBy)
				}
			}
		})
	}
	t.Run("not found", func(t *testing.T) {
		s := openTemp(t, Options{})
		if _, err := s.SetAlertStatus("nope", StatusResolved, "k", "", alertT0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestAlertHistoryBounded(t *testing.T) {
	s := openTemp(t, Options{})
	if _, _, err := s.PutAlert(testAlert("a1", "brute_force", SeverityHigh, alertT0)); err != nil {
		t.Fatal(err)
	}
	for i := range MaxAlertHistory + 5 {
		if _, err := s.AddAlertComment("a1", "k", fmt.Sprintf("c%d", i), alertT0); err != nil {
			t.Fatal(err)
		}
	}
	a, err := s.AddAlertComment("a1", "k", strings.Repeat("x", MaxCommentLength+10), alertT0)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.History) != MaxAlertHistory || a.HistoryDropped != 6 {
		t.Fatalf("history %d, dropped %d", len(a.History), a.HistoryDropped)
	}
	if a.History[0].Comment != "c6" || len(a.History[MaxAlertHistory-1].Comment) != MaxCommentLength {
		t.Errorf("history kept the wrong entries: first %q", a.History[0].Comment)
	}
	if _, err := s.AddAlertComment("a1", "k", "", alertT0); err == nil {
		t.Error("empty comment accepted")
	}
}

func TestListAlerts(t *testing.T) {
	s := openTemp(t, Options{})
	// 30 alerts, one per minute; detector and severity cycle.
	dets := []string{"brute_force", "mass_deletion", "unusual_access"}
	sevs := []string{SeverityLow, SeverityHigh}
	for i := range 30 {
		a := testAlert(fmt.Sprintf("a%02d", i), dets[i%3], sevs[i%2], alertT0.Add(time.Duration(i)*time.Minute))
		a.Workspace = []string{"acme", "globex"}[i%2]
		if i == 7 {
			a.Subject.Value = "198.51.100.9"
		}
		if _, _, err := s.PutAlert(a); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetAlertStatus("a04", StatusAcknowledged, "k", "", alertT0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		filter AlertFilter
		want   []string // ids, newest first
	}{
		{"detector and severity", AlertFilter{Detector: "mass_deletion", Severity: SeverityHigh}, []string{"a25", "a19", "a13", "a07", "a01"}},
		{"status", AlertFilter{Status: StatusAcknowledged}, []string{"a04"}},
		{"subject", AlertFilter{SubjectValue: "198.51.100.9"}, []string{"a07"}},
		{"workspace and time", AlertFilter{Workspace: "acme", From: alertT0.Add(20 * time.Minute), To: alertT0.Add(26 * time.Minute)}, []string{"a24", "a22", "a20"}},
		{"to only", AlertFilter{To: alertT0.Add(2 * time.Minute)}, []string{"a01", "a00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			cursor := ""
			for pages := 0; pages < 20; pages++ {
				page, err := s.ListAlerts(tt.filter, 2, cursor)
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range page.Alerts {
					got = append(got, a.ID)
				}
				if cursor = page.NextCursor; cursor == "" {
					break
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("bad cursor", func(t *testing.T) {
		if _, err := s.ListAlerts(AlertFilter{}, 10, "bm9wZQ"); !errors.Is(err, ErrBadCursor) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("an update moves the alert to the front", func(t *testing.T) {
		a := testAlert("a00", "brute_force", SeverityLow, alertT0.Add(time.Hour))
		if _, _, err := s.PutAlert(a); err != nil {
			t.Fatal(err)
		}
		page, err := s.ListAlerts(AlertFilter{}, 1000, "")
		if err != nil || len(page.Alerts) != 30 || page.Alerts[0].ID != "a00" {
			t.Fatalf("err %v, %d alerts, first %s", err, len(page.Alerts), page.Alerts[0].ID)
		}
	})
}

func TestCountAlerts(t *testing.T) {
	s := openTemp(t, Options{})
	for i, c := range []struct{ det, sev string }{
		{"brute_force", SeverityHigh}, {"brute_force", SeverityHigh}, {"brute_force", SeverityCritical}, {"mass_deletion", SeverityHigh},
	} {
		if _, _, err := s.PutAlert(testAlert(fmt.Sprint(i), c.det, c.sev, alertT0)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetAlertStatus("0", StatusResolved, "k", "", alertT0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetAlertStatus("1", StatusAcknowledged, "k", "", alertT0); err != nil {
		t.Fatal(err)
	}
	c, err := s.CountAlerts()
	if err != nil {
		t.Fatal(err)
	}
	if c.Total != 4 || c.ByDetectorSeverity["brute_force"][SeverityHigh] != 2 || c.ByDetectorSeverity["mass_deletion"][SeverityHigh] != 1 {
		t.Errorf("counts %+v", c)
	}
	if c.OpenBySeverity[SeverityHigh] != 2 || c.OpenBySeverity[SeverityCritical] != 1 {
		t.Errorf("open %+v", c.OpenBySeverity)
	}
}

func TestDetectorSeqAndEventsAfter(t *testing.T) {
	s := openTemp(t, Options{})
	for i := range 10 {
		if err := s.Append(&Event{ID: NewID(alertT0), Time: alertT0.Add(time.Duration(i) * time.Hour), Kind: KindHTTP}); err != nil {
			t.Fatal(err)
		}
	}
	if seq, _ := s.DetectorSeq(); seq != 0 {
		t.Fatalf("fresh seq %d", seq)
	}
	if err := s.SetDetectorSeq(7); err != nil {
		t.Fatal(err)
	}
	if seq, _ := s.DetectorSeq(); seq != 7 {
		t.Fatalf("seq %d", seq)
	}
	evs, err := s.EventsAfter(7, 100)
	if err != nil || len(evs) != 3 || evs[0].Seq != 8 {
		t.Fatalf("events after 7: %v %d", err, len(evs))
	}
	for _, tt := range []struct {
		at   time.Time
		want uint64
	}{
		{alertT0.Add(-time.Hour), 1}, {alertT0, 1}, {alertT0.Add(90 * time.Minute), 3},
		{alertT0.Add(9 * time.Hour), 10}, {alertT0.Add(24 * time.Hour), 11},
	} {
		if got, err := s.SeqAtTime(tt.at); err != nil || got != tt.want {
			t.Errorf("SeqAtTime(%s) = %d, %v; want %d", tt.at, got, err, tt.want)
		}
	}
	if last, _ := s.LastSeq(); last != 10 {
		t.Errorf("last seq %d", last)
	}
}

func TestEraseSubjectPseudonymizesAlerts(t *testing.T) {
	s := openTemp(t, Options{})
	about := testAlert("u1", "mass_deletion", SeverityHigh, alertT0)
	about.Subject = Subject{Kind: SubjectUser, Value: "alice"}
	about.Evidence.Observed = map[string]string{"target_user": "alice", "route": "/api/items"}
	other := testAlert("u2", "mass_deletion", SeverityHigh, alertT0)
	other.Subject = Subject{Kind: SubjectUser, Value: "alicea"}
	for _, a := range []Alert{about, other} {
		if _, _, err := s.PutAlert(a); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.EraseSubject("alice", func(_, _ string) string { return "pseudo-1" }); err != nil {
		t.Fatal(err)
	}
	a, _ := s.GetAlert("u1")
	if a.Subject.Value != "pseudo-1" || a.Evidence.Observed["target_user"] != "pseudo-1" || a.Evidence.Observed["route"] != "/api/items" {
		t.Errorf("erased alert %+v", a)
	}
	if b, _ := s.GetAlert("u2"); b.Subject.Value != "alicea" {
		t.Errorf("another user's alert changed: %+v", b.Subject)
	}
}
