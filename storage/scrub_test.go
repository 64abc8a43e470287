package storage

import (
	"bytes"
	"os"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestScrubFreePagesAfterErasure: erasure alone leaves the old values in
// the pages it freed; a scrub zeroes them, and the store still verifies.
func TestScrubFreePagesAfterErasure(t *testing.T) {
	s, subject := erasedStore(t)
	count := func() int { return rawCount(t, s, subject) }
	if count() == 0 {
		t.Skip("the freed pages were already reused; nothing left to scrub")
	}
	n, err := s.ScrubFreePages()
	if err != nil || n == 0 {
		t.Fatalf("scrubbed %d pages, %v", n, err)
	}
	if c := count(); c != 0 {
		t.Fatalf("after the scrub the file still holds the subject %d time(s)", c)
	}
	wantOK(t, verify(t, s, nil))
	if s.Count() != 201 { // 200 events and one erasure record
		t.Fatalf("count = %d", s.Count())
	}
	// A second scrub has only zeros to overwrite and leaves no bucket.
	if _, err := s.ScrubFreePages(); err != nil {
		t.Fatal(err)
	}
	if err := s.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketScrub) != nil {
			t.Error("the scrub bucket was left behind")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// erasedStore holds 200 events, a quarter of them a subject's, erased.
func erasedStore(t *testing.T) (*Store, string) {
	t.Helper()
	s := openChainStore(t)
	const subject = "erasable.subject-4410@example.net"
	var evs []*Event
	for i := range 200 {
		user := "someone-else"
		if i%4 == 0 {
			user = subject
		}
		evs = append(evs, &Event{ID: NewID(chainBase), Time: chainBase.Add(time.Duration(i) * time.Second), Kind: KindHTTP,
			User: user, UserAgent: "agent-of-" + user, Path: "/api/items", Status: 200})
	}
	if err := s.Append(evs...); err != nil {
		t.Fatal(err)
	}
	if n, err := s.EraseSubject(subject, pseudo); err != nil || n != 50 {
		t.Fatalf("erased %d, %v", n, err)
	}
	return s, subject
}

// rawCount counts s in the database file's bytes.
func rawCount(t *testing.T, st *Store, s string) int {
	t.Helper()
	raw, err := os.ReadFile(st.Path())
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(raw, []byte(s))
}

// A scrub in small chunks takes one transaction per chunk, none filling
// more than its chunk, and still leaves no trace of the subject.
func TestScrubFreePagesInChunks(t *testing.T) {
	s, subject := erasedStore(t)
	if rawCount(t, s, subject) == 0 {
		t.Skip("the freed pages were already reused; nothing left to scrub")
	}
	const chunk = 2
	free, txs, err := s.scrubFreePages(chunk)
	if err != nil || free == 0 {
		t.Fatalf("scrubbed %d pages, %v", free, err)
	}
	if want := (2*free + 8 + 2*chunk - 1) / (2 * chunk); txs != want || txs < 2 {
		t.Errorf("%d free pages took %d transactions, want %d of at most %d pages", free, txs, want, chunk)
	}
	if c := rawCount(t, s, subject); c != 0 {
		t.Fatalf("after a chunked scrub the file still holds the subject %d time(s)", c)
	}
	wantOK(t, verify(t, s, nil))
}
