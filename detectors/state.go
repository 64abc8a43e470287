package detectors

import (
	"cmp"
	"slices"
)

// The engine's memory is made of the bounded structures in this file. All of
// them take event time in Unix nanoseconds and never look at the wall clock,
// so the same events always leave them in the same state.

// table is a map of per-key state with LRU eviction by event time: every
// access moves a key to the front and stamps it with the engine's watermark
// (the latest event time seen), so the list stays ordered by last use. Keys
// idle for longer than ttl are dropped from the back as time advances, and
// when the table holds max keys the least recently used one makes room.
type table[K comparable, V any] struct {
	m          map[K]*node[K, V]
	head, tail *node[K, V] // head is the most recently used
	free       *node[K, V] // evicted nodes kept for reuse (at most max)
	max        int
	ttl        int64
	onEvict    func(K, *V)
	evictions  uint64 // keys dropped because the table was full
}

type node[K comparable, V any] struct {
	key        K
	last       int64
	prev, next *node[K, V]
	val        V
}

func newTable[K comparable, V any](max int, ttl int64) *table[K, V] {
	if max <= 0 {
		max = 1
	}
	return &table[K, V]{m: make(map[K]*node[K, V]), max: max, ttl: ttl}
}

func (t *table[K, V]) len() int { return len(t.m) }

// peek returns the state for key without touching it, or nil.
func (t *table[K, V]) peek(key K) *V {
	if n := t.m[key]; n != nil {
		return &n.val
	}
	return nil
}

// get returns the state for key, marking it used at now, or nil.
func (t *table[K, V]) get(key K, now int64) *V {
	n := t.m[key]
	if n == nil {
		return nil
	}
	t.touch(n, now)
	return &n.val
}

// upsert returns the state for key, creating a zero one if needed.
func (t *table[K, V]) upsert(key K, now int64) *V {
	if n := t.m[key]; n != nil {
		t.touch(n, now)
		return &n.val
	}
	t.expire(now)
	for len(t.m) >= t.max && t.tail != nil {
		t.evictions++
		t.drop(t.tail)
	}
	n := t.free
	if n != nil {
		t.free = n.next
		*n = node[K, V]{}
	} else {
		n = new(node[K, V])
	}
	n.key, n.last = key, now
	t.m[key] = n
	t.pushFront(n)
	return &n.val
}

// expire drops the keys idle since before now-ttl.
func (t *table[K, V]) expire(now int64) {
	if t.ttl <= 0 {
		return
	}
	for t.tail != nil && t.tail.last < now-t.ttl {
		t.drop(t.tail)
	}
}

// remove drops key now.
func (t *table[K, V]) remove(key K) {
	if n := t.m[key]; n != nil {
		t.drop(n)
	}
}

// each visits every key from the most to the least recently used.
func (t *table[K, V]) each(f func(K, *V)) {
	for n := t.head; n != nil; n = n.next {
		f(n.key, &n.val)
	}
}

func (t *table[K, V]) touch(n *node[K, V], now int64) {
	if now > n.last {
		n.last = now
	}
	if t.head == n {
		return
	}
	t.unlink(n)
	t.pushFront(n)
}

func (t *table[K, V]) drop(n *node[K, V]) {
	if t.onEvict != nil {
		t.onEvict(n.key, &n.val)
	}
	t.unlink(n)
	delete(t.m, n.key)
	var zero V
	n.val = zero // release what the state points to
	n.next = t.free
	t.free = n
}

func (t *table[K, V]) unlink(n *node[K, V]) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		t.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		t.tail = n.prev
	}
	n.prev, n.next = nil, nil
}

func (t *table[K, V]) pushFront(n *node[K, V]) {
	n.next = t.head
	if t.head != nil {
		t.head.prev = n
	}
	t.head = n
	if t.tail == nil {
		t.tail = n
	}
}

// leaky is a CrowdSec leaky bucket kept in nanoseconds of content: every
// token is worth leak nanoseconds, time drains the content, and the bucket
// overflows when it would hold more than capacity tokens. Integer arithmetic
// keeps replays exact.
type leaky struct {
	fill int64
	last int64
}

// pour adds one token at now and reports an overflow, after which the bucket
// is empty again. State never goes back in time: an event older than the
// last one adds only what would be left of its token by now (nothing if it
// is a whole leak period late), which is exactly where the content would be
// had it arrived in order.
func (b *leaky) pour(now int64, c Bucket) bool {
	leak := int64(c.LeakSpeed)
	if c.Capacity < 0 || leak <= 0 {
		return false
	}
	add := b.late(now, leak)
	if add <= 0 {
		return false
	}
	b.fill += add
	if b.fill > int64(c.Capacity)*leak {
		b.fill = 0
		return true
	}
	return false
}

// late drains the bucket to now and returns what a token poured at now is
// still worth.
func (b *leaky) late(now, leak int64) int64 {
	b.drain(now, leak)
	if now < b.last {
		return leak - (b.last - now)
	}
	return leak
}

func (b *leaky) drain(now, leak int64) {
	if now > b.last {
		if leak > 0 {
			b.fill -= now - b.last
			if b.fill < 0 {
				b.fill = 0
			}
		}
		b.last = now
	}
}

// bucketFigures are the evidence figures of a bucket that overflowed: the
// count that overflowed it (capacity+1, under name), its capacity and its
// leak speed in seconds.
func bucketFigures(name string, b Bucket) map[string]float64 {
	return map[string]float64{name: float64(b.Capacity + 1), "capacity": float64(b.Capacity), "leak_s": seconds(b.LeakSpeed)}
}

// windowFigures are the evidence figures of a windowed count: what was
// counted (under name), the threshold and the window in seconds.
func windowFigures(name string, n, threshold int, window Duration) map[string]float64 {
	return map[string]float64{name: float64(n), "threshold": float64(threshold), "window_s": seconds(window)}
}

// tokens is how many tokens the bucket holds at now (rounded up).
func (b *leaky) tokens(now int64, c Bucket) int {
	leak := int64(c.LeakSpeed)
	if leak <= 0 {
		return 0
	}
	b.drain(now, leak)
	return int((b.fill + leak - 1) / leak)
}

// distinctLeaky is a leaky bucket with CrowdSec's distinct: an event whose
// value the bucket has already seen is not poured. The memory of values
// lives as long as the bucket holds anything, capped at capacity+1 values.
type distinctLeaky struct {
	leaky
	seen hashSet
}

func (b *distinctLeaky) pour(now int64, value uint64, c Bucket) (overflow, fresh bool) {
	leak := int64(c.LeakSpeed)
	if c.Capacity < 0 || leak <= 0 {
		return false, false
	}
	add := b.late(now, leak)
	if add <= 0 {
		return false, false
	}
	if b.fill == 0 {
		b.seen.reset()
	}
	if !b.seen.add(value) {
		return false, false
	}
	if b.seen.n > 4*(c.Capacity+1) {
		// A bucket that never empties (a slow, steady trickle) would
		// remember values forever; forgetting them bounds memory at the
		// cost of counting a repeat again.
		b.seen.reset()
		b.seen.add(value)
	}
	b.fill += add
	if b.fill > int64(c.Capacity)*leak {
		b.fill = 0
		b.seen.reset()
		return true, true
	}
	return false, true
}

// hashSet is an open-addressing set of non-zero 64-bit hashes.
type hashSet struct {
	slots []uint64
	n     int
}

func (s *hashSet) add(h uint64) bool {
	if len(s.slots) == 0 {
		s.slots = make([]uint64, 8)
	} else if (s.n+1)*4 > len(s.slots)*3 {
		s.grow()
	}
	mask := len(s.slots) - 1
	for i := int(h>>7) & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case 0:
			s.slots[i] = h
			s.n++
			return true
		case h:
			return false
		}
	}
}

func (s *hashSet) has(h uint64) bool {
	if len(s.slots) == 0 {
		return false
	}
	mask := len(s.slots) - 1
	for i := int(h>>7) & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case 0:
			return false
		case h:
			return true
		}
	}
}

func (s *hashSet) grow() {
	old := s.slots
	s.slots = make([]uint64, 2*len(old))
	s.n = 0
	for _, h := range old {
		if h != 0 {
			s.add(h)
		}
	}
}

// reset empties the set; small tables are kept for reuse, large ones are
// released so one heavy window does not pin memory.
func (s *hashSet) reset() {
	if len(s.slots) > 64 {
		s.slots = nil
	} else {
		clear(s.slots)
	}
	s.n = 0
}

// stamp is one remembered event: when, which event, and a value hash.
type stamp struct {
	t  int64
	id string
	h  uint64
}

// ring keeps the last limit stamps in arrival order, growing on demand so
// that quiet keys stay small.
type ring struct {
	buf      []stamp
	start, n int
}

func (r *ring) push(s stamp, limit int) {
	if limit <= 0 {
		return
	}
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = s
		r.n++
		return
	}
	if len(r.buf) < limit {
		nb := make([]stamp, min(limit, max(4, 2*len(r.buf))))
		for i := 0; i < r.n; i++ {
			nb[i] = r.buf[(r.start+i)%len(r.buf)]
		}
		r.buf, r.start = nb, 0
		r.buf[r.n] = s
		r.n++
		return
	}
	r.buf[r.start] = s // full: overwrite the oldest
	r.start = (r.start + 1) % len(r.buf)
}

func (r *ring) len() int { return r.n }

// at returns the i-th stamp, 0 being the oldest kept.
func (r *ring) at(i int) *stamp { return &r.buf[(r.start+i)%len(r.buf)] }

// since counts the stamps newer than cutoff, scanning from the newest.
func (r *ring) since(cutoff int64) int {
	c := 0
	for i := r.n - 1; i >= 0; i-- {
		if r.at(i).t <= cutoff {
			break
		}
		c++
	}
	return c
}

// ids appends the event ids of the newest k stamps, oldest first.
func (r *ring) ids(k int, dst []string) []string {
	for i := max(0, r.n-k); i < r.n; i++ {
		dst = append(dst, r.at(i).id)
	}
	return dst
}

// distinctHashes counts distinct value hashes among the newest k stamps.
func (r *ring) distinctHashes(k int) int {
	var seen hashSet
	for i := max(0, r.n-k); i < r.n; i++ {
		seen.add(r.at(i).h)
	}
	return seen.n
}

func (r *ring) reset() { r.start, r.n = 0, 0 }

// distinctWindow remembers up to limit distinct values seen within a sliding
// window, each with its latest time and event: "10 distinct users failing
// from one IP in 10 minutes".
type distinctWindow struct {
	e []stamp
}

// add records value h at now and returns how many distinct values fall
// within the window ending at now.
func (d *distinctWindow) add(now int64, h uint64, id string, window int64, limit int) int {
	cutoff := now - window
	kept := d.e[:0]
	found := false
	for _, s := range d.e {
		if s.h == h {
			if now > s.t {
				s.t, s.id = now, id
			}
			found = true
		}
		if s.t > cutoff {
			kept = append(kept, s)
		}
	}
	clear(d.e[len(kept):]) // drop references to old event ids
	d.e = kept
	if !found && limit > 0 {
		if len(d.e) >= limit {
			oldest := 0
			for i := range d.e {
				if d.e[i].t < d.e[oldest].t {
					oldest = i
				}
			}
			d.e = append(d.e[:oldest], d.e[oldest+1:]...)
		}
		d.e = append(d.e, stamp{t: now, id: id, h: h})
	}
	return len(d.e)
}

// ids appends the event ids of the remembered values, oldest first. It is
// called only when an alert opens, so it may allocate.
func (d *distinctWindow) ids(dst []string) []string {
	e := slices.Clone(d.e)
	slices.SortStableFunc(e, func(a, b stamp) int { return cmp.Compare(a.t, b.t) })
	for _, s := range e {
		dst = append(dst, s.id)
	}
	return dst
}
