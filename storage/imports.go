package storage

import (
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketImports = []byte("imports")

// Import records one access log backfilled into the store, so the same
// source is not imported twice (its events would be duplicated).
type Import struct {
	// Source names the log (usually its file name).
	Source string `json:"source"`
	// Events is how many events it added.
	Events int64 `json:"events"`
	// At is when the import finished.
	At time.Time `json:"at"`
	// Complete is false when the import stopped on an error part way.
	Complete bool `json:"complete"`
}

// GetImport returns the record of an earlier import of source, or
// ErrNotFound.
func (s *Store) GetImport(source string) (Import, error) {
	var im Import
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		im, err = getRecord[Import](tx.Bucket(bucketImports), []byte(source))
		return err
	})
	return im, err
}

// PutImport records an import.
func (s *Store) PutImport(im Import) error {
	val, err := json.Marshal(im)
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketImports).Put([]byte(im.Source), val)
	})
}
