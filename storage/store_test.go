package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openTemp(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "audit.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestOpenLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Open(path, Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: got %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "another Caddy") {
		t.Errorf("error should tell the operator what to check: %v", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, u64(SchemaVersion+1))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "newer than this build") {
		t.Fatalf("got %v, want a refusal naming the newer schema", err)
	}
}

func TestAppendAssignsSequence(t *testing.T) {
	s := openTemp(t, Options{})
	a, b := &Event{ID: "a", Time: time.Now()}, &Event{ID: "b", Time: time.Now()}
	if err := s.Append(a, b); err != nil {
		t.Fatal(err)
	}
	if a.Seq != 1 || b.Seq != 2 {
		t.Fatalf("seqs %d, %d; want 1, 2", a.Seq, b.Seq)
	}
	got, err := s.Get(2)
	if err != nil || got.ID != "b" {
		t.Fatalf("Get(2) = %+v, %v", got, err)
	}
	if _, err := s.Get(3); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(3): %v, want ErrNotFound", err)
	}
}

func TestAppendFullDatabase(t *testing.T) {
	s := openTemp(t, Options{MaxSize: 1 << 20})
	big := strings.Repeat("x", 4000)
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		ev := &Event{ID: fmt.Sprint(i), Time: time.Now(), UserAgent: big}
		err = s.Append(ev)
		if err != nil && ev.Seq != 0 {
			t.Fatal("a failed append must not leave a sequence on the event")
		}
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("filling a 1 MiB store: got %v, want ErrFull", err)
	}
}

func TestNewIDSortsByTime(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	prev := ""
	for i := 0; i < 100; i++ {
		id := NewID(base.Add(time.Duration(i) * time.Millisecond))
		if len(id) != 26 {
			t.Fatalf("id %q has length %d", id, len(id))
		}
		if id <= prev {
			t.Fatalf("id %q does not sort after %q", id, prev)
		}
		prev = id
	}
	if first, second := NewID(base), NewID(base); first == second {
		t.Fatal("two ids in the same millisecond collide")
	}
}

// The event counter is kept by every change to the events bucket; a
// checkpoint signs it, so it must be exact.
func TestEventCounterFollowsEveryChange(t *testing.T) {
	s := openChainStore(t)
	check := func(step string) {
		t.Helper()
		var stored int
		if err := s.view(func(tx *bolt.Tx) error {
			stored = tx.Bucket(bucketEvents).Stats().KeyN
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got := s.Count(); got != stored {
			t.Fatalf("after %s: counter %d, events stored %d", step, got, stored)
		}
	}
	appendChain(t, s, 0, 60)
	check("appending 60")
	if _, err := s.EraseSubject("alice", pseudo); err != nil {
		t.Fatal(err)
	}
	check("an erasure (one record added)")
	removed, err := s.Purge(t.Context(), chainBase.Add(30*time.Second), "acme", 0)
	if err != nil || removed == 0 {
		t.Fatalf("purge removed %d, %v", removed, err)
	}
	check("a purge")
	cp, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if cp.Count != uint64(s.Count()) {
		t.Fatalf("checkpoint counts %d events, the store %d", cp.Count, s.Count())
	}
}

// A file without the event counter (written before it existed) is counted
// at Open, and a counter found wrong is counted again, not trusted.
func TestEventCounterOfOlderFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendChain(t, s, 0, 60)
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyEventCount) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := s.Count(); n != 60 {
		t.Fatalf("counter of a file without one: %d, want 60", n)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyEventCount, u64(1)) }); err != nil {
		t.Fatal(err)
	}
	removed, err := s.Purge(t.Context(), chainBase.Add(30*time.Second), "acme", 0)
	if err != nil || removed == 0 {
		t.Fatalf("purge with a counter that is too low: removed %d, %v", removed, err)
	}
	if n := s.Count(); n != 60-removed {
		t.Fatalf("counter after the purge: %d, want %d", n, 60-removed)
	}
}
