package storage

import (
	"encoding/json"

	bolt "go.etcd.io/bbolt"
)

// Records other than events (keys, roles, bindings, workspaces, imports,
// alerts) are JSON values under their id.

// getRecord decodes the record under key in b, or returns ErrNotFound.
func getRecord[T any](b *bolt.Bucket, key []byte) (T, error) {
	var r T
	val := b.Get(key)
	if val == nil {
		return r, ErrNotFound
	}
	return r, json.Unmarshal(val, &r)
}

// putRecord stores r under key in b.
func putRecord(b *bolt.Bucket, key []byte, r any) error {
	val, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put(key, val)
}

// listRecords decodes every record of b, in key order, that keep accepts
// (all of them when keep is nil).
func listRecords[T any](b *bolt.Bucket, keep func(*T) bool) ([]T, error) {
	var out []T
	err := b.ForEach(func(_, val []byte) error {
		var r T
		if err := json.Unmarshal(val, &r); err != nil {
			return err
		}
		if keep == nil || keep(&r) {
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
