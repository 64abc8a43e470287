package storage

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func seed(t *testing.T, s *Store, n int) time.Time {
	t.Helper()
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var evs []*Event
	for i := 0; i < n; i++ {
		evs = append(evs, &Event{
			ID:        fmt.Sprintf("e%03d", i),
			Time:      base.Add(time.Duration(i) * time.Minute),
			Kind:      KindHTTP,
			Stage:     StageResponseComplete,
			User:      []string{"alice", "bob", "carol"}[i%3],
			Workspace: []string{"acme", "globex"}[i%2],
			ClientIP:  fmt.Sprintf("10.0.0.%d", i%5),
			Method:    []string{"GET", "POST", "DELETE"}[i%3],
			Status:    []int{200, 401, 404, 204}[i%4],
			Path:      []string{"/api/items", "/login", "/admin/users"}[i%3],
			RequestID: fmt.Sprintf("req-%d", i),
		})
	}
	if err := s.Append(evs...); err != nil {
		t.Fatal(err)
	}
	return base
}

func TestQueryFilters(t *testing.T) {
	s := openTemp(t, Options{})
	base := seed(t, s, 60)
	tests := []struct {
		name   string
		filter Filter
		want   int
		check  func(Event) bool
	}{
		{"all", Filter{}, 60, func(Event) bool { return true }},
		{"user", Filter{User: "alice"}, 20, func(e Event) bool { return e.User == "alice" }},
		{"workspace", Filter{Workspace: "acme"}, 30, func(e Event) bool { return e.Workspace == "acme" }},
		{"ip", Filter{ClientIP: "10.0.0.1"}, 12, func(e Event) bool { return e.ClientIP == "10.0.0.1" }},
		{"method any case", Filter{Method: "delete"}, 20, func(e Event) bool { return e.Method == "DELETE" }},
		{"status", Filter{Status: 401}, 15, func(e Event) bool { return e.Status == 401 }},
		{"path prefix", Filter{PathPrefix: "/admin"}, 20, func(e Event) bool { return e.Path == "/admin/users" }},
		{"request id", Filter{RequestID: "req-7"}, 1, func(e Event) bool { return e.RequestID == "req-7" }},
		{"time range", Filter{From: base.Add(10 * time.Minute), To: base.Add(20 * time.Minute)}, 10,
			func(e Event) bool {
				return !e.Time.Before(base.Add(10*time.Minute)) && e.Time.Before(base.Add(20*time.Minute))
			}},
		{"combined", Filter{User: "alice", Workspace: "acme"}, 10, func(e Event) bool { return e.User == "alice" && e.Workspace == "acme" }},
		{"none", Filter{User: "mallory"}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := s.Query(tt.filter, MaxPageSize, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Events) != tt.want {
				t.Fatalf("got %d events, want %d", len(page.Events), tt.want)
			}
			for i, e := range page.Events {
				if !tt.check(e) {
					t.Errorf("event %s does not match the filter", e.ID)
				}
				if i > 0 && e.Time.After(page.Events[i-1].Time) {
					t.Errorf("not newest first at %d", i)
				}
			}
			if page.NextCursor != "" {
				t.Errorf("single page should have no cursor")
			}
		})
	}
}

func TestQueryPaginationWhileWriting(t *testing.T) {
	s := openTemp(t, Options{})
	base := seed(t, s, 95)
	seen := map[string]int{}
	cursor := ""
	for pages := 0; ; pages++ {
		page, err := s.Query(Filter{}, 10, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			seen[e.ID]++
		}
		// Newer events keep arriving; they must not shift the pages.
		if err := s.Append(&Event{ID: fmt.Sprintf("new%d", pages), Time: base.Add(24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	for i := 0; i < 95; i++ {
		if id := fmt.Sprintf("e%03d", i); seen[id] != 1 {
			t.Errorf("event %s seen %d times", id, seen[id])
		}
	}
}

func TestQueryRejectsBadInput(t *testing.T) {
	s := openTemp(t, Options{})
	for _, c := range []string{"!!", "AQID", "x"} {
		if _, err := s.Query(Filter{}, 10, c); !errors.Is(err, ErrBadCursor) {
			t.Errorf("cursor %q: got %v, want ErrBadCursor", c, err)
		}
	}
	for _, limit := range []int{0, -1, MaxPageSize + 1} {
		if _, err := s.Query(Filter{}, limit, ""); err == nil {
			t.Errorf("limit %d accepted", limit)
		}
	}
}

func FuzzQueryCursor(f *testing.F) {
	s := openTemp(f, Options{})
	if err := s.Append(&Event{ID: "a", Time: time.Now()}); err != nil {
		f.Fatal(err)
	}
	f.Add("")
	f.Add("AQAAAAAAAAAAAAAAAAAAAAE")
	f.Fuzz(func(t *testing.T, cursor string) {
		page, err := s.Query(Filter{}, 5, cursor)
		if err != nil && !errors.Is(err, ErrBadCursor) {
			t.Fatalf("cursor %q: unexpected error %v", cursor, err)
		}
		if len(page.Events) > 5 {
			t.Fatalf("page too long")
		}
	})
}

func TestQueryScanBudget(t *testing.T) {
	s := openTemp(t, Options{})
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var evs []*Event
	for i := 0; i < MaxScan+50; i++ {
		evs = append(evs, &Event{ID: fmt.Sprint(i), Time: base.Add(time.Duration(i) * time.Second), Stage: StageResponseComplete})
	}
	// The oldest event, beyond one scan budget; no index covers Stage, so
	// finding it means reading events.
	evs[0].Stage = StageRequestReceived
	if err := s.Append(evs...); err != nil {
		t.Fatal(err)
	}
	f := Filter{Stage: StageRequestReceived}
	page, err := s.Query(f, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 0 || page.NextCursor == "" {
		t.Fatalf("first page: %d events, cursor %q; want a short page with a cursor", len(page.Events), page.NextCursor)
	}
	var found []string
	pages := 1
	for page.NextCursor != "" {
		if pages++; pages > 10 {
			t.Fatal("cursors do not make progress")
		}
		if page, err = s.Query(f, 10, page.NextCursor); err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			found = append(found, e.ID)
		}
	}
	if len(found) != 1 || found[0] != "0" {
		t.Fatalf("following cursors found %v, want [0]", found)
	}
}

func TestTimeNSClampsOutOfRangeTimes(t *testing.T) {
	far := timeNS(time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC))
	now := timeNS(time.Now())
	old := timeNS(time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC))
	if far <= now || old >= now || old != 0 {
		t.Fatal("times outside the int64 nanosecond range are misordered")
	}
}
