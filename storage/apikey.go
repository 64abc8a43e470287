package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// APIKey is a principal of the admin API. The key itself is never stored:
// only its SHA-256, which is enough because keys are 256-bit random values
// (a hash of a guessable value would not be).
type APIKey struct {
	// ID is the key's public identifier, shown in listings and audit events.
	ID string `json:"id"`
	// Name is a human label ("bootstrap admin", "siem export").
	Name string `json:"name"`
	// Role is a built-in or custom role name.
	Role string `json:"role"`
	// Workspace scopes the key to one workspace; empty means all.
	Workspace string `json:"workspace,omitempty"`
	// Prefix is the first characters of the key, to recognise it.
	Prefix string `json:"prefix"`
	// Hash is the hex SHA-256 of the full key. This struct is the stored
	// record: API responses must not return it as is.
	Hash string `json:"hash"`
	// CreatedAt is when the key was issued.
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt, when set, is the first instant the key is refused.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// RevokedAt, when set, is when the key was revoked; it is refused from
	// then on.
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// LastUsedAt is when the key last authenticated, to the minute.
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// ErrExists means a record with the same identity is already stored.
var ErrExists = errors.New("already exists")

// PutAPIKey stores a new key. It fails with ErrExists if the id or hash is
// taken.
func (s *Store) PutAPIKey(k APIKey) error {
	return s.CreateAPIKey(k, false)
}

// APIKeyByHash finds the key whose SHA-256 is hash (hex).
func (s *Store) APIKeyByHash(hash string) (APIKey, error) {
	var k APIKey
	err := s.view(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketKeyHashes).Get([]byte(hash))
		if id == nil {
			return ErrNotFound
		}
		var err error
		k, err = getRecord[APIKey](tx.Bucket(bucketKeys), id)
		return err
	})
	return k, err
}

// CountAPIKeys returns how many keys exist, revoked ones included.
func (s *Store) CountAPIKeys() (int, error) {
	var n int
	err := s.view(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketKeys).Stats().KeyN
		return nil
	})
	return n, err
}

// TouchAPIKey sets the key's last-used time.
func (s *Store) TouchAPIKey(id string, at time.Time) error {
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKeys)
		k, err := getRecord[APIKey](b, []byte(id))
		if err != nil {
			return err
		}
		at = at.UTC()
		k.LastUsedAt = &at
		return putRecord(b, []byte(id), k)
	})
}

// CreateAPIKey is PutAPIKey that, when customRole is true, also checks in
// the same transaction that the key's role is a stored custom role
// (ErrUnknownRole otherwise), so a key cannot be issued for a role being
// deleted at the same moment.
func (s *Store) CreateAPIKey(k APIKey, customRole bool) error {
	if k.ID == "" || k.Hash == "" {
		return errors.New("api key needs an id and a hash")
	}
	val, err := json.Marshal(k)
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		if customRole && tx.Bucket(bucketRoles).Get([]byte(k.Role)) == nil {
			return fmt.Errorf("role %s: %w", k.Role, ErrUnknownRole)
		}
		keys, hashes := tx.Bucket(bucketKeys), tx.Bucket(bucketKeyHashes)
		if keys.Get([]byte(k.ID)) != nil || hashes.Get([]byte(k.Hash)) != nil {
			return fmt.Errorf("api key %s: %w", k.ID, ErrExists)
		}
		if err := keys.Put([]byte(k.ID), val); err != nil {
			return err
		}
		return hashes.Put([]byte(k.Hash), []byte(k.ID))
	})
}

// GetAPIKey returns the key with this id, or ErrNotFound.
func (s *Store) GetAPIKey(id string) (APIKey, error) {
	var k APIKey
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		k, err = getRecord[APIKey](tx.Bucket(bucketKeys), []byte(id))
		return err
	})
	return k, err
}

// ListAPIKeys returns every key, revoked ones included, oldest first.
func (s *Store) ListAPIKeys() ([]APIKey, error) {
	var out []APIKey
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		out, err = listRecords[APIKey](tx.Bucket(bucketKeys), nil)
		return err
	})
	// Ids are ULIDs of the creation time, but a key made elsewhere (a
	// restore, a test) may carry another id: sort by the recorded time.
	slices.SortStableFunc(out, func(a, b APIKey) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, err
}

// RevokeAPIKey marks the key revoked at at and returns it. Revoking is
// final and happens once: a key already revoked is returned unchanged
// with ErrRevoked, so the first revocation time stays the one on record.
// The hash index entry stays, so the revoked key is still recognised (and
// refused) rather than looked up as unknown.
func (s *Store) RevokeAPIKey(id string, at time.Time) (APIKey, error) {
	var k APIKey
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKeys)
		var err error
		if k, err = getRecord[APIKey](b, []byte(id)); err != nil {
			return err
		}
		if k.RevokedAt != nil {
			return ErrRevoked
		}
		at = at.UTC()
		k.RevokedAt = &at
		return putRecord(b, []byte(id), k)
	})
	return k, err
}
