package storage

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestApplyRetention(t *testing.T) {
	s := openTemp(t, Options{})
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var evs []*Event
	// Each workspace gets one event per 10 days over the last 800 days.
	for _, ws := range []string{"", "acme", "globex", "held", "pci"} {
		for age := 0; age < 800; age += 10 {
			evs = append(evs, &Event{ID: fmt.Sprintf("%s-%d", ws, age), Time: now.AddDate(0, 0, -age).Add(time.Hour),
				Kind: KindHTTP, Workspace: ws, User: "u"})
		}
	}
	if err := s.Append(evs...); err != nil {
		t.Fatal(err)
	}
	for _, w := range []Workspace{
		{ID: "acme", RetentionDays: 90},
		{ID: "held", RetentionDays: 30, LegalHold: true, LegalHoldReason: "litigation 2026-17"},
		{ID: "pci", RetentionDays: 30}, // below the floor: raised to 365
	} {
		if err := s.PutWorkspace(w); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.ApplyRetention(context.Background(), now, RetentionPolicy{DefaultDays: 400, FloorDays: 365})
	if err != nil {
		t.Fatal(err)
	}
	for ws, days := range map[string]int{"": 400, "acme": 365, "globex": 400, "pci": 365, "held": 0} {
		page, err := s.Query(Filter{Workspace: ws, Kind: KindHTTP}, MaxPageSize, "")
		if err != nil {
			t.Fatal(err)
		}
		var n int
		for _, e := range page.Events {
			if ws == "" && e.Workspace != "" {
				continue
			}
			n++
			if days > 0 && e.Time.Before(now.AddDate(0, 0, -days)) {
				t.Errorf("workspace %q kept an event of %s, older than %d days", ws, e.Time, days)
			}
		}
		if ws == "held" && n != 80 {
			t.Errorf("legal hold: %d of 80 events left", n)
		}
		if days > 0 && res.ByWorkspace[ws] == 0 {
			t.Errorf("workspace %q: nothing purged (%+v)", ws, res)
		}
	}
	if len(res.Held) != 1 || res.Held[0] != "held" {
		t.Errorf("held = %v", res.Held)
	}
	page, _ := s.Query(Filter{Kind: KindLifecycle}, 10, "")
	if len(page.Events) != 1 || page.Events[0].Action != "events_purged" {
		t.Fatalf("purge not recorded: %+v", page.Events)
	}
	rep, err := s.Verify(context.Background(), nil)
	if err != nil || !rep.OK || rep.Tombstones != int64(res.Removed) {
		t.Fatalf("chain after retention: ok %v, tombstones %d (purged %d), problems %v, err %v", rep.OK, rep.Tombstones, res.Removed, rep.Problems, err)
	}
	again, err := s.ApplyRetention(context.Background(), now, RetentionPolicy{DefaultDays: 400, FloorDays: 365})
	if err != nil || again.Removed != 0 {
		t.Fatalf("a second pass removed %d (%v)", again.Removed, err)
	}
}
