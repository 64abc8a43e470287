package storage

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketWorkspaces = []byte("workspaces")

// AuditWorkspace is the reserved workspace of the admin API's own events:
// who read, exported or changed what. Keeping them apart means a tenant's
// principal, scoped to its workspace, never sees how others use the API.
const AuditWorkspace = "_audit"

// ReservedWorkspace reports whether ws is a name the sidecar keeps for
// itself (a leading underscore). Traffic never gets one: a client could
// otherwise write into the audit workspace by sending a header.
func ReservedWorkspace(ws string) bool { return strings.HasPrefix(ws, "_") }

// Workspace holds the settings of one tenant. Events name their workspace
// whether or not a record exists; the record only carries settings that
// differ from the defaults.
type Workspace struct {
	// ID is the value events carry in their workspace field.
	ID string `json:"id"`
	// Name is a human label.
	Name string `json:"name,omitempty"`
	// RetentionDays keeps this workspace's events that many days; 0 means
	// the configured default. The configured floor still applies.
	RetentionDays int `json:"retention_days,omitempty"`
	// LegalHold suspends purging of this workspace's events entirely.
	LegalHold bool `json:"legal_hold"`
	// LegalHoldReason says why, for the auditor who asks.
	LegalHoldReason string `json:"legal_hold_reason,omitempty"`
	// CreatedAt and UpdatedAt track the record itself.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// PutWorkspace creates or replaces a workspace record.
func (s *Store) PutWorkspace(w Workspace) error {
	if w.ID == "" {
		return errors.New("workspace needs an id")
	}
	if w.RetentionDays < 0 {
		return errors.New("retention_days must not be negative")
	}
	val, err := json.Marshal(w)
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketWorkspaces).Put([]byte(w.ID), val)
	})
}

// GetWorkspace returns the record of workspace id, or ErrNotFound.
func (s *Store) GetWorkspace(id string) (Workspace, error) {
	var w Workspace
	err := s.view(func(tx *bolt.Tx) error {
		val := tx.Bucket(bucketWorkspaces).Get([]byte(id))
		if val == nil {
			return ErrNotFound
		}
		return json.Unmarshal(val, &w)
	})
	return w, err
}

// Workspaces lists the workspace records by id.
func (s *Store) Workspaces() ([]Workspace, error) {
	var out []Workspace
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketWorkspaces).ForEach(func(_, val []byte) error {
			var w Workspace
			if err := json.Unmarshal(val, &w); err != nil {
				return err
			}
			out = append(out, w)
			return nil
		})
	})
	return out, err
}
