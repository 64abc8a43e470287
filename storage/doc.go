// Package storage is the audit trail's embedded store: it owns the record
// types (events, alerts, API keys, workspaces), writes events to bbolt through a group-commit
// writer, and answers queries over them.
//
// The package knows nothing about HTTP or Caddy. Everything it exports can be
// used from a plain Go test.
//
// Layout of the bbolt file (schema version 2):
//
//	meta        "schema" -> version (uint64, big endian); "detector_seq"
//	            -> last event seq the detector worker judged
//	events      seq (uint64 BE) -> envelope (codec.go): the non-personal
//	            fields as JSON, the personal fields as JSON, their salted
//	            commitment and salt (schema-1 files held the Event as JSON;
//	            migrate.go re-encodes, links and indexes them on open)
//	idx_*       secondary indexes (index.go): esc(value) | 0x00 | time | seq
//	            -> posting block of (time, seq) positions; idx_time and
//	            idx_suspicious have no value part, and idx_request_id,
//	            idx_user and idx_client_ip put the UTC day before the value
//	chain_links seq (uint64 BE) -> the 32-byte chain link, followed by 'T'
//	            once retention purged the event (chain.go)
//	checkpoints seq (uint64 BE) -> signed Checkpoint as JSON
//	workspaces  workspace id -> Workspace settings as JSON
//	keys        key id -> APIKey as JSON
//	key_hashes  SHA-256 of the key -> key id
//	alerts      alert id -> Alert as JSON (alertstore.go)
//	alerts_by_last_seen last_seen (int64 ns BE) | alert id -> nil
//
// Tamper evidence: every event is hash-chained (chain.go); Verify walks the
// chain, signed checkpoints kept off the host catch truncation and
// rollback, ExportNDJSON and VerifyNDJSON do the same offline, and
// EraseSubject pseudonymizes a data subject without breaking the chain,
// because personal fields are chained only through a salted commitment.
package storage
