package adminapi

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/caddy-audit/caddy-audit/internal/securefile"
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
	if err := securefile.Write(path, []byte(secret+"\n")); err != nil {
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
