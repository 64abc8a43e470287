package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestStatsHelpers(t *testing.T) {
	s := openTemp(t, Options{})
	base := time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC)
	mk := func(sec int, ip string, status int, ws string) *Event {
		at := base.Add(time.Duration(sec) * time.Second)
		return &Event{ID: NewID(at), Time: at, Kind: KindHTTP, ClientIP: ip, Status: status, Outcome: Outcome(status), Workspace: ws}
	}
	if err := s.Append(
		mk(0, "192.0.2.1", 200, "acme"), mk(30, "192.0.2.1", 401, "acme"), mk(61, "192.0.2.2", 200, "acme"),
		mk(62, "192.0.2.1", 500, "globex"), mk(185, "192.0.2.3", 302, "acme"),
		&Event{ID: NewID(base.Add(70 * time.Second)), Time: base.Add(70 * time.Second), Kind: KindLifecycle, Action: "audit_started"},
	); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ips, err := s.TopClientIPs(ctx, Filter{Workspace: "acme"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if ips.Total != 4 || len(ips.Items) != 2 || ips.Items[0] != (KeyCount{Key: "192.0.2.1", Count: 2}) || ips.Items[1].Key != "192.0.2.2" {
		t.Errorf("TopClientIPs = %+v", ips)
	}
	out, err := s.CountByOutcome(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if out.Total != 6 || out.Missing != 1 || len(out.Items) != 2 ||
		out.Items[0] != (KeyCount{Key: "success", Count: 3}) || out.Items[1] != (KeyCount{Key: "failure", Count: 2}) {
		t.Errorf("CountByOutcome = %+v", out)
	}

	// Per minute over 15:00:30 - 15:03:10: buckets 15:00 (1 event: 30s;
	// the one at 0s is before From), 15:01 (3: 61s, 62s, 70s), 15:02 (0),
	// 15:03 (1: 185s).
	series, err := s.CountByStep(ctx, Filter{From: base.Add(30 * time.Second), To: base.Add(190 * time.Second)}, time.Minute, time.FixedZone("X", 3600))
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{1, 3, 0, 1}
	if len(series) != len(want) {
		t.Fatalf("series has %d buckets, want %d: %+v", len(series), len(want), series)
	}
	for i, tc := range series {
		if tc.Count != want[i] || !tc.Start.Equal(base.Add(time.Duration(i)*time.Minute)) {
			t.Errorf("bucket %d = %v %d, want %v %d", i, tc.Start, tc.Count, base.Add(time.Duration(i)*time.Minute), want[i])
		}
		if _, off := tc.Start.Zone(); off != 3600 {
			t.Errorf("bucket %d not in the zone asked for: %v", i, tc.Start)
		}
	}
	for _, bad := range []Filter{{}, {From: base}, {From: base, To: base}, {From: base, To: base.Add(MaxStepBuckets*time.Minute + time.Minute)}} {
		if _, err := s.CountByStep(ctx, bad, time.Minute, nil); !errors.Is(err, ErrBadFilter) {
			t.Errorf("CountByStep(%v - %v): %v, want ErrBadFilter", bad.From, bad.To, err)
		}
	}
}
