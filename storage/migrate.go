package storage

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// migrationBatch bounds the events one migration transaction rewrites, so a
// large file is upgraded without holding its whole content in one
// transaction's dirty pages.
const migrationBatch = 10000

// keyMigratedThrough records the last event seq a running migration has
// rewritten, so an interrupted upgrade resumes instead of starting over.
var keyMigratedThrough = []byte("migrated_through")

// migrations[v] upgrades a file from schema v to v+1.
var migrations = map[uint64]func(s *Store) error{
	1: migrate1to2,
	2: migrate2to3,
}

// migrate upgrades the file step by step to SchemaVersion.
func (s *Store) migrate() error {
	for {
		var version uint64
		if err := s.view(func(tx *bolt.Tx) error {
			version = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keySchema))
			return nil
		}); err != nil {
			return err
		}
		if version >= SchemaVersion {
			return nil
		}
		step, ok := migrations[version]
		if !ok {
			return fmt.Errorf("audit database %s: no migration from schema version %d", s.path, version)
		}
		if err := step(s); err != nil {
			return fmt.Errorf("upgrading audit database %s from schema %d to %d: %w", s.path, version, version+1, err)
		}
	}
}

// migrate1to2 rewrites every event through putEvent: schema 1 stored plain
// JSON with only a time index; schema 2 adds the secondary indexes and the
// integrity chain. The chain of a migrated file starts at its first event,
// linked at upgrade time: schema 1 had no tamper evidence to carry over.
func migrate1to2(s *Store) error {
	var after uint64
	for {
		done := false
		err := s.update(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			if v := meta.Get(keyMigratedThrough); len(v) == 8 {
				after = binary.BigEndian.Uint64(v)
			}
			c := tx.Bucket(bucketEvents).Cursor()
			batch := make([]Event, 0, migrationBatch)
			k, v := c.Seek(u64(after + 1))
			for ; k != nil && len(batch) < migrationBatch; k, v = c.Next() {
				var ev Event
				// decodeEvent reads schema 1's plain JSON as every read does.
				if err := decodeEvent(v, &ev); err != nil {
					return fmt.Errorf("event seq %d: %w", binary.BigEndian.Uint64(k), err)
				}
				ev.Seq = binary.BigEndian.Uint64(k)
				batch = append(batch, ev)
			}
			// The rewrites come after the walk: a bbolt cursor is not safe
			// across Puts into the bucket it traverses.
			for i := range batch {
				if err := putEvent(tx, &batch[i]); err != nil {
					return fmt.Errorf("event seq %d: %w", batch[i].Seq, err)
				}
				after = batch[i].Seq
			}
			if k != nil {
				return meta.Put(keyMigratedThrough, u64(after))
			}
			done = true
			if err := meta.Delete(keyMigratedThrough); err != nil {
				return err
			}
			return meta.Put(keySchema, u64(2))
		})
		if err != nil || done {
			return err
		}
	}
}

// migrate2to3 sets the mark of deferred indexing (index_deferred.go):
// schema 2 indexed every event in the transaction that stored it, so all
// of them are indexed. A schema 2 build would not know that events after
// the mark lack index entries, nor keep the event counter (which Open
// sets for a file without one), hence the new version.
func migrate2to3(s *Store) error {
	return s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyIndexedThrough, u64(tx.Bucket(bucketEvents).Sequence())); err != nil {
			return err
		}
		return meta.Put(keySchema, u64(3))
	})
}
