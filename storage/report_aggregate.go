package storage

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ForEachAPIKey calls fn with every stored API key record, revoked and
// expired ones included, in id order. Reports read the key inventory
// through it (SOC 2 CC6.1/CC6.2 evidence); keys are few, so one read
// transaction holds them all. An error from fn stops the walk and is
// returned.
func (s *Store) ForEachAPIKey(fn func(APIKey) error) error {
	return s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(id, val []byte) error {
			var k APIKey
			if err := json.Unmarshal(val, &k); err != nil {
				return fmt.Errorf("api key %s: %w: %v", id, ErrCorrupt, err)
			}
			return fn(k)
		})
	})
}
