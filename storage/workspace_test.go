package storage

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWorkspaceRecords(t *testing.T) {
	s := openTemp(t, Options{})
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	acme := Workspace{ID: "acme", Name: "Acme", RetentionDays: 90, CreatedAt: at, UpdatedAt: at,
		BusinessHours: &BusinessHours{Timezone: "Europe/Berlin", Days: []string{"mon", "tue"}, Start: "09:00", End: "17:00"}}
	if err := s.CreateWorkspace(acme); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateWorkspace(Workspace{ID: "acme"}); !errors.Is(err, ErrExists) {
		t.Fatalf("second CreateWorkspace = %v, want ErrExists", err)
	}
	for _, bad := range []Workspace{{}, {ID: "x", RetentionDays: -1}} {
		if err := s.CreateWorkspace(bad); err == nil {
			t.Errorf("CreateWorkspace(%+v) succeeded", bad)
		}
	}
	got, err := s.GetWorkspace("acme")
	if err != nil {
		t.Fatal(err)
	}
	if got.BusinessHours == nil || got.BusinessHours.Timezone != "Europe/Berlin" || len(got.BusinessHours.Days) != 2 || got.RetentionDays != 90 {
		t.Fatalf("GetWorkspace = %+v", got)
	}

	before, after, err := s.UpdateWorkspace("acme", false, func(w *Workspace) error {
		w.RetentionDays = 30
		w.BusinessHours.Days[0] = "sun" // must not reach before
		w.ID = "renamed"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if before.RetentionDays != 90 || before.BusinessHours.Days[0] != "mon" || after.RetentionDays != 30 ||
		after.BusinessHours.Days[0] != "sun" || after.ID != "acme" {
		t.Fatalf("UpdateWorkspace before %+v after %+v", before, after)
	}
	if got, _ := s.GetWorkspace("acme"); got.RetentionDays != 30 {
		t.Errorf("stored retention = %d, want 30", got.RetentionDays)
	}

	if _, _, err := s.UpdateWorkspace("nobody", false, func(*Workspace) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateWorkspace of a missing record = %v, want ErrNotFound", err)
	}
	before, after, err = s.UpdateWorkspace("seen", true, func(w *Workspace) error { w.LegalHold = true; return nil })
	if err != nil || before.ID != "" || after.ID != "seen" || !after.LegalHold {
		t.Fatalf("UpdateWorkspace(create) = %+v, %+v, %v", before, after, err)
	}
	refuse := errors.New("refused")
	if _, _, err := s.UpdateWorkspace("acme", false, func(w *Workspace) error { w.Name = "x"; return refuse }); !errors.Is(err, refuse) {
		t.Errorf("UpdateWorkspace with a failing fn = %v", err)
	}
	if _, _, err := s.UpdateWorkspace("acme", false, func(w *Workspace) error { w.RetentionDays = -5; return nil }); err == nil {
		t.Error("UpdateWorkspace to negative retention succeeded")
	}
	if got, _ := s.GetWorkspace("acme"); got.Name != "Acme" || got.RetentionDays != 30 {
		t.Errorf("a refused update changed the record: %+v", got)
	}

	all, err := s.Workspaces()
	if err != nil || len(all) != 2 || all[0].ID != "acme" || all[1].ID != "seen" {
		t.Fatalf("Workspaces = %+v, %v", all, err)
	}
	// A record without times does not print year one.
	raw, _ := json.Marshal(all[1])
	if strings.Contains(string(raw), "created_at") || strings.Contains(string(raw), "business_hours") {
		t.Errorf("zero fields written: %s", raw)
	}
}

func TestBusinessHoursIsZero(t *testing.T) {
	for _, tt := range []struct {
		b    BusinessHours
		zero bool
	}{
		{BusinessHours{}, true},
		{BusinessHours{Timezone: "UTC"}, false},
		{BusinessHours{Days: []string{"mon"}}, false},
		{BusinessHours{Start: "08:00"}, false},
		{BusinessHours{End: "18:00"}, false},
	} {
		if got := tt.b.IsZero(); got != tt.zero {
			t.Errorf("%+v.IsZero() = %v, want %v", tt.b, got, tt.zero)
		}
	}
}

func TestValidWorkspaceID(t *testing.T) {
	tests := []struct {
		id   string
		want string // part of the error; "" means valid
	}{
		{"acme", ""},
		{"tenant-7.eu_west:prod@corp", ""},
		{strings.Repeat("a", 64), ""},
		// 65 to 128 bytes: creatable, so grantable too (the two old rules
		// disagreed here).
		{strings.Repeat("a", 65), ""},
		{strings.Repeat("a", MaxWorkspaceID), ""},
		{strings.Repeat("a", MaxWorkspaceID+1), "longer than 128"},
		{"", "id is required"},
		{AuditWorkspace, "reserved"},
		{"_other", "reserved"},
		{"a b", "only letters, digits"},
		{"a/b", "only letters, digits"},
		{"a\x00b", "only letters, digits"},
		{"café", "only letters, digits"},
	}
	for _, tt := range tests {
		err := ValidWorkspaceID(tt.id)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("ValidWorkspaceID(%q) = %v, want valid", tt.id, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("ValidWorkspaceID(%q) = %v, want %q", tt.id, err, tt.want)
		}
	}
}

func TestClaimWorkspace(t *testing.T) {
	for _, tc := range []struct{ claim, ws, refused string }{
		{"acme", "acme", ""},
		{"", "", ""},
		{AuditWorkspace, "", AuditWorkspace},
		{"_anything", "", "_anything"},
	} {
		ev := Event{Workspace: "before"}
		ev.ClaimWorkspace(tc.claim)
		got, _ := ev.Details["reserved_workspace_claimed"].(string)
		if ev.Workspace != tc.ws || got != tc.refused {
			t.Errorf("ClaimWorkspace(%q): workspace %q, refused claim %q; want %q, %q", tc.claim, ev.Workspace, got, tc.ws, tc.refused)
		}
	}
}
