package detectors

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// window0 is a window boundary (5 minutes) after t0.
var window0 = t0.Truncate(5 * time.Minute).Add(5 * time.Minute)

// randomRecords fetches n distinct records in random order (no runs of
// consecutive ids) between start and start+span.
func randomRecords(s *stream, n int, start time.Time, span time.Duration, opts ...opt) *stream {
	r := rand.New(rand.NewPCG(1, 2))
	ids := r.Perm(100000)[:n]
	for i, id := range ids {
		s.add(start.Add(span*time.Duration(i)/time.Duration(n)), "GET", fmt.Sprintf("/api/items/%d", id*3+1), 200, opts...)
	}
	return s
}

// history gives eve `windows` active windows of a few small requests before
// window0.
func history(windows int) *stream {
	s := &stream{}
	for w := windows; w > 0; w-- {
		start := window0.Add(-time.Duration(w) * 5 * time.Minute)
		for i := range 4 {
			s.add(start.Add(time.Duration(i)*time.Minute), "GET", fmt.Sprintf("/api/items/%d", w*10+i*3), 200,
				user("eve"), bytesOut(int64(40000+i*7000+w*1000)))
		}
	}
	return s
}

func TestDataExfiltration(t *testing.T) {
	eve := user("eve")
	runCases(t, DetectorDataExfiltration, []detectorCase{
		{name: "501 distinct records in 4 minutes", events: func() []storage.Event {
			return randomRecords(&stream{}, 501, window0, 4*time.Minute, eve).evs
		}, rule: ruleBulkDownload, severity: storage.SeverityHigh, check: func(t *testing.T, a storage.Alert) {
			if a.Evidence.Figures["records"] != 501 || a.Evidence.Figures["max_records"] != 500 || a.Mitre.ID != "T1567" {
				t.Errorf("figures %v mitre %v", a.Evidence.Figures, a.Mitre)
			}
		}},
		{name: "near miss: 450 distinct records in 4 minutes", events: func() []storage.Event {
			return randomRecords(&stream{}, 450, window0, 4*time.Minute, eve).evs
		}},
		{name: "straddling a window boundary", events: func() []storage.Event {
			return randomRecords(&stream{}, 600, window0.Add(-2*time.Minute), 4*time.Minute, eve).evs
		}, rule: ruleBulkDownload, severity: storage.SeverityHigh},
		{name: "near miss: 600 records over 15 minutes", events: func() []storage.Event {
			return randomRecords(&stream{}, 600, window0, 15*time.Minute, eve).evs
		}},
		{name: "101 MiB in 2 minutes", events: func() []storage.Event {
			s := &stream{}
			for i := range 11 {
				s.add(window0.Add(time.Duration(i)*10*time.Second), "GET", "/api/export", 200, eve, bytesOut(10<<20))
			}
			return s.evs
		}, rule: ruleBulkDownload, severity: storage.SeverityHigh},
		{name: "above the baseline", events: func() []storage.Event {
			s := history(20)
			for i := range 6 {
				s.add(window0.Add(time.Duration(i)*20*time.Second), "GET", "/api/export", 200, eve, bytesOut(2<<20))
			}
			return s.evs
		}, rule: ruleBulkDownload, severity: storage.SeverityMedium, check: func(t *testing.T, a storage.Alert) {
			f := a.Evidence.Figures
			if f["baseline_windows"] != 20 || f["bytes"] < 10<<20 || f["baseline_mean_bytes"] > 300000 {
				t.Errorf("figures %v", f)
			}
		}},
		{name: "near miss: same download without 15 windows of history", events: func() []storage.Event {
			s := history(14)
			for i := range 6 {
				s.add(window0.Add(time.Duration(i)*20*time.Second), "GET", "/api/export", 200, eve, bytesOut(2<<20))
			}
			return s.evs
		}},
		{name: "near miss: above the baseline but below the floor", events: func() []storage.Event {
			s := history(20)
			for i := range 4 {
				s.add(window0.Add(time.Duration(i)*20*time.Second), "GET", "/api/export", 200, eve, bytesOut(2<<20))
			}
			return s.evs
		}},
		{name: "enumeration of 50 consecutive ids", events: func() []storage.Event {
			s := &stream{}
			for i := range 50 {
				s.add(window0.Add(time.Duration(i)*time.Second), "GET", fmt.Sprintf("/api/v1/items/%d", 1000+i), 200, eve)
			}
			return s.evs
		}, rule: ruleEnumeration, severity: storage.SeverityHigh, check: func(t *testing.T, a storage.Alert) {
			f := a.Evidence.Figures
			if f["sequential_ids"] != 50 || f["first_id"] != 1000 || f["last_id"] != 1049 || a.Count != 50 ||
				a.Evidence.Observed["collection"] != "/api/v1/items" {
				t.Errorf("figures %v count %d observed %v", f, a.Count, a.Evidence.Observed)
			}
		}},
		{name: "enumeration walking down, with 404 gaps counted", events: func() []storage.Event {
			s := &stream{}
			for i := range 60 {
				status := 200
				if i%7 == 3 {
					status = 404
				}
				s.add(window0.Add(time.Duration(i)*time.Second), "GET", fmt.Sprintf("/api/items/%d", 5000-i), status, ip("203.0.113.50"))
			}
			return s.evs
		}, rule: ruleEnumeration, severity: storage.SeverityHigh, check: func(t *testing.T, a storage.Alert) {
			if a.Subject != (storage.Subject{Kind: storage.SubjectIP, Value: "203.0.113.50"}) {
				t.Errorf("subject %v", a.Subject)
			}
		}},
		{name: "near miss: 49 consecutive ids", events: func() []storage.Event {
			s := &stream{}
			for i := range 49 {
				s.add(window0.Add(time.Duration(i)*time.Second), "GET", fmt.Sprintf("/api/items/%d", 1000+i), 200, eve)
			}
			return s.evs
		}},
		{name: "20 consecutive pages", events: func() []storage.Event {
			s := &stream{}
			for i := range 20 {
				s.add(window0.Add(time.Duration(i)*2*time.Second), "GET", "/api/items", 200, eve, query(fmt.Sprintf("sort=id&page=%d", i+1)))
			}
			return s.evs
		}, rule: ruleEnumeration, severity: storage.SeverityHigh},
		{name: "evenly stepped offsets", events: func() []storage.Event {
			s := &stream{}
			for i := range 25 {
				s.add(window0.Add(time.Duration(i)*2*time.Second), "GET", "/api/items", 200, eve, query(fmt.Sprintf("offset=%d&limit=100", i*100)))
			}
			return s.evs
		}, rule: ruleEnumeration, severity: storage.SeverityHigh},
		{name: "near miss: 19 pages", events: func() []storage.Event {
			s := &stream{}
			for i := range 19 {
				s.add(window0.Add(time.Duration(i)*2*time.Second), "GET", "/api/items", 200, eve, query(fmt.Sprintf("page=%d", i+1)))
			}
			return s.evs
		}},
	})
}

// A window that raised an alert stays out of the baseline, so the attack
// does not teach the detector that it is normal.
func TestDataExfiltrationAlertWindowNotLearnt(t *testing.T) {
	e := NewEngine(Config{})
	s := history(20)
	for i := range 6 {
		s.add(window0.Add(time.Duration(i)*20*time.Second), "GET", "/api/export", 200, user("eve"), bytesOut(2<<20))
	}
	s.add(window0.Add(20*time.Minute), "GET", "/api/items/1", 200, user("eve"))
	for i := range s.evs {
		e.Process(&s.evs[i])
	}
	st := e.ex.principals.peek(inWS[storage.Subject]{k: storage.Subject{Kind: storage.SubjectUser, Value: "eve"}})
	if st.n != 20 || st.peakB > 1<<20 {
		t.Errorf("baseline has %d windows, peak %v: the alert window was learnt", st.n, st.peakB)
	}
}
