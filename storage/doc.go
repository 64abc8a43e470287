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
//	events      seq (uint64 BE) -> envelope (codec.go): the non-personal
//	            fields as JSON, the personal fields as JSON, their salted
//	            commitment and salt (schema-1 files held the Event as JSON;
//	            they are linked and re-encoded on open)
//	idx_time    time (int64 ns BE) | seq (uint64 BE) -> nothing
//	chain_links seq (uint64 BE) -> the 32-byte chain link, followed by 'T'
//	            once retention purged the event (chain.go)
//	checkpoints seq (uint64 BE) -> signed Checkpoint as JSON
//	keys        key id -> APIKey as JSON
//	key_hashes  SHA-256 of the key -> key id
//
// Tamper evidence: every event is hash-chained (chain.go); Verify walks the
// chain, signed checkpoints kept off the host catch truncation and
// rollback, ExportNDJSON and VerifyNDJSON do the same offline, and
// EraseSubject pseudonymizes a data subject without breaking the chain,
// because personal fields are chained only through a salted commitment.
package storage
