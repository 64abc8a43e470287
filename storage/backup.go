package storage

import (
	"io"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the whole database file to w while
// writes continue: it runs in one read transaction, so it sees the store
// as of its start (bbolt's Tx.WriteTo). The copy is itself a valid audit
// database; restoring is replacing audit.db with it while Caddy is stopped.
// Index entries still waiting in memory are written first, so the copy
// needs no catch-up when it is opened.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.viewIndexed(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}
