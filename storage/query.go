package storage

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MaxPageSize bounds one page of results.
const MaxPageSize = 1000

// MaxScan bounds the work of one Query call: index seeks plus events read.
// A filter whose conditions the indexes cannot decide (Stage, or a
// combination that rarely co-occurs) may then return a short (even empty)
// page with a cursor; the caller keeps following cursors until there is
// none.
const MaxScan = 20000

// scanBudget is MaxScan; tests lower it to exercise short pages.
var scanBudget = MaxScan

// maxUnion bounds how many index values one condition may merge (a status
// class, a path prefix that ends inside a segment). Past it the condition
// is checked on decoded events instead.
const maxUnion = 64

// ErrBadFilter means a Filter field holds a value no event can have; the
// error says which.
var ErrBadFilter = errors.New("invalid filter")

// Filter selects events. Zero fields match everything; set fields must all
// match.
type Filter struct {
	// From and To bound the event time: From <= time < To. Times outside
	// 1970-2262 are treated as the nearest end of that range.
	From, To time.Time
	// User matches the event's user exactly.
	User string
	// ClientIP matches the event's client address exactly, in the form the
	// audit handler stores (netip.Addr.String).
	ClientIP string
	// Workspace matches the event's workspace exactly.
	Workspace string
	// Method matches ignoring ASCII case.
	Method string
	// Status matches the exact HTTP status (100-999).
	Status int
	// StatusClass matches a class of statuses: 2 for 2xx ... 5 for 5xx
	// (1 for 1xx).
	StatusClass int
	// PathPrefix matches events whose escaped path starts with it.
	PathPrefix string
	// Kind matches http, admin or lifecycle events.
	Kind string
	// Stage matches the stage of http events. It is not indexed: alone,
	// it is checked on events as they are read (see MaxScan).
	Stage string
	// RequestID matches the request id exactly.
	RequestID string
	// RiskLevel matches the risk level exactly (low, medium, high,
	// critical).
	RiskLevel string
	// Suspicious, when set, matches events whose suspicious flag equals it.
	Suspicious *bool
	// MinRisk matches events with a risk score of at least MinRisk (0-100).
	MinRisk int
}

// validate rejects values no event can have, so a typo is an error rather
// than an empty result.
func (f *Filter) validate() error {
	switch {
	case f.Status < 0 || f.Status > 999:
		return fmt.Errorf("%w: status %d is not an HTTP status code", ErrBadFilter, f.Status)
	case f.StatusClass < 0 || f.StatusClass > 5:
		return fmt.Errorf("%w: status class %d is not one of 1-5", ErrBadFilter, f.StatusClass)
	case f.MinRisk < 0 || f.MinRisk > 100:
		return fmt.Errorf("%w: minimum risk %d is outside 0-100", ErrBadFilter, f.MinRisk)
	}
	return nil
}

// match is the definition of the filter: the indexes only narrow down the
// events it is applied to.
func (f *Filter) match(ev *Event) bool {
	if !f.From.IsZero() || !f.To.IsZero() {
		ns := timeNS(ev.Time)
		if !f.From.IsZero() && ns < timeNS(f.From) || !f.To.IsZero() && ns >= timeNS(f.To) {
			return false
		}
	}
	return (f.User == "" || ev.User == f.User) &&
		(f.ClientIP == "" || ev.ClientIP == f.ClientIP) &&
		(f.Workspace == "" || ev.Workspace == f.Workspace) &&
		(f.Method == "" || equalFoldASCII(ev.Method, f.Method)) &&
		(f.Status == 0 || ev.Status == f.Status) &&
		(f.StatusClass == 0 || ev.Status >= 100*f.StatusClass && ev.Status < 100*f.StatusClass+100) &&
		(f.PathPrefix == "" || strings.HasPrefix(ev.Path, f.PathPrefix)) &&
		(f.Kind == "" || ev.Kind == f.Kind) &&
		(f.Stage == "" || ev.Stage == f.Stage) &&
		(f.RequestID == "" || ev.RequestID == f.RequestID) &&
		(f.RiskLevel == "" || ev.RiskLevel == f.RiskLevel) &&
		(f.Suspicious == nil || ev.Suspicious == *f.Suspicious) &&
		(f.MinRisk == 0 || ev.RiskScore >= f.MinRisk)
}

// timeOnly reports whether f constrains nothing but the time range.
func (f *Filter) timeOnly() bool {
	g := *f
	g.From, g.To = time.Time{}, time.Time{}
	return g == Filter{}
}

// Page is one page of a query, newest event first.
type Page struct {
	// Events are the matching events, newest first by event time (equal
	// times in the order they were stored, newest first).
	Events []Event
	// NextCursor fetches the next (older) page; empty once nothing older
	// is left. A page may be short, or empty, and still have a cursor.
	NextCursor string
}

// ErrBadCursor means a cursor was not produced by Query.
var ErrBadCursor = errors.New("invalid cursor")

// cursorV1 is the only cursor format: the version byte, then the position
// (time BE | seq BE) of the last event handed out, or of where the scan
// stopped, exclusive. A position is meaningful for every filter and stays
// valid while events are added or purged, which is what makes pages stable.
const cursorV1 = 1

func encodeCursor(after pos) string {
	return base64.RawURLEncoding.EncodeToString(after.append([]byte{cursorV1}))
}

func decodeCursor(cursor string) (pos, error) {
	c, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(c) != 1+suffixLen || c[0] != cursorV1 {
		return pos{}, ErrBadCursor
	}
	return posFrom(c[1:]), nil
}

// Query returns up to limit events matching f, newest first by event time,
// starting after cursor. Pages are cut at positions in the time order, so a
// cursor stays valid, and no event is returned twice or skipped, while new
// events are written.
func (s *Store) Query(f Filter, limit int, cursor string) (Page, error) {
	if limit <= 0 || limit > MaxPageSize {
		return Page{}, fmt.Errorf("limit must be between 1 and %d", MaxPageSize)
	}
	if err := f.validate(); err != nil {
		return Page{}, err
	}
	after := maxPos.next()
	if cursor != "" {
		var err error
		if after, err = decodeCursor(cursor); err != nil {
			return Page{}, err
		}
	}
	var page Page
	err := s.viewIndexed(func(tx *bolt.Tx) error {
		p, err := newPlan(tx, &f)
		if err != nil {
			return err
		}
		w := p.walker(after)
		events := tx.Bucket(bucketEvents)
		var last pos // position of the last event on the page
		for scanned := 0; ; {
			budget := scanBudget - scanned
			if scanned == 0 {
				// A full round of seeks guarantees progress: it either
				// finds a match or lowers the candidate.
				budget = max(budget, p.roundCost())
			}
			at, steps, st := w.next(budget)
			scanned += steps
			switch {
			case st == walkDone:
				return w.err()
			case st == walkBudget && len(page.Events) == limit:
				page.NextCursor = encodeCursor(last)
				return nil
			case st == walkBudget:
				// Nothing matches above w.target; resume there, inclusive.
				page.NextCursor = encodeCursor(w.target.next())
				return nil
			case len(page.Events) == limit && p.exact:
				// The indexes alone prove there is another page.
				page.NextCursor = encodeCursor(last)
				return nil
			}
			scanned++
			ev, err := loadEvent(events, at)
			if err != nil {
				return err
			}
			if ev == nil || !f.match(ev) {
				continue
			}
			if len(page.Events) == limit {
				page.NextCursor = encodeCursor(last)
				return nil
			}
			page.Events = append(page.Events, *ev)
			last = at
		}
	})
	return page, err
}

// loadEvent reads the event at a position; nil, nil when the event is gone
// (an index entry left behind is harmless).
func loadEvent(events *bolt.Bucket, at pos) (*Event, error) {
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], at.s)
	val := events.Get(key[:])
	if val == nil {
		return nil, nil
	}
	ev := new(Event)
	if err := decodeEvent(val, ev); err != nil {
		return nil, fmt.Errorf("decoding event seq %d: %w", at.s, err)
	}
	return ev, nil
}

// forEachMatch calls fn for every event matching f, newest first, within
// tx. When the plan answers f from the indexes alone and needEvent is
// false, events are not read and fn gets ev == nil. extra may add
// conditions to the plan; fn must check them on the events it gets.
func forEachMatch(ctx context.Context, tx *bolt.Tx, f *Filter, needEvent bool, extra func(*bolt.Tx, *plan) error, fn func(at pos, ev *Event) error) error {
	if err := f.validate(); err != nil {
		return err
	}
	p, err := newPlan(tx, f)
	if err != nil {
		return err
	}
	if extra != nil {
		if err := extra(tx, p); err != nil {
			return err
		}
	}
	w := p.walker(maxPos.next())
	events := tx.Bucket(bucketEvents)
	decode := needEvent || !p.exact
	for n := 0; ; n++ {
		// Check for cancellation now and then: a report over months of
		// traffic is the one reader that runs long.
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		at, _, st := w.next(math.MaxInt)
		if st == walkDone {
			return w.err()
		}
		if !decode {
			if err := fn(at, nil); err != nil {
				return err
			}
			continue
		}
		ev, err := loadEvent(events, at)
		if err != nil {
			return err
		}
		if ev == nil || !f.match(ev) {
			continue
		}
		if err := fn(at, ev); err != nil {
			return err
		}
	}
}

// A plan is how a filter is answered: the intersection of one posting
// list per indexed condition, walked newest first.
//
// Why intersect every indexed condition rather than pick the most
// selective index and check the rest on decoded events: bbolt keeps no
// statistics, so "most selective" would be a guess, and a wrong guess
// (user=alice AND client_ip=X, where alice is busy but X is rare) costs a
// decode per event of the wrong list. A leapfrog intersection (see next)
// costs O(k · min list size) seeks in the worst case and far less when the
// lists are clustered, never decodes an event that an index can rule out,
// and needs no estimates. An unselective condition (kind=http) adds one
// cheap step per result, most often within a block already decoded.
type plan struct {
	its []postings
	// lo and hi bound the positions wanted, both inclusive.
	lo, hi pos
	// exact means the posting lists decide every condition of the filter,
	// so a position they agree on is a match without reading the event.
	exact bool
	// empty means nothing can match.
	empty bool
}

// newPlan maps f onto the indexes.
func newPlan(tx *bolt.Tx, f *Filter) (*plan, error) {
	p := &plan{exact: true, hi: maxPos}
	if !f.From.IsZero() {
		p.lo = posOf(timeNS(f.From), 0)
	}
	if !f.To.IsZero() {
		var ok bool
		if p.hi, ok = posOf(timeNS(f.To), 0).prev(); !ok {
			p.empty = true
		}
	}
	if p.empty || p.hi.cmp(p.lo) < 0 {
		p.empty = true
		return p, nil
	}
	str := func(s string) []byte { return []byte(s) }
	// The order is a guess at selectivity, most selective first: each
	// round of the intersection starts with the first list.
	steps := []func() error{
		func() error { return p.valueIf(tx, f.RequestID != "", idxRequest, str(f.RequestID)) },
		func() error { return p.valueIf(tx, f.User != "", idxUser, str(f.User)) },
		func() error { return p.valueIf(tx, f.ClientIP != "", idxIP, str(f.ClientIP)) },
		func() error {
			if f.PathPrefix == "" {
				return nil
			}
			return p.pathPrefix(tx, f.PathPrefix)
		},
		func() error { return p.valueIf(tx, f.Workspace != "", idxWorkspace, str(f.Workspace)) },
		func() error {
			switch {
			case f.Status != 0 && f.StatusClass != 0 && f.Status/100 != f.StatusClass:
				p.empty = true
			case f.Status != 0:
				return p.value(tx, idxStatus, statusValue(nil, f.Status))
			case f.StatusClass != 0:
				return p.statusIn(tx, 100*f.StatusClass, 100*f.StatusClass+99)
			}
			return nil
		},
		func() error {
			if f.MinRisk <= 0 {
				return nil
			}
			from := appendEscaped(nil, []byte{scoreValue(f.MinRisk)})
			ok, err := p.union(tx, idxScore, from, nil)
			if err == nil && !ok {
				p.exact = false
			}
			return err
		},
		func() error {
			switch {
			case f.Suspicious == nil:
			case *f.Suspicious:
				return p.valueless(tx, idxSuspicious)
			default:
				p.exact = false
			}
			return nil
		},
		func() error { return p.valueIf(tx, f.RiskLevel != "", idxRisk, str(f.RiskLevel)) },
		func() error { return p.valueIf(tx, f.Method != "", idxMethod, appendUpperASCII(nil, f.Method)) },
		func() error { return p.valueIf(tx, f.Kind != "", idxKind, str(f.Kind)) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
		if p.empty {
			return p, nil
		}
	}
	if f.Stage != "" {
		p.exact = false
	}
	if len(p.its) == 0 {
		if err := p.valueless(tx, idxTime); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// roundCost is the budget one round of the intersection may need.
func (p *plan) roundCost() int {
	n := 0
	for _, it := range p.its {
		n += it.width()
	}
	return n
}

// valueIf adds the condition "index id holds v" when cond is true.
func (p *plan) valueIf(tx *bolt.Tx, cond bool, id indexID, v []byte) error {
	if !cond {
		return nil
	}
	return p.value(tx, id, v)
}

// value adds the condition "index id holds v".
func (p *plan) value(tx *bolt.Tx, id indexID, v []byte) error {
	b, err := indexBucket(tx, id)
	if err != nil {
		return err
	}
	if !indexes[id].partitioned {
		if len(v) > maxIndexedValue {
			p.exact = false // the index holds only the first bytes of v
		}
		p.its = append(p.its, &blockIter{c: b.Cursor(), prefix: valuePrefix(nil, id, v), lo: p.lo})
		return nil
	}
	if 4+len(v) > maxIndexedValue {
		p.exact = false
	}
	p.its = append(p.its, &partIter{
		id:    id,
		find:  b.Cursor(),
		block: blockIter{c: b.Cursor(), lo: p.lo},
		value: v,
		lo:    p.lo,
		day:   -1,
	})
	return nil
}

// valueless adds the condition "valueless index id holds the event".
func (p *plan) valueless(tx *bolt.Tx, id indexID) error {
	b, err := indexBucket(tx, id)
	if err != nil {
		return err
	}
	p.its = append(p.its, &blockIter{c: b.Cursor(), lo: p.lo})
	return nil
}

// union adds the condition "index id holds a value whose escaped form lies
// in [from, to)" (to nil: no upper end) as a merge of those values' lists.
// It adds nothing and reports false when more than maxUnion values qualify.
func (p *plan) union(tx *bolt.Tx, id indexID, from, to []byte) (bool, error) {
	b, err := indexBucket(tx, id)
	if err != nil {
		return false, err
	}
	prefixes, ok := distinctValues(b.Cursor(), from, to, maxUnion)
	if !ok {
		return false, nil
	}
	if len(prefixes) == 0 {
		p.empty = true
		return true, nil
	}
	u := &unionIter{parts: make([]*blockIter, len(prefixes))}
	for i, prefix := range prefixes {
		u.parts[i] = &blockIter{c: b.Cursor(), prefix: prefix, lo: p.lo}
	}
	p.its = append(p.its, u)
	return true, nil
}

// statusIn adds the condition "status in [lo, hi]".
func (p *plan) statusIn(tx *bolt.Tx, lo, hi int) error {
	from := appendEscaped(nil, statusValue(nil, lo))
	to := appendEscaped(nil, statusValue(nil, hi+1))
	ok, err := p.union(tx, idxStatus, from, to)
	if err == nil && !ok {
		// At most 100 statuses exist per class, a few dozen in practice;
		// past maxUnion the class is checked on the events.
		p.exact = false
	}
	return err
}

// pathPrefix adds the condition "path starts with prefix" using the index
// of first segments (up to the second slash) and of first two segments (up
// to the third):
//
//   - a prefix with a complete second segment ("/api/items/7") walks that
//     segment's list ("/api/items/") and checks the rest on the events;
//   - a prefix ending at a segment boundary ("/api/") walks that list and
//     is exact;
//   - a prefix ending inside a segment ("/api/it", "/ad") merges the lists
//     of every segment value that starts with it, exact, if there are at
//     most maxUnion of them; otherwise it falls back to the coarser list
//     ("/api/") or, inside the first segment, to checking events.
func (p *plan) pathPrefix(tx *bolt.Tx, prefix string) error {
	if len(prefix) > maxIndexedValue {
		p.exact = false
	}
	pre := cutValue([]byte(prefix))
	slashes := bytes.Count(pre, []byte{'/'})
	seg1, seg2 := pathSegments(string(pre))
	switch {
	case slashes >= 3:
		if len(seg2) != len(pre) {
			p.exact = false
		}
		return p.value(tx, idxPath2, []byte(seg2))
	case slashes == 2 && len(seg1) == len(pre):
		return p.value(tx, idxPath1, []byte(seg1))
	case slashes == 2:
		esc := appendEscaped(nil, pre)
		ok, err := p.union(tx, idxPath2, esc, prefixEnd(esc))
		if err != nil || ok {
			return err
		}
		p.exact = false
		return p.value(tx, idxPath1, []byte(seg1))
	default:
		esc := appendEscaped(nil, pre)
		ok, err := p.union(tx, idxPath1, esc, prefixEnd(esc))
		if err == nil && !ok {
			p.exact = false
		}
		return err
	}
}

// prefixEnd is the first key after every key that starts with prefix, or
// nil when there is none.
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// distinctValues returns the value prefixes (esc(value) | 0x00) of the
// index keys in [from, to), to nil meaning no upper end; ok is false when
// there are more than max. It costs one seek per value.
func distinctValues(c *bolt.Cursor, from, to []byte, max int) (prefixes [][]byte, ok bool) {
	k, _ := c.Seek(from)
	for k != nil && (to == nil || bytes.Compare(k, to) < 0) {
		vp, valid := keyValuePrefix(k)
		if !valid {
			k, _ = c.Next() // not a key this package wrote; skip it
			continue
		}
		if len(prefixes) == max {
			return nil, false
		}
		prefixes = append(prefixes, bytes.Clone(vp))
		// esc(v) | 0x01 sorts after every key of v and before any greater
		// value's keys, because escaped values never contain 0x00.
		next := append(bytes.Clone(vp[:len(vp)-1]), 1)
		k, _ = c.Seek(next)
	}
	return prefixes, true
}

// keyValuePrefix returns the esc(value) | 0x00 part of a valued index key.
func keyValuePrefix(k []byte) ([]byte, bool) {
	if len(k) < 1+suffixLen || k[len(k)-suffixLen-1] != 0 {
		return nil, false
	}
	return k[:len(k)-suffixLen], true
}

// walker returns the intersection walk of the plan, from its upper bound
// or from just below after (a cursor position), whichever is lower.
func (p *plan) walker(after pos) *walker {
	w := &walker{its: p.its, target: p.hi}
	a, ok := after.prev()
	switch {
	case p.empty || !ok:
		w.done = true
	case a.cmp(w.target) < 0:
		w.target = a
	}
	if w.target.cmp(p.lo) < 0 {
		w.done = true
	}
	return w
}

// postings is one condition's index entries, visited newest first.
type postings interface {
	// seekLE returns the greatest position <= target that satisfies the
	// condition; false if none does. Targets never increase from one call
	// to the next, which lets implementations keep their place.
	seekLE(target pos) (pos, bool)
	// err reports a corrupt index block met on the way.
	err() error
	// width is how many lists one seekLE may move, for the scan budget.
	width() int
}

// blockIter is the posting list of one index value, down to a lower bound.
type blockIter struct {
	c      *bolt.Cursor
	prefix []byte // esc(value) | 0x00; empty for valueless indexes
	lo     pos    // lowest position wanted
	key    []byte // seek key scratch
	block  []pos  // the decoded block under the cursor
	i      int    // the current answer, block[i]
	loaded bool
	done   bool
	failed error
}

func (it *blockIter) err() error { return it.failed }

func (it *blockIter) width() int { return 1 }

func (it *blockIter) seekLE(target pos) (pos, bool) {
	if it.done {
		return pos{}, false
	}
	if it.loaded {
		if it.block[it.i].cmp(target) <= 0 {
			return it.block[it.i], true
		}
		if it.block[0].cmp(target) <= 0 {
			it.i = searchLE(it.block[:it.i], target)
			return it.settle()
		}
		// Walking down a list, or intersecting with a dense one, mostly
		// wants the block just before: a step rather than a seek.
		k, v := it.c.Prev()
		if !it.load(k, v) {
			return pos{}, false
		}
		if it.block[0].cmp(target) <= 0 {
			it.i = searchLE(it.block, target)
			return it.settle()
		}
	}
	k, v, _, _ := seekBlock(it.c, it.prefix, target, &it.key)
	if !it.load(k, v) {
		return pos{}, false
	}
	it.i = searchLE(it.block, target)
	return it.settle()
}

// load decodes the block at k, or ends the list if k is not one of its
// blocks.
func (it *blockIter) load(k, v []byte) bool {
	first, ok := blockKey(k, it.prefix)
	if !ok {
		it.done, it.loaded = true, false
		return false
	}
	var err error
	if it.block, err = decodeBlock(it.block[:0], first, v); err != nil {
		it.failed = fmt.Errorf("index block %x: %w", k, err)
		it.done, it.loaded = true, false
		return false
	}
	it.loaded = true
	return true
}

// settle returns block[i], or ends the list if it is below lo.
func (it *blockIter) settle() (pos, bool) {
	if it.i < 0 || it.block[it.i].cmp(it.lo) < 0 {
		it.done, it.loaded = true, false
		return pos{}, false
	}
	return it.block[it.i], true
}

// searchLE returns the index of the greatest entry <= target, -1 if none.
func searchLE(block []pos, target pos) int {
	i, found := slices.BinarySearchFunc(block, target, pos.cmp)
	if found {
		return i
	}
	return i - 1
}

// partIter is the posting list of one value of a partitioned index: its
// lists in each day partition (see dayValue), newest day first.
// Partitions hold disjoint time ranges, so the list is their
// concatenation.
type partIter struct {
	id    indexID
	find  *bolt.Cursor // looks for partitions
	block blockIter    // the list in the current partition
	value []byte
	lo    pos
	day   int64 // the current partition; -1 before the first
	key   []byte
	done  bool
}

func (it *partIter) err() error { return it.block.failed }

// width is 1: a walk crosses each partition at most once, so partitions
// add to a query's cost once (a few seeks per day of history), not per
// step.
func (it *partIter) width() int { return 1 }

func (it *partIter) seekLE(target pos) (pos, bool) {
	loDay := int64(it.lo.t / nsPerDay)
	for !it.done {
		d := int64(target.t / nsPerDay)
		if it.day >= 0 {
			if q, ok := it.block.seekLE(target); ok {
				return q, true
			}
			if it.block.failed != nil {
				break
			}
			// Nothing left in this partition: on to older ones.
			d = min(d, it.day-1)
		}
		if d < loDay {
			break
		}
		// The newest partition at or below day d that has any key: the
		// one holding the last key before day d+1. A partition without
		// this value costs these two seeks and one more in the loop.
		it.key = appendEscaped(it.key[:0], dayValue(nil, (d+1)*nsPerDay))
		k, _ := it.find.Seek(it.key)
		if k == nil {
			k, _ = it.find.Last()
		} else {
			k, _ = it.find.Prev()
		}
		day, ok := keyDay(k)
		if !ok || day < loDay {
			break
		}
		it.day = day
		value := append(dayValue(nil, day*nsPerDay), it.value...)
		it.block = blockIter{c: it.block.c, prefix: valuePrefix(it.block.prefix[:0], it.id, value), lo: it.lo, block: it.block.block[:0]}
	}
	it.done = true
	return pos{}, false
}

// keyDay returns the partition of a request id index key.
func keyDay(k []byte) (int64, bool) {
	vp, ok := keyValuePrefix(k)
	if !ok {
		return 0, false
	}
	v, ok := unescape(vp[:len(vp)-1])
	if !ok || len(v) < 4 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint32(v)), true
}

// unionIter merges the lists of several values of one index.
type unionIter struct {
	parts []*blockIter
}

func (u *unionIter) seekLE(target pos) (pos, bool) {
	var best pos
	found := false
	for _, part := range u.parts {
		if q, ok := part.seekLE(target); ok && (!found || q.cmp(best) > 0) {
			best, found = q, true
		}
	}
	return best, found
}

func (u *unionIter) width() int { return len(u.parts) }

func (u *unionIter) err() error {
	for _, part := range u.parts {
		if part.failed != nil {
			return part.failed
		}
	}
	return nil
}

// walker intersects posting lists, newest first (a descending leapfrog
// join): each list in turn is asked for its greatest position at or below
// the current candidate; a lower answer becomes the new candidate; when
// every list has answered the candidate itself, it is in all of them.
type walker struct {
	its []postings
	// target is the greatest position not yet ruled out.
	target pos
	done   bool
}

type walkState int

const (
	walkFound  walkState = iota // the position is in every list
	walkDone                    // nothing left
	walkBudget                  // budget spent; resume at target
)

// next finds the next position in every list, spending at most budget
// list seeks, give or take one union (steps says how many it spent). When the budget runs out
// first it returns walkBudget, with target where to resume.
func (w *walker) next(budget int) (at pos, steps int, st walkState) {
	if w.done {
		return pos{}, 0, walkDone
	}
	t := w.target
	agree := 0
	for i := 0; ; i = (i + 1) % len(w.its) {
		if steps >= budget {
			// No position in (t, w.target] is in every list: each list
			// asked has none between its answer and the candidate before.
			w.target = t
			return pos{}, steps, walkBudget
		}
		k, ok := w.its[i].seekLE(t)
		steps += w.its[i].width()
		if !ok {
			w.done = true
			return pos{}, steps, walkDone
		}
		if k == t {
			agree++
		} else {
			t, agree = k, 1
		}
		if agree == len(w.its) {
			w.target, ok = t.prev()
			w.done = !ok
			return t, steps, walkFound
		}
	}
}

// err reports a corrupt index met by the walk.
func (w *walker) err() error {
	for _, it := range w.its {
		if err := it.err(); err != nil {
			return err
		}
	}
	return nil
}

// Get returns the event with the given sequence number.
func (s *Store) Get(seq uint64) (Event, error) {
	var ev Event
	err := s.view(func(tx *bolt.Tx) error {
		val := tx.Bucket(bucketEvents).Get(u64(seq))
		if val == nil {
			return ErrNotFound
		}
		return decodeEvent(val, &ev)
	})
	return ev, err
}
