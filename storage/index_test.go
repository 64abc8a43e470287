package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Value domains for random events and filters: small, so fields collide
// and combined filters match something, and nasty, so escaping, cut values,
// case folding and path segmentation are all exercised.
var (
	long1       = strings.Repeat("u", maxIndexedValue) + "1" // share the indexed prefix
	long2       = strings.Repeat("u", maxIndexedValue) + "2"
	propUsers   = []string{"", "alice", "bob", "a", "ab", "a\x00b", "a\x01", "a\x00", long1, long2}
	propIPs     = []string{"", "10.0.0.1", "10.0.0.2", "2001:db8::1"}
	propWS      = []string{"", "acme", "globex", "ws\x00", "acme\x01"}
	propMethods = []string{"", "GET", "get", "Post", "POST", "DELETE", "\u212a", "k"}
	propStatus  = []int{0, 101, 200, 201, 204, 301, 304, 400, 401, 403, 404, 500, 503, 99, 700}
	propPaths   = []string{"", "/", "/api", "/api/", "/api/items", "/api/items/", "/api/items/7",
		"/api/items/7/x", "/api/items/70", "/apix/y", "/admin/users/1", "/admin", "*", "a/b/c/d",
		"/" + strings.Repeat("p", 140) + "/x/y", "/p\x00q/r/s", "//", "///", "/api//x"}
	propPrefixes = []string{"/", "/a", "/ap", "/api", "/api/", "/api/i", "/api/items", "/api/items/",
		"/api/items/7", "/api/items/7/", "/api/items/7/x", "/ad", "/admin/", "a/", "a/b/c", "a/b/c/d/e",
		"/" + strings.Repeat("p", 130), "/" + strings.Repeat("p", 140) + "/x", "/p\x00", "//", "/api//", "/nope"}
	propKinds  = []string{"", KindHTTP, KindAdmin, KindLifecycle}
	propStages = []string{"", StageRequestReceived, StageResponseComplete}
	propLevels = []string{"", "low", "medium", "high", "critical"}
	propBase   = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
)

// openFast opens a temporary store that skips fsync: property tests
// commit thousands of small transactions and durability is not what they
// check.
func openFast(t testing.TB) *Store {
	s := openTemp(t, Options{})
	s.db.NoSync = true
	return s
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func propRequestID(r *rand.Rand) string {
	switch r.IntN(10) {
	case 0:
		return ""
	case 1:
		return strings.Repeat("r", 130) + fmt.Sprint(r.IntN(2))
	}
	return fmt.Sprintf("req-%d", r.IntN(40))
}

func propTime(r *rand.Rand) time.Time {
	switch r.IntN(50) {
	case 0:
		return time.Date(1960, 1, 1, 0, 0, r.IntN(3), 0, time.UTC) // clamps to 1970
	case 1:
		return time.Date(2300, 1, 1, 0, 0, r.IntN(3), 0, time.UTC) // clamps to 2262
	}
	// Five days, to the second: equal times are common, and request ids
	// spread over several day partitions.
	return propBase.Add(time.Duration(r.IntN(5*24*3600)) * time.Second)
}

func randomEvent(r *rand.Rand, i int) *Event {
	score := 5 * r.IntN(21)
	return &Event{
		ID:         fmt.Sprintf("e%05d", i),
		Time:       propTime(r),
		Kind:       pick(r, propKinds),
		Stage:      pick(r, propStages),
		RequestID:  propRequestID(r),
		Method:     pick(r, propMethods),
		Path:       pick(r, propPaths),
		Status:     pick(r, propStatus),
		ClientIP:   pick(r, propIPs),
		User:       pick(r, propUsers),
		Workspace:  pick(r, propWS),
		RiskScore:  score,
		RiskLevel:  pick(r, propLevels),
		Suspicious: r.IntN(4) == 0,
	}
}

func randomFilter(r *rand.Rand) Filter {
	var f Filter
	p := func() bool { return r.IntN(4) == 0 }
	if p() {
		f.From = propTime(r)
	}
	if p() {
		f.To = propTime(r)
	}
	if p() {
		f.User = pick(r, append(propUsers[1:], "nobody"))
	}
	if p() {
		f.ClientIP = pick(r, propIPs[1:])
	}
	if p() {
		f.Workspace = pick(r, propWS[1:])
	}
	if p() {
		f.Method = pick(r, append(propMethods[1:], "delete", "PUT"))
	}
	if p() {
		f.Status = pick(r, append(propStatus[1:], 402))
	}
	if p() {
		f.StatusClass = r.IntN(6)
	}
	if p() {
		f.PathPrefix = pick(r, propPrefixes)
	}
	if p() {
		f.Kind = pick(r, propKinds[1:])
	}
	if r.IntN(8) == 0 {
		f.Stage = pick(r, propStages[1:])
	}
	if p() {
		f.RequestID = propRequestID(r)
	}
	if p() {
		f.RiskLevel = pick(r, propLevels[1:])
	}
	if p() {
		b := r.IntN(2) == 0
		f.Suspicious = &b
	}
	if p() {
		f.MinRisk = r.IntN(101)
	}
	return f
}

// clampNS is the documented time semantics, written independently of
// timeNS: times outside 1970-2262 count as the nearest end.
func clampNS(t time.Time) int64 {
	if t.Year() < 1970 {
		return 0
	}
	if t.Year() > 2261 {
		return 1<<63 - 1
	}
	return t.UnixNano()
}

// bruteMatch is the filter's specification, independent of Filter.match.
func bruteMatch(f Filter, ev *Event) bool {
	ns := clampNS(ev.Time)
	if !f.From.IsZero() && ns < clampNS(f.From) || !f.To.IsZero() && ns >= clampNS(f.To) {
		return false
	}
	if f.Method != "" && asciiOnlyUpper(ev.Method) != asciiOnlyUpper(f.Method) {
		return false
	}
	if f.StatusClass != 0 && (ev.Status < f.StatusClass*100 || ev.Status > f.StatusClass*100+99) {
		return false
	}
	return (f.User == "" || f.User == ev.User) &&
		(f.ClientIP == "" || f.ClientIP == ev.ClientIP) &&
		(f.Workspace == "" || f.Workspace == ev.Workspace) &&
		(f.Status == 0 || f.Status == ev.Status) &&
		(f.PathPrefix == "" || strings.HasPrefix(ev.Path, f.PathPrefix)) &&
		(f.Kind == "" || f.Kind == ev.Kind) &&
		(f.Stage == "" || f.Stage == ev.Stage) &&
		(f.RequestID == "" || f.RequestID == ev.RequestID) &&
		(f.RiskLevel == "" || f.RiskLevel == ev.RiskLevel) &&
		(f.Suspicious == nil || *f.Suspicious == ev.Suspicious) &&
		ev.RiskScore >= f.MinRisk
}

// asciiOnlyUpper upper-cases ASCII letters and leaves every other byte.
func asciiOnlyUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

// bruteQuery is every stored event matching f, newest first.
func bruteQuery(all []*Event, f Filter) []string {
	var m []*Event
	for _, ev := range all {
		if bruteMatch(f, ev) {
			m = append(m, ev)
		}
	}
	slices.SortFunc(m, func(a, b *Event) int {
		if c := -cmpInt(clampNS(a.Time), clampNS(b.Time)); c != 0 {
			return c
		}
		return -cmpInt(int64(a.Seq), int64(b.Seq))
	})
	ids := make([]string, len(m))
	for i, ev := range m {
		ids[i] = ev.ID
	}
	return ids
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// appendRandomly stores evs in batches of random sizes, some of one event.
func appendRandomly(t testing.TB, r *rand.Rand, s *Store, evs []*Event) {
	t.Helper()
	for len(evs) > 0 {
		n := min(len(evs), 1+r.IntN(60))
		if err := s.Append(evs[:n]...); err != nil {
			t.Fatal(err)
		}
		evs = evs[n:]
	}
}

// queryAll follows cursors with random page sizes and returns the ids.
func queryAll(t testing.TB, r *rand.Rand, s *Store, f Filter) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 100000 {
			t.Fatalf("filter %+v: cursors do not make progress", f)
		}
		limit := 1 + r.IntN(40)
		page, err := s.Query(f, limit, cursor)
		if err != nil {
			t.Fatalf("filter %+v: %v", f, err)
		}
		if len(page.Events) > limit {
			t.Fatalf("page of %d events for limit %d", len(page.Events), limit)
		}
		for _, ev := range page.Events {
			ids = append(ids, ev.ID)
		}
		if page.NextCursor == "" {
			return ids
		}
		cursor = page.NextCursor
	}
}

func TestQueryMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	s := openFast(t)
	var all []*Event
	for i := range 3000 {
		all = append(all, randomEvent(r, i))
	}
	appendRandomly(t, r, s, all)
	checkIndexes(t, s)

	defer func(b int) { scanBudget = b }(scanBudget)
	for i := range 1500 / raceSlowdown {
		f := randomFilter(r)
		if f.validate() != nil {
			continue
		}
		// Now and then a tiny budget, so short pages and resumption in
		// the middle of an intersection are exercised too.
		scanBudget = MaxScan
		if i%5 == 0 {
			scanBudget = 1 + r.IntN(20)
		}
		want := bruteQuery(all, f)
		got := queryAll(t, r, s, f)
		if !slices.Equal(got, want) {
			t.Fatalf("filter %+v (budget %d):\n got %d events %v\nwant %d events %v", f, scanBudget, len(got), head(got), len(want), head(want))
		}
	}
}

func head(ids []string) []string { return ids[:min(len(ids), 12)] }

func TestQueryRejectsBadFilters(t *testing.T) {
	s := openTemp(t, Options{})
	for _, f := range []Filter{{Status: -1}, {Status: 1000}, {StatusClass: 6}, {StatusClass: -1}, {MinRisk: 101}, {MinRisk: -5}} {
		if _, err := s.Query(f, 10, ""); err == nil || !strings.Contains(err.Error(), "invalid filter") {
			t.Errorf("%+v: got %v, want ErrBadFilter", f, err)
		}
	}
	// Consistent Status and StatusClass are fine; inconsistent match nothing.
	if err := s.Append(&Event{Time: propBase, Status: 404}); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[Filter]int{{Status: 404, StatusClass: 4}: 1, {Status: 404, StatusClass: 5}: 0} {
		page, err := s.Query(f, 10, "")
		if err != nil || len(page.Events) != want {
			t.Errorf("%+v: %d events, %v; want %d", f, len(page.Events), err, want)
		}
	}
}

func TestPaginationWhileWritingRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 30 / raceSlowdown {
		s := openFast(t)
		var all []*Event
		for i := range 400 {
			all = append(all, randomEvent(r, i))
		}
		appendRandomly(t, r, s, all)
		f := randomFilter(r)
		if f.validate() != nil {
			continue
		}
		want := bruteQuery(all, f)
		seen := map[string]int{}
		var last *Event
		cursor := ""
		for next := 400; ; next++ {
			page, err := s.Query(f, 1+r.IntN(15), cursor)
			if err != nil {
				t.Fatal(err)
			}
			for i := range page.Events {
				ev := &page.Events[i]
				seen[ev.ID]++
				if !bruteMatch(f, ev) {
					t.Fatalf("round %d: event %s does not match %+v", round, ev.ID, f)
				}
				if last != nil && (clampNS(ev.Time) > clampNS(last.Time) || clampNS(ev.Time) == clampNS(last.Time) && ev.Seq > last.Seq) {
					t.Fatalf("round %d: %s after %s is not newest first", round, ev.ID, last.ID)
				}
				last = ev
			}
			// Writers keep going: newer, older and equal-time events.
			var more []*Event
			for range r.IntN(5) {
				more = append(more, randomEvent(r, 100000+next*10+len(more)))
			}
			if err := s.Append(more...); err != nil {
				t.Fatal(err)
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		for _, id := range want {
			if seen[id] != 1 {
				t.Fatalf("round %d, filter %+v: event %s seen %d times", round, f, id, seen[id])
			}
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("round %d: event %s seen %d times", round, id, n)
			}
		}
	}
}

func TestPurgeRemovesExactlyOldEventsOfWorkspace(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for round := range 12 / raceSlowdown {
		s := openFast(t)
		var all []*Event
		for i := range 1500 {
			all = append(all, randomEvent(r, i))
		}
		appendRandomly(t, r, s, all)
		ws := pick(r, propWS)
		cutoff := propTime(r)
		removed, err := s.Purge(context.Background(), cutoff, ws, 1+r.IntN(40))
		if err != nil {
			t.Fatal(err)
		}
		var keep []*Event
		gone := 0
		for _, ev := range all {
			if ev.Workspace == ws && clampNS(ev.Time) < clampNS(cutoff) {
				gone++
				if _, err := s.Get(ev.Seq); err == nil {
					t.Fatalf("round %d: event %s of %q at %v survived a purge before %v", round, ev.ID, ws, ev.Time, cutoff)
				}
				continue
			}
			keep = append(keep, ev)
			if _, err := s.Get(ev.Seq); err != nil {
				t.Fatalf("round %d: event %s (%q, %v) was removed by a purge of %q before %v", round, ev.ID, ev.Workspace, ev.Time, ws, cutoff)
			}
		}
		if removed != gone {
			t.Fatalf("round %d: Purge reported %d, removed %d", round, removed, gone)
		}
		checkIndexes(t, s)
		// Queries agree with what is left.
		for range 20 {
			f := randomFilter(r)
			if f.validate() != nil {
				continue
			}
			if got, want := queryAll(t, r, s, f), bruteQuery(keep, f); !slices.Equal(got, want) {
				t.Fatalf("after purge, filter %+v: got %v want %v", f, head(got), head(want))
			}
		}
		// Purging again removes nothing.
		if n, err := s.Purge(context.Background(), cutoff, ws, 0); n != 0 || err != nil {
			t.Fatalf("second purge: %d, %v", n, err)
		}
	}
}

func TestPurgeCallsTombstoneHookAndStopsOnCancel(t *testing.T) {
	s := openTemp(t, Options{})
	var evs []*Event
	for i := range 100 {
		evs = append(evs, &Event{ID: fmt.Sprint(i), Time: propBase.Add(time.Duration(i) * time.Minute), Workspace: "acme"})
	}
	if err := s.Append(evs...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := s.Purge(ctx, propBase.Add(time.Hour), "acme", 10); n != 0 || err == nil {
		t.Fatalf("cancelled purge: %d, %v", n, err)
	}
	n, err := s.Purge(context.Background(), propBase.Add(30*time.Minute), "acme", 7)
	if n != 30 || err != nil {
		t.Fatalf("purge: %d, %v; want 30", n, err)
	}
	if got := s.Count(); got != 70 {
		t.Fatalf("%d events left, want 70", got)
	}
	ws, err := s.EventWorkspaces()
	if err != nil || !slices.Equal(ws, []string{"acme"}) {
		t.Fatalf("EventWorkspaces() = %q, %v", ws, err)
	}
}

func TestPurgeDropsStaleIndexEntries(t *testing.T) {
	s := openTemp(t, Options{})
	ev := &Event{ID: "a", Time: propBase, Workspace: "acme", User: "alice"}
	if err := s.Append(ev); err != nil {
		t.Fatal(err)
	}
	// The event changes workspace behind the index's back (as a buggy
	// erasure might): the acme entry is stale and the event must survive.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		moved := *ev
		moved.Workspace = "globex"
		// Relink it, so the record is one the codec can write.
		if err := tx.Bucket(bucketChainLinks).Delete(u64(ev.Seq)); err != nil {
			return err
		}
		if err := chainEvent(tx, &moved); err != nil {
			return err
		}
		val, err := encodeEvent(&moved)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketEvents).Put(u64(ev.Seq), val)
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Purge(context.Background(), propBase.Add(time.Hour), "acme", 10); n != 0 || err != nil {
		t.Fatalf("purge: %d, %v", n, err)
	}
	if _, err := s.Get(ev.Seq); err != nil {
		t.Fatal("an event of another workspace was purged")
	}
	ws, _ := s.EventWorkspaces()
	if slices.Contains(ws, "acme") {
		t.Fatal("the stale acme entry is still indexed")
	}
}

func TestReindexAllRebuildsIdenticalIndexes(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	s := openFast(t)
	var all []*Event
	for i := range 2000 {
		all = append(all, randomEvent(r, i))
	}
	appendRandomly(t, r, s, all)
	if _, err := s.Purge(context.Background(), propBase.Add(48*time.Hour), "acme", 13); err != nil {
		t.Fatal(err)
	}
	before := indexContents(t, s)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		// Damage an index first: reindexAll must not depend on it.
		if err := tx.DeleteBucket(bucketUserIndex); err != nil {
			return err
		}
		return reindexAll(tx)
	}); err != nil {
		t.Fatal(err)
	}
	after := indexContents(t, s)
	for id := range numIndexes {
		if !slices.Equal(before[id], after[id]) {
			t.Errorf("index %s differs after reindexAll: %d entries before, %d after", indexes[id].bucket, len(before[id]), len(after[id]))
		}
	}
	checkIndexes(t, s)
}

// TestReindexSchema1Fixture opens the first released schema's fixture,
// as the migration will: reindexAll, then queries find every event.
func TestReindexSchema1Fixture(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "schema1.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.db")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("opening the schema-1 fixture: %v", err)
	}
	defer s.Close()
	if err := s.db.Update(reindexAll); err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, s)
	var all []*Event
	if err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
			ev := new(Event)
			if err := decodeEvent(v, ev); err != nil {
				return err
			}
			ev.Seq = binary.BigEndian.Uint64(k)
			all = append(all, ev)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 {
		t.Fatal("fixture has no events")
	}
	r := rand.New(rand.NewPCG(9, 9))
	if got, want := queryAll(t, r, s, Filter{}), bruteQuery(all, Filter{}); !slices.Equal(got, want) {
		t.Fatalf("fixture: got %v, want %v", head(got), head(want))
	}
}

// indexEntry is one decoded index entry: the value's key prefix and the
// position.
type indexEntry struct {
	prefix string
	at     pos
}

// indexContents decodes every block of every index, in key order.
func indexContents(t testing.TB, s *Store) [numIndexes][]indexEntry {
	t.Helper()
	var out [numIndexes][]indexEntry
	err := s.view(func(tx *bolt.Tx) error {
		for id := range numIndexes {
			b, err := indexBucket(tx, id)
			if err != nil {
				return err
			}
			var prevPrefix []byte
			var prevLast pos
			err = b.ForEach(func(k, v []byte) error {
				prefix := []byte{}
				if !id.valueless() {
					var ok bool
					if prefix, ok = keyValuePrefix(k); !ok {
						return fmt.Errorf("%s: key %x has no value terminator", indexes[id].bucket, k)
					}
				}
				first, ok := blockKey(k, prefix)
				if !ok {
					return fmt.Errorf("%s: bad key %x", indexes[id].bucket, k)
				}
				block, err := decodeBlock(nil, first, v)
				if err != nil {
					return fmt.Errorf("%s: block %x: %w", indexes[id].bucket, k, err)
				}
				if len(block) > maxBlockEntries {
					return fmt.Errorf("%s: block %x holds %d entries", indexes[id].bucket, k, len(block))
				}
				// Blocks of one value are disjoint and ordered.
				if bytes.Equal(prefix, prevPrefix) && prevLast.cmp(first) >= 0 {
					return fmt.Errorf("%s: block %x overlaps the one before", indexes[id].bucket, k)
				}
				prevPrefix, prevLast = bytes.Clone(prefix), block[len(block)-1]
				for _, p := range block {
					out[id] = append(out[id], indexEntry{string(prefix), p})
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkIndexes verifies the indexes hold exactly the entries the stored
// events call for: nothing dangling, nothing missing.
func checkIndexes(t testing.TB, s *Store) {
	t.Helper()
	var want [numIndexes][]indexEntry
	err := s.viewIndexed(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
			ev := new(Event)
			if err := decodeEvent(v, ev); err != nil {
				return err
			}
			ev.Seq = binary.BigEndian.Uint64(k)
			for id := range numIndexes {
				if raw, ok := indexValue(nil, id, ev, timeNS(ev.Time)); ok {
					want[id] = append(want[id], indexEntry{string(valuePrefix(nil, id, raw)), eventPos(ev)})
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	got := indexContents(t, s)
	for id := range numIndexes {
		slices.SortFunc(want[id], func(a, b indexEntry) int {
			if c := strings.Compare(a.prefix, b.prefix); c != 0 {
				return c
			}
			return a.at.cmp(b.at)
		})
		if !slices.Equal(got[id], want[id]) {
			t.Fatalf("index %s: %d entries, want %d (dangling or missing entries)", indexes[id].bucket, len(got[id]), len(want[id]))
		}
	}
}

func TestEscapingKeepsOrderAndPrefixes(t *testing.T) {
	vals := []string{"", "\x00", "\x00\x00", "\x01", "\x01\x00", "\x02", "a", "a\x00", "a\x00b", "a\x01", "a\x02", "ab", "b", "\xff", "\xff\x00"}
	for _, a := range vals {
		ea := appendEscaped(nil, []byte(a))
		if bytes.IndexByte(ea, 0) >= 0 {
			t.Fatalf("esc(%q) contains 0x00", a)
		}
		if back, ok := unescape(ea); !ok || string(back) != a {
			t.Fatalf("unescape(esc(%q)) = %q, %v", a, back, ok)
		}
		for _, b := range vals {
			eb := appendEscaped(nil, []byte(b))
			ka, kb := append(bytes.Clone(ea), 0), append(bytes.Clone(eb), 0)
			if bytes.Compare(ka, kb) != strings.Compare(a, b) {
				t.Errorf("order of %q and %q not kept", a, b)
			}
			if bytes.HasPrefix(eb, ea) != strings.HasPrefix(b, a) {
				t.Errorf("prefix relation of %q and %q not kept", a, b)
			}
		}
	}
	for _, bad := range [][]byte{{0}, {1}, {1, 3}, {'a', 1}} {
		if _, ok := unescape(bad); ok {
			t.Errorf("unescape(%x) accepted", bad)
		}
	}
}

func TestPathSegments(t *testing.T) {
	for _, tt := range []struct{ path, seg1, seg2 string }{
		{"", "", ""},
		{"/", "/", "/"},
		{"/login", "/login", "/login"},
		{"/api/", "/api/", "/api/"},
		{"/api/items", "/api/", "/api/items"},
		{"/api/items/", "/api/", "/api/items/"},
		{"/api/items/7/x", "/api/", "/api/items/"},
		{"a/b/c/d", "a/b/", "a/b/c/"},
		{"//", "//", "//"},
	} {
		if s1, s2 := pathSegments(tt.path); s1 != tt.seg1 || s2 != tt.seg2 {
			t.Errorf("pathSegments(%q) = %q, %q; want %q, %q", tt.path, s1, s2, tt.seg1, tt.seg2)
		}
	}
}

func TestBlocksRoundTripAndRejectCorruption(t *testing.T) {
	entries := []pos{{5, 9}, {5, 10}, {7, 3}, {1 << 62, 1}, {1 << 62, 1 << 63}}
	val := appendBlock(nil, entries)
	got, err := decodeBlock(nil, entries[0], val)
	if err != nil || !slices.Equal(got, entries) {
		t.Fatalf("round trip: %v, %v", got, err)
	}
	for _, bad := range [][]byte{{0x80}, {0, 0}, {1}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
		if _, err := decodeBlock(nil, entries[0], bad); err == nil {
			t.Errorf("corrupt block %x decoded", bad)
		}
	}
	if got := mergePositions([]pos{{1, 1}, {3, 3}}, []pos{{2, 2}, {3, 3}, {4, 4}}); !slices.Equal(got, []pos{{1, 1}, {2, 2}, {3, 3}, {4, 4}}) {
		t.Errorf("merge: %v", got)
	}
	if got := subtractPositions([]pos{{1, 1}, {2, 2}, {3, 3}}, []pos{{0, 0}, {2, 2}, {9, 9}}); !slices.Equal(got, []pos{{1, 1}, {3, 3}}) {
		t.Errorf("subtract: %v", got)
	}
}

func TestPositionWrapping(t *testing.T) {
	if _, ok := (pos{}).prev(); ok {
		t.Error("the first position has a predecessor")
	}
	if p, _ := (pos{1, 0}).prev(); p != (pos{0, ^uint64(0)}) {
		t.Errorf("prev wraps wrong: %v", p)
	}
	if p := (pos{0, ^uint64(0)}).next(); p != (pos{1, 0}) {
		t.Errorf("next wraps wrong: %v", p)
	}
}

func TestLargeBatchesSplitBlocks(t *testing.T) {
	// Thousands of events of one user, in one batch and then out of
	// order: blocks split, late events land in old blocks.
	s := openFast(t)
	r := rand.New(rand.NewPCG(11, 12))
	var all []*Event
	for i := range 5000 {
		all = append(all, &Event{ID: fmt.Sprint(i), User: "u", Time: propBase.Add(time.Duration(r.IntN(100000)) * time.Second), RequestID: "same"})
	}
	if err := s.Append(all[:4000]...); err != nil {
		t.Fatal(err)
	}
	for _, ev := range all[4000:] {
		if err := s.Append(ev); err != nil {
			t.Fatal(err)
		}
	}
	checkIndexes(t, s)
	for _, f := range []Filter{{User: "u"}, {RequestID: "same", From: propBase.Add(time.Hour)}} {
		if got, want := queryAll(t, r, s, f), bruteQuery(all, f); !slices.Equal(got, want) {
			t.Fatalf("%+v: got %d, want %d", f, len(got), len(want))
		}
	}
}

func FuzzQueryFilter(f *testing.F) {
	s := openFast(f)
	r := rand.New(rand.NewPCG(13, 14))
	var all []*Event
	for i := range 300 {
		all = append(all, randomEvent(r, i))
	}
	appendRandomly(f, r, s, all)
	f.Add("", "alice", "/api/", "GET", 200, 2, 0, int64(0), int64(0), 10)
	f.Add("AQAAAAAAAAAAAAAAAAAAAAE", "", "/", "", 0, 0, 50, int64(-1), int64(1<<62), 1)
	f.Add("AX__________________________", "a\x00b", "/p\x00", "k", 99, 5, 100, propBase.UnixNano(), propBase.UnixNano(), 1000)
	f.Fuzz(func(t *testing.T, cursor, user, prefix, method string, status, class, minRisk int, from, to int64, limit int) {
		// Mostly valid numbers, so inputs get past validation (which
		// TestQueryRejectsBadFilters covers) into planning and walking.
		if limit%8 != 0 {
			limit = 1 + int(uint(limit)%MaxPageSize)
			status = int(uint(status) % 1000)
			class = int(uint(class) % 6)
			minRisk = int(uint(minRisk) % 101)
		}
		fl := Filter{User: user, PathPrefix: prefix, Method: method, Status: status, StatusClass: class, MinRisk: minRisk, RequestID: user, Workspace: method}
		if from != 0 {
			fl.From = time.Unix(0, from)
		}
		if to != 0 {
			fl.To = time.Unix(0, to)
		}
		page, err := s.Query(fl, limit, cursor)
		if err != nil {
			return // rejected input is fine; a panic is not
		}
		if len(page.Events) > limit {
			t.Fatalf("page of %d for limit %d", len(page.Events), limit)
		}
		for i := range page.Events {
			if !bruteMatch(fl, &page.Events[i]) {
				t.Fatalf("event %s does not match %+v", page.Events[i].ID, fl)
			}
		}
	})
}
