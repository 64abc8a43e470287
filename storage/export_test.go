package storage

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/iotest"

	bolt "go.etcd.io/bbolt"
)

func export(t testing.TB, s *Store, f *Filter) ([]byte, ExportResult) {
	t.Helper()
	var buf bytes.Buffer
	res, err := s.ExportNDJSON(context.Background(), &buf, f)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), res
}

func verifyFile(t testing.TB, data []byte, cp *Checkpoint, pub ed25519.PublicKey) VerifyReport {
	t.Helper()
	rep, err := VerifyNDJSON(bytes.NewReader(data), cp, pub)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// exportedStore is a store with events, an erasure and purged events, its
// full export and a checkpoint of it.
func exportedStore(t testing.TB) (*Store, []byte, Checkpoint, ed25519.PublicKey) {
	t.Helper()
	s := openChainStore(t)
	appendChain(t, s, 0, 40)
	if _, err := s.EraseSubject("bob", pseudo); err != nil {
		t.Fatal(err)
	}
	raw(t, s, func(tx *bolt.Tx) error {
		for _, seq := range []uint64{1, 2, 3, 20} {
			if err := chainTombstone(tx, &Event{Seq: seq}); err != nil {
				return err
			}
			if err := tx.Bucket(bucketEvents).Delete(u64(seq)); err != nil {
				return err
			}
		}
		return nil
	})
	appendChain(t, s, 40, 5)
	cp, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := s.CheckpointPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := export(t, s, nil)
	return s, data, cp, pub
}

func TestExportVerifiesOffline(t *testing.T) {
	s, data, cp, pub := exportedStore(t)
	_, res := export(t, s, nil)
	sum := sha256.Sum256(data)
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	if res.SHA256 != hex.EncodeToString(sum[:]) || res.Rows != int64(len(lines)) || !res.Verifiable || res.LastSeq != cp.Seq || res.HeadLink != cp.Link {
		t.Fatalf("result %+v for %d lines, checkpoint %d %s", res, len(lines), cp.Seq, cp.Link)
	}
	rep := verifyFile(t, data, &cp, pub)
	wantOK(t, rep)
	live := verify(t, s, &cp)
	if rep.Events != live.Events || rep.Tombstones != 4 || rep.Erased != live.Erased || rep.Erased == 0 || rep.HeadLink != live.HeadLink || !rep.CheckpointVerified {
		t.Fatalf("offline %s\nlive %s", reportJSON(rep), reportJSON(live))
	}
	// Without the pinned key, it verifies but says what that proves.
	if rep := verifyFile(t, data, &cp, nil); !rep.OK || rep.CheckpointNote == "" {
		t.Fatalf("%s", reportJSON(rep))
	}

	// Every event line is a flat event a SIEM can ingest, with the fields
	// Get returns.
	for _, line := range lines {
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(line), `"tombstone":true`) {
			continue
		}
		got, err := s.Get(ev.Seq)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(ev)
		if !bytes.Equal(a, b) {
			t.Fatalf("line for seq %d decodes to\n%s\nwant\n%s", ev.Seq, b, a)
		}
	}
}

func TestVerifyNDJSONDetectsTampering(t *testing.T) {
	_, data, cp, pub := exportedStore(t)
	lines := bytes.SplitAfter(data, []byte("\n"))
	join := func(ls [][]byte) []byte { return bytes.Join(ls, nil) }
	seqOf := func(line []byte) uint64 {
		var x struct{ Seq uint64 }
		if err := json.Unmarshal(line, &x); err != nil {
			t.Fatal(err)
		}
		return x.Seq
	}

	t.Run("flipped byte anywhere in a line", func(t *testing.T) {
		if !bytes.Contains(lines[10], []byte(`"erased":true`)) || !bytes.Contains(lines[30], []byte(`"salt":`)) {
			t.Fatal("test premise: line 11 is erased, line 31 is not")
		}
		for _, i := range []int{10, 30} {
			line := lines[i]
			seq := seqOf(line)
			// The lines up to the changed one and the next, plus the
			// erasure record, are enough to check it, and keep this loop
			// fast under -race. The gap they leave is in the baseline.
			prefix := append(append([][]byte(nil), lines[:i+2]...), lines[40])
			if !bytes.Contains(lines[40], []byte(actionSubjectErased)) {
				t.Fatal("test premise: line 41 is the erasure record")
			}
			baseline := map[Problem]bool{}
			for _, p := range verifyFile(t, join(prefix), nil, nil).Problems {
				baseline[p] = true
			}
			for j := 0; j < len(line)-1; j++ {
				mod := bytes.Clone(line)
				mod[j] ^= 0x01
				ls := append([][]byte(nil), prefix...)
				ls[i] = mod
				rep := verifyFile(t, join(ls), nil, nil)
				inSeq := j < bytes.IndexByte(line, ',') // then the line claims another seq
				noticed := false
				for _, p := range rep.Problems {
					if baseline[p] {
						continue
					}
					noticed = true
					if p.Seq != seq && p.Seq != 0 && !inSeq {
						t.Fatalf("flipping byte %d of line %d: problem at another seq: %s", j, i+1, reportJSON(rep))
					}
				}
				if !noticed {
					t.Fatalf("flipping byte %d of line %d (%q) went unnoticed", j, i+1, mod[max(0, j-10):min(len(mod), j+10)])
				}
			}
		}
	})
	t.Run("personal field", func(t *testing.T) {
		ls := append([][]byte(nil), lines...)
		ls[10] = bytes.Replace(ls[10], []byte(`"user":"`), []byte(`"user":"x`), 1)
		wantProblem(t, verifyFile(t, join(ls), &cp, pub), seqOf(lines[10]), "personal_altered")
	})
	t.Run("removed line", func(t *testing.T) {
		ls := append(append([][]byte(nil), lines[:10]...), lines[11:]...)
		rep := verifyFile(t, join(ls), &cp, pub)
		wantProblem(t, rep, seqOf(lines[10]), "deleted")
	})
	t.Run("swapped lines", func(t *testing.T) {
		ls := append([][]byte(nil), lines...)
		ls[10], ls[11] = ls[11], ls[10]
		rep := verifyFile(t, join(ls), &cp, pub)
		wantProblem(t, rep, seqOf(lines[10]), "reordered")
		for _, p := range rep.Problems {
			if p.Kind == "deleted" {
				t.Fatalf("a swap is not a deletion: %s", reportJSON(rep))
			}
		}
	})
	t.Run("truncated at a line boundary", func(t *testing.T) {
		rep := verifyFile(t, join(lines[:len(lines)-4]), &cp, pub)
		wantProblem(t, rep, seqOf(lines[len(lines)-4]), "truncated")
		// Without the checkpoint, a shorter export looks complete.
		wantOK(t, verifyFile(t, join(lines[:len(lines)-4]), nil, nil))
	})
	t.Run("truncated mid-line", func(t *testing.T) {
		cut := data[:len(data)-40]
		rep := verifyFile(t, cut, &cp, pub)
		if rep.OK {
			t.Fatal("a cut file verified")
		}
		wantProblem(t, rep, cp.Seq, "truncated")
	})
	t.Run("forged checkpoint", func(t *testing.T) {
		forged := cp
		forged.Seq--
		wantProblem(t, verifyFile(t, data, &forged, pub), forged.Seq, "checkpoint_signature")
		other, _, _ := ed25519.GenerateKey(nil) // the public key of someone else
		if rep := verifyFile(t, data, &cp, other); rep.OK {
			t.Fatal("a checkpoint checked with the wrong key verified")
		}
	})
	t.Run("duplicate and unknown fields", func(t *testing.T) {
		for _, mod := range [][]byte{
			bytes.Replace(lines[10], []byte(`{"seq":`), []byte(`{"user":"eve","seq":`), 1),
			bytes.Replace(lines[10], []byte(`{"seq":`), []byte(`{"note":"x","seq":`), 1),
			[]byte("[1,2]\n"),
			[]byte("\n"),
		} {
			ls := append([][]byte(nil), lines...)
			ls[10] = mod
			if rep := verifyFile(t, join(ls), &cp, pub); rep.OK {
				t.Fatalf("line %q verified", mod)
			}
		}
	})
	t.Run("empty", func(t *testing.T) {
		if rep := verifyFile(t, nil, nil, nil); rep.OK {
			t.Fatal("an empty file proves nothing")
		}
		if rep := verifyFile(t, nil, &cp, pub); rep.OK {
			t.Fatal("an empty file against a checkpoint")
		}
	})
}

func TestVerifyNDJSONReadError(t *testing.T) {
	boom := errors.New("boom")
	if _, err := VerifyNDJSON(iotest.ErrReader(boom), nil, nil); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
}

func TestExportEmptyStoreVerifies(t *testing.T) {
	s := openChainStore(t)
	cp, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	data, res := export(t, s, nil)
	if len(data) != 0 || res.Rows != 0 {
		t.Fatalf("%q %+v", data, res)
	}
	pub, _ := s.CheckpointPublicKey()
	wantOK(t, verifyFile(t, data, &cp, pub))
}

func TestFilteredExport(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 30)
	data, res := export(t, s, &Filter{User: "alice", From: chainBase.Add(3 * 1e9)})
	if res.Verifiable || res.Rows != 9 || res.HeadLink != "" {
		t.Fatalf("%+v", res)
	}
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil || ev.User != "alice" {
			t.Fatalf("line %s: %v", line, err)
		}
	}
	if rep := verifyFile(t, data, nil, nil); rep.OK {
		t.Fatal("a filtered export cannot verify the chain")
	}
}

func TestExportStopsOnWriteErrorAndContext(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 5)
	boom := errors.New("disk full")
	if _, err := s.ExportNDJSON(context.Background(), errWriter{boom}, nil); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.ExportNDJSON(ctx, &bytes.Buffer{}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// A damaged record shows in the export as a line offline verification
// reports, not as a silent gap.
func TestExportKeepsDamagedRecords(t *testing.T) {
	s := openChainStore(t)
	appendChain(t, s, 0, 5)
	rawPut(t, s, bucketEvents, 3, []byte("garbage"))
	cp, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	data, res := export(t, s, nil)
	if res.Rows != 5 || !bytes.Contains(data, []byte(`"malformed_record"`)) {
		t.Fatalf("%+v %s", res, data)
	}
	pub, _ := s.CheckpointPublicKey()
	wantProblem(t, verifyFile(t, data, &cp, pub), 0, "malformed")
}

func TestScanMembers(t *testing.T) {
	in := []byte(` { "a" : 1 , "b\"c":{"x":[1,"}",{"y":null}]}, "d":"e\\"} `)
	var got []string
	if err := scanMembers(in, func(k, v []byte) error {
		got = append(got, string(k)+"="+string(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{`"a"=1`, `"b\"c"={"x":[1,"}",{"y":null}]}`, `"d"="e\\"`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q", got)
	}
	for _, bad := range []string{``, `[]`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1 "b":2}`, `{"a":"}`, `{"a":[}`} {
		if err := scanMembers([]byte(bad), func(k, v []byte) error { return nil }); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Verify, exports and erasure work in chunks of short transactions; small
// chunks make every boundary fall between events, tombstones and erasures.
func TestChunkBoundaries(t *testing.T) {
	defer func(v, e int) { verifyChunk, exportFlush = v, e }(verifyChunk, exportFlush)
	s, want, cp, pub := exportedStore(t)
	wantRep := verify(t, s, &cp)
	for _, size := range []int{1, 2, 3, 7} {
		verifyChunk, exportFlush = size, size*700
		rep := verify(t, s, &cp)
		wantOK(t, rep)
		if rep.Events != wantRep.Events || rep.Tombstones != wantRep.Tombstones || rep.Erased != wantRep.Erased {
			t.Fatalf("chunk %d: %s", size, reportJSON(rep))
		}
		got, _ := export(t, s, nil)
		if !bytes.Equal(got, want) {
			t.Fatalf("chunk %d: export differs", size)
		}
		wantOK(t, verifyFile(t, got, &cp, pub))
		filtered, res := export(t, s, &Filter{User: "carol"})
		if res.Rows != 14 || bytes.Count(filtered, []byte("\n")) != 14 { // 15, one purged
			t.Fatalf("chunk %d: filtered export %+v", size, res)
		}
	}
}
