package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openChainStore opens a store that signs checkpoints with a key in the
// test's data directory.
func openChainStore(t testing.TB) *Store {
	t.Helper()
	return openTemp(t, Options{CheckpointKeyPath: filepath.Join(t.TempDir(), "checkpoint.key")})
}

var chainBase = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// chainEvents builds events with every kind of field filled, personal ones
// included, so that every part of the stored form carries data.
func chainEvents(from, n int) []*Event {
	var evs []*Event
	for i := from; i < from+n; i++ {
		evs = append(evs, &Event{
			ID:           fmt.Sprintf("ev%05d", i),
			Time:         chainBase.Add(time.Duration(i) * time.Second),
			Kind:         KindHTTP,
			Stage:        StageResponseComplete,
			Level:        "headers",
			RequestID:    fmt.Sprintf("req-%d", i),
			Method:       []string{"GET", "POST", "DELETE"}[i%3],
			Scheme:       "https",
			Host:         "app.example",
			Path:         fmt.Sprintf("/api/items/%d", i),
			Query:        "q=" + fmt.Sprint(i),
			Proto:        "HTTP/2.0",
			Status:       []int{200, 401, 404, 204}[i%4],
			Outcome:      "success",
			DurationNS:   int64(1000 + i),
			BytesOut:     int64(i * 10),
			ClientIP:     fmt.Sprintf("10.0.%d.%d", i/250, i%250),
			ClientPort:   40000 + i,
			ForwardedFor: []string{"203.0.113.7", "10.0.0.1"},
			UserAgent:    "Mozilla/5.0 <test>",
			Referer:      "https://app.example/home",
			TLSVersion:   "1.3",
			User:         []string{"alice", "bob", "carol"}[i%3],
			UserSource:   "header",
			Workspace:    []string{"acme", "globex"}[i%2],
			RequestHeaders: map[string][]string{
				"Accept":        {"application/json"},
				"Authorization": {"hmac:0011223344"},
			},
			ResponseHeaders: map[string][]string{"Content-Type": {"application/json"}},
			RiskScore:       i % 50,
			RiskLevel:       "low",
			RiskFactors:     []RiskFactor{{Name: "failed_auth", Points: 3, Detail: "401 Unauthorized"}},
			// A struct value: its key order differs from a decoded map's,
			// which is why decoded events are never re-encoded.
			Details: map[string]any{"n": i, "big": uint64(1) << 60, "nested": struct{ B, A int }{1, 2}},
		})
	}
	return evs
}

func appendChain(t testing.TB, s *Store, from, n int) {
	t.Helper()
	for _, batch := range slices.Collect(slices.Chunk(chainEvents(from, n), 7)) {
		if err := s.Append(batch...); err != nil {
			t.Fatal(err)
		}
	}
}

func verify(t testing.TB, s *Store, cp *Checkpoint) VerifyReport {
	t.Helper()
	rep, err := s.Verify(context.Background(), cp)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// wantProblem fails unless rep is not OK and names kind at seq.
func wantProblem(t testing.TB, rep VerifyReport, seq uint64, kind string) {
	t.Helper()
	if rep.OK {
		t.Fatalf("report is OK, want a %s problem at seq %d", kind, seq)
	}
	for _, p := range rep.Problems {
		if p.Seq == seq && p.Kind == kind {
			return
		}
	}
	t.Fatalf("no %s problem at seq %d in %s", kind, seq, reportJSON(rep))
}

func wantOK(t testing.TB, rep VerifyReport) {
	t.Helper()
	if !rep.OK || rep.ProblemCount != 0 {
		t.Fatalf("verification failed: %s", reportJSON(rep))
	}
}

func reportJSON(rep VerifyReport) string {
	b, _ := json.MarshalIndent(rep, "", "  ")
	return string(b)
}

// raw runs fn in a write transaction, the way an attacker with the file
// would change it.
func raw(t testing.TB, s *Store, fn func(tx *bolt.Tx) error) {
	t.Helper()
	if err := s.db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func rawGet(t testing.TB, s *Store, bucket []byte, seq uint64) []byte {
	t.Helper()
	var v []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		v = bytes.Clone(tx.Bucket(bucket).Get(u64(seq)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if v == nil {
		t.Fatalf("no key %d in %s", seq, bucket)
	}
	return v
}

func rawPut(t testing.TB, s *Store, bucket []byte, seq uint64, val []byte) {
	t.Helper()
	raw(t, s, func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(u64(seq), val) })
}

func rawDelete(t testing.TB, s *Store, bucket []byte, seqs ...uint64) {
	t.Helper()
	raw(t, s, func(tx *bolt.Tx) error {
		for _, seq := range seqs {
			if err := tx.Bucket(bucket).Delete(u64(seq)); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestVerifyCleanChain(t *testing.T) {
	s := openChainStore(t)
	wantOK(t, verify(t, s, nil)) // empty store
	appendChain(t, s, 0, 50)
	rep := verify(t, s, nil)
	wantOK(t, rep)
	if rep.Events != 50 || rep.FirstSeq != 1 || rep.LastSeq != 50 || rep.Tombstones != 0 || rep.Erased != 0 {
		t.Fatalf("counts: %s", reportJSON(rep))
	}
	if want := hex.EncodeToString(rawGet(t, s, bucketChainLinks, 50)); rep.HeadLink != want {
		t.Fatalf("head link %s, want %s", rep.HeadLink, want)
	}
	if rep.CheckpointNote == "" || rep.CheckpointVerified {
		t.Fatalf("without a checkpoint the report must say what it cannot prove: %s", reportJSON(rep))
	}
	cp, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	rep = verify(t, s, &cp)
	wantOK(t, rep)
	if !rep.CheckpointVerified || rep.CheckpointSeq != 50 {
		t.Fatalf("checkpoint not verified: %s", reportJSON(rep))
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(reportJSON(rep)), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ok", "events", "tombstones", "erased", "first_seq", "last_seq", "head_link", "checkpoint_verified", "problems", "problem_count", "duration_ms"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report JSON lacks %q", k)
		}
	}
}

func TestDecodeReturnsFullEvent(t *testing.T) {
	s := openChainStore(t)
	ev := chainEvents(0, 1)[0]
	ev.Details = map[string]any{"s": "x", "f": 1.5}
	want := *ev
	if err := s.Append(ev); err != nil {
		t.Fatal(err)
	}
	want.Seq = ev.Seq
	got, err := s.Get(ev.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(*ev, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

// Every Event field is either chained or personal, and the personal set is
// the one the erasure promise is made for.
func TestFieldClassification(t *testing.T) {
	all := jsonNames(reflect.TypeFor[Event]())
	seen := map[string]string{}
	for _, n := range chainedOrder {
		seen[n] = "chained"
	}
	for _, n := range personalOrder {
		if seen[n] != "" {
			t.Errorf("%s is both chained and personal", n)
		}
		seen[n] = "personal"
	}
	for _, n := range all {
		if n == "seq" || n == "erased" {
			continue // stored outside the parts: the chain hashes seq itself
		}
		if seen[n] == "" {
			t.Errorf("Event field %q is neither chained nor personal: add it to chainedFields or personalFields", n)
		}
	}
	if len(seen) != len(all)-2 {
		t.Errorf("parts have %d fields, Event has %d besides seq and erased", len(seen), len(all)-2)
	}
	want := []string{"user", "client_ip", "client_port", "forwarded_for_untrusted", "user_agent", "referer", "query", "request_headers", "response_headers", "request_body", "response_body"}
	if !slices.Equal(personalOrder, want) {
		t.Errorf("personal fields %v, want %v", personalOrder, want)
	}
	for _, meta := range metaOrder {
		if meta != "seq" && meta != "erased" && seen[meta] != "" {
			t.Errorf("export metadata %q collides with an event field", meta)
		}
	}
}

// A flipped bit anywhere in a stored record is reported at that record's
// seq, and the rest of the chain still verifies.
func TestVerifyDetectsFlippedByte(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 20)
	const seq = 10
	orig := rawGet(t, s, bucketEvents, seq)
	e, err := parseEnvelope(orig)
	if err != nil {
		t.Fatal(err)
	}
	vlen := func(v int) int { return len(binary.AppendUvarint(nil, uint64(v))) }
	commitAt := 2 + vlen(seq)
	chainedAt := commitAt + hashSize + vlen(len(e.chained))
	personalAt := chainedAt + len(e.chained) + vlen(len(e.personal))
	saltAt := personalAt + len(e.personal)
	// The kinds a flip in each region may be reported as.
	region := func(i int) (string, []string) {
		switch {
		case i >= saltAt:
			return "salt", []string{"personal_altered"}
		case i >= personalAt:
			return "personal", []string{"personal_altered"}
		case i >= personalAt-vlen(len(e.personal)):
			return "personal length", []string{"malformed", "altered", "personal_altered"}
		case i >= chainedAt:
			return "chained", []string{"altered"}
		case i >= commitAt+hashSize:
			return "chained length", []string{"malformed", "altered", "personal_altered"}
		case i >= commitAt:
			return "commit", []string{"altered", "personal_altered"}
		}
		return "header", []string{"malformed", "reordered"}
	}
	for i := range orig {
		val := bytes.Clone(orig)
		val[i] ^= 0x01
		rawPut(t, s, bucketEvents, seq, val)
		rep := verify(t, s, nil)
		name, kinds := region(i)
		if rep.OK {
			t.Fatalf("flipping byte %d (%s) went unnoticed", i, name)
		}
		for _, p := range rep.Problems {
			if p.Seq != seq || !slices.Contains(kinds, p.Kind) {
				t.Fatalf("flipping byte %d (%s): want only %v at seq %d: %s", i, name, kinds, seq, reportJSON(rep))
			}
		}
	}
	rawPut(t, s, bucketEvents, seq, orig)
	wantOK(t, verify(t, s, nil))

	// The stored link itself.
	link := rawGet(t, s, bucketChainLinks, seq)
	link[3] ^= 0x80
	rawPut(t, s, bucketChainLinks, seq, link)
	rep := verify(t, s, nil)
	wantProblem(t, rep, seq, "altered")
	if rep.ProblemCount != 1 {
		t.Fatalf("a changed link is one problem, not two: %s", reportJSON(rep))
	}
}

func TestVerifyDetectsDeletedEvent(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 30)
	rawDelete(t, s, bucketEvents, 10)
	rep := verify(t, s, nil)
	wantProblem(t, rep, 10, "deleted")
	if rep.ProblemCount != 1 {
		t.Fatalf("the link survived, so only seq 10 is a problem: %s", reportJSON(rep))
	}
	// An attacker who also removes the link.
	rawDelete(t, s, bucketChainLinks, 10)
	rep = verify(t, s, nil)
	wantProblem(t, rep, 10, "deleted")
	if rep.Events != 29 {
		t.Fatalf("events: %s", reportJSON(rep))
	}
}

func TestVerifyDetectsSwappedEvents(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 30)
	a, b := rawGet(t, s, bucketEvents, 10), rawGet(t, s, bucketEvents, 20)
	rawPut(t, s, bucketEvents, 10, b)
	rawPut(t, s, bucketEvents, 20, a)
	rep := verify(t, s, nil)
	wantProblem(t, rep, 10, "reordered")
	wantProblem(t, rep, 20, "reordered")

	// Swapped with their seqs fixed up: the hashes give them away.
	for _, x := range []struct {
		seq uint64
		val []byte
	}{{10, b}, {20, a}} {
		e, err := parseEnvelope(x.val)
		if err != nil {
			t.Fatal(err)
		}
		e.seq = x.seq
		rawPut(t, s, bucketEvents, x.seq, appendEnvelope(nil, &e))
	}
	rep = verify(t, s, nil)
	wantProblem(t, rep, 10, "altered")
	wantProblem(t, rep, 20, "altered")
}

func TestVerifyDetectsTruncatedTail(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 50)
	cp, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	var tail []uint64
	for seq := uint64(41); seq <= 50; seq++ {
		tail = append(tail, seq)
	}
	rawDelete(t, s, bucketEvents, tail...)
	rawDelete(t, s, bucketChainLinks, tail...)
	rep := verify(t, s, &cp)
	wantProblem(t, rep, 41, "truncated")
	if rep.LastSeq != 40 || rep.CheckpointVerified {
		t.Fatalf("%s", reportJSON(rep))
	}
	// Without an outside checkpoint: the store's own and its sequence.
	wantProblem(t, verify(t, s, nil), 41, "truncated")

	// An attacker who also rewinds the sequence and drops the checkpoints
	// is caught by the checkpoint kept elsewhere.
	raw(t, s, func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketEvents).SetSequence(40); err != nil {
			return err
		}
		return tx.Bucket(bucketCheckpoints).Delete(u64(50))
	})
	wantOK(t, verify(t, s, nil))
	rep = verify(t, s, &cp)
	if rep.OK || rep.ProblemCount != 1 || rep.Problems[0].Seq != 41 {
		t.Fatalf("want one problem at seq 41: %s", reportJSON(rep))
	}
}

func TestVerifyDetectsRollbackToOlderCopy(t *testing.T) {
	dir := t.TempDir()
	opts := Options{CheckpointKeyPath: filepath.Join(dir, "checkpoint.key")}
	s, err := Open(filepath.Join(dir, "audit.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	appendChain(t, s, 0, 30)
	if _, err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "old.db")
	if err := s.db.View(func(tx *bolt.Tx) error { return tx.CopyFile(old, 0o600) }); err != nil {
		t.Fatal(err)
	}
	appendChain(t, s, 30, 20)
	newer, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(old, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep := verify(t, s, &newer)
	wantProblem(t, rep, 31, "rollback")
	if rep.CheckpointVerified {
		t.Fatal("a rolled-back store cannot match a newer checkpoint")
	}
	// The old copy is consistent with itself: only the outside checkpoint
	// shows the rollback.
	wantOK(t, verify(t, s, nil))
	// And the store refuses to sign over a head older than it has seen.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		val, _ := json.Marshal(newer)
		return tx.Bucket(bucketCheckpoints).Put(u64(newer.Seq), val)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Checkpoint(); err == nil || !strings.Contains(err.Error(), "behind the latest checkpoint") {
		t.Fatalf("checkpointing a rolled-back store: %v", err)
	}
}

// An attacker who rewrites an event and recomputes every later link beats
// the chain alone; the checkpoint shows the rewrite.
func TestVerifyDetectsRewrittenHistory(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 30)
	cp, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	raw(t, s, func(tx *bolt.Tx) error {
		events, links := tx.Bucket(bucketEvents), tx.Bucket(bucketChainLinks)
		prev := bytes.Clone(links.Get(u64(4)))
		for seq := uint64(5); seq <= 30; seq++ {
			e, err := parseEnvelope(bytes.Clone(events.Get(u64(seq))))
			if err != nil {
				return err
			}
			if seq == 5 {
				e.chained = bytes.Replace(e.chained, []byte(`"status":`), []byte(`"status":2`), 1)
				if err := events.Put(u64(seq), appendEnvelope(nil, &e)); err != nil {
					return err
				}
			}
			link := chainLink(sha256.New(), prev, seq, e.commit, e.chained)
			if err := links.Put(u64(seq), link[:]); err != nil {
				return err
			}
			prev = link[:]
		}
		return nil
	})
	wantProblem(t, verify(t, s, &cp), 30, "checkpoint_mismatch")
	wantProblem(t, verify(t, s, nil), 30, "checkpoint_mismatch") // the store's own
	if _, err := s.Checkpoint(); err == nil {
		t.Fatal("checkpointing over a rewritten history must fail")
	}
}

func TestVerifyDetectsForgedCheckpoint(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 10)
	cp, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	forged := cp
	forged.Seq = 5 // e.g. to accept a store truncated to seq 5
	forged.Link = hex.EncodeToString(rawGet(t, s, bucketChainLinks, 5))
	wantProblem(t, verify(t, s, &forged), 5, "checkpoint_signature")

	sig := slices.Clone(cp.Signature)
	sig[0] ^= 1
	forged = cp
	forged.Signature = sig
	wantProblem(t, verify(t, s, &forged), 10, "checkpoint_signature")

	// Signed by another key that it embeds: valid in itself, but not this
	// store's key.
	other := openChainStore(t)
	appendChain(t, other, 0, 10)
	foreign, err := other.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if err := foreign.Verify(nil); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, verify(t, s, &foreign), 10, "checkpoint_signature")
}

func TestRetentionTombstonesVerify(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 40)
	cp, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	purge := func(seqs ...uint64) {
		raw(t, s, func(tx *bolt.Tx) error {
			for _, seq := range seqs {
				var ev Event
				if err := decodeEvent(tx.Bucket(bucketEvents).Get(u64(seq)), &ev); err != nil {
					return err
				}
				if err := chainTombstone(tx, &ev); err != nil {
					return err
				}
				if err := chainTombstone(tx, &ev); err != nil { // idempotent
					return err
				}
				if err := unindexEvent(tx, &ev); err != nil {
					return err
				}
				if err := tx.Bucket(bucketEvents).Delete(u64(seq)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	purge(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 25, 40) // the checkpoint's own seq too
	rep := verify(t, s, &cp)
	wantOK(t, rep)
	if rep.Tombstones != 12 || rep.Events != 28 || rep.FirstSeq != 1 || rep.LastSeq != 40 || !rep.CheckpointVerified {
		t.Fatalf("counts: %s", reportJSON(rep))
	}
	if _, err := s.Get(5); err == nil {
		t.Fatal("purged event still readable")
	}
	appendChain(t, s, 40, 5) // the chain goes on after a tombstoned head
	wantOK(t, verify(t, s, &cp))
	// A seq that vanished without a tombstone is still a deletion.
	rawDelete(t, s, bucketEvents, 30)
	wantProblem(t, verify(t, s, &cp), 30, "deleted")
	if err := s.db.Update(func(tx *bolt.Tx) error { return chainTombstone(tx, &Event{Seq: 999}) }); err == nil {
		t.Fatal("tombstoning a seq without a link must fail")
	}
}

func TestUpgradeSchema1Fixture(t *testing.T) {
	data, err := os.ReadFile("testdata/schema1.db")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{CheckpointKeyPath: filepath.Join(dir, "cp.key")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep := verify(t, s, nil)
	wantOK(t, rep)
	if rep.Events != 51 {
		t.Fatalf("%s", reportJSON(rep))
	}
	ev, err := s.Get(2)
	if err != nil || ev.RequestID != "fixture-01" || ev.Seq != 2 {
		t.Fatalf("upgraded event: %+v %v", ev, err)
	}
	appendChain(t, s, 0, 3)
	wantOK(t, verify(t, s, nil))
}

// A record not written by putEvent cannot be encoded: re-marshalling a
// decoded event would not reproduce the hashed bytes.
func TestEncodeRefusesUnlinkedEvent(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 1)
	ev, err := s.Get(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := encodeEvent(&ev); err == nil {
		t.Fatal("encoding a decoded event must fail")
	}
	var stored []byte
	_ = s.db.View(func(tx *bolt.Tx) error {
		e, _ := parseEnvelope(tx.Bucket(bucketEvents).Get(u64(1)))
		stored = bytes.Clone(e.chained)
		return nil
	})
	cf := chainedOf(&ev)
	again, _ := json.Marshal(&cf)
	if bytes.Equal(again, stored) {
		t.Fatal("test premise: re-marshalling should differ (struct in Details)")
	}
}

func TestVerifyHonoursContext(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 5)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Verify(ctx, nil); err == nil {
		t.Fatal("want the context's error")
	}
}

func TestAppendRejectsSeqBehindHead(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 3)
	err := s.db.Update(func(tx *bolt.Tx) error {
		return putEvent(tx, &Event{ID: "x", Seq: 2, Time: chainBase})
	})
	if err == nil || !strings.Contains(err.Error(), "chain head") {
		t.Fatalf("got %v", err)
	}
}

// chainedOf builds the chained part with encoding/json field by field:
// the reference appendChained is checked against.
func chainedOf(ev *Event) chainedFields {
	return chainedFields{
		ID: ev.ID, Time: ev.Time, Kind: ev.Kind, Stage: ev.Stage, Action: ev.Action,
		Level: ev.Level, Rule: ev.Rule, Tags: ev.Tags, RequestID: ev.RequestID, Method: ev.Method, Scheme: ev.Scheme,
		Host: ev.Host, Path: ev.Path, Proto: ev.Proto, Status: ev.Status,
		Outcome: ev.Outcome, DurationNS: ev.DurationNS, TTFBNS: ev.TTFBNS,
		BytesIn: ev.BytesIn, BytesOut: ev.BytesOut, TLSVersion: ev.TLSVersion,
		TLSCipher: ev.TLSCipher, UserSource: ev.UserSource, UserVerified: ev.UserVerified,
		Workspace: ev.Workspace, UpstreamError: ev.UpstreamError, RiskScore: ev.RiskScore,
		RiskLevel: ev.RiskLevel, RiskFactors: ev.RiskFactors, Suspicious: ev.Suspicious,
		Details: ev.Details,
	}
}
