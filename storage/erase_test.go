package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// pseudo is a deterministic pseudonym function such as a caller would
// build from a keyed hash.
func pseudo(field, value string) string {
	sum := sha256.Sum256([]byte(field + "\x00" + value))
	return "pseud:" + hex.EncodeToString(sum[:6])
}

func TestEraseSubjectThenVerify(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 60) // alice is every third event: 20
	cp, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	n, err := s.EraseSubject("alice", func(field, value string) string {
		fields = append(fields, field)
		if field == "client_port" {
			return "not a port"
		}
		return pseudo(field, value)
	})
	if err != nil || n != 20 {
		t.Fatalf("erased %d, %v; want 20", n, err)
	}
	for _, f := range []string{"user", "client_ip", "client_port", "forwarded_for_untrusted", "user_agent", "referer", "query", "request_headers.Accept", "response_headers.Content-Type"} {
		if !strings.Contains(strings.Join(fields, " "), f) {
			t.Errorf("pseudonym never asked for %s", f)
		}
	}
	rep := verify(t, s, &cp)
	wantOK(t, rep)
	if rep.Erased != 20 || rep.Events != 61 || !rep.CheckpointVerified {
		t.Fatalf("want 20 erased among 60 events and one erasure record: %s", reportJSON(rep))
	}

	ev, err := s.Get(1) // i=0: alice
	if err != nil {
		t.Fatal(err)
	}
	if !ev.Erased || ev.User != pseudo("user", "alice") || ev.ClientIP != pseudo("client_ip", "10.0.0.0") || ev.ClientPort != 0 ||
		ev.RequestHeaders["Accept"][0] != pseudo("request_headers.Accept", "application/json") {
		t.Fatalf("erased event: %+v", ev)
	}
	if ev.Path != "/api/items/0" || ev.RequestID != "req-0" || ev.Details["n"] != float64(0) {
		t.Fatalf("non-personal fields changed: %+v", ev)
	}
	bob, _ := s.Get(2)
	if bob.Erased || bob.User != "bob" || bob.ClientIP != "10.0.0.1" {
		t.Fatalf("another subject's event changed: %+v", bob)
	}
	// The salt is gone, so the old values cannot be tested against the
	// commitment.
	val := rawGet(t, s, bucketEvents, 1)
	e, err := parseEnvelope(val)
	if err != nil || e.salt != nil || !e.erased() || bytes.Contains(val, []byte("alice")) {
		t.Fatalf("erased record still holds the salt or the user: %q", val)
	}
	// Indexes follow (through Query).
	page, err := s.Query(Filter{User: "alice"}, 100, "")
	if err != nil || len(page.Events) != 0 {
		t.Fatalf("alice still found: %d, %v", len(page.Events), err)
	}
	page, err = s.Query(Filter{User: pseudo("user", "alice")}, 100, "")
	if err != nil || len(page.Events) != 20 {
		t.Fatalf("pseudonym found %d times, %v; want 20", len(page.Events), err)
	}
	// The erasure is itself on the record, without the subject's name.
	page, err = s.Query(Filter{Kind: KindLifecycle}, 10, "")
	if err != nil || len(page.Events) != 1 || page.Events[0].Action != actionSubjectErased {
		t.Fatalf("erasure record: %+v %v", page.Events, err)
	}
	rec := rawGet(t, s, bucketEvents, page.Events[0].Seq)
	if bytes.Contains(rec, []byte("alice")) {
		t.Fatal("the erasure record names the subject")
	}

	// Erasing again finds nothing; a nil pseudonym deletes values.
	if n, err := s.EraseSubject("alice", nil); n != 0 || err != nil {
		t.Fatalf("second erasure: %d, %v", n, err)
	}
	if n, err := s.EraseSubject("bob", nil); n != 20 || err != nil {
		t.Fatalf("erasing bob: %d, %v", n, err)
	}
	ev, _ = s.Get(2)
	if ev.User != "" || ev.ClientIP != "" || ev.RequestHeaders != nil || ev.ForwardedFor != nil {
		t.Fatalf("nil pseudonym must delete values: %+v", ev)
	}
	wantOK(t, verify(t, s, nil))
	if _, err := s.EraseSubject("", nil); err == nil {
		t.Fatal("an empty user must be refused")
	}
}

func TestErasedEventsStayTamperEvident(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 30)
	if _, err := s.EraseSubject("carol", pseudo); err != nil {
		t.Fatal(err)
	}
	// carol is i%3 == 2: seq 3 is hers.
	orig := rawGet(t, s, bucketEvents, 3)
	e, _ := parseEnvelope(orig)
	e.personal = bytes.Replace(e.personal, []byte("pseud:"), []byte("pseud;"), 1)
	rawPut(t, s, bucketEvents, 3, appendEnvelope(nil, &e))
	wantProblem(t, verify(t, s, nil), 3, "personal_altered")
	rawPut(t, s, bucketEvents, 3, orig)

	// Marking a live event erased, to change its personal fields unseen,
	// needs a chained erasure record that lists it.
	val := rawGet(t, s, bucketEvents, 4)
	e, _ = parseEnvelope(val)
	e.flags |= flagErased
	e.personal = []byte(`{"user":"mallory"}`)
	e.erasedBy = 31 // carol's real erasure record
	rawPut(t, s, bucketEvents, 4, appendEnvelope(nil, &e))
	wantProblem(t, verify(t, s, nil), 4, "erasure_unproven")
	e.erasedBy = 2 // before the event itself
	rawPut(t, s, bucketEvents, 4, appendEnvelope(nil, &e))
	wantProblem(t, verify(t, s, nil), 4, "erasure_unproven")
	e.erasedBy = 5 // an ordinary event
	rawPut(t, s, bucketEvents, 4, appendEnvelope(nil, &e))
	wantProblem(t, verify(t, s, nil), 4, "erasure_unproven")
	e.erasedBy = 500 // beyond the chain
	rawPut(t, s, bucketEvents, 4, appendEnvelope(nil, &e))
	wantProblem(t, verify(t, s, nil), 4, "erasure_unproven")
	rawPut(t, s, bucketEvents, 4, val)
	wantOK(t, verify(t, s, nil))

	// A purged erasure record leaves its events accepted on the strength
	// of its tombstone.
	raw(t, s, func(tx *bolt.Tx) error {
		if err := chainTombstone(tx, &Event{Seq: 31}); err != nil {
			return err
		}
		return tx.Bucket(bucketEvents).Delete(u64(31))
	})
	wantOK(t, verify(t, s, nil))
}

func TestEraseSpansTransactions(t *testing.T) {
	defer func(v int) { eraseScan = v }(eraseScan)
	eraseScan = 100
	s := openChainStore(t)
	var evs []*Event
	for _, ev := range chainEvents(0, 3*eraseBatch+5) {
		ev.User = "dave"
		evs = append(evs, ev)
	}
	if err := s.Append(evs...); err != nil {
		t.Fatal(err)
	}
	n, err := s.EraseSubject("dave", pseudo)
	if err != nil || n != len(evs) {
		t.Fatalf("erased %d, %v; want %d", n, err, len(evs))
	}
	rep := verify(t, s, nil)
	wantOK(t, rep)
	if rep.Events != int64(len(evs))+4 { // one erasure record per transaction
		t.Fatalf("%s", reportJSON(rep))
	}
}

func TestPseudonymizeDoesNotShareMaps(t *testing.T) {
	ev := *chainEvents(0, 1)[0]
	out := pseudonymize(ev, pseudo)
	if ev.RequestHeaders["Accept"][0] != "application/json" || ev.ForwardedFor[0] != "203.0.113.7" {
		t.Fatal("pseudonymize changed its input")
	}
	if out.ForwardedFor[0] == ev.ForwardedFor[0] {
		t.Fatal("forwarded chain not pseudonymized")
	}
}
