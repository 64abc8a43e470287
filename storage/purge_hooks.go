package storage

import bolt "go.etcd.io/bbolt"

// tombstoneEvent is called by Purge, inside the purging transaction, for
// every event just before it is deleted, so the integrity chain can keep
// what it needs to stay verifiable over the gap (a tombstone with the
// event's link). ev is the stored event as decoded. An error aborts the
// batch: nothing of it is deleted.
//
// It is a no-op until the chain replaces it.
func tombstoneEvent(tx *bolt.Tx, ev *Event) error { return nil }
