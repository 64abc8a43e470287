package storage

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestForEachAPIKey(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "keys.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, k := range []APIKey{
		{ID: "k2", Hash: "h2", Role: "auditor", CreatedAt: now},
		{ID: "k1", Hash: "h1", Role: "admin", RevokedAt: &now, CreatedAt: now},
	} {
		if err := s.PutAPIKey(k); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := s.ForEachAPIKey(func(k APIKey) error { got = append(got, k.ID+"/"+k.Role); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "k1/admin" || got[1] != "k2/auditor" {
		t.Fatalf("keys = %v, want k1/admin then k2/auditor (revoked included, id order)", got)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.ForEachAPIKey(func(APIKey) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("walk after an error: %d calls, err %v; want 1 call and the error", n, err)
	}
}
