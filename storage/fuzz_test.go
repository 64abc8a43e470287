package storage

import (
	"bytes"
	"encoding/json"
	"testing"

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
