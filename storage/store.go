package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout this code writes. Open upgrades older files
// (see migrate.go) and refuses a file written by a newer version rather
// than guess at its layout.
const SchemaVersion = 3

var (
	bucketMeta      = []byte("meta")
	bucketEvents    = []byte("events")
	bucketKeys      = []byte("keys")
	bucketKeyHashes = []byte("key_hashes")
	keySchema       = []byte("schema")
	// keyEventCount is the number of stored events, kept by every
	// transaction that adds or deletes one (addEventCount), so that a
	// checkpoint does not read every page of the events bucket to count
	// them (Bucket.Stats): at 50 GB, that was 50 GB read every 10 minutes.
	keyEventCount = []byte("event_count")
)

// coreBuckets exist in every schema version. Indexes and the integrity
// chain add theirs (indexBuckets, chainBuckets).
var coreBuckets = [][]byte{bucketMeta, bucketEvents, bucketKeys, bucketKeyHashes, bucketWorkspaces, bucketImports}

// Errors callers can test for with errors.Is.
var (
	// ErrLocked means another process holds the database file.
	ErrLocked = errors.New("database file is locked by another process")
	// ErrFull means the file reached its configured maximum size.
	ErrFull = errors.New("database reached its maximum size")
	// ErrClosed means the store or writer was closed.
	ErrClosed = errors.New("audit store is closed")
	// ErrNotFound means no record matched.
	ErrNotFound = errors.New("not found")
	// ErrCorrupt means the file is damaged or not an audit database.
	ErrCorrupt = errors.New("database file is corrupt")
)

// Options tunes Open. The zero value is usable.
type Options struct {
	// LockTimeout is how long Open waits for another process to release
	// the file lock. Default 5s.
	LockTimeout time.Duration
	// MaxSize caps the file size in bytes; writes that would grow the file
	// past it fail with ErrFull. 0 means no cap.
	MaxSize int64
	// CheckpointKeyPath is the Ed25519 key that signs checkpoints of the
	// integrity chain, created (0600) on first open. Keep it under the data
	// directory, next to the database. Empty disables checkpoints
	// (Checkpoint returns ErrCheckpointsDisabled).
	CheckpointKeyPath string
}

// Store is an open audit database. It is safe for concurrent use.
type Store struct {
	db       *bolt.DB
	path     string
	cp       checkpointer
	deferred deferredIndex
}

// Open opens or creates the database at path, creating its directory
// (0700) when needed.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 5 * time.Second
	}
	if info, err := os.Stat(path); err == nil && info.Size() > 0 && info.Size() < minFileSize {
		// bbolt would read past the end of a truncated file.
		return nil, fmt.Errorf("audit database %s: %w: only %d bytes (truncated?); restore it from a backup or move it away", path, ErrCorrupt, info.Size())
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, openError(path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: opts.LockTimeout,
		MaxSize: int(opts.MaxSize),
		// The freelist is rebuilt on open rather than written on every
		// commit: cheaper commits for an append-heavy workload.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("opening %s: %w (waited %s; is another Caddy running with the same data directory?)", path, ErrLocked, opts.LockTimeout)
		}
		return nil, openError(path, err)
	}
	s := &Store{db: db, path: path}
	if err := s.init(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := s.openChain(opts); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := s.countEventsOnce(); err != nil {
		_ = db.Close()
		return nil, err
	}
	s.catchUpIndexes()
	return s, nil
}

func (s *Store) init() error {
	err := s.update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets() {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := meta.Get(keySchema)
		if v == nil {
			// A new file: nothing to migrate.
			return meta.Put(keySchema, u64(SchemaVersion))
		}
		if len(v) != 8 {
			return fmt.Errorf("audit database %s: %w: bad schema version record", s.path, ErrCorrupt)
		}
		if got := binary.BigEndian.Uint64(v); got > SchemaVersion {
			return fmt.Errorf("audit database %s has schema version %d, newer than this build understands (%d); upgrade caddy-audit", s.path, got, SchemaVersion)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.migrate()
}

// Path returns the file the store lives in.
func (s *Store) Path() string { return s.path }

// Size returns the size of the database file in bytes.
func (s *Store) Size() int64 {
	var n int64
	_ = s.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

// Close writes the waiting index entries and closes the file. Stop the
// Writer first. A failure to write the entries is not an error: the events
// are stored, and the next Open indexes them.
func (s *Store) Close() error {
	_ = s.FlushIndexes()
	return s.db.Close()
}

// update runs fn in a write transaction and names the errors callers act on.
func (s *Store) update(fn func(*bolt.Tx) error) (err error) {
	defer recoverCorruption(s.path, &err)
	return classify(s.db.Update(fn))
}

// view runs fn in a read transaction.
func (s *Store) view(fn func(*bolt.Tx) error) (err error) {
	defer recoverCorruption(s.path, &err)
	return classify(s.db.View(fn))
}

func allBuckets() [][]byte {
	var all [][]byte
	all = append(all, coreBuckets...)
	all = append(all, indexBuckets...)
	all = append(all, alertBuckets...)
	all = append(all, rbacBuckets...)
	return append(all, chainBuckets...)
}

// Append commits events in one transaction, assigning each its Seq and
// linking it into the integrity chain. Either all are stored or none
// (their Seq is then reset to 0). Their index entries are written with
// those of later commits (see index_deferred.go); queries see them all
// the same.
func (s *Store) Append(events ...*Event) error {
	if len(events) == 0 {
		return nil
	}
	d := &s.deferred
	d.mu.Lock()
	defer d.mu.Unlock()
	var idx *indexBatch
	err := s.update(func(tx *bolt.Tx) error {
		idx = d.collector(tx)
		openBatches.Store(tx, idx)
		defer idx.end()
		b := tx.Bucket(bucketEvents)
		for _, ev := range events {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			ev.Seq = seq
			if err := putEvent(tx, ev); err != nil {
				return fmt.Errorf("storing event %s: %w", ev.ID, err)
			}
		}
		return addEventCount(tx, int64(len(events)))
	})
	if err != nil {
		if idx != nil {
			d.rolledBack(idx)
		}
		for _, ev := range events {
			ev.Seq = 0
		}
		return err
	}
	d.appended(idx, len(events), events[len(events)-1].Seq)
	if d.due() {
		// A failure leaves the entries waiting; the events are stored.
		_ = s.flushLocked()
	}
	return nil
}

// Count returns the number of stored events.
func (s *Store) Count() int {
	var n uint64
	_ = s.view(func(tx *bolt.Tx) error {
		n = eventCount(tx)
		return nil
	})
	return int(n)
}

// eventCount reads the event counter.
func eventCount(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bucketMeta).Get(keyEventCount); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// addEventCount adds delta to the event counter, in the transaction that
// stores or deletes the events. A counter that would go below zero is
// wrong (a file an older build wrote without one); it is counted again
// rather than fail the purge that found out.
func addEventCount(tx *bolt.Tx, delta int64) error {
	n := int64(eventCount(tx)) + delta
	if n < 0 {
		n = int64(countEvents(tx))
	}
	return tx.Bucket(bucketMeta).Put(keyEventCount, u64(uint64(n)))
}

// countEvents counts the events bucket's keys as tx sees them (its own
// changes included, which Bucket.Stats, reading the committed pages,
// does not see).
func countEvents(tx *bolt.Tx) uint64 {
	var n uint64
	c := tx.Bucket(bucketEvents).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

// countEventsOnce sets the event counter of a file that has events but
// no counter: every file written before the counter existed.
func (s *Store) countEventsOnce() error {
	return s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		events := tx.Bucket(bucketEvents)
		if meta.Get(keyEventCount) != nil || events.Sequence() == 0 {
			return nil
		}
		return meta.Put(keyEventCount, u64(countEvents(tx)))
	})
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// Bounds of the time index: nanoseconds since 1970 in an int64 reach 2262.
var (
	minIndexTime = time.Unix(0, 0)
	maxIndexTime = time.Unix(0, math.MaxInt64)
)
