package storage

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Aggregations for reports and dashboards.
//
// Each runs in one read transaction and streams: it walks the filter's
// plan (see query.go) and either counts index entries or decodes the
// matching events one at a time. Memory is bounded by the size of the
// answer, never by the number of events, and the bounds are stated on each
// type. Every aggregation honours the whole Filter, so a caller that sets
// Workspace never counts another workspace's events.
//
// Reading events is what costs (about 10 µs each to decode), so counts
// come from the indexes when they can: time series whenever the indexes
// decide the filter exactly; counts by status class and risk level then
// too (groupCounts); counts by user when the filter is a time range. Top
// paths, addresses per user and failed authentications decode the
// matching events (failed authentications only the 401s and 403s).
//
// Counts by detector and severity are not here: alerts are not stored yet.

// Interval is the width of one bucket of a time series.
type Interval int

// Time series intervals.
const (
	// Hourly buckets start on the hour, local time.
	Hourly Interval = iota + 1
	// Daily buckets start at local midnight, so they last 23 or 25 hours
	// on the days daylight saving time changes.
	Daily
)

// maxSeriesPoints bounds a time series; a longer range must be narrowed or
// asked for by day.
const maxSeriesPoints = 100_000

// TimeCount is the number of events in one bucket of a time series.
type TimeCount struct {
	// Start is when the bucket begins, in the location asked for.
	Start time.Time `json:"start"`
	// Count is the number of matching events in the bucket.
	Count int64 `json:"count"`
}

// CountByTime counts the events matching f per hour or per day in loc
// (nil: UTC), oldest bucket first. Buckets without events are included
// (count 0): from From (or the oldest match) to To (or the newest match).
func (s *Store) CountByTime(ctx context.Context, f Filter, iv Interval, loc *time.Location) ([]TimeCount, error) {
	if iv != Hourly && iv != Daily {
		return nil, fmt.Errorf("%w: unknown interval %d", ErrBadFilter, iv)
	}
	if loc == nil {
		loc = time.UTC
	}
	// Matches stream newest first, so buckets arrive in descending order
	// and each is finished when the next begins: one slice entry per
	// bucket that has events.
	var desc []TimeCount
	var cur, curEnd time.Time
	err := s.viewIndexed(func(tx *bolt.Tx) error {
		return forEachMatch(ctx, tx, &f, false, nil, func(at pos, _ *Event) error {
			t := at.time()
			if len(desc) == 0 || t.Before(cur) || !t.Before(curEnd) {
				if len(desc) == maxSeriesPoints {
					return fmt.Errorf("%w: the events span more than %d buckets; narrow the time range or count by day", ErrBadFilter, maxSeriesPoints)
				}
				cur, curEnd = bucketOf(t, iv, loc)
				desc = append(desc, TimeCount{Start: cur})
			}
			desc[len(desc)-1].Count++
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(desc)
	// The dense range: the filter's bounds where given, else the data's.
	var first, end time.Time
	switch {
	case !f.From.IsZero():
		first, _ = bucketOf(f.From, iv, loc)
	case len(desc) > 0:
		first = desc[0].Start
	default:
		return []TimeCount{}, nil
	}
	switch {
	case !f.To.IsZero():
		end = f.To
	case len(desc) > 0:
		_, end = bucketOf(desc[len(desc)-1].Start, iv, loc)
	default:
		end = first
	}
	width := time.Hour
	if iv == Daily {
		width = 24 * time.Hour
	}
	if n := end.Sub(first) / width; n > maxSeriesPoints {
		return nil, fmt.Errorf("%w: the time range spans about %d buckets, more than %d; narrow it or count by day", ErrBadFilter, n, maxSeriesPoints)
	}
	out := []TimeCount{}
	i := 0
	for b := first; b.Before(end); _, b = bucketOf(b, iv, loc) {
		tc := TimeCount{Start: b}
		for i < len(desc) && desc[i].Start.Before(b) {
			i++ // before From: cannot happen, but never loop on it
		}
		if i < len(desc) && desc[i].Start.Equal(b) {
			tc.Count = desc[i].Count
			i++
		}
		out = append(out, tc)
	}
	return out, nil
}

// bucketOf returns the bucket that holds t: [start, end).
func bucketOf(t time.Time, iv Interval, loc *time.Location) (start, end time.Time) {
	t = t.In(loc)
	if iv == Daily {
		y, m, d := t.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, loc), time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	}
	// Whole hours of absolute time, aligned to the zone's offset at t:
	// unlike time.Date, this keeps the two 01:00 hours of a daylight
	// saving change apart.
	_, offset := t.Zone()
	local := t.Unix() + int64(offset)
	start = time.Unix(local-local%3600-int64(offset), 0).In(loc)
	if local < 0 && local%3600 != 0 {
		start = start.Add(-time.Hour)
	}
	return start, start.Add(time.Hour)
}

// KeyCount is one value of a field and the number of events that had it.
type KeyCount struct {
	// Key is the value.
	Key string `json:"key"`
	// Count is the number of events with it.
	Count int64 `json:"count"`
	// Error is how much Count may overstate the true count; 0 when the
	// count is exact.
	Error int64 `json:"error,omitempty"`
}

// TopCounts is the most frequent values of a field among the events
// matching a filter, most frequent first (ties by value).
//
// Counting keeps at most topCapacity distinct values in memory. Beyond
// that it switches to the Space-Saving algorithm (Metwally, Agrawal, El
// Abbadi 2005): the least counted value is replaced by the new one, which
// inherits its count as Error. Every value with more than
// Total/topCapacity events is then still listed, and its Count overstates
// the truth by at most its Error. Approximate says whether that happened.
type TopCounts struct {
	// Items are the values with the most events, most first.
	Items []KeyCount `json:"items"`
	// Total is the number of matching events.
	Total int64 `json:"total"`
	// Missing is how many of them had no value for the field.
	Missing int64 `json:"missing"`
	// Approximate says counting ran out of exact memory (see above).
	Approximate bool `json:"approximate"`
}

// topCapacity is the number of distinct values an aggregation tracks
// exactly.
const topCapacity = 10_000

// CountByUser returns the n users with the most events matching f.
func (s *Store) CountByUser(ctx context.Context, f Filter, n int) (TopCounts, error) {
	return s.topBy(ctx, f, n, idxUser, func(ev *Event) string { return ev.User })
}

// CountByRiskLevel returns the number of events matching f per risk
// level.
func (s *Store) CountByRiskLevel(ctx context.Context, f Filter) (TopCounts, error) {
	return s.topBy(ctx, f, topCapacity, idxRisk, func(ev *Event) string { return ev.RiskLevel })
}

// TopPaths returns the n request paths with the most events matching f.
// Paths are counted as recorded, query string excluded.
func (s *Store) TopPaths(ctx context.Context, f Filter, n int) (TopCounts, error) {
	return s.topBy(ctx, f, n, -1, func(ev *Event) string { return ev.Path })
}

// topBy counts field over the matches of f, from index id when the filter
// allows it (id < 0: never).
func (s *Store) topBy(ctx context.Context, f Filter, n int, id indexID, field func(*Event) string) (TopCounts, error) {
	if n <= 0 {
		return TopCounts{}, fmt.Errorf("%w: the number of values must be positive", ErrBadFilter)
	}
	var out TopCounts
	err := s.viewIndexed(func(tx *bolt.Tx) error {
		if id >= 0 {
			done, err := topFromIndex(ctx, tx, &f, id, n, &out)
			if done || err != nil {
				return err
			}
		}
		c := newTopCounter(max(topCapacity, n))
		err := forEachMatch(ctx, tx, &f, true, nil, func(_ pos, ev *Event) error {
			out.Total++
			if v := field(ev); v != "" {
				c.add(v, 1, -1)
			} else {
				out.Missing++
			}
			return nil
		})
		out.Items = c.keyCounts(n)
		out.Approximate = c.evicted
		return err
	})
	if out.Items == nil {
		out.Items = []KeyCount{}
	}
	return out, err
}

// topFromIndex fills out from index id without reading events, when
// groupCounts can (and, for a partitioned index, when f is a time range):
// exact, with memory for n values. It reports false when it cannot.
func topFromIndex(ctx context.Context, tx *bolt.Tx, f *Filter, id indexID, n int, out *TopCounts) (bool, error) {
	if !indexes[id].partitioned {
		h := &keyCountHeap{}
		var sum int64
		total, ok, err := groupCounts(ctx, tx, f, id, func(v []byte, cnt int64) {
			sum += cnt
			heap.Push(h, KeyCount{Key: string(v), Count: cnt})
			if h.Len() > n {
				heap.Pop(h) // keep the n largest
			}
		})
		if !ok || err != nil {
			return ok, err
		}
		items := make([]KeyCount, h.Len())
		for i := len(items) - 1; i >= 0; i-- {
			items[i] = heap.Pop(h).(KeyCount)
		}
		*out = TopCounts{Items: items, Total: total, Missing: total - sum}
		return true, nil
	}
	if !f.timeOnly() {
		return false, nil
	}
	p, err := newPlan(tx, f)
	if err != nil || p.empty {
		return err == nil, err
	}
	total, err := countIndex(ctx, tx, idxTime, p.lo, p.hi, nil)
	if err != nil {
		return false, err
	}
	// A value's counts arrive once per day: add them up, in bounded
	// memory.
	c := newTopCounter(max(topCapacity, n))
	var sum int64
	cut := false
	_, err = countIndex(ctx, tx, id, p.lo, p.hi, func(v []byte, cnt int64) {
		if len(v) < 4 {
			return // not a key this package wrote
		}
		cut = cut || len(v) >= maxIndexedValue
		sum += cnt
		c.add(string(v[4:]), cnt, -1)
	})
	if err != nil || cut {
		return false, err
	}
	*out = TopCounts{Items: c.keyCounts(n), Total: total, Missing: total - sum, Approximate: c.evicted}
	return true, nil
}

// maxGroupValues bounds the values groupCounts intersects one by one.
const maxGroupValues = 256

// groupCounts counts the events matching f per value of the (not
// partitioned) index id without reading a single event, and returns their
// total: from the index alone when f is a time range; otherwise, when the
// indexes decide f exactly, by intersecting f's lists with each value's
// list in turn, which costs about the length of the shorter list per
// value. For a month of one workspace (20,000 events) that is some
// milliseconds, where decoding the events would take 200. fn gets each
// value with a count. It reports false, having called nothing, when it
// cannot: events must be read (an inexact plan, a value cut in the index,
// more than maxGroupValues values).
func groupCounts(ctx context.Context, tx *bolt.Tx, f *Filter, id indexID, fn func(v []byte, n int64)) (total int64, ok bool, err error) {
	if err := f.validate(); err != nil {
		return 0, false, err
	}
	p, err := newPlan(tx, f)
	if err != nil || p.empty {
		return 0, err == nil, err
	}
	type group struct {
		v []byte
		n int64
	}
	var groups []group
	cut := false
	collect := func(v []byte, n int64) {
		cut = cut || len(v) >= maxIndexedValue
		groups = append(groups, group{bytes.Clone(v), n})
	}
	switch {
	case f.timeOnly():
		if total, err = countIndex(ctx, tx, idxTime, p.lo, p.hi, nil); err != nil {
			return 0, false, err
		}
		if _, err = countIndex(ctx, tx, id, p.lo, p.hi, collect); err != nil {
			return 0, false, err
		}
	case p.exact:
		b, err := indexBucket(tx, id)
		if err != nil {
			return 0, false, err
		}
		prefixes, ok := distinctValues(b.Cursor(), nil, nil, maxGroupValues)
		if !ok {
			return 0, false, nil
		}
		if total, err = countWalk(ctx, p.walker(maxPos.next())); err != nil {
			return 0, false, err
		}
		for _, prefix := range prefixes {
			// Lists keep their place, so each value gets a fresh plan.
			q, err := newPlan(tx, f)
			if err != nil {
				return 0, false, err
			}
			q.its = append(q.its, &blockIter{c: b.Cursor(), prefix: prefix, lo: q.lo})
			n, err := countWalk(ctx, q.walker(maxPos.next()))
			if err != nil {
				return 0, false, err
			}
			if n > 0 {
				v, valid := unescape(prefix[:len(prefix)-1])
				if !valid {
					return 0, false, fmt.Errorf("index %s: bad value %x", indexes[id].bucket, prefix)
				}
				collect(v, n)
			}
		}
	default:
		return 0, false, nil
	}
	if cut {
		return 0, false, nil
	}
	for _, g := range groups {
		fn(g.v, g.n)
	}
	return total, true, nil
}

// countWalk counts the positions a walk finds.
func countWalk(ctx context.Context, w *walker) (int64, error) {
	var n int64
	for i := 0; ; i++ {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		if _, _, st := w.next(math.MaxInt); st == walkDone {
			return n, w.err()
		}
		n++
	}
}

// countIndex counts, per value of index id, the entries with positions in
// [lo, hi], calling fn (if not nil) for each value with a count, in key
// order (for a partitioned index, once per day and value, with the day in
// front of the value), and returns the total. It reads posting blocks only, never
// events: one seek per value, then the blocks in the range.
func countIndex(ctx context.Context, tx *bolt.Tx, id indexID, lo, hi pos, fn func(value []byte, count int64)) (int64, error) {
	b, err := indexBucket(tx, id)
	if err != nil {
		return 0, err
	}
	c := b.Cursor()
	var total int64
	var block []pos
	var scratch []byte
	k, _ := c.First()
	for n := 0; k != nil; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		if indexes[id].partitioned {
			// Skip the partitions outside [lo, hi].
			day, ok := keyDay(k)
			if !ok {
				k, _ = c.Next() // not a key this package wrote
				continue
			}
			if day > int64(hi.t/nsPerDay) {
				break
			}
			if loDay := int64(lo.t / nsPerDay); day < loDay {
				k, _ = c.Seek(appendEscaped(nil, dayValue(nil, loDay*nsPerDay)))
				continue
			}
		}
		var prefix []byte
		if !id.valueless() {
			var ok bool
			if prefix, ok = keyValuePrefix(k); !ok {
				k, _ = c.Next() // not a key this package wrote
				continue
			}
			prefix = bytes.Clone(prefix)
		}
		// From the block that holds lo (or the value's first) upwards.
		bk, bv, first, ok := seekBlock(c, prefix, lo, &scratch)
		if !ok {
			bk, bv = c.Seek(prefix)
			first, ok = blockKey(bk, prefix)
		}
		var count int64
		for ok && first.cmp(hi) <= 0 {
			if block, err = decodeBlock(block[:0], first, bv); err != nil {
				return 0, fmt.Errorf("index %s block %x: %w", indexes[id].bucket, bk, err)
			}
			for _, p := range block {
				if p.cmp(lo) >= 0 && p.cmp(hi) <= 0 {
					count++
				}
			}
			bk, bv = c.Next()
			first, ok = blockKey(bk, prefix)
		}
		if count > 0 && fn != nil {
			v, valid := unescape(prefix[:max(0, len(prefix)-1)])
			if !valid {
				return 0, fmt.Errorf("index %s: bad value %x", indexes[id].bucket, prefix)
			}
			fn(v, count)
		}
		total += count
		if id.valueless() {
			break
		}
		// On to the next value.
		k, _ = c.Seek(append(prefix[:len(prefix)-1:len(prefix)-1], 1))
	}
	return total, nil
}

// StatusClassCounts is the number of events per class of HTTP status.
type StatusClassCounts struct {
	// Informational counts 1xx statuses.
	Informational int64 `json:"1xx"`
	// Success counts 2xx statuses.
	Success int64 `json:"2xx"`
	// Redirection counts 3xx statuses.
	Redirection int64 `json:"3xx"`
	// ClientError counts 4xx statuses.
	ClientError int64 `json:"4xx"`
	// ServerError counts 5xx statuses.
	ServerError int64 `json:"5xx"`
	// Other counts events without a status (admin and lifecycle events,
	// requests that got no response) or with one outside 100-599.
	Other int64 `json:"other"`
}

func (c *StatusClassCounts) add(status int, n int64) {
	switch status / 100 {
	case 1:
		c.Informational += n
	case 2:
		c.Success += n
	case 3:
		c.Redirection += n
	case 4:
		c.ClientError += n
	case 5:
		c.ServerError += n
	default:
		c.Other += n
	}
}

// CountByStatusClass counts the events matching f per status class.
func (s *Store) CountByStatusClass(ctx context.Context, f Filter) (StatusClassCounts, error) {
	var out StatusClassCounts
	err := s.viewIndexed(func(tx *bolt.Tx) error {
		var sum int64
		total, ok, err := groupCounts(ctx, tx, &f, idxStatus, func(v []byte, n int64) {
			if len(v) == 2 {
				out.add(int(v[0])<<8|int(v[1]), n)
				sum += n
			}
		})
		if err != nil || ok {
			out.Other += total - sum // events without a status are not in the index
			return err
		}
		return forEachMatch(ctx, tx, &f, true, nil, func(_ pos, ev *Event) error {
			out.add(ev.Status, 1)
			return nil
		})
	})
	return out, err
}

// UserIPs is how many distinct client addresses one user came from.
type UserIPs struct {
	// User is the user.
	User string `json:"user"`
	// DistinctIPs is the number of different client addresses.
	DistinctIPs int `json:"distinct_ips"`
	// Events is the number of the user's matching events.
	Events int64 `json:"events"`
}

// DistinctIPs is the users with the most distinct client addresses among
// the events matching a filter, most first (ties by user).
//
// Distinct counting keeps at most maxUserIPPairs (user, address) pairs in
// memory; past that, pairs not yet seen are not added, Approximate is set,
// and DistinctIPs and Events are lower bounds for users first seen after.
type DistinctIPs struct {
	// Users are the users with the most distinct addresses, most first.
	Users []UserIPs `json:"users"`
	// Approximate says the pair budget ran out (see above).
	Approximate bool `json:"approximate"`
}

// maxUserIPPairs bounds the memory of DistinctIPsPerUser (about 100 bytes
// per pair).
const maxUserIPPairs = 1 << 18

// DistinctIPsPerUser returns the n users with the most distinct client
// addresses among the events matching f. Events without a user or an
// address are not counted.
func (s *Store) DistinctIPsPerUser(ctx context.Context, f Filter, n int) (DistinctIPs, error) {
	if n <= 0 {
		return DistinctIPs{}, fmt.Errorf("%w: the number of users must be positive", ErrBadFilter)
	}
	type userSet struct {
		ips    map[string]struct{}
		events int64
	}
	users := map[string]*userSet{}
	pairs := 0
	out := DistinctIPs{Users: []UserIPs{}}
	err := s.viewIndexed(func(tx *bolt.Tx) error {
		return forEachMatch(ctx, tx, &f, true, nil, func(_ pos, ev *Event) error {
			if ev.User == "" || ev.ClientIP == "" {
				return nil
			}
			u := users[ev.User]
			if u == nil {
				if pairs >= maxUserIPPairs {
					out.Approximate = true
					return nil
				}
				u = &userSet{ips: map[string]struct{}{}}
				users[ev.User] = u
			}
			u.events++
			if _, seen := u.ips[ev.ClientIP]; !seen {
				if pairs >= maxUserIPPairs {
					out.Approximate = true
					return nil
				}
				u.ips[ev.ClientIP] = struct{}{}
				pairs++
			}
			return nil
		})
	})
	if err != nil {
		return DistinctIPs{}, err
	}
	for user, u := range users {
		out.Users = append(out.Users, UserIPs{User: user, DistinctIPs: len(u.ips), Events: u.events})
	}
	slices.SortFunc(out.Users, func(a, b UserIPs) int {
		if c := cmp.Compare(b.DistinctIPs, a.DistinctIPs); c != 0 {
			return c
		}
		return cmp.Compare(a.User, b.User)
	})
	out.Users = out.Users[:min(n, len(out.Users))]
	return out, nil
}

// FailedAuthCount is one user's or address's failed authentications and
// authorizations.
type FailedAuthCount struct {
	// Key is the user or the client address.
	Key string `json:"key"`
	// Status401 counts 401 Unauthorized (authentication failed) and
	// Status403 403 Forbidden (authenticated, not allowed).
	Status401 int64 `json:"status_401"`
	Status403 int64 `json:"status_403"`
	// Error is how many of the key's failures may be missing from the two
	// counts when the report is approximate; 0 when they are exact.
	Error int64 `json:"error,omitempty"`
}

// FailedAuth is the failed-authentication report: the users and client
// addresses with the most 401 and 403 responses among the events matching
// a filter, most first, and the totals. Memory is bounded as for
// TopCounts; when Approximate, per-key counts are lower bounds and Error
// says how many failures may be missing from each. A failure without a
// user counts only by address, and one without an address only by user.
type FailedAuth struct {
	// ByUser lists the users with the most failures.
	ByUser []FailedAuthCount `json:"by_user"`
	// ByClientIP lists the client addresses with the most failures.
	ByClientIP []FailedAuthCount `json:"by_client_ip"`
	// Status401 and Status403 are the exact totals.
	Status401 int64 `json:"status_401"`
	Status403 int64 `json:"status_403"`
	// Approximate says more distinct users or addresses were seen than
	// are tracked exactly (see TopCounts).
	Approximate bool `json:"approximate"`
}

// FailedAuth counts the 401 and 403 responses among the events matching f
// by user and by client address, n of each. Only the events with those
// statuses are read (through the status index).
func (s *Store) FailedAuth(ctx context.Context, f Filter, n int) (FailedAuth, error) {
	if n <= 0 {
		return FailedAuth{}, fmt.Errorf("%w: the number of keys must be positive", ErrBadFilter)
	}
	byUser, byIP := newTopCounter(max(topCapacity, n)), newTopCounter(max(topCapacity, n))
	var out FailedAuth
	onlyFailures := func(tx *bolt.Tx, p *plan) error {
		b, err := indexBucket(tx, idxStatus)
		if err != nil {
			return err
		}
		u := &unionIter{}
		for _, status := range []int{401, 403} {
			u.parts = append(u.parts, &blockIter{c: b.Cursor(), prefix: valuePrefix(nil, idxStatus, statusValue(nil, status)), lo: p.lo})
		}
		p.its = append(p.its, u)
		return nil
	}
	err := s.viewIndexed(func(tx *bolt.Tx) error {
		return forEachMatch(ctx, tx, &f, true, onlyFailures, func(_ pos, ev *Event) error {
			var sub int
			switch ev.Status {
			case 401:
				out.Status401++
			case 403:
				out.Status403++
				sub = 1
			default:
				return nil
			}
			if ev.User != "" {
				byUser.add(ev.User, 1, sub)
			}
			if ev.ClientIP != "" {
				byIP.add(ev.ClientIP, 1, sub)
			}
			return nil
		})
	})
	if err != nil {
		return FailedAuth{}, err
	}
	list := func(c *topCounter) []FailedAuthCount {
		out := []FailedAuthCount{}
		for _, e := range c.top(n) {
			out = append(out, FailedAuthCount{Key: e.key, Status401: e.sub[0], Status403: e.sub[1], Error: e.err})
		}
		return out
	}
	out.ByUser, out.ByClientIP = list(byUser), list(byIP)
	out.Approximate = byUser.evicted || byIP.evicted
	return out, nil
}

// topCounter counts keys in bounded memory with Space-Saving (see
// TopCounts).
type topCounter struct {
	capacity int
	entries  map[string]*topEntry
	heap     topHeap
	evicted  bool
}

type topEntry struct {
	key        string
	count, err int64
	// sub splits count in two (failed-auth 401 and 403); counted since
	// the key was last (re)admitted.
	sub   [2]int64
	index int
}

func newTopCounter(capacity int) *topCounter {
	return &topCounter{capacity: capacity, entries: map[string]*topEntry{}}
}

// add counts n for key, and for sub-count sub when sub is 0 or 1.
func (c *topCounter) add(key string, n int64, sub int) {
	e := c.entries[key]
	switch {
	case e != nil:
		e.count += n
	case len(c.heap) < c.capacity:
		e = &topEntry{key: key, count: n}
		c.entries[key] = e
		heap.Push(&c.heap, e)
	default:
		// Replace the least counted key; the newcomer may have had up to
		// that many events before, uncounted.
		e = c.heap[0]
		delete(c.entries, e.key)
		c.evicted = true
		e.key, e.err, e.sub = key, e.count, [2]int64{}
		e.count += n
		c.entries[key] = e
	}
	if sub == 0 || sub == 1 {
		e.sub[sub] += n
	}
	heap.Fix(&c.heap, e.index)
}

// top returns the n most counted keys, most first, ties by key.
// keyCounts is top(n) as the result type.
func (c *topCounter) keyCounts(n int) []KeyCount {
	var items []KeyCount
	for _, e := range c.top(n) {
		items = append(items, KeyCount{Key: e.key, Count: e.count, Error: e.err})
	}
	return items
}

func (c *topCounter) top(n int) []*topEntry {
	all := slices.Clone(c.heap)
	slices.SortFunc(all, func(a, b *topEntry) int {
		if x := cmp.Compare(b.count, a.count); x != 0 {
			return x
		}
		return cmp.Compare(a.key, b.key)
	})
	return all[:min(n, len(all))]
}

// topHeap is a min-heap of entries by count.
type topHeap []*topEntry

func (h topHeap) Len() int           { return len(h) }
func (h topHeap) Less(i, j int) bool { return h[i].count < h[j].count }
func (h topHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *topHeap) Push(x any) {
	e := x.(*topEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *topHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// keyCountHeap keeps the n largest counts: a min-heap, ties broken so the
// greater key is dropped first.
type keyCountHeap []KeyCount

func (h keyCountHeap) Len() int { return len(h) }
func (h keyCountHeap) Less(i, j int) bool {
	if h[i].Count != h[j].Count {
		return h[i].Count < h[j].Count
	}
	return h[i].Key > h[j].Key
}
func (h keyCountHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *keyCountHeap) Push(x any)   { *h = append(*h, x.(KeyCount)) }
func (h *keyCountHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
