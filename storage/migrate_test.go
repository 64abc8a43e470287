package storage

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// testdata/schema1.db was written by the first released schema (plain JSON
// events, a time index, API keys): 50 http events, one lifecycle event and
// one API key.
func TestMigrateSchema1Fixture(t *testing.T) {
	data, err := os.ReadFile("testdata/schema1.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("opening a schema-1 file: %v", err)
	}
	defer s.Close()
	var version uint64
	_ = s.view(func(tx *bolt.Tx) error {
		version = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keySchema))
		return nil
	})
	if version != SchemaVersion {
		t.Fatalf("schema version after open: %d, want %d", version, SchemaVersion)
	}
	if n := s.Count(); n != 51 {
		t.Fatalf("%d events after migration, want 51", n)
	}
	page, err := s.Query(Filter{User: "alice", Workspace: "acme"}, 100, "")
	if err != nil || len(page.Events) != 25 {
		t.Fatalf("alice@acme after migration: %d events, %v", len(page.Events), err)
	}
	if got := page.Events[0]; got.RequestID == "" || got.Seq == 0 || got.Status == 0 {
		t.Fatalf("migrated event lost fields: %+v", got)
	}
	if _, err := s.APIKeyByHash("5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"); err != nil {
		t.Fatalf("API key lost in migration: %v", err)
	}
	// New events continue the sequence.
	ev := &Event{ID: "after", Time: page.Events[0].Time}
	if err := s.Append(ev); err != nil || ev.Seq != 52 {
		t.Fatalf("append after migration: seq %d, %v", ev.Seq, err)
	}
	s.Close()
	// A second open has nothing left to do.
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if n := s2.Count(); n != 52 {
		t.Fatalf("%d events after reopen, want 52", n)
	}
}
