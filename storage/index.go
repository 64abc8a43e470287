package storage

import bolt "go.etcd.io/bbolt"

var bucketTimeIndex = []byte("idx_time")

// indexBuckets are the secondary indexes.
var indexBuckets = [][]byte{bucketTimeIndex}

// indexEvent adds ev to every index.
func indexEvent(tx *bolt.Tx, ev *Event) error {
	return tx.Bucket(bucketTimeIndex).Put(timeKey(ev.Time, ev.Seq), nil)
}

// unindexEvent removes ev from every index (retention, erasure).
func unindexEvent(tx *bolt.Tx, ev *Event) error {
	return tx.Bucket(bucketTimeIndex).Delete(timeKey(ev.Time, ev.Seq))
}
