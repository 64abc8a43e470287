package storage

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
	_ "time/tzdata" // zones for the daylight saving tests, whatever the host has
)

// bruteTop is the exact top-n of field over the events matching f.
func bruteTop(all []*Event, f Filter, n int, field func(*Event) string) TopCounts {
	counts := map[string]int64{}
	out := TopCounts{Items: []KeyCount{}}
	for _, ev := range all {
		if !bruteMatch(f, ev) {
			continue
		}
		out.Total++
		if v := field(ev); v != "" {
			counts[v]++
		} else {
			out.Missing++
		}
	}
	for k, c := range counts {
		out.Items = append(out.Items, KeyCount{Key: k, Count: c})
	}
	slices.SortFunc(out.Items, func(a, b KeyCount) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	out.Items = out.Items[:min(n, len(out.Items))]
	return out
}

// aggregateFilter is a random filter, often a bare time range (the index
// fast paths) or a workspace and a time range (the dashboard case).
func aggregateFilter(r *rand.Rand) Filter {
	switch r.IntN(4) {
	case 0:
		return Filter{From: propTime(r), To: propTime(r)}
	case 1:
		f := Filter{Workspace: pick(r, propWS[1:])}
		if r.IntN(2) == 0 {
			f.From = propTime(r)
		}
		return f
	case 2:
		return Filter{}
	}
	return randomFilter(r)
}

func TestAggregationsMatchBruteForce(t *testing.T) {
	// Twice: with values cut to maxIndexedValue (which merge in the
	// indexes, so counts must come from events) and without (so counts by
	// user, level and status come from the indexes alone).
	for _, cutValues := range []bool{true, false} {
		t.Run(fmt.Sprint("cut values ", cutValues), func(t *testing.T) { testAggregations(t, cutValues) })
	}
}

func testAggregations(t *testing.T, cutValues bool) {
	r := rand.New(rand.NewPCG(21, 22))
	s := openFast(t)
	var all []*Event
	for i := range 1200 {
		ev := randomEvent(r, i)
		if !cutValues && len(ev.User) > maxIndexedValue {
			ev.User = "long"
		}
		all = append(all, ev)
	}
	appendRandomly(t, r, s, all)
	ctx := context.Background()
	for range 100 / raceSlowdown {
		f := aggregateFilter(r)
		if f.validate() != nil {
			continue
		}
		n := 1 + r.IntN(6)
		for name, tc := range map[string]struct {
			got   func() (TopCounts, error)
			field func(*Event) string
			n     int
		}{
			"by user":       {func() (TopCounts, error) { return s.CountByUser(ctx, f, n) }, func(e *Event) string { return e.User }, n},
			"by risk level": {func() (TopCounts, error) { return s.CountByRiskLevel(ctx, f) }, func(e *Event) string { return e.RiskLevel }, topCapacity},
			"top paths":     {func() (TopCounts, error) { return s.TopPaths(ctx, f, n) }, func(e *Event) string { return e.Path }, n},
		} {
			got, err := tc.got()
			if err != nil {
				t.Fatalf("%s %+v: %v", name, f, err)
			}
			if want := bruteTop(all, f, tc.n, tc.field); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s, filter %+v:\n got %+v\nwant %+v", name, f, got, want)
			}
		}

		var wantClasses StatusClassCounts
		for _, ev := range all {
			if bruteMatch(f, ev) {
				switch c := ev.Status / 100; {
				case ev.Status >= 100 && c <= 5:
					*[]*int64{&wantClasses.Informational, &wantClasses.Success, &wantClasses.Redirection, &wantClasses.ClientError, &wantClasses.ServerError}[c-1]++
				default:
					wantClasses.Other++
				}
			}
		}
		if got, err := s.CountByStatusClass(ctx, f); err != nil || got != wantClasses {
			t.Fatalf("status classes, filter %+v: got %+v, %v; want %+v", f, got, err, wantClasses)
		}

		checkDistinctIPs(t, s, all, f, n)
		checkFailedAuth(t, s, all, f, n)
		checkSeries(t, s, all, f)
	}
}

func checkDistinctIPs(t *testing.T, s *Store, all []*Event, f Filter, n int) {
	t.Helper()
	ips := map[string]map[string]bool{}
	events := map[string]int64{}
	for _, ev := range all {
		if bruteMatch(f, ev) && ev.User != "" && ev.ClientIP != "" {
			if ips[ev.User] == nil {
				ips[ev.User] = map[string]bool{}
			}
			ips[ev.User][ev.ClientIP] = true
			events[ev.User]++
		}
	}
	want := []UserIPs{}
	for u, set := range ips {
		want = append(want, UserIPs{User: u, DistinctIPs: len(set), Events: events[u]})
	}
	slices.SortFunc(want, func(a, b UserIPs) int {
		if c := cmp.Compare(b.DistinctIPs, a.DistinctIPs); c != 0 {
			return c
		}
		return cmp.Compare(a.User, b.User)
	})
	want = want[:min(n, len(want))]
	got, err := s.DistinctIPsPerUser(context.Background(), f, n)
	if err != nil || got.Approximate || !slices.Equal(got.Users, want) {
		t.Fatalf("distinct IPs, filter %+v: got %+v, %v; want %+v", f, got, err, want)
	}
}

func checkFailedAuth(t *testing.T, s *Store, all []*Event, f Filter, n int) {
	t.Helper()
	var want FailedAuth
	byUser, byIP := map[string]*FailedAuthCount{}, map[string]*FailedAuthCount{}
	count := func(m map[string]*FailedAuthCount, key string, status int) {
		if key == "" {
			return
		}
		c := m[key]
		if c == nil {
			c = &FailedAuthCount{Key: key}
			m[key] = c
		}
		if status == 401 {
			c.Status401++
		} else {
			c.Status403++
		}
	}
	for _, ev := range all {
		if !bruteMatch(f, ev) || ev.Status != 401 && ev.Status != 403 {
			continue
		}
		if ev.Status == 401 {
			want.Status401++
		} else {
			want.Status403++
		}
		count(byUser, ev.User, ev.Status)
		count(byIP, ev.ClientIP, ev.Status)
	}
	list := func(m map[string]*FailedAuthCount) []FailedAuthCount {
		out := []FailedAuthCount{}
		for _, c := range m {
			out = append(out, *c)
		}
		slices.SortFunc(out, func(a, b FailedAuthCount) int {
			if c := cmp.Compare(b.Status401+b.Status403, a.Status401+a.Status403); c != 0 {
				return c
			}
			return cmp.Compare(a.Key, b.Key)
		})
		return out[:min(n, len(out))]
	}
	want.ByUser, want.ByClientIP = list(byUser), list(byIP)
	got, err := s.FailedAuth(context.Background(), f, n)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("failed auth, filter %+v:\n got %+v, %v\nwant %+v", f, got, err, want)
	}
}

func checkSeries(t *testing.T, s *Store, all []*Event, f Filter) {
	t.Helper()
	for _, iv := range []Interval{Hourly, Daily} {
		width := map[Interval]time.Duration{Hourly: time.Hour, Daily: 24 * time.Hour}[iv]
		want := map[time.Time]int64{}
		var total int64
		var first, end time.Time
		for _, ev := range all {
			if bruteMatch(f, ev) {
				b := time.Unix(0, clampNS(ev.Time)).UTC().Truncate(width)
				want[b]++
				total++
				if first.IsZero() || b.Before(first) {
					first = b
				}
				if b.Add(width).After(end) {
					end = b.Add(width)
				}
			}
		}
		if !f.From.IsZero() {
			first = f.From.UTC().Truncate(width)
		}
		if !f.To.IsZero() {
			end = f.To
		}
		// Clamped times reach 1970 and 2262: such a range is too long to
		// list, and must be refused.
		tooLong := !first.IsZero() && end.Sub(first)/width > maxSeriesPoints
		got, err := s.CountByTime(context.Background(), f, iv, nil)
		if tooLong != (err != nil) {
			t.Fatalf("series %d, filter %+v: error %v, want one: %v", iv, f, err, tooLong)
		}
		if err != nil {
			continue
		}
		var sum int64
		for i, tc := range got {
			if i > 0 && !tc.Start.Equal(got[i-1].Start.Add(width)) {
				t.Fatalf("series %d, filter %+v: bucket %v does not follow %v", iv, f, tc.Start, got[i-1].Start)
			}
			if tc.Count != want[tc.Start] {
				t.Fatalf("series %d, filter %+v: bucket %v has %d, want %d", iv, f, tc.Start, tc.Count, want[tc.Start])
			}
			sum += tc.Count
		}
		if sum != total {
			t.Fatalf("series %d, filter %+v: buckets sum to %d, want %d", iv, f, sum, total)
		}
		if !f.From.IsZero() && len(got) > 0 && got[0].Start.After(f.From) {
			t.Fatalf("series starts at %v, after From %v", got[0].Start, f.From)
		}
	}
}

// TestAggregationsStayInWorkspace is the property a workspace-scoped
// caller depends on, spelled out: another workspace's events never count.
func TestAggregationsStayInWorkspace(t *testing.T) {
	s := openTemp(t, Options{})
	var evs []*Event
	for i := range 200 {
		ws := "acme"
		if i%4 == 0 {
			ws = "globex"
		}
		evs = append(evs, &Event{Time: propBase.Add(time.Duration(i) * time.Minute), Workspace: ws, User: "u" + ws,
			ClientIP: "10.0.0." + ws, Status: []int{200, 401, 403, 500}[i%4], Path: "/" + ws, RiskLevel: ws})
	}
	if err := s.Append(evs...); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f := Filter{Workspace: "globex", From: propBase.Add(-time.Hour), To: propBase.Add(24 * time.Hour)}
	users, _ := s.CountByUser(ctx, f, 10)
	paths, _ := s.TopPaths(ctx, f, 10)
	levels, _ := s.CountByRiskLevel(ctx, f)
	classes, _ := s.CountByStatusClass(ctx, f)
	ips, _ := s.DistinctIPsPerUser(ctx, f, 10)
	auth, _ := s.FailedAuth(ctx, f, 10)
	series, _ := s.CountByTime(ctx, f, Daily, nil)
	if users.Total != 50 || len(users.Items) != 1 || users.Items[0].Key != "uglobex" ||
		paths.Items[0].Key != "/globex" || len(levels.Items) != 1 || classes.Success != 50 ||
		len(ips.Users) != 1 || len(auth.ByUser) != 0 || len(series) != 2 || series[1].Count != 50 {
		t.Fatalf("workspace leak: users %+v paths %+v levels %+v classes %+v ips %+v auth %+v series %+v", users, paths, levels, classes, ips, auth, series)
	}
}

func TestBucketOfFollowsLocalTime(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	// 2026-11-01 is the autumn change in New York: 01:00-02:00 happens
	// twice, the day lasts 25 hours.
	first := time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC)  // 01:30 EDT
	second := time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC) // 01:30 EST
	s1, e1 := bucketOf(first, Hourly, ny)
	s2, _ := bucketOf(second, Hourly, ny)
	if s1.Equal(s2) || e1.Sub(s1) != time.Hour || !s2.Equal(e1) {
		t.Errorf("the repeated hour is not two buckets: %v, %v", s1, s2)
	}
	if ds, de := bucketOf(first, Daily, ny); de.Sub(ds) != 25*time.Hour || ds.Hour() != 0 {
		t.Errorf("the change day is %v long from %v", de.Sub(ds), ds)
	}
	if s, _ := bucketOf(time.Date(2026, 3, 1, 10, 45, 0, 0, time.UTC), Hourly, kolkata); s.Minute() != 0 || s.UTC().Minute() != 30 {
		t.Errorf("an hour in Kolkata starts at %v", s)
	}
	if s, e := bucketOf(time.Unix(-5, 0), Hourly, time.UTC); !s.Equal(time.Unix(-3600, 0)) || !e.Equal(time.Unix(0, 0)) {
		t.Errorf("before 1970: %v - %v", s, e)
	}
}

func TestCountByTimeBoundsAndDenseRange(t *testing.T) {
	s := openTemp(t, Options{})
	ctx := context.Background()
	if got, err := s.CountByTime(ctx, Filter{}, Hourly, nil); err != nil || len(got) != 0 {
		t.Fatalf("empty store: %v, %v", got, err)
	}
	if err := s.Append(&Event{Time: propBase.Add(90 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.CountByTime(ctx, Filter{From: propBase, To: propBase.Add(4 * time.Hour)}, Hourly, nil)
	if err != nil || len(got) != 4 || got[1].Count != 1 || got[0].Count+got[2].Count+got[3].Count != 0 {
		t.Fatalf("dense hours: %+v, %v", got, err)
	}
	if _, err := s.CountByTime(ctx, Filter{From: time.Unix(0, 0), To: propBase}, Hourly, nil); err == nil {
		t.Fatal("a 56-year hourly series was accepted")
	}
	if _, err := s.CountByTime(ctx, Filter{}, Interval(9), nil); err == nil {
		t.Fatal("unknown interval accepted")
	}
	for _, n := range []int{0, -1} {
		if _, err := s.CountByUser(ctx, Filter{}, n); err == nil {
			t.Fatalf("n=%d accepted", n)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.TopPaths(cancelled, Filter{}, 5); err == nil {
		t.Fatal("a cancelled report ran")
	}
}

// TestTopCounterGuarantees checks the Space-Saving bounds when more keys
// arrive than it can hold.
func TestTopCounterGuarantees(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	const capacity, events = 50, 20000
	c := newTopCounter(capacity)
	truth := map[string]int64{}
	for range events {
		// Heavy-tailed: a few keys are frequent, most are rare.
		k := fmt.Sprint(int(1 / (r.Float64() + 0.001)))
		truth[k]++
		c.add(k, 1, -1)
	}
	if !c.evicted {
		t.Fatal("expected evictions with more keys than capacity")
	}
	listed := map[string]*topEntry{}
	for _, e := range c.top(capacity) {
		listed[e.key] = e
		if e.count < truth[e.key] || e.count-e.err > truth[e.key] {
			t.Errorf("key %s: count %d error %d, true %d", e.key, e.count, e.err, truth[e.key])
		}
	}
	for k, n := range truth {
		if n > events/capacity && listed[k] == nil {
			t.Errorf("key %s with %d > N/capacity events is missing", k, n)
		}
	}
}
