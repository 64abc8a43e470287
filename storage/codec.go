package storage

import (
	"encoding/json"

	bolt "go.etcd.io/bbolt"
)

// putEvent stores a new event whose Seq is assigned: links it into the
// integrity chain, encodes it and indexes it, all in tx.
func putEvent(tx *bolt.Tx, ev *Event) error {
	if err := chainEvent(tx, ev); err != nil {
		return err
	}
	val, err := encodeEvent(ev)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketEvents).Put(u64(ev.Seq), val); err != nil {
		return err
	}
	return indexEvent(tx, ev)
}

// encodeEvent is the stored form of an event.
func encodeEvent(ev *Event) ([]byte, error) { return json.Marshal(ev) }

// decodeEvent reads what encodeEvent wrote.
func decodeEvent(val []byte, ev *Event) error { return json.Unmarshal(val, ev) }
