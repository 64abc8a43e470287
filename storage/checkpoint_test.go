package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckpointKeyFile(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "keys", "checkpoint.key")
	opts := Options{CheckpointKeyPath: keyPath}
	s, err := Open(filepath.Join(dir, "audit.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(keyPath)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", info, err)
	}
	pub, err := s.CheckpointPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(filepath.Join(dir, "audit.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := s.CheckpointPublicKey()
	if !again.Equal(pub) {
		t.Fatal("reopening made a new key")
	}
	s.Close()

	if err := os.Chmod(keyPath, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(dir, "audit.db"), opts); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a group-readable key must be refused: %v", err)
	}
	if err := os.WriteFile(keyPath, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(dir, "audit.db"), opts); err == nil {
		t.Fatal("a garbage key must be refused")
	}
}

func TestCheckpointsDisabled(t *testing.T) {
	s := openTemp(t, Options{})
	appendChain(t, s, 0, 3)
	if _, err := s.Checkpoint(); !errors.Is(err, ErrCheckpointsDisabled) {
		t.Fatalf("got %v", err)
	}
	if _, err := s.CheckpointPublicKey(); !errors.Is(err, ErrCheckpointsDisabled) {
		t.Fatalf("got %v", err)
	}
	if _, err := s.LatestCheckpoint(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v", err)
	}
	rep := verify(t, s, nil)
	wantOK(t, rep)
	if !strings.Contains(rep.CheckpointNote, "disabled") {
		t.Fatalf("the report must say checkpoints are disabled: %s", reportJSON(rep))
	}
	// A checkpoint from elsewhere is checked with its embedded key.
	other := openChainStore(t)
	appendChain(t, other, 0, 3)
	cp, err := other.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	rep = verify(t, s, &cp)
	if !strings.Contains(rep.CheckpointNote, "embedded key") {
		t.Fatalf("%s", reportJSON(rep))
	}
}

func TestCheckpointChain(t *testing.T) {
	s := openChainStore(t)
	empty, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if empty.Seq != 0 || empty.Link != strings.Repeat("0", 64) {
		t.Fatalf("checkpoint of an empty store: %+v", empty)
	}
	appendChain(t, s, 0, 10)
	first, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	same, err := s.Checkpoint()
	if err != nil || same.Seq != first.Seq || string(same.Signature) != string(first.Signature) {
		t.Fatalf("nothing appended: want the same checkpoint back, got %+v, %v", same, err)
	}
	appendChain(t, s, 10, 5)
	second, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(first.statement())
	if second.Seq != 15 || second.Prev != hex.EncodeToString(sum[:]) || second.Count != 15 {
		t.Fatalf("second checkpoint: %+v", second)
	}
	latest, err := s.LatestCheckpoint()
	if err != nil || latest.Seq != 15 {
		t.Fatalf("latest: %+v, %v", latest, err)
	}

	// Exported as JSON and read back elsewhere, it verifies with the
	// public key alone.
	data, err := json.Marshal(second)
	if err != nil {
		t.Fatal(err)
	}
	var back Checkpoint
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	pub, _ := s.CheckpointPublicKey()
	if err := back.Verify(pub); err != nil {
		t.Fatal(err)
	}
	if back.KeyID != keyID(pub) {
		t.Fatal("key id")
	}
	for name, mod := range map[string]func(c *Checkpoint){
		"seq":     func(c *Checkpoint) { c.Seq++ },
		"link":    func(c *Checkpoint) { c.Link = strings.Repeat("1", 64) },
		"count":   func(c *Checkpoint) { c.Count++ },
		"time":    func(c *Checkpoint) { c.Time = c.Time.Add(1) },
		"prev":    func(c *Checkpoint) { c.Prev = "" },
		"key id":  func(c *Checkpoint) { c.KeyID = "0000000000000000" },
		"version": func(c *Checkpoint) { c.Version = 2 },
		"bad link": func(c *Checkpoint) {
			c.Link = "zz"
		},
	} {
		c := back
		mod(&c)
		if err := c.Verify(pub); err == nil {
			t.Errorf("changing the %s went unnoticed", name)
		}
	}
}
