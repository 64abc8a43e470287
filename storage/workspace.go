package storage

import (
	"encoding/json"
	"errors"
	"fmt"
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

// MaxWorkspaceID is the longest workspace id ValidWorkspaceID accepts.
const MaxWorkspaceID = 128

// ValidWorkspaceID checks a workspace id an operator names (creating a
// workspace record, granting a key or binding a role in it): 1 to
// MaxWorkspaceID bytes of letters, digits and . - _ : @, not reserved.
// The rule is narrow enough to sit in a URL path unescaped and wide
// enough for host names and tenant slugs. It is the one rule for every
// place that accepts a workspace name, so a workspace that can be created
// can also be granted.
func ValidWorkspaceID(id string) error {
	switch {
	case id == "":
		return errors.New("id is required")
	case len(id) > MaxWorkspaceID:
		return fmt.Errorf("id is longer than %d bytes", MaxWorkspaceID)
	case ReservedWorkspace(id):
		return fmt.Errorf("id %q is reserved: ids starting with '_' belong to the sidecar", id)
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-_:@", c)
		if !ok {
			short := id
			if len(short) > 64 {
				short = short[:64] + "..."
			}
			return fmt.Errorf("id %q: only letters, digits and . - _ : @ are allowed", short)
		}
	}
	return nil
}

// ClaimWorkspace sets the event's workspace from what the traffic claims
// (a header, a claim, a log field), already cleaned. A reserved name is
// refused: the workspace stays empty and the claim is kept in the details
// as "reserved_workspace_claimed" for the investigator. The live handler
// and the log importer both go through it so the rule cannot drift.
func (e *Event) ClaimWorkspace(ws string) {
	if ReservedWorkspace(ws) {
		e.SetDetail("reserved_workspace_claimed", ws)
		e.Workspace = ""
		return
	}
	e.Workspace = ws
}

// BusinessHours is when a workspace normally works, for the detectors'
// off-hours checks. It mirrors detectors.BusinessHours (storage cannot
// import detectors); empty fields fall back to the detector config. The
// detectors package validates it.
type BusinessHours struct {
	// Timezone is an IANA zone name such as "Europe/Berlin".
	Timezone string `json:"timezone,omitempty"`
	// Days are the working days, as three-letter English names ("mon").
	Days []string `json:"days,omitempty"`
	// Start is the local start of the working day, "HH:MM".
	Start string `json:"start,omitempty"`
	// End is the local end of the working day, "HH:MM", exclusive; an end
	// before the start spans midnight.
	End string `json:"end,omitempty"`
}

// IsZero reports whether b sets nothing.
func (b BusinessHours) IsZero() bool {
	return b.Timezone == "" && len(b.Days) == 0 && b.Start == "" && b.End == ""
}

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
	// BusinessHours, when set, replace the detector config's business
	// hours for this workspace (field by field).
	BusinessHours *BusinessHours `json:"business_hours,omitempty"`
	// LegalHold suspends purging of this workspace's events entirely.
	LegalHold bool `json:"legal_hold"`
	// LegalHoldReason says why, for the auditor who asks.
	LegalHoldReason string `json:"legal_hold_reason,omitempty"`
	// CreatedAt and UpdatedAt track the record itself.
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

func (w Workspace) check() error {
	if w.ID == "" {
		return errors.New("workspace needs an id")
	}
	if w.RetentionDays < 0 {
		return errors.New("retention_days must not be negative")
	}
	return nil
}

// PutWorkspace creates or replaces a workspace record.
func (s *Store) PutWorkspace(w Workspace) error { return s.putWorkspace(w, false) }

// CreateWorkspace stores a new workspace record, or returns ErrExists if
// one with the same id is stored (checked in the same transaction, so two
// concurrent creations cannot both succeed).
func (s *Store) CreateWorkspace(w Workspace) error { return s.putWorkspace(w, true) }

func (s *Store) putWorkspace(w Workspace, mustBeNew bool) error {
	if err := w.check(); err != nil {
		return err
	}
	val, err := json.Marshal(w)
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWorkspaces)
		if mustBeNew && b.Get([]byte(w.ID)) != nil {
			return fmt.Errorf("workspace %q: %w", w.ID, ErrExists)
		}
		return b.Put([]byte(w.ID), val)
	})
}

// UpdateWorkspace changes the record of workspace id in one transaction:
// fn gets a copy of the stored record (or, when create is true and none is
// stored, a fresh one with only the id set) and edits it; an error from fn
// aborts the update. It returns the record before (zero when created) and
// after. Without create, a missing record is ErrNotFound.
func (s *Store) UpdateWorkspace(id string, create bool, fn func(*Workspace) error) (before, after Workspace, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWorkspaces)
		before, after = Workspace{}, Workspace{ID: id}
		if val := b.Get([]byte(id)); val != nil {
			if err := json.Unmarshal(val, &before); err != nil {
				return fmt.Errorf("workspace %q: %w: %v", id, ErrCorrupt, err)
			}
			after = before
			if before.BusinessHours != nil {
				// A deep copy: fn must not edit before through a shared pointer.
				bh := *before.BusinessHours
				bh.Days = append([]string(nil), bh.Days...)
				after.BusinessHours = &bh
			}
		} else if !create {
			return ErrNotFound
		}
		if err := fn(&after); err != nil {
			return err
		}
		after.ID = id // fn may not rename the record
		if err := after.check(); err != nil {
			return err
		}
		return putRecord(b, []byte(id), after)
	})
	if err != nil {
		return Workspace{}, Workspace{}, err
	}
	return before, after, nil
}

// GetWorkspace returns the record of workspace id, or ErrNotFound.
func (s *Store) GetWorkspace(id string) (Workspace, error) {
	var w Workspace
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		w, err = getRecord[Workspace](tx.Bucket(bucketWorkspaces), []byte(id))
		return err
	})
	return w, err
}

// Workspaces lists the workspace records by id.
func (s *Store) Workspaces() ([]Workspace, error) {
	var out []Workspace
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		out, err = listRecords[Workspace](tx.Bucket(bucketWorkspaces), nil)
		return err
	})
	return out, err
}
