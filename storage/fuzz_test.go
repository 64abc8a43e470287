package storage

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FuzzDecodeEvent: no input panics decodeEvent or parseEnvelope, and a
// record that parses re-encodes to the same bytes.
func FuzzDecodeEvent(f *testing.F) {
	s := openChainStore(f)
	appendChain(f, s, 0, 3)
	if _, err := s.EraseSubject("alice", pseudo); err != nil {
		f.Fatal(err)
	}
	_ = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).ForEach(func(_, v []byte) error {
			f.Add(bytes.Clone(v))
			return nil
		})
	})
	f.Add([]byte(`{"id":"x","seq":1}`))
	f.Add([]byte{envelopeV1})
	f.Add([]byte{envelopeV1, 0, 1})
	f.Add(append([]byte{envelopeV1, 0, 0x81, 0x00}, make([]byte, 40)...)) // a non-minimal seq
	f.Fuzz(func(t *testing.T, val []byte) {
		var ev Event
		_ = decodeEvent(val, &ev)
		e, err := parseEnvelope(val)
		if err != nil {
			return
		}
		if again := appendEnvelope(nil, &e); !bytes.Equal(again, val) {
			t.Fatalf("envelope round trip:\n%x\n%x", val, again)
		}
	})
}

// FuzzVerifyNDJSON: no input panics VerifyNDJSON, and whatever it reports
// OK against the checkpoint of a real export says exactly what that export
// says: every event line decodes to the stored event.
func FuzzVerifyNDJSON(f *testing.F) {
	// A small export: minimizing an interesting input runs the target
	// thousands of times, in proportion to its size.
	s := openChainStore(f)
	appendChain(f, s, 0, 6)
	if _, err := s.EraseSubject("bob", pseudo); err != nil {
		f.Fatal(err)
	}
	raw(f, s, func(tx *bolt.Tx) error {
		if err := chainTombstone(tx, &Event{Seq: 1}); err != nil {
			return err
		}
		return tx.Bucket(bucketEvents).Delete(u64(1))
	})
	cp, err := s.Checkpoint()
	if err != nil {
		f.Fatal(err)
	}
	pub, _ := s.CheckpointPublicKey()
	data, _ := export(f, s, nil)
	events := map[uint64][]byte{}
	_ = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
			var ev Event
			if err := decodeEvent(v, &ev); err != nil {
				return err
			}
			events[ev.Seq], _ = json.Marshal(ev)
			return nil
		})
	})
	f.Add(data)
	lines := bytes.SplitAfter(data, []byte("\n"))
	f.Add(bytes.Join(lines[:5], nil))
	f.Add(bytes.Join(append([][]byte{lines[1], lines[0]}, lines[2:]...), nil))
	f.Add([]byte(`{"seq":1,"link":"` + string(bytes.Repeat([]byte("0"), 64)) + `","tombstone":true}`))
	f.Add([]byte(""))
	f.Add([]byte("{}\n{\"seq\":\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		rep, err := VerifyNDJSON(bytes.NewReader(in), &cp, pub)
		if err != nil {
			t.Fatal(err) // a bytes.Reader never fails
		}
		if rep2, _ := VerifyNDJSON(bytes.NewReader(in), nil, nil); rep2.OK && rep2.Events+rep2.Tombstones == 0 {
			t.Fatal("an input without events verified")
		}
		if !rep.OK {
			return
		}
		for _, line := range bytes.Split(bytes.TrimSuffix(in, []byte("\n")), []byte("\n")) {
			var x struct {
				Seq       uint64
				Tombstone bool
			}
			if err := json.Unmarshal(line, &x); err != nil {
				t.Fatalf("an OK export has an unreadable line %q", line)
			}
			if x.Tombstone {
				continue
			}
			var ev Event
			_ = json.Unmarshal(line, &ev)
			got, _ := json.Marshal(ev)
			if want := events[x.Seq]; !bytes.Equal(got, want) {
				t.Fatalf("verified line for seq %d says\n%s\nthe store says\n%s", x.Seq, got, want)
			}
		}
	})
}

// FuzzEncodeMatchesJSON: the hand-written encoders write exactly what
// encoding/json writes for chainedFields and personalFields, which the
// stored form and VerifyNDJSON's rebuilding of lines rely on.
func FuzzEncodeMatchesJSON(f *testing.F) {
	f.Add("alice", "/a?b=<c>&d", "Mozilla/5.0", "X-Name", "v\u2028\xff\"\\", int64(7), 1)
	f.Add("", "", "", "", "", int64(0), 0)
	f.Add("ünï", "\x00\x1f", "\t", "", "\u00e9", int64(-1<<62), 2)
	f.Fuzz(func(t *testing.T, s1, s2, s3, hk, hv string, n int64, shape int) {
		ev := Event{
			ID: s1, Time: time.Unix(n%(1<<40), n%1e9).UTC(), Kind: s2, Path: s2, Query: s3,
			Status: int(n % 1000), DurationNS: n, BytesIn: -n, RiskScore: int(n % 100),
			User: s1, ClientIP: s3, ClientPort: int(n % 65536), UserAgent: s3, Referer: hv,
			UserVerified: shape%2 == 0, Suspicious: shape%3 == 0,
		}
		if shape%2 == 1 {
			ev.ForwardedFor = []string{s1, hv}
			ev.RequestHeaders = map[string][]string{hk: {hv, s2}, s1: nil, "": {}}
			ev.ResponseHeaders = map[string][]string{hv: {hk}}
			ev.RiskFactors = []RiskFactor{{Name: s1, Points: int(n % 10), Detail: hv}, {}}
			ev.Details = map[string]any{hk: hv, "n": n}
		}
		cf, pf := chainedOf(&ev), personalOf(&ev)
		wantC, errC := json.Marshal(&cf)
		gotC, err := appendChained(nil, &ev)
		if (err == nil) != (errC == nil) || err == nil && !bytes.Equal(gotC, wantC) {
			t.Fatalf("chained:\n got %s %v\nwant %s %v", gotC, err, wantC, errC)
		}
		wantP, _ := json.Marshal(&pf)
		if gotP := appendPersonal(nil, &ev); !bytes.Equal(gotP, wantP) {
			t.Fatalf("personal:\n got %s\nwant %s", gotP, wantP)
		}
	})
}
