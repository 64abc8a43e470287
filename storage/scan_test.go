package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestScan(t *testing.T) {
	s := openTemp(t, Options{})
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	const n = MaxPageSize*2 + 7
	evs := make([]*Event, n)
	for i := range evs {
		ws := "acme"
		if i%3 == 0 {
			ws = "globex"
		}
		evs[i] = &Event{ID: NewID(base), Time: base.Add(time.Duration(i) * time.Second), Kind: KindHTTP, Method: "GET", Path: "/", Status: 200, Workspace: ws}
	}
	if err := s.Append(evs...); err != nil {
		t.Fatal(err)
	}
	var seen int
	last := time.Time{}
	err := s.Scan(context.Background(), Filter{Workspace: "acme"}, func(ev *Event) error {
		if ev.Workspace != "acme" {
			t.Fatalf("scan returned workspace %q", ev.Workspace)
		}
		if !last.IsZero() && ev.Time.After(last) {
			t.Fatalf("scan not newest first: %v after %v", ev.Time, last)
		}
		last = ev.Time
		seen++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := n - (n+2)/3; seen != want {
		t.Errorf("scan saw %d events, want %d", seen, want)
	}

	stop := errors.New("stop")
	calls := 0
	if err := s.Scan(context.Background(), Filter{}, func(*Event) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("fn error: got %v after %d calls, want stop after 1", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Scan(ctx, Filter{}, func(*Event) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled scan: %v", err)
	}
}
