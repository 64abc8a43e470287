package storage

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketScrub is a scratch bucket that exists only while ScrubFreePages
// runs.
var bucketScrub = []byte("_scrub")

// scrubChunkPages bounds the pages one scrub transaction fills: 4096
// pages is 16 MB at the usual 4 KB page size, so after a purge that freed a
// gigabyte the group-commit writer waits for one chunk at a time, never for
// the whole fill. A variable so tests can make chunks small.
var scrubChunkPages = 4096

// ScrubFreePages overwrites the database file's free pages with zeros and
// returns how many pages it filled. bbolt never clears a page it frees,
// so after EraseSubject rewrote a subject's events the old values stay in
// the file, readable by anyone who reads it raw, until the page happens
// to be reused; an erasure must not leave them there. It fills every free
// page with zeroed scratch records (two per page, so each fits one page
// and takes a free one before the file grows), in transactions of at most
// scrubChunkPages pages each, then deletes the scratch bucket, whose
// pages, now zeros, become the free pages.
//
// What it does not reach: pages a concurrent reader still holds cannot be
// reused and stay as they are, and so do pages other writes free between
// two chunks (other transactions run between them); a later scrub catches
// both. The file grows by at most the free pages' size, which it reuses
// later. Deleting the scratch bucket is one transaction, but it only
// rewrites the freelist, not the pages.
func (s *Store) ScrubFreePages() (int, error) {
	n, _, err := s.scrubFreePages(scrubChunkPages)
	return n, err
}

// scrubFreePages is ScrubFreePages with a chunk size; it also returns the
// number of fill transactions.
func (s *Store) scrubFreePages(chunk int) (pages, txs int, err error) {
	pageSize := s.db.Info().PageSize
	value := make([]byte, pageSize/2-64)
	st := s.db.Stats()
	free := st.FreePageN + st.PendingPageN
	if free == 0 {
		return 0, 0, nil
	}
	total := 2*free + 8 // records: two a page, and a few for the bucket's own
	for next := 0; next < total; {
		end := min(total, next+2*max(chunk, 1))
		err := s.update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucketScrub)
			if err != nil {
				return err
			}
			b.FillPercent = 1
			for i := next; i < end; i++ {
				if err := b.Put(u64(uint64(i)), value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, txs, fmt.Errorf("scrubbing free pages: %w", err)
		}
		txs++
		next = end
	}
	// The fill only freed pages of its own (the previous root, leaf and
	// freelist pages, which hold bucket names, page ids and zeros):
	// nothing of anyone's data.
	err = s.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketScrub) == nil {
			return nil
		}
		return tx.DeleteBucket(bucketScrub)
	})
	if err != nil {
		return free, txs, fmt.Errorf("removing the scrub bucket: %w", err)
	}
	return free, txs, nil
}
