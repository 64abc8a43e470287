package policy

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/caddy-audit/caddy-audit/internal/securefile"
)

// KeySize is the HMAC key length in bytes.
const KeySize = 32

// LoadOrCreateKey reads the hex HMAC key at path, creating it (0600, in a
// 0700 directory) with a fresh random key when it does not exist. A key file
// readable by others is refused: whoever holds the key can test guesses
// against every token in the trail.
func LoadOrCreateKey(path string) ([]byte, error) {
	key, err := ReadKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	return key, err
}

// ReadKey reads the hex HMAC key at path under the same rules as
// LoadOrCreateKey, but never creates one: tools that compute tokens to
// compare with stored ones (caddy audit policy explain) need the sidecar's
// key, and a fresh one would match nothing.
func ReadKey(path string) ([]byte, error) {
	data, err := securefile.Read(path)
	if err != nil {
		return nil, fmt.Errorf("reading HMAC key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("HMAC key %s must hold at least 16 bytes as hex", path)
	}
	return key, nil
}

func createKey(path string) ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	err := securefile.Create(path, []byte(hex.EncodeToString(key)+"\n"))
	if errors.Is(err, fs.ErrExist) {
		// Another process created the key meanwhile: use theirs.
		return LoadOrCreateKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("writing HMAC key: %w", err)
	}
	return key, nil
}
