package storage

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketScrub is a scratch bucket that exists only while ScrubFreePages
// runs.
var bucketScrub = []byte("_scrub")

// ScrubFreePages overwrites the database file's free pages with zeros and
// returns how many pages it filled. bbolt never clears a page it frees,
// so after EraseSubject rewrote a subject's events the old values stay in
// the file, readable by anyone who reads it raw, until the page happens
// to be reused; an erasure must not leave them there. It fills every free
// page with zeroed scratch records (two per page, so each fits one page
// and takes a free one before the file grows), commits, then deletes the
// scratch bucket, whose pages, now zeros, become the free pages. Pages a
// concurrent reader still holds cannot be reused and stay as they are
// (a later scrub catches them); the file grows by at most the free pages'
// size, which it reuses later.
func (s *Store) ScrubFreePages() (int, error) {
	pageSize := s.db.Info().PageSize
	value := make([]byte, pageSize/2-64)
	st := s.db.Stats()
	free := st.FreePageN + st.PendingPageN
	if free == 0 {
		return 0, nil
	}
	err := s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketScrub)
		if err != nil {
			return err
		}
		b.FillPercent = 1
		for i := 0; i < 2*free+8; i++ {
			if err := b.Put(u64(uint64(i)), value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("scrubbing free pages: %w", err)
	}
	// The fill only freed pages of its own (the previous root and
	// freelist pages, which hold bucket names and page ids): nothing of
	// anyone's data.
	err = s.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketScrub) == nil {
			return nil
		}
		return tx.DeleteBucket(bucketScrub)
	})
	if err != nil {
		return free, fmt.Errorf("removing the scrub bucket: %w", err)
	}
	return free, nil
}
