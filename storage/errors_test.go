package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestOpenDamagedFiles(t *testing.T) {
	tests := []struct {
		name    string
		content func(valid []byte) []byte
	}{
		{"truncated", func(valid []byte) []byte { return valid[:1000] }},
		{"not a database", func([]byte) []byte { return bytes.Repeat([]byte("not bbolt "), 2000) }},
		{"zeroed meta pages", func(valid []byte) []byte {
			out := append([]byte(nil), valid...)
			clear(out[:8192])
			return out
		}},
	}
	valid := func() []byte {
		path := filepath.Join(t.TempDir(), "ok.db")
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		_ = s.Append(&Event{ID: "x", Time: time.Now()})
		s.Close()
		data, _ := os.ReadFile(path)
		return data
	}()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.db")
			if err := os.WriteFile(path, tt.content(valid), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
			if err == nil {
				s.Close()
				t.Fatal("a damaged file opened")
			}
			if ErrorKind(err) != KindCorrupt || !strings.Contains(err.Error(), "backup") {
				t.Fatalf("error %q (kind %q) should say corrupt and how to recover", err, ErrorKind(err))
			}
		})
	}
}

func TestCorruptPageIsAnErrorNotAPanic(t *testing.T) {
	s := openTemp(t, Options{})
	base := time.Now()
	var evs []*Event
	for i := 0; i < 2000; i++ {
		evs = append(evs, &Event{ID: NewID(base), Time: base.Add(time.Duration(i)), User: strings.Repeat("u", 200)})
	}
	if err := s.Append(evs...); err != nil {
		t.Fatal(err)
	}
	// Overwrite a branch/leaf page of the events bucket with garbage through
	// the mmap's backing file, as a bad disk sector would.
	var pgid uint64
	_ = s.db.View(func(tx *bolt.Tx) error {
		pgid = uint64(tx.Bucket(bucketEvents).Root())
		return nil
	})
	f, err := os.OpenFile(s.Path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	garbage := bytes.Repeat([]byte{0xff}, 4096)
	if _, err := f.WriteAt(garbage, int64(pgid)*int64(s.db.Info().PageSize)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// No filter: the query must walk the event pages themselves (a user
	// filter is answered from its index and would never touch them).
	_, err = s.Query(Filter{}, 10, "")
	if err == nil {
		t.Skip("bbolt read around the damaged page; nothing to check")
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reading a damaged page: %v, want ErrCorrupt", err)
	}
}

func TestOpenPermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores file modes")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.db")
	if err := os.WriteFile(path, nil, 0o000); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{})
	if ErrorKind(err) != KindPermission || !strings.Contains(err.Error(), "owns data_dir") {
		t.Fatalf("got %v", err)
	}
}

func TestBackupIsAWorkingDatabase(t *testing.T) {
	s := openTemp(t, Options{})
	seed(t, s, 30)
	var buf bytes.Buffer
	n, err := s.Backup(&buf)
	if err != nil || n != int64(buf.Len()) || n == 0 {
		t.Fatalf("backup wrote %d (buffer %d): %v", n, buf.Len(), err)
	}
	path := filepath.Join(t.TempDir(), "restored.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	restored, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	if restored.Count() != 30 {
		t.Fatalf("restored %d events, want 30", restored.Count())
	}
}
