package adminapi

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// keyPrefix marks caddy-audit keys so secret scanners and humans can
// recognise one in a paste or a commit.
const keyPrefix = "cka_"

// keyPrefixLen is how much of a key is kept in clear: the marker plus eight
// random characters (48 bits), enough to tell keys apart in a listing and
// far too little to help guess the rest.
const keyPrefixLen = 12

// GenerateKey returns a new API key secret and its record, ready for
// storage.Store.PutAPIKey once the caller sets Name, Role and, for a scoped
// key, Workspace. The secret is shown once and never stored.
func GenerateKey() (secret string, rec storage.APIKey, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", storage.APIKey{}, fmt.Errorf("generating API key: %w", err)
	}
	secret = keyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	now := time.Now().UTC()
	return secret, storage.APIKey{
		ID:        storage.NewID(now),
		Prefix:    secret[:keyPrefixLen],
		Hash:      HashKey(secret),
		CreatedAt: now,
	}, nil
}

// HashKey returns the hex SHA-256 of secret, the form in which keys are
// stored and looked up. An unsalted fast hash is enough because keys carry
// 256 random bits; it would not be for passwords.
func HashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// bootstrapMu serialises Bootstrap within the process: bbolt's file lock
// already keeps other processes out, and a reload could otherwise run two
// bootstraps over one store and leave the file naming the losing key.
var bootstrapMu sync.Mutex

// Bootstrap makes sure an operator can reach the admin API on first start.
// When the store has no API key at all it creates an admin key and writes
// its secret, followed by a newline, to path (mode 0600), and reports
// created. Otherwise it does nothing. The secret goes nowhere but the file.
func Bootstrap(store *storage.Store, path string) (created bool, err error) {
	bootstrapMu.Lock()
	defer bootstrapMu.Unlock()

	n, err := store.CountAPIKeys()
	if err != nil {
		return false, fmt.Errorf("counting API keys: %w", err)
	}
	if n > 0 {
		return false, nil
	}
	secret, rec, err := GenerateKey()
	if err != nil {
		return false, err
	}
	rec.Name, rec.Role = "bootstrap admin", roleAdmin

	// The file is written and synced before the key is committed. A crash
	// in between leaves a file holding an unused secret, and the next start
	// (still no key in the store) replaces it. The other order could commit
	// a key whose secret never reached disk: the store would then hold a
	// principal, no bootstrap would run again, and nobody could log in.
	if err := writeSecretFile(path, secret+"\n"); err != nil {
		return false, fmt.Errorf("writing bootstrap admin key file: %w", err)
	}
	if err := store.PutAPIKey(rec); err != nil {
		// The file stays: a failed commit may still have reached the disk,
		// and removing the file could then lock the operator out. If it did
		// not, the next start finds no key and replaces the file.
		return false, fmt.Errorf("storing bootstrap admin key: %w", err)
	}
	return true, nil
}

// writeSecretFile creates path with mode 0600 and durably writes data to
// it. A file already there is left over from a bootstrap that never
// committed its key, so it is replaced atomically rather than truncated:
// a reader sees the old secret or the new one, never half of one.
func writeSecretFile(path, data string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// O_EXCL refuses to follow a symlink planted at path, so the secret
	// cannot be redirected into a file someone else can read.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return replaceSecretFile(dir, path, data)
	case err != nil:
		return err
	}
	if err := writeSync(f, data); err != nil {
		_ = os.Remove(path)
		return err
	}
	return syncDir(dir)
}

func replaceSecretFile(dir, path, data string) error {
	// CreateTemp opens with O_EXCL and mode 0600; rename replaces a symlink
	// at path itself, never its target.
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if err := writeSync(f, data); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// writeSync writes data, flushes it to disk and closes f.
func writeSync(f *os.File, data string) error {
	_, err := f.WriteString(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a new or renamed directory entry durable; without it the
// file could vanish in a power loss that the committed key survives.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be synced there; NTFS journals names
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
