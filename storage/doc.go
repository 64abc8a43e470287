// Package storage is the audit trail's embedded store: it owns the record
// types (events, API keys), writes events to bbolt through a group-commit
// writer, and answers queries over them.
//
// The package knows nothing about HTTP or Caddy. Everything it exports can be
// used from a plain Go test.
//
// Layout of the bbolt file (schema version 1):
//
//	meta        "schema" -> version (uint64, big endian)
//	events      seq (uint64 BE) -> Event as JSON
//	idx_*       secondary indexes (index.go): esc(value) | 0x00 | time | seq
//	            -> posting block of (time, seq) positions; idx_time and
//	            idx_suspicious have no value part, and idx_request_id,
//	            idx_user and idx_client_ip put the UTC day before the value
//	keys        key id -> APIKey as JSON
//	key_hashes  SHA-256 of the key -> key id
package storage
