package storage

import (
	"errors"
	"slices"
	"testing"
	"time"
)

var rbacT0 = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

func TestValidRoleName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"reader", true},
		{"soc:tier-1_ops", true},
		{"a", true},
		{string(make([]byte, 64)), false}, // NUL bytes
		{"x234567890123456789012345678901234567890123456789012345678901234", true},
		{"x2345678901234567890123456789012345678901234567890123456789012345", false},
		{"", false},
		{"Reader", false},
		{"read er", false},
		{"read/er", false},
		{"ré", false},
	}
	for _, tt := range tests {
		if err := ValidRoleName(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidRoleName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func putKey(t *testing.T, s *Store, id, role, ws string) {
	t.Helper()
	if err := s.PutAPIKey(APIKey{ID: id, Hash: "h-" + id, Role: role, Workspace: ws, CreatedAt: rbacT0}); err != nil {
		t.Fatal(err)
	}
}

func TestRoles(t *testing.T) {
	s := openTemp(t, Options{})
	r := Role{Name: "soc", Description: "SOC", Permissions: []string{"alerts:read"}, CreatedAt: rbacT0, UpdatedAt: rbacT0}
	if err := s.CreateRole(r); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRole(r); !errors.Is(err, ErrExists) {
		t.Errorf("second CreateRole = %v, want ErrExists", err)
	}
	if err := s.CreateRole(Role{Name: "Bad Name"}); err == nil {
		t.Error("CreateRole accepted an invalid name")
	}
	later := rbacT0.Add(time.Hour)
	got, err := s.UpdateRole("soc", "tier 1", []string{"alerts:read", "alerts:manage"}, later)
	if err != nil || got.Description != "tier 1" || len(got.Permissions) != 2 || !got.CreatedAt.Equal(rbacT0) || !got.UpdatedAt.Equal(later) {
		t.Errorf("UpdateRole = %+v, %v", got, err)
	}
	if _, err := s.UpdateRole("nope", "", nil, later); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateRole(nope) = %v, want ErrNotFound", err)
	}
	if got, err := s.GetRole("soc"); err != nil || got.Description != "tier 1" {
		t.Errorf("GetRole = %+v, %v", got, err)
	}
	if err := s.CreateRole(Role{Name: "aaa", Permissions: []string{"events:read"}}); err != nil {
		t.Fatal(err)
	}
	roles, err := s.ListRoles()
	if err != nil || len(roles) != 2 || roles[0].Name != "aaa" || roles[1].Name != "soc" {
		t.Errorf("ListRoles = %+v, %v", roles, err)
	}

	// In use by a key and a binding: refused, naming both.
	putKey(t, s, "k1", "soc", "")
	putKey(t, s, "k2", "auditor", "")
	if err := s.CreateBinding(RoleBinding{ID: "b1", Principal: "k2", Role: "soc", Workspace: "acme", CreatedAt: rbacT0}, true); err != nil {
		t.Fatal(err)
	}
	err = s.DeleteRole("soc")
	var inUse *RoleInUseError
	if !errors.As(err, &inUse) || !errors.Is(err, ErrInUse) || !slices.Equal(inUse.Keys, []string{"k1"}) || !slices.Equal(inUse.Bindings, []string{"b1"}) {
		t.Fatalf("DeleteRole in use = %v", err)
	}
	// A revoked key no longer holds the role; the binding still does.
	if _, err := s.RevokeAPIKey("k1", rbacT0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteBinding("b1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRole("soc"); err != nil {
		t.Fatalf("DeleteRole after unbinding = %v", err)
	}
	if _, err := s.GetRole("soc"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetRole after delete = %v", err)
	}
	if err := s.DeleteRole("soc"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteRole = %v, want ErrNotFound", err)
	}
}

func TestBindings(t *testing.T) {
	s := openTemp(t, Options{})
	putKey(t, s, "k1", "auditor", "")
	putKey(t, s, "k2", "auditor", "acme")
	putKey(t, s, "gone", "auditor", "")
	if _, err := s.RevokeAPIKey("gone", rbacT0); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRole(Role{Name: "soc", Permissions: []string{"alerts:read"}}); err != nil {
		t.Fatal(err)
	}
	b := func(id, principal, role, ws string, minutes int) RoleBinding {
		return RoleBinding{ID: id, Principal: principal, Role: role, Workspace: ws, CreatedAt: rbacT0.Add(time.Duration(minutes) * time.Minute), CreatedBy: "k1"}
	}
	tests := []struct {
		name   string
		rb     RoleBinding
		custom bool
		want   error
	}{
		{"global builtin", b("b1", "k2", "admin", "", 1), false, nil},
		{"custom in workspace", b("b2", "k2", "soc", "acme", 2), true, nil},
		{"other principal", b("b3", "k1", "soc", "globex", 3), true, nil},
		{"same grant again", b("b4", "k2", "soc", "acme", 4), true, ErrExists},
		{"same id", b("b1", "k1", "auditor", "x", 5), false, ErrExists},
		{"unknown principal", b("b5", "nobody", "admin", "", 6), false, ErrNotFound},
		{"revoked principal", b("b6", "gone", "admin", "", 7), false, ErrRevoked},
		{"unknown custom role", b("b7", "k1", "ghost", "", 8), true, ErrUnknownRole},
	}
	for _, tt := range tests {
		if err := s.CreateBinding(tt.rb, tt.custom); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: CreateBinding = %v, want %v", tt.name, err, tt.want)
		}
	}
	if err := s.CreateBinding(RoleBinding{ID: "b9", Principal: "k1", Role: "Not Valid"}, false); err == nil {
		t.Error("CreateBinding accepted an invalid role name")
	}

	all, err := s.ListBindings("")
	if err != nil || len(all) != 3 || all[0].ID != "b1" || all[2].ID != "b3" {
		t.Fatalf("ListBindings() = %+v, %v", all, err)
	}
	mine, err := s.ListBindings("k2")
	if err != nil || len(mine) != 2 || mine[0].ID != "b1" || mine[1].ID != "b2" || mine[1].Workspace != "acme" {
		t.Errorf("ListBindings(k2) = %+v, %v", mine, err)
	}
	if got, err := s.GetBinding("b3"); err != nil || got.Principal != "k1" || got.CreatedBy != "k1" {
		t.Errorf("GetBinding = %+v, %v", got, err)
	}
	if got, err := s.DeleteBinding("b3"); err != nil || got.ID != "b3" {
		t.Errorf("DeleteBinding = %+v, %v", got, err)
	}
	if _, err := s.GetBinding("b3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetBinding after delete = %v", err)
	}
	if _, err := s.DeleteBinding("b3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteBinding = %v", err)
	}
}

func TestAPIKeyListGetRevoke(t *testing.T) {
	s := openTemp(t, Options{})
	putKey(t, s, "01A", "admin", "")
	putKey(t, s, "01B", "auditor", "acme")
	keys, err := s.ListAPIKeys()
	if err != nil || len(keys) != 2 || keys[0].ID != "01A" || keys[1].Workspace != "acme" {
		t.Fatalf("ListAPIKeys = %+v, %v", keys, err)
	}
	if k, err := s.GetAPIKey("01B"); err != nil || k.Role != "auditor" {
		t.Errorf("GetAPIKey = %+v, %v", k, err)
	}
	if _, err := s.GetAPIKey("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetAPIKey(nope) = %v", err)
	}

	k, err := s.RevokeAPIKey("01B", rbacT0)
	if err != nil || k.RevokedAt == nil || !k.RevokedAt.Equal(rbacT0) {
		t.Fatalf("RevokeAPIKey = %+v, %v", k, err)
	}
	// Revoking again is an error and keeps the first time.
	k, err = s.RevokeAPIKey("01B", rbacT0.Add(time.Hour))
	if !errors.Is(err, ErrRevoked) || k.RevokedAt == nil || !k.RevokedAt.Equal(rbacT0) {
		t.Errorf("second RevokeAPIKey = %+v, %v", k, err)
	}
	if _, err := s.RevokeAPIKey("nope", rbacT0); !errors.Is(err, ErrNotFound) {
		t.Errorf("RevokeAPIKey(nope) = %v", err)
	}
	// The hash still finds the key, which the API then refuses as revoked.
	if k, err := s.APIKeyByHash("h-01B"); err != nil || k.RevokedAt == nil {
		t.Errorf("APIKeyByHash after revoke = %+v, %v", k, err)
	}

	if err := s.CreateAPIKey(APIKey{ID: "01C", Hash: "h-01C", Role: "ghost"}, true); !errors.Is(err, ErrUnknownRole) {
		t.Errorf("CreateAPIKey with a missing custom role = %v", err)
	}
	if err := s.CreateRole(Role{Name: "ghost", Permissions: []string{"events:read"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAPIKey(APIKey{ID: "01C", Hash: "h-01C", Role: "ghost"}, true); err != nil {
		t.Errorf("CreateAPIKey with a stored custom role = %v", err)
	}
	if n, _ := s.CountAPIKeys(); n != 3 {
		t.Errorf("CountAPIKeys = %d, want 3", n)
	}
}
