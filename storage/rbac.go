package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the RBAC records: custom roles by name, and role bindings by
// id. Built-in roles live in code (adminapi), never here.
var (
	bucketRoles    = []byte("roles")
	bucketBindings = []byte("role_bindings")
)

// rbacBuckets are created with the core buckets.
var rbacBuckets = [][]byte{bucketRoles, bucketBindings}

// Role is a custom role: a named set of permissions an operator defined.
type Role struct {
	// Name identifies the role: 1 to 64 of a-z, 0-9, '_', ':' and '-'.
	Name string `json:"name"`
	// Description says what the role is for.
	Description string `json:"description,omitempty"`
	// Permissions are the permission names the role grants. The admin API
	// checks them against the permissions it knows before storing.
	Permissions []string `json:"permissions"`
	// CreatedAt and UpdatedAt track the record itself.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// RoleBinding grants a principal (an API key) a role, globally or in one
// workspace, on top of the role its key record carries.
type RoleBinding struct {
	// ID identifies the binding.
	ID string `json:"id"`
	// Principal is the id of the API key the binding grants to.
	Principal string `json:"principal"`
	// Role is a built-in or custom role name.
	Role string `json:"role"`
	// Workspace scopes the grant to one workspace; empty means all.
	Workspace string `json:"workspace,omitempty"`
	// CreatedAt is when the binding was made.
	CreatedAt time.Time `json:"created_at"`
	// CreatedBy is the id of the API key that made it.
	CreatedBy string `json:"created_by,omitempty"`
}

// Errors of the RBAC records.
var (
	// ErrRevoked means the API key is already revoked.
	ErrRevoked = errors.New("api key already revoked")
	// ErrUnknownRole means a custom role named by a new key or binding
	// is not stored.
	ErrUnknownRole = errors.New("unknown role")
	// ErrInUse means a role is still referenced by keys or bindings.
	ErrInUse = errors.New("still in use")
)

// RoleInUseError says which keys and bindings still use a role that was
// to be deleted. It matches ErrInUse with errors.Is.
type RoleInUseError struct {
	// Role is the role's name.
	Role string
	// Keys are the ids of the API keys whose own role it is.
	Keys []string
	// Bindings are the ids of the bindings that grant it.
	Bindings []string
}

func (e *RoleInUseError) Error() string {
	return fmt.Sprintf("role %s is used by keys %v and bindings %v", e.Role, e.Keys, e.Bindings)
}

// Is makes errors.Is(err, ErrInUse) true.
func (e *RoleInUseError) Is(target error) bool { return target == ErrInUse }

// ValidRoleName checks a role name: 1 to 64 characters of a-z, 0-9, '_',
// ':' and '-', so names are safe in paths, logs and metrics.
func ValidRoleName(name string) error {
	if name == "" || len(name) > 64 {
		return errors.New("a role name has 1 to 64 characters")
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == ':' || c == '-') {
			return fmt.Errorf("a role name uses only a-z, 0-9, '_', ':' and '-' (found %q)", c)
		}
	}
	return nil
}

// CreateRole stores a new custom role. It fails with ErrExists if the name
// is taken.
func (s *Store) CreateRole(r Role) error {
	if err := ValidRoleName(r.Name); err != nil {
		return err
	}
	val, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRoles)
		if b.Get([]byte(r.Name)) != nil {
			return fmt.Errorf("role %s: %w", r.Name, ErrExists)
		}
		return b.Put([]byte(r.Name), val)
	})
}

// UpdateRole replaces the description and permissions of an existing
// custom role, keeping its creation time, and returns the stored role. It
// fails with ErrNotFound if there is no such role.
func (s *Store) UpdateRole(name, description string, perms []string, at time.Time) (Role, error) {
	var out Role
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRoles)
		val := b.Get([]byte(name))
		if val == nil {
			return ErrNotFound
		}
		if err := json.Unmarshal(val, &out); err != nil {
			return fmt.Errorf("role %s: %w: %v", name, ErrCorrupt, err)
		}
		out.Description, out.Permissions, out.UpdatedAt = description, slices.Clone(perms), at.UTC()
		return putRecord(b, []byte(name), out)
	})
	return out, err
}

// GetRole returns the custom role name, or ErrNotFound.
func (s *Store) GetRole(name string) (Role, error) {
	var r Role
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		r, err = getRecord[Role](tx.Bucket(bucketRoles), []byte(name))
		return err
	})
	return r, err
}

// ListRoles returns the custom roles by name.
func (s *Store) ListRoles() ([]Role, error) {
	var out []Role
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		out, err = listRecords[Role](tx.Bucket(bucketRoles), nil)
		return err
	})
	return out, err
}

// DeleteRole removes a custom role. It fails with ErrNotFound if there is
// none, and with a *RoleInUseError (ErrInUse) if a key or binding still
// uses it: the check and the delete share one transaction, so no key can
// be left naming a role that just vanished.
func (s *Store) DeleteRole(name string) error {
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRoles)
		if b.Get([]byte(name)) == nil {
			return ErrNotFound
		}
		inUse := &RoleInUseError{Role: name}
		err := tx.Bucket(bucketKeys).ForEach(func(id, val []byte) error {
			var k APIKey
			if err := json.Unmarshal(val, &k); err != nil {
				return err
			}
			if k.Role == name && k.RevokedAt == nil {
				inUse.Keys = append(inUse.Keys, string(id))
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketBindings).ForEach(func(id, val []byte) error {
			var rb RoleBinding
			if err := json.Unmarshal(val, &rb); err != nil {
				return err
			}
			if rb.Role == name {
				inUse.Bindings = append(inUse.Bindings, string(id))
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(inUse.Keys) > 0 || len(inUse.Bindings) > 0 {
			return inUse
		}
		return b.Delete([]byte(name))
	})
}

// CreateBinding stores a new binding. In the same transaction it checks
// that the principal exists and is not revoked (ErrNotFound, ErrRevoked),
// that no binding with the same principal, role and workspace exists
// (ErrExists) and, when customRole is true, that the role is stored
// (ErrUnknownRole): built-in roles are the caller's to check.
func (s *Store) CreateBinding(rb RoleBinding, customRole bool) error {
	if rb.ID == "" || rb.Principal == "" {
		return errors.New("role binding needs an id and a principal")
	}
	if err := ValidRoleName(rb.Role); err != nil {
		return err
	}
	val, err := json.Marshal(rb)
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		k, err := getRecord[APIKey](tx.Bucket(bucketKeys), []byte(rb.Principal))
		if err != nil {
			return fmt.Errorf("principal %s: %w", rb.Principal, err)
		}
		if k.RevokedAt != nil {
			return fmt.Errorf("principal %s: %w", rb.Principal, ErrRevoked)
		}
		if customRole && tx.Bucket(bucketRoles).Get([]byte(rb.Role)) == nil {
			return fmt.Errorf("role %s: %w", rb.Role, ErrUnknownRole)
		}
		b := tx.Bucket(bucketBindings)
		if b.Get([]byte(rb.ID)) != nil {
			return fmt.Errorf("role binding %s: %w", rb.ID, ErrExists)
		}
		dup := b.ForEach(func(id, v []byte) error {
			var o RoleBinding
			if err := json.Unmarshal(v, &o); err != nil {
				return err
			}
			if o.Principal == rb.Principal && o.Role == rb.Role && o.Workspace == rb.Workspace {
				return fmt.Errorf("role binding %s grants the same: %w", id, ErrExists)
			}
			return nil
		})
		if dup != nil {
			return dup
		}
		return b.Put([]byte(rb.ID), val)
	})
}

// GetBinding returns the binding id, or ErrNotFound.
func (s *Store) GetBinding(id string) (RoleBinding, error) {
	var rb RoleBinding
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		rb, err = getRecord[RoleBinding](tx.Bucket(bucketBindings), []byte(id))
		return err
	})
	return rb, err
}

// ListBindings returns the bindings of principal (all of them when
// principal is empty), oldest first.
func (s *Store) ListBindings(principal string) ([]RoleBinding, error) {
	var out []RoleBinding
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		out, err = listRecords(tx.Bucket(bucketBindings), func(rb *RoleBinding) bool {
			return principal == "" || rb.Principal == principal
		})
		return err
	})
	// Ids are ULIDs, but a binding stored with a foreign id must still
	// sort by time.
	slices.SortStableFunc(out, func(a, b RoleBinding) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, err
}

// DeleteBinding removes the binding id and returns it, or ErrNotFound.
func (s *Store) DeleteBinding(id string) (RoleBinding, error) {
	var rb RoleBinding
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBindings)
		var err error
		if rb, err = getRecord[RoleBinding](b, []byte(id)); err != nil {
			return err
		}
		return b.Delete([]byte(id))
	})
	return rb, err
}
