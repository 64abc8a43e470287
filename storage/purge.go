package storage

import (
	"context"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DefaultPurgeBatch is the batch size Purge uses when given none: small
// enough that one batch commits in milliseconds, so the writer waiting for
// the file lock behind it never notices.
const DefaultPurgeBatch = 500

// maxPurgeBatch bounds a batch whatever the caller asks, for the same
// reason.
const maxPurgeBatch = 10000

// Purge deletes the events of one workspace ("" means events recorded
// without a workspace) whose time is before the cutoff, oldest first, in
// transactions of at most batch events (DefaultPurgeBatch if batch <= 0),
// together with their index entries. Between transactions it gives the
// writer and readers the file, and it checks ctx. It returns how many
// events were removed, including when it stops early with an error.
//
// Purge applies no policy: retention periods and legal holds are the
// caller's. Each deleted event first leaves a tombstone in the integrity chain.
func (s *Store) Purge(ctx context.Context, before time.Time, workspace string, batch int) (removed int, err error) {
	if batch <= 0 {
		batch = DefaultPurgeBatch
	}
	batch = min(batch, maxPurgeBatch)
	cutoff := posOf(timeNS(before), 0)
	for {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		var n, seen int
		err := s.updateIndexed(func(tx *bolt.Tx) error {
			var err error
			n, seen, err = purgeBatch(tx, workspace, cutoff, batch)
			return err
		})
		if err != nil {
			return removed, fmt.Errorf("purging workspace %q: %w", workspace, err)
		}
		removed += n
		if seen < batch {
			return removed, nil
		}
	}
}

// purgeBatch deletes the oldest events of workspace below cutoff, up to
// batch of them. It returns how many it deleted and how many workspace
// index entries it looked at; every entry looked at is gone afterwards
// (with its event, or alone if it was stale), so the next batch moves on.
func purgeBatch(tx *bolt.Tx, workspace string, cutoff pos, batch int) (n, seen int, err error) {
	ib := beginIndexBatch(tx)
	defer ib.end()
	wsIndex, err := indexBucket(tx, idxWorkspace)
	if err != nil {
		return 0, 0, err
	}
	prefix := valuePrefix(nil, idxWorkspace, []byte(workspace))
	var todo, block []pos
	c := wsIndex.Cursor()
collect:
	for k, v := c.Seek(prefix); len(todo) < batch; k, v = c.Next() {
		first, ok := blockKey(k, prefix)
		if !ok || first.cmp(cutoff) >= 0 {
			break
		}
		if block, err = decodeBlock(block[:0], first, v); err != nil {
			return 0, 0, fmt.Errorf("index block %x: %w", k, err)
		}
		for _, p := range block {
			if p.cmp(cutoff) >= 0 || len(todo) == batch {
				break collect
			}
			todo = append(todo, p)
		}
	}
	events := tx.Bucket(bucketEvents)
	for _, p := range todo {
		ev, err := loadEvent(events, p)
		if err != nil {
			return n, len(todo), err
		}
		if ev != nil {
			ev.Seq = p.s
		}
		// The event is the authority, not the index entry: an entry whose
		// event is gone, or is not of this workspace at this time, is
		// stale; drop the entry alone.
		if ev == nil || ev.Workspace != workspace || eventPos(ev) != p {
			ib.drop(idxWorkspace, []byte(workspace), p)
			continue
		}
		if err := chainTombstone(tx, ev); err != nil {
			return n, len(todo), err
		}
		if err := unindexEvent(tx, ev); err != nil {
			return n, len(todo), err
		}
		if err := events.Delete(u64(p.s)); err != nil {
			return n, len(todo), err
		}
		n++
	}
	if err := addEventCount(tx, -int64(n)); err != nil {
		return n, len(todo), err
	}
	return n, len(todo), ib.flush()
}

// EventWorkspaces returns every workspace that has events, in byte order; ""
// stands for events recorded without one. Retention uses it to apply each
// workspace's policy. It costs one index seek per workspace.
func (s *Store) EventWorkspaces() ([]string, error) {
	var out []string
	err := s.viewIndexed(func(tx *bolt.Tx) error {
		b, err := indexBucket(tx, idxWorkspace)
		if err != nil {
			return err
		}
		prefixes, _ := distinctValues(b.Cursor(), nil, nil, math.MaxInt)
		for _, p := range prefixes {
			v, ok := unescape(p[:len(p)-1])
			if !ok {
				continue
			}
			out = append(out, string(v))
		}
		return nil
	})
	return out, err
}
