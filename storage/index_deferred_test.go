package storage

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// indexMark reads the indexed_through mark and the last assigned seq.
func indexMark(t *testing.T, s *Store) (through, head uint64) {
	t.Helper()
	if err := s.view(func(tx *bolt.Tx) error {
		through = indexedThrough(tx.Bucket(bucketMeta))
		head = tx.Bucket(bucketEvents).Sequence()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return through, head
}

func TestAppendDefersIndexEntriesButQueriesSeeThem(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 30)
	if through, head := indexMark(t, s); through != 0 || head != 30 {
		t.Fatalf("after a small append: mark %d, head %d; want the entries waiting (mark 0)", through, head)
	}
	page, err := s.Query(Filter{User: "alice"}, 100, "")
	if err != nil || len(page.Events) != 10 {
		t.Fatalf("query before any flush: %d events, %v; want alice's 10", len(page.Events), err)
	}
	if through, head := indexMark(t, s); through != head {
		t.Fatalf("the query did not write the waiting entries: mark %d, head %d", through, head)
	}
	checkIndexes(t, s)
}

func TestAppendFlushesWhenManyEventsWait(t *testing.T) {
	s := openChainStore(t)
	// One Append: in small ones, a slow machine reaches indexFlushAge
	// before the count, and the flush it makes leaves the rest waiting.
	if err := s.Append(chainEvents(0, indexFlushEvents)...); err != nil {
		t.Fatal(err)
	}
	if through, head := indexMark(t, s); through != head {
		t.Fatalf("%d waiting events were not written: mark %d, head %d", indexFlushEvents, through, head)
	}
}

// A crash loses the entries waiting in memory, not the events: Open
// indexes the events after the mark from their stored records.
func TestOpenIndexesWhatACrashLeftUnindexed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendChain(t, s, 0, 50)
	if err := s.FlushIndexes(); err != nil {
		t.Fatal(err)
	}
	appendChain(t, s, 50, 40)
	if through, head := indexMark(t, s); through != 50 || head != 90 {
		t.Fatalf("mark %d, head %d; want 50 and 90", through, head)
	}
	// Close the file under the store, as a kill would: no flush.
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if through, head := indexMark(t, s); through != 90 || head != 90 {
		t.Fatalf("after reopening: mark %d, head %d; want both 90", through, head)
	}
	checkIndexes(t, s)
	page, err := s.Query(Filter{User: "alice"}, 100, "")
	if err != nil || len(page.Events) != 30 {
		t.Fatalf("alice after the crash: %d events, %v; want 30", len(page.Events), err)
	}
}

// Entries dropped for memory (every flush failing for long) are rebuilt
// from the stored records.
func TestDroppedEntriesAreRebuiltFromDisk(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 20)
	s.deferred.mu.Lock()
	s.deferred.pending, s.deferred.fromDisk = nil, true
	s.deferred.mu.Unlock()
	appendChain(t, s, 20, 10)
	checkIndexes(t, s)
	if through, head := indexMark(t, s); through != head {
		t.Fatalf("mark %d, head %d after the rebuild", through, head)
	}
}

// An erasure must not leave the subject's clear values waiting in memory
// to be indexed after it: nothing of alice may reach the file.
func TestEraseWithWaitingEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendChain(t, s, 0, 60)
	if through, _ := indexMark(t, s); through != 0 {
		t.Fatalf("mark %d; want the entries still waiting", through)
	}
	if n, err := s.EraseSubject("alice", pseudo); err != nil || n != 20 {
		t.Fatalf("erased %d, %v; want 20", n, err)
	}
	checkIndexes(t, s)
	if page, err := s.Query(Filter{User: "alice"}, 100, ""); err != nil || len(page.Events) != 0 {
		t.Fatalf("alice still found: %d events, %v", len(page.Events), err)
	}
	closedFileLacks(t, s, path, "alice")
}

// A failed Append may have collected entries for events that were rolled
// back; none of them may reach the index.
func TestFailedAppendLeavesNoEntries(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 10)
	bad := chainEvents(10, 3)
	bad[2].Details = map[string]any{"unencodable": make(chan int)}
	if err := s.Append(bad...); err == nil {
		t.Fatal("an event whose details cannot be encoded was stored")
	}
	appendChain(t, s, 20, 10)
	checkIndexes(t, s)
	if n := s.Count(); n != 20 {
		t.Fatalf("%d events stored, want 20", n)
	}
}

// damageNewestBlock overwrites the newest idx_user block whose key holds
// name with a value no block decodes from.
func damageNewestBlock(t *testing.T, s *Store, name string) {
	t.Helper()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUserIndex)
		var last []byte
		_ = b.ForEach(func(k, _ []byte) error {
			if bytes.Contains(k, []byte(name)) {
				last = bytes.Clone(k)
			}
			return nil
		})
		if last == nil {
			t.Fatalf("no index block of %s", name)
		}
		return b.Put(last, []byte{0x80})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A damaged block of one user makes every flush fail. That must not hold
// up another subject's erasure, and must not be retried on every call.
// (Purging that user's own events still fails on the block, as it did
// before entries were deferred: they cannot be removed from it.)
func TestDamagedIndexBlockDoesNotHoldUpErasure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendChain(t, s, 0, 30)
	if err := s.FlushIndexes(); err != nil {
		t.Fatal(err)
	}
	damageNewestBlock(t, s, "carol")
	appendChain(t, s, 30, 30) // stored; their entries wait
	if n := s.UnindexedEvents(); n != 30 {
		t.Fatalf("%d events reported unindexed, want 30", n)
	}

	first := s.FlushIndexes()
	if first == nil || !strings.Contains(first.Error(), "next attempt in 1s") {
		t.Fatalf("flush over a damaged block: %v", first)
	}
	if again := s.FlushIndexes(); again != first {
		t.Fatalf("a flush during the backoff was attempted: %v", again)
	}
	s.deferred.mu.Lock()
	s.deferred.retryAt = time.Now() // the backoff is over
	s.deferred.mu.Unlock()
	if later := s.FlushIndexes(); later == nil || !strings.Contains(later.Error(), "next attempt in 2s") {
		t.Fatalf("the attempt after the backoff: %v", later)
	}

	if n, err := s.EraseSubject("alice", pseudo); err != nil || n != 20 {
		t.Fatalf("erasing alice beside a damaged block of carol: %d, %v", n, err)
	}
	closedFileLacks(t, s, path, "alice")
}

// closedFileLacks scrubs the free pages of s, closes it, and fails if the
// file at path still holds value anywhere.
func closedFileLacks(t *testing.T, s *Store, path, value string) {
	t.Helper()
	if _, err := s.ScrubFreePages(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(value)) {
		t.Fatalf("the file still holds %q", value)
	}
}

// The writer reports a failing index flush as a write failure (metrics
// and log), though every Append succeeds.
func TestWriterReportsFailingIndexFlush(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 30)
	if err := s.FlushIndexes(); err != nil {
		t.Fatal(err)
	}
	damageNewestBlock(t, s, "carol")
	obs := &countingObserver{}
	w := NewWriter(s, WriterOptions{Observer: obs})
	defer w.Close()
	for _, ev := range chainEvents(30, 3) {
		if err := w.Enqueue(ev); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(time.Minute); obs.writeFails.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the failing index flush was never reported")
		}
	}
	if obs.committed.Load() != 3 {
		t.Fatalf("%d events committed, want 3: the events themselves are stored", obs.committed.Load())
	}
}
