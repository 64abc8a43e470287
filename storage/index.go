package storage

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Secondary indexes.
//
// Every index is one bucket. An event's place in an index is its position:
// its time (int64 nanoseconds) and sequence number, which order events the
// way queries return them (newest first by event time) and which a query
// cursor names. An index maps each value of its field (a user, a status) to
// the sorted positions of the events that have it, stored as posting
// blocks:
//
//	esc(value) | 0x00 | first position (time BE | seq BE)  ->  block
//
// where the block holds up to maxBlockEntries positions in ascending order,
// the first being the one in the key and the rest delta-encoded in the
// value. "Valueless" indexes (the time index itself, and the set of
// suspicious events) have no value part in their keys.
//
// Why blocks rather than one bbolt key per event and index: with a dozen
// indexes, a key per entry made each event cost a dozen B+tree inserts,
// and bbolt spent more time on them than on everything else (about 30k
// events/s on the benchmark machine). Blocks let a batch of events touch
// each (index, value) once: the batch's positions are grouped per value
// and that value's newest block is rewritten; Append defers the entries
// so that one batch spans thousands of events (index_deferred.go). They
// are also 5-10x
// smaller on disk, since a position delta-encodes to a few bytes where a
// key cost ~45. A query decodes a block (128 varint pairs) when it enters
// it, which is cheap next to decoding an event.
//
// A block's key names its first position, so the blocks of one value are
// ordered, disjoint ranges, and the block that may hold a position is the
// one with the greatest key at or below it: one seek. A key with an empty
// value is a block of one entry, which is also how a schema-1 time index
// entry (time | seq -> nil) reads.
//
// esc escapes 0x00 as 0x01 0x01 and 0x01 as 0x01 0x02, which keeps three
// properties the planner relies on: the 0x00 terminator cannot occur inside
// a value, so one value's range never holds another's keys; byte order of
// the escaped values is the byte order of the values; and esc(p) is a prefix
// of esc(v) exactly when p is a prefix of v, so "all values starting with p"
// is one key range (path prefixes, status classes).
//
// Values are cut to maxIndexedValue bytes so an 8 KiB attack URL does not
// make an 8 KiB key; a query on a longer value walks the cut value and the
// decoded event is checked against the full filter.
//
// Empty values are not indexed (a filter field left empty means "any"),
// except the workspace: retention purges events without a workspace too,
// and must find them without walking every other workspace's events.
var (
	bucketTimeIndex       = []byte("idx_time")
	bucketRequestIndex    = []byte("idx_request_id")
	bucketUserIndex       = []byte("idx_user")
	bucketIPIndex         = []byte("idx_client_ip")
	bucketWorkspaceIndex  = []byte("idx_workspace")
	bucketStatusIndex     = []byte("idx_status")
	bucketMethodIndex     = []byte("idx_method")
	bucketKindIndex       = []byte("idx_kind")
	bucketPath1Index      = []byte("idx_path1")
	bucketPath2Index      = []byte("idx_path2")
	bucketRiskIndex       = []byte("idx_risk_level")
	bucketScoreIndex      = []byte("idx_risk_score")
	bucketSuspiciousIndex = []byte("idx_suspicious")
)

// maxIndexedValue bounds the bytes of a value that go into an index key.
const maxIndexedValue = 128

// maxBlockEntries bounds the positions in one posting block: about 1 KiB
// encoded, so a block rewrite stays small and a page holds several.
const maxBlockEntries = 128

// indexFillPercent is how full bbolt packs index pages when it splits them.
// Blocks are appended in key order within each value, so a page left of the
// insertion point is rarely written again, and bbolt's default of 50% would
// leave half of every such page empty for good. Not 100%, so a late event
// does not split a full page for one entry.
const indexFillPercent = 0.9

// suffixLen is the length of the position part of every index key.
const suffixLen = 16

// pos is an event's position in the indexes: event time in nanoseconds
// since 1970 (clamped to int64, so never negative) and sequence number.
type pos struct{ t, s uint64 }

func posOf(ns int64, seq uint64) pos { return pos{uint64(ns), seq} }

func posFrom(b []byte) pos {
	return pos{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:16])}
}

func (p pos) append(dst []byte) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(dst, p.t), p.s)
}

func (p pos) cmp(q pos) int {
	if c := cmp.Compare(p.t, q.t); c != 0 {
		return c
	}
	return cmp.Compare(p.s, q.s)
}

// prev returns the position just before p; false if p is the first.
func (p pos) prev() (pos, bool) {
	switch {
	case p.s > 0:
		return pos{p.t, p.s - 1}, true
	case p.t > 0:
		return pos{p.t - 1, ^uint64(0)}, true
	}
	return pos{}, false
}

// next returns the position just after p (p itself at the very end).
func (p pos) next() pos {
	switch {
	case p.s < ^uint64(0):
		return pos{p.t, p.s + 1}
	case p.t < ^uint64(0):
		return pos{p.t + 1, 0}
	}
	return p
}

// time returns the event time a position holds.
func (p pos) time() time.Time { return time.Unix(0, int64(p.t)).UTC() }

// maxPos is the greatest position an event can have.
var maxPos = pos{1<<63 - 1, ^uint64(0)}

// indexID names one index; the order of the constants is the order of
// the indexes table.
type indexID int

const (
	idxTime indexID = iota
	idxRequest
	idxUser
	idxIP
	idxWorkspace
	idxStatus
	idxMethod
	idxKind
	idxPath1
	idxPath2
	idxRisk
	idxScore
	idxSuspicious
	numIndexes
)

// indexDef describes one index.
type indexDef struct {
	bucket []byte
	// value appends ev's raw (unescaped, uncut) value in this index to dst;
	// ok is false when ev is not in the index. Valueless indexes append
	// nothing.
	value func(ev *Event, dst []byte) (v []byte, ok bool)
	// partitioned indexes put the event's day in front of the value (see
	// dayValue).
	partitioned bool
	// single indexes keep one position per block, so a block key is a
	// whole entry: writes are blind puts and deletes, with no read of the
	// block before. For request ids, which are (nearly) unique, blocks
	// would hold one position anyway, and the read was a third of the
	// index work.
	single bool
}

var indexes = [numIndexes]indexDef{
	idxTime:      {bucket: bucketTimeIndex, value: func(ev *Event, dst []byte) ([]byte, bool) { return dst, true }},
	idxRequest:   {bucket: bucketRequestIndex, partitioned: true, single: true, value: stringValue(func(ev *Event) string { return ev.RequestID })},
	idxUser:      {bucket: bucketUserIndex, partitioned: true, value: stringValue(func(ev *Event) string { return ev.User })},
	idxIP:        {bucket: bucketIPIndex, partitioned: true, value: stringValue(func(ev *Event) string { return ev.ClientIP })},
	idxWorkspace: {bucket: bucketWorkspaceIndex, value: func(ev *Event, dst []byte) ([]byte, bool) { return append(dst, ev.Workspace...), true }},
	idxStatus: {bucket: bucketStatusIndex, value: func(ev *Event, dst []byte) ([]byte, bool) {
		if ev.Status < 1 || ev.Status > 0xffff {
			return dst, false
		}
		return statusValue(dst, ev.Status), true
	}},
	idxMethod: {bucket: bucketMethodIndex, value: func(ev *Event, dst []byte) ([]byte, bool) {
		if ev.Method == "" {
			return dst, false
		}
		return appendUpperASCII(dst, ev.Method), true
	}},
	idxKind: {bucket: bucketKindIndex, value: stringValue(func(ev *Event) string { return ev.Kind })},
	idxPath1: {bucket: bucketPath1Index, value: func(ev *Event, dst []byte) ([]byte, bool) {
		if ev.Path == "" {
			return dst, false
		}
		seg1, _ := pathSegments(ev.Path)
		return append(dst, seg1...), true
	}},
	idxPath2: {bucket: bucketPath2Index, value: func(ev *Event, dst []byte) ([]byte, bool) {
		seg1, seg2 := pathSegments(ev.Path)
		if len(seg2) == len(seg1) {
			return dst, false // short path: path1 already holds all of it
		}
		return append(dst, seg2...), true
	}},
	idxRisk: {bucket: bucketRiskIndex, value: stringValue(func(ev *Event) string { return ev.RiskLevel })},
	idxScore: {bucket: bucketScoreIndex, value: func(ev *Event, dst []byte) ([]byte, bool) {
		if ev.RiskScore <= 0 {
			return dst, false // MinRisk 0 matches everything, so score 0 never needs the index
		}
		return append(dst, scoreValue(ev.RiskScore)), true
	}},
	// Only the suspicious events: Suspicious=false matches ~90% of
	// traffic, which the time index serves as well as an index would.
	idxSuspicious: {bucket: bucketSuspiciousIndex, value: func(ev *Event, dst []byte) ([]byte, bool) { return dst, ev.Suspicious }},
}

// indexValue appends ev's value in index id, as the index keys it (with
// the day in front for a partitioned index) but not yet cut; ok is false
// when ev is not in the index.
func indexValue(dst []byte, id indexID, ev *Event, ns int64) ([]byte, bool) {
	def := &indexes[id]
	if !def.partitioned {
		return def.value(ev, dst)
	}
	n := len(dst)
	v, ok := def.value(ev, dayValue(dst, ns))
	if !ok {
		return dst[:n], false
	}
	return v, true
}

// valueless reports whether an index keys on positions alone.
func (id indexID) valueless() bool { return id == idxTime || id == idxSuspicious }

// indexBuckets are the secondary indexes.
var indexBuckets = func() [][]byte {
	names := make([][]byte, numIndexes)
	for i := range indexes {
		names[i] = indexes[i].bucket
	}
	return names
}()

func stringValue(field func(*Event) string) func(*Event, []byte) ([]byte, bool) {
	return func(ev *Event, dst []byte) ([]byte, bool) {
		v := field(ev)
		return append(dst, v...), v != ""
	}
}

// nsPerDay is the length of an index partition.
const nsPerDay = 24 * 60 * 60 * 1e9

// dayValue appends the partition of a time: its UTC day number, 4 bytes
// big endian.
//
// Request ids, users and client addresses have many values each, and a
// batch of events touches the newest block of each of its values: in a
// plain value-major index those blocks are spread over the whole bucket,
// so a batch rewrote about one page per distinct value (request ids from
// a load balancer are random: one page per event), and commits spent more
// time writing index pages than events. With the day in front, the newest
// blocks of all values sit together in today's partition, a few dozen
// pages. A lookup pays one or two seeks per day of history it crosses
// (see partIter); the low-cardinality indexes are not partitioned because
// their few newest blocks cluster anyway and status-class and prefix
// queries merge their values.
func dayValue(dst []byte, ns int64) []byte {
	return binary.BigEndian.AppendUint32(dst, uint32(ns/nsPerDay))
}

// statusValue is the 2-byte big-endian form of a status, so statuses sort
// numerically and a status class is a contiguous range.
func statusValue(dst []byte, status int) []byte {
	return append(dst, byte(status>>8), byte(status))
}

// scoreValue is a risk score as one byte, so MinRisk is a contiguous range
// of values. Scores run 0-100; anything above 255 counts as 255.
func scoreValue(score int) byte {
	if score > 0xff {
		return 0xff
	}
	return byte(score)
}

// appendUpperASCII upper-cases ASCII letters only: HTTP methods are ASCII
// tokens, and Unicode case folding would let the index and the filter
// disagree on strings such as the Kelvin sign.
func appendUpperASCII(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// equalFoldASCII is the method comparison that matches the method index.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x >= 'a' && x <= 'z' {
			x -= 'a' - 'A'
		}
		if y >= 'a' && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// pathSegments returns the path up to and including its second and third
// slash (for "/api/items/7": "/api/" and "/api/items/"); each is the whole
// path when it has fewer slashes. The first two segments are what people
// filter on (an application area, a resource type); ids and deeper segments
// are checked on the decoded event.
func pathSegments(p string) (seg1, seg2 string) {
	seg1, seg2 = p, p
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		n++
		if n == 2 {
			seg1 = p[:i+1]
		} else if n == 3 {
			seg2 = p[:i+1]
			break
		}
	}
	return seg1, seg2
}

// cutValue bounds an index value to maxIndexedValue bytes.
func cutValue(v []byte) []byte {
	if len(v) > maxIndexedValue {
		return v[:maxIndexedValue]
	}
	return v
}

// appendEscaped appends esc(v): see the layout comment above.
func appendEscaped(dst, v []byte) []byte {
	for _, c := range v {
		switch c {
		case 0:
			dst = append(dst, 1, 1)
		case 1:
			dst = append(dst, 1, 2)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// unescape reverses appendEscaped. It reports false on bytes appendEscaped
// cannot produce.
func unescape(e []byte) ([]byte, bool) {
	if bytes.IndexByte(e, 1) < 0 {
		return e, bytes.IndexByte(e, 0) < 0
	}
	out := make([]byte, 0, len(e))
	for i := 0; i < len(e); i++ {
		switch c := e[i]; c {
		case 0:
			return nil, false
		case 1:
			if i+1 == len(e) || e[i+1] != 1 && e[i+1] != 2 {
				return nil, false
			}
			out = append(out, e[i+1]-1)
			i++
		default:
			out = append(out, c)
		}
	}
	return out, true
}

// valuePrefix is the key prefix shared by every block of one value:
// esc(cut(v)) | 0x00. Valueless indexes use the empty prefix.
func valuePrefix(dst []byte, id indexID, v []byte) []byte {
	if id.valueless() {
		return dst
	}
	return append(appendEscaped(dst, cutValue(v)), 0)
}

// timeNS is a time as the indexes order it: nanoseconds since 1970,
// clamped to what an int64 holds (UnixNano would wrap around outside
// 1970-2262).
func timeNS(t time.Time) int64 {
	switch {
	case t.Before(minIndexTime):
		return 0
	case t.After(maxIndexTime):
		return maxIndexTime.UnixNano()
	}
	return t.UnixNano()
}

// eventPos is ev's position in the indexes.
func eventPos(ev *Event) pos { return posOf(timeNS(ev.Time), ev.Seq) }

// Posting blocks.

// appendBlock encodes the positions after the first (which the key holds)
// as deltas: uvarint time delta (never negative: positions are sorted),
// then zigzag varint sequence delta (sequence numbers go down when a late
// event sorts before an earlier-written one).
func appendBlock(dst []byte, entries []pos) []byte {
	for i := 1; i < len(entries); i++ {
		dst = binary.AppendUvarint(dst, entries[i].t-entries[i-1].t)
		dst = binary.AppendVarint(dst, int64(entries[i].s-entries[i-1].s))
	}
	return dst
}

var errBadBlock = errors.New("corrupt index block")

// decodeBlock appends the positions of the block with key position first
// and value val to dst.
func decodeBlock(dst []pos, first pos, val []byte) ([]pos, error) {
	dst = append(dst, first)
	prev := first
	for len(val) > 0 {
		dt, n := binary.Uvarint(val)
		if n <= 0 {
			return dst, errBadBlock
		}
		val = val[n:]
		ds, n := binary.Varint(val)
		if n <= 0 {
			return dst, errBadBlock
		}
		val = val[n:]
		p := pos{prev.t + dt, prev.s + uint64(ds)}
		if p.cmp(prev) <= 0 || len(dst) > 4*maxBlockEntries {
			return dst, errBadBlock
		}
		dst = append(dst, p)
		prev = p
	}
	return dst, nil
}

// blockKey returns the position in a block key under prefix; false if k is
// not such a key.
func blockKey(k, prefix []byte) (pos, bool) {
	if len(k) != len(prefix)+suffixLen || !bytes.HasPrefix(k, prefix) {
		return pos{}, false
	}
	return posFrom(k[len(prefix):]), true
}

// seekBlock moves c to the block of prefix with the greatest first position
// at or below p (the block that holds p, if any block does). scratch is
// reused for the seek key.
func seekBlock(c *bolt.Cursor, prefix []byte, p pos, scratch *[]byte) (k, v []byte, first pos, ok bool) {
	key := p.append(append((*scratch)[:0], prefix...))
	*scratch = key
	k, v = c.Seek(key)
	if k == nil {
		k, v = c.Last()
	} else if !bytes.Equal(k, key) {
		k, v = c.Prev()
	}
	first, ok = blockKey(k, prefix)
	return k, v, first, ok
}

// Index writes are collected per transaction and applied per (index,
// value), so a batch of events rewrites each value's newest block once.

// valueOps is what a batch does to one value's list.
type valueOps struct {
	value    string
	add, del []pos
	// first backs add while it holds one position, which for request ids
	// is nearly always: no allocation per event.
	first [1]pos
}

// indexBatch collects index changes in one write transaction.
type indexBatch struct {
	tx  *bolt.Tx
	ops [numIndexes]map[string]*valueOps
	// puts and dels are the entry keys of single indexes, carved from
	// keyArena.
	puts, dels [numIndexes][][]byte
	keyArena   []byte
	// last is the value each index saw last, and its changes: most events
	// share their kind, risk level, method... with the one before.
	last [numIndexes]*valueOps
	// slab hands out valueOps a chunk at a time; slabSize is the size of
	// the last chunk, doubled for the next (see nextChunk).
	slab     []valueOps
	slabSize int
	// arena backs the block values written: bbolt keeps a reference to
	// every value until the commit, so they cannot share a buffer that is
	// reused, but they can be carved from a few large ones.
	arena []byte
	key   []byte // block key scratch (bbolt copies keys)
	// entries is the scratch a block is decoded into and merged in; the
	// encoded block is copied into arena, so one serves every value.
	entries []pos
	// values backs the event records and chain links of the batch, for
	// the same reason as arena: one allocation per 256 KiB instead of two
	// per event. Append's batches reuse one across transactions
	// (deferredIndex.collector).
	values []byte
}

// carve returns n bytes that stay valid until the transaction ends.
func (b *indexBatch) carve(n int) []byte {
	if cap(b.values)-len(b.values) < n {
		b.values = nextChunk(cap(b.values), n, 256<<10)
	}
	start := len(b.values)
	b.values = b.values[:start+n]
	return b.values[start : start+n : start+n]
}

// nextChunk returns an empty buffer with room for at least n bytes, to
// follow a full one of capacity prev. Chunks start small and double up to
// limit: the writer commits a few dozen events per transaction under
// moderate load, and a fixed limit-sized first chunk made every such
// transaction allocate (and zero) some 450 KiB across its arenas, which
// the garbage collector then paid for on every core.
func nextChunk(prev, n, limit int) []byte {
	return make([]byte, 0, max(min(max(2*prev, 4<<10), limit), n))
}

// openBatches holds the batch open in each write transaction, so that
// indexEvent and unindexEvent (called per event from putEvent, purge,
// erasure) add to it when there is one.
var openBatches sync.Map // *bolt.Tx -> *indexBatch

// beginIndexBatch starts collecting index changes made in tx. The caller
// must call flush before the transaction commits, and end in any case.
func beginIndexBatch(tx *bolt.Tx) *indexBatch {
	b := &indexBatch{tx: tx}
	openBatches.Store(tx, b)
	return b
}

// end stops collecting; changes not flushed are dropped (the transaction
// is being rolled back).
func (b *indexBatch) end() { openBatches.CompareAndDelete(b.tx, b) }

// batchFor returns the batch open in tx, or a one-off batch and true when
// there is none (the caller then flushes it at once).
func batchFor(tx *bolt.Tx) (b *indexBatch, oneOff bool) {
	if v, ok := openBatches.Load(tx); ok {
		return v.(*indexBatch), false
	}
	return &indexBatch{tx: tx}, true
}

// indexEvent adds ev to every index. ev.Seq must be assigned.
func indexEvent(tx *bolt.Tx, ev *Event) error {
	b, oneOff := batchFor(tx)
	b.collect(ev, false)
	if oneOff {
		return b.flush()
	}
	return nil
}

// unindexEvent removes ev from every index (retention, erasure). ev must
// have the field values it was indexed with: the entries are found by
// them. Removing an entry that is not there is not an error. Within one
// batch, removals are applied before additions, so an erasure that
// re-indexes a changed event must not do both to the same event in one
// batch.
func unindexEvent(tx *bolt.Tx, ev *Event) error {
	b, oneOff := batchFor(tx)
	b.collect(ev, true)
	if oneOff {
		return b.flush()
	}
	return nil
}

func (b *indexBatch) collect(ev *Event, del bool) {
	p := eventPos(ev)
	var scratch [maxIndexedValue + 32]byte
	for id := range numIndexes {
		v, ok := indexValue(scratch[:0], id, ev, int64(p.t))
		if !ok {
			continue
		}
		if indexes[id].single {
			key := b.entryKey(id, v, p)
			if del {
				b.dels[id] = append(b.dels[id], key)
			} else {
				b.puts[id] = append(b.puts[id], key)
			}
			continue
		}
		o := b.list(id, v)
		if del {
			o.del = append(o.del, p)
		} else {
			o.add = append(o.add, p)
		}
	}
}

// list returns the pending changes to value v of index id.
func (b *indexBatch) list(id indexID, v []byte) *valueOps {
	v = cutValue(v)
	if last := b.last[id]; last != nil && last.value == string(v) {
		return last
	}
	m := b.ops[id]
	if m == nil {
		m = make(map[string]*valueOps)
		b.ops[id] = m
	}
	o := m[string(v)]
	if o == nil {
		if len(b.slab) == 0 {
			b.slabSize = min(max(2*b.slabSize, 32), 1024)
			b.slab = make([]valueOps, b.slabSize)
		}
		o = &b.slab[0]
		b.slab = b.slab[1:]
		o.value = string(v)
		o.add = o.first[:0]
		m[o.value] = o
	}
	b.last[id] = o
	return o
}

// entryKey returns the key of value v's block holding p alone.
func (b *indexBatch) entryKey(id indexID, v []byte, p pos) []byte {
	if need := 2*maxIndexedValue + 1 + suffixLen; cap(b.keyArena)-len(b.keyArena) < need {
		b.keyArena = nextChunk(cap(b.keyArena), need, 64<<10)
	}
	start := len(b.keyArena)
	b.keyArena = p.append(valuePrefix(b.keyArena, id, v))
	return b.keyArena[start:len(b.keyArena):len(b.keyArena)]
}

// drop removes one entry from one value's list.
func (b *indexBatch) drop(id indexID, v []byte, p pos) {
	if indexes[id].single {
		b.dels[id] = append(b.dels[id], b.entryKey(id, v, p))
		return
	}
	o := b.list(id, v)
	o.del = append(o.del, p)
}

// flush writes the collected changes and empties the batch.
func (b *indexBatch) flush() error {
	if err := b.write(); err != nil {
		return err
	}
	b.reset()
	return nil
}

// reset empties the batch.
func (b *indexBatch) reset() {
	b.ops, b.last, b.puts, b.dels = [numIndexes]map[string]*valueOps{}, [numIndexes]*valueOps{}, [numIndexes][][]byte{}, [numIndexes][][]byte{}
}

// write writes the collected changes into b.tx and keeps them, so that
// they can be written again if that transaction rolls back.
func (b *indexBatch) write() error {
	for id := range numIndexes {
		if len(b.puts[id])+len(b.dels[id]) > 0 {
			if err := b.flushSingle(id); err != nil {
				return fmt.Errorf("index %s: %w", indexes[id].bucket, err)
			}
		}
		m := b.ops[id]
		if len(m) == 0 {
			continue
		}
		bk, err := indexBucket(b.tx, id)
		if err != nil {
			return err
		}
		// FillPercent lives on the per-transaction bucket handle, so it is
		// set on every use; it only matters when pages split at commit.
		bk.FillPercent = indexFillPercent
		c := bk.Cursor()
		// In key order, so consecutive writes land on neighbouring pages.
		values := make([]string, 0, len(m))
		for v := range m {
			values = append(values, v)
		}
		slices.Sort(values)
		var prefix, scratch []byte
		for _, v := range values {
			o := m[v]
			prefix = valuePrefix(prefix[:0], id, []byte(v))
			if len(o.del) > 0 {
				slices.SortFunc(o.del, pos.cmp)
				if err := b.remove(bk, c, prefix, o.del, &scratch); err != nil {
					return fmt.Errorf("index %s: %w", indexes[id].bucket, err)
				}
			}
			if len(o.add) > 0 {
				slices.SortFunc(o.add, pos.cmp)
				if err := b.insert(bk, c, prefix, o.add, &scratch); err != nil {
					return fmt.Errorf("index %s: %w", indexes[id].bucket, err)
				}
			}
		}
	}
	return nil
}

// flushSingle writes the entries of a single index: deletions first, as
// for the others.
func (b *indexBatch) flushSingle(id indexID) error {
	bk, err := indexBucket(b.tx, id)
	if err != nil {
		return err
	}
	bk.FillPercent = indexFillPercent
	for _, k := range b.dels[id] {
		if err := bk.Delete(k); err != nil {
			return err
		}
	}
	// In key order: consecutive puts then descend to the same or the
	// next leaf, which is in cache.
	slices.SortFunc(b.puts[id], bytes.Compare)
	for _, k := range b.puts[id] {
		if err := bk.Put(k, nil); err != nil {
			return err
		}
	}
	return nil
}

// insert merges sorted positions into the blocks of one value.
func (b *indexBatch) insert(bk *bolt.Bucket, c *bolt.Cursor, prefix []byte, adds []pos, scratch *[]byte) error {
	entries := b.entries
	defer func() { b.entries = entries[:0] }()
	for len(adds) > 0 {
		// The block that takes adds[0] is the one at or below it or, when
		// adds[0] is older than all of the value's blocks, the first one.
		// One seek finds both it and the block after it, whose first
		// position bounds what goes into this one. (The common cases are
		// appending to a value's newest block and starting a new value.)
		key := adds[0].append(append((*scratch)[:0], prefix...))
		*scratch = key
		var blockK, blockV []byte
		var first, limit pos
		hasBlock, hasLimit := false, false
		k, v := c.Seek(key)
		if bytes.Equal(k, key) {
			blockK, blockV, first, hasBlock = k, v, adds[0], true
			if nk, _ := c.Next(); nk != nil {
				limit, hasLimit = blockKey(nk, prefix)
			}
		} else {
			next, nextOK := blockKey(k, prefix)
			var pk, pv []byte
			if k == nil {
				pk, pv = c.Last()
			} else {
				pk, pv = c.Prev()
			}
			if first, hasBlock = blockKey(pk, prefix); hasBlock {
				blockK, blockV = pk, pv
				limit, hasLimit = next, nextOK
			} else if nextOK {
				// Older than every block of the value: into the first.
				blockK, blockV, first, hasBlock = k, v, next, true
				c.Seek(blockK)
				if nk, _ := c.Next(); nk != nil {
					limit, hasLimit = blockKey(nk, prefix)
				}
			}
		}
		entries = entries[:0]
		var oldKey []byte
		n := len(adds) // how many of adds go into this block
		if hasBlock {
			var err error
			if entries, err = decodeBlock(entries, first, blockV); err != nil {
				return fmt.Errorf("block %x: %w", blockK, err)
			}
			oldKey = bytes.Clone(blockK)
			if hasLimit {
				n, _ = slices.BinarySearchFunc(adds, limit, pos.cmp)
			}
		}
		entries = mergePositions(entries, adds[:n])
		if err := b.writeBlocks(bk, prefix, oldKey, entries); err != nil {
			return err
		}
		adds = adds[n:]
	}
	return nil
}

// remove deletes sorted positions from the blocks of one value.
func (b *indexBatch) remove(bk *bolt.Bucket, c *bolt.Cursor, prefix []byte, dels []pos, scratch *[]byte) error {
	entries := b.entries
	defer func() { b.entries = entries[:0] }()
	for len(dels) > 0 {
		k, v, first, ok := seekBlock(c, prefix, dels[0], scratch)
		if !ok {
			dels = dels[1:] // older than every block: not indexed
			continue
		}
		var err error
		if entries, err = decodeBlock(entries[:0], first, v); err != nil {
			return err
		}
		oldKey := bytes.Clone(k)
		n := len(dels)
		if nk, _ := c.Next(); nk != nil {
			if limit, ok := blockKey(nk, prefix); ok {
				n, _ = slices.BinarySearchFunc(dels, limit, pos.cmp)
			}
		}
		entries = subtractPositions(entries, dels[:n])
		if err := b.writeBlocks(bk, prefix, oldKey, entries); err != nil {
			return err
		}
		dels = dels[n:]
	}
	return nil
}

// writeBlocks replaces the block at oldKey (nil: none) with entries, cut
// into blocks of maxBlockEntries. Cutting from the oldest end leaves full
// blocks behind and a partial one at the newest end, where the next batch
// appends.
func (b *indexBatch) writeBlocks(bk *bolt.Bucket, prefix, oldKey []byte, entries []pos) error {
	if oldKey != nil && (len(entries) == 0 || !bytes.Equal(oldKey[len(prefix):], entries[0].append(nil))) {
		if err := bk.Delete(oldKey); err != nil {
			return err
		}
	}
	for len(entries) > 0 {
		n := min(len(entries), maxBlockEntries)
		b.key = entries[0].append(append(b.key[:0], prefix...))
		if err := bk.Put(b.key, b.encode(entries[:n])); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// encode encodes a block into the arena: bbolt keeps a reference to every
// value until the commit (keys it copies).
func (b *indexBatch) encode(entries []pos) []byte {
	if len(entries) < 2 {
		return nil
	}
	// Two varints per position, at most 10 bytes each.
	if need := 20 * (len(entries) - 1); cap(b.arena)-len(b.arena) < need {
		b.arena = nextChunk(cap(b.arena), need, 64<<10)
	}
	start := len(b.arena)
	b.arena = appendBlock(b.arena, entries)
	return b.arena[start:len(b.arena):len(b.arena)]
}

// mergePositions merges sorted adds into sorted entries, dropping
// duplicates.
func mergePositions(entries, adds []pos) []pos {
	if len(entries) == 0 || entries[len(entries)-1].cmp(adds[0]) < 0 {
		// The usual case: everything new is newer than what is stored.
		entries = append(entries, adds[0])
		for _, p := range adds[1:] {
			if p != entries[len(entries)-1] {
				entries = append(entries, p)
			}
		}
		return entries
	}
	out := make([]pos, 0, len(entries)+len(adds))
	i, j := 0, 0
	for i < len(entries) || j < len(adds) {
		var p pos
		switch {
		case j == len(adds) || i < len(entries) && entries[i].cmp(adds[j]) <= 0:
			p = entries[i]
			i++
		default:
			p = adds[j]
			j++
		}
		if len(out) == 0 || out[len(out)-1] != p {
			out = append(out, p)
		}
	}
	return out
}

// subtractPositions removes sorted dels from sorted entries, in place.
func subtractPositions(entries, dels []pos) []pos {
	out := entries[:0]
	j := 0
	for _, p := range entries {
		for j < len(dels) && dels[j].cmp(p) < 0 {
			j++
		}
		if j < len(dels) && dels[j] == p {
			continue
		}
		out = append(out, p)
	}
	return out
}

// indexBucket returns an index's bucket in tx, or an error naming it when
// the file lacks it (a schema the migration did not bring up to date).
func indexBucket(tx *bolt.Tx, id indexID) (*bolt.Bucket, error) {
	b := tx.Bucket(indexes[id].bucket)
	if b == nil {
		return nil, fmt.Errorf("audit database has no index bucket %s; the schema migration did not run", indexes[id].bucket)
	}
	return b, nil
}

// reindexBatch bounds the events whose index entries reindexAll holds in
// memory before writing them.
const reindexBatch = 100_000

// reindexAll rebuilds every index from the events bucket, in tx. The schema
// migration calls it when the index layout changes. All index pages of the
// file are rewritten in this one transaction, so bbolt holds them in memory
// until the commit: in the order of 100 bytes per event.
func reindexAll(tx *bolt.Tx) error {
	for _, name := range indexBuckets {
		if tx.Bucket(name) != nil {
			if err := tx.DeleteBucket(name); err != nil {
				return fmt.Errorf("dropping index %s: %w", name, err)
			}
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("creating index %s: %w", name, err)
		}
	}
	if err := indexStored(&indexBatch{tx: tx}, tx, 0, true); err != nil {
		return fmt.Errorf("reindexing: %w", err)
	}
	return tx.Bucket(bucketMeta).Put(keyIndexedThrough, u64(tx.Bucket(bucketEvents).Sequence()))
}
