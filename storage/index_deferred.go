package storage

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Deferred indexing.
//
// Append commits an event's record and chain link at once, so it is
// durable when Append returns, but its index entries wait in memory and
// are written for many commits together. Why: an index entry is a rewrite
// of its value's newest block, and each distinct value touched is a page
// bbolt writes at commit. Behind a busy proxy the writer commits a few
// dozen events at a time, and each commit rewrote about a hundred index
// pages for them: with the load harness's population (storage benchmark
// BenchmarkAppendProxyLoad), 135 pages and 108 µs of CPU per event for
// 16-event commits against 13 pages and 29 µs without the indexes, and a
// thousand events share most of their values' pages. Deferring keeps
// commits small for strict requests and best-effort ones alike, and
// writes each value's block once per flush instead of once per commit.
//
// The lag is invisible to readers: viewIndexed and updateIndexed write the
// waiting entries before they read, so a query sees every event committed
// before it started. Nothing is lost in a crash either: the meta bucket's
// indexed_through mark says up to which seq every event is in every index,
// and Open indexes the events after it from their stored records. Indexing
// an event twice is harmless (a block merge drops duplicates, a single
// entry is put again), so the mark may trail but never lead.
var keyIndexedThrough = []byte("indexed_through")

// Entries are written when this many events wait, or when the oldest has
// waited indexFlushAge: bounded memory (about 200 bytes an event) and a
// bounded catch-up for a reader, large enough that most of a value's block
// rewrites are shared.
const (
	indexFlushEvents = 4096
	indexFlushAge    = time.Second
	// maxDeferredEvents bounds the memory of entries that cannot be
	// written (every flush failing): beyond it they are dropped, and the
	// next flush indexes the events from their stored records instead.
	maxDeferredEvents = 1 << 16
)

// deferredIndex holds the index entries of committed events that are not
// in the index buckets yet.
type deferredIndex struct {
	// mu is held across every write transaction that writes or adds
	// entries (Append, flushes, updateIndexed), always taken before
	// bbolt's own writer lock, so entries are added in commit order.
	mu      sync.Mutex
	pending *indexBatch // nil when nothing waits in memory
	values  []byte      // the arena Append transactions reuse (collector)
	events  int         // events committed since the last flush
	since   time.Time   // when the first of them was committed
	maxSeq  uint64      // the greatest seq among them
	// fromDisk means pending is incomplete (a crash, or entries dropped
	// at maxDeferredEvents): the next flush indexes every event after
	// the mark from its stored record.
	fromDisk bool
	// unindexed mirrors events, readable without mu: a reader with
	// nothing to catch up takes no lock, and UnindexedEvents reports it.
	unindexed atomic.Int64
	// After a failed flush (a damaged index block, a full file) the next
	// attempt waits until retryAt, backing off from one second to a
	// minute: retrying on every Append and every query would make each
	// of them pay for a flush that fails again.
	lastErr error
	backoff time.Duration
	retryAt time.Time
}

// collector returns the batch an Append transaction collects its index
// entries into: the waiting entries themselves, so that nothing is copied
// after the commit, or a throwaway batch while the next flush rebuilds
// from disk anyway. mu is held. The values arena (event records and chain
// links, which bbolt reads until the commit) is the one every Append
// reuses: once a transaction has ended, nothing refers to its values.
func (d *deferredIndex) collector(tx *bolt.Tx) *indexBatch {
	b := d.pending
	switch {
	case d.fromDisk:
		b = &indexBatch{}
	case b == nil:
		b = &indexBatch{}
		d.pending = b
	}
	b.tx = tx
	b.values = d.values[:0]
	return b
}

// appended records that an Append committed n events, the last with seq
// lastSeq, whose entries b collected. mu is held.
func (d *deferredIndex) appended(b *indexBatch, n int, lastSeq uint64) {
	d.values = b.values[:0]
	d.count(n, lastSeq)
	if d.events > maxDeferredEvents && !d.fromDisk {
		d.rebuildFromDisk()
	}
}

// count adds n events, the last with seq lastSeq, to those waiting to be
// indexed. mu is held.
func (d *deferredIndex) count(n int, lastSeq uint64) {
	if d.events == 0 {
		d.since = time.Now()
	}
	d.events += n
	d.maxSeq = lastSeq
	d.unindexed.Store(int64(d.events))
}

// rolledBack records that an Append failed: b may hold entries of events
// that were never stored, so the waiting entries are dropped and the next
// flush indexes from the stored records. mu is held.
func (d *deferredIndex) rolledBack(b *indexBatch) {
	d.values = b.values[:0]
	d.rebuildFromDisk()
}

// rebuildFromDisk drops the waiting entries: the next flush indexes every
// event after the mark from its stored record instead. mu is held.
func (d *deferredIndex) rebuildFromDisk() {
	d.pending, d.fromDisk = nil, true
}

// due reports whether the waiting entries should be written now.
func (d *deferredIndex) due() bool {
	return d.events >= indexFlushEvents || d.events > 0 && (d.fromDisk || time.Since(d.since) >= indexFlushAge)
}

// write brings the index buckets in tx up to date and moves the mark. It
// leaves the waiting entries as they are: the transaction may still roll
// back (see written).
func (d *deferredIndex) write(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if d.fromDisk {
		head := tx.Bucket(bucketEvents).Sequence()
		b := &indexBatch{tx: tx}
		if err := indexStored(b, tx, indexedThrough(meta), false); err != nil {
			return err
		}
		return meta.Put(keyIndexedThrough, u64(head))
	}
	if d.pending == nil {
		return nil
	}
	d.pending.tx = tx
	if err := d.pending.write(); err != nil {
		return err
	}
	return meta.Put(keyIndexedThrough, u64(max(d.maxSeq, indexedThrough(meta))))
}

// written forgets the entries once the transaction that wrote them
// committed.
func (d *deferredIndex) written() {
	d.pending, d.events, d.maxSeq, d.fromDisk = nil, 0, 0, false
	d.lastErr, d.backoff = nil, 0
	d.unindexed.Store(0)
}

// failed starts or lengthens the backoff after a failed flush.
func (d *deferredIndex) failed(err error) error {
	d.backoff = min(max(2*d.backoff, time.Second), time.Minute)
	d.retryAt = time.Now().Add(d.backoff)
	d.lastErr = fmt.Errorf("writing deferred index entries (next attempt in %s): %w", d.backoff, err)
	return d.lastErr
}

// indexedThrough reads the mark; a file without one has nothing indexed
// that a catch-up could skip.
func indexedThrough(meta *bolt.Bucket) uint64 {
	if v := meta.Get(keyIndexedThrough); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// FlushIndexes writes the index entries still waiting in memory. Queries
// do it themselves when they need to; the Writer calls it when idle so the
// entries do not wait for the next commit, and Close calls it so a clean
// shutdown leaves nothing for the next Open.
func (s *Store) FlushIndexes() error {
	if s.deferred.unindexed.Load() == 0 {
		return nil
	}
	s.deferred.mu.Lock()
	defer s.deferred.mu.Unlock()
	return s.flushLocked()
}

// UnindexedEvents is the number of stored events whose index entries are
// not written yet: a few thousand at most while flushes succeed, growing
// while they fail (FlushIndexes says why).
func (s *Store) UnindexedEvents() int { return int(s.deferred.unindexed.Load()) }

// flushLocked is FlushIndexes with deferred.mu held. During a backoff it
// returns the last failure without trying.
func (s *Store) flushLocked() error {
	d := &s.deferred
	if d.events == 0 {
		// Nothing after the mark (a rebuild asked for by an Append that
		// rolled back stored nothing).
		d.written()
		return nil
	}
	if d.lastErr != nil && time.Now().Before(d.retryAt) {
		return d.lastErr
	}
	if err := s.update(d.write); err != nil {
		return d.failed(err)
	}
	d.written()
	return nil
}

// viewIndexed is view for readers of the index buckets: it writes the
// waiting entries first. If that fails (a full disk), the view still runs
// and its answer lacks the newest events, as it would have while the
// failed writes were being retried.
func (s *Store) viewIndexed(fn func(*bolt.Tx) error) error {
	_ = s.FlushIndexes()
	return s.view(fn)
}

// updateIndexed is update for transactions that read or change index
// entries (erasure, retention): the waiting entries are written first, and
// no Append comes in between. An erasure must not leave a subject's clear
// values waiting in memory to be indexed after it: if they cannot be
// written (a damaged index block, a full file), they are dropped instead,
// and the next flush indexes those events from their stored records,
// which the erasure has rewritten. Either way the erasure or purge goes
// ahead: a damaged block of one user must not hold up another's erasure.
func (s *Store) updateIndexed(fn func(*bolt.Tx) error) error {
	d := &s.deferred
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := s.flushLocked(); err != nil {
		d.rebuildFromDisk()
	}
	return s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		head := tx.Bucket(bucketEvents).Sequence()
		upToDate := indexedThrough(meta) == head
		if err := fn(tx); err != nil {
			return err
		}
		// fn indexes what it appends (putEvent); keep the mark with it.
		if newHead := tx.Bucket(bucketEvents).Sequence(); upToDate && newHead != head {
			return meta.Put(keyIndexedThrough, u64(newHead))
		}
		return nil
	})
}

// catchUpIndexes indexes, at Open, the events a crash left after the mark.
// A failure is not fatal: the events are stored, and every later flush
// tries again.
func (s *Store) catchUpIndexes() {
	var through, head uint64
	_ = s.view(func(tx *bolt.Tx) error {
		through = indexedThrough(tx.Bucket(bucketMeta))
		head = tx.Bucket(bucketEvents).Sequence()
		return nil
	})
	if through >= head {
		return
	}
	d := &s.deferred
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rebuildFromDisk()
	d.count(int(head-through), head)
	_ = s.flushLocked()
}

// indexStored collects the index entries of the stored events after seq
// into b, writing them every reindexBatch events. With strict, a record
// that does not decode is an error; otherwise it is left out (Verify
// reports the damage), so one bad record cannot stop indexing for good.
func indexStored(b *indexBatch, tx *bolt.Tx, after uint64, strict bool) error {
	events := tx.Bucket(bucketEvents)
	if events == nil {
		return nil // nothing stored yet
	}
	n := 0
	c := events.Cursor()
	for k, v := c.Seek(u64(after + 1)); k != nil; k, v = c.Next() {
		if len(k) != 8 {
			if strict {
				return fmt.Errorf("event key %x is not a sequence number", k)
			}
			continue
		}
		var ev Event
		if err := decodeEvent(v, &ev); err != nil {
			if strict {
				return fmt.Errorf("decoding event seq %d: %w", binary.BigEndian.Uint64(k), err)
			}
			continue
		}
		// The key is the authority on the sequence number.
		ev.Seq = binary.BigEndian.Uint64(k)
		b.collect(&ev, false)
		if n++; n%reindexBatch == 0 {
			if err := b.flush(); err != nil {
				return err
			}
		}
	}
	return b.flush()
}
