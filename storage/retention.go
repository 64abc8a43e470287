package storage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// RetentionPolicy says how long events are kept when a workspace's record
// (Workspace.RetentionDays) does not say otherwise.
type RetentionPolicy struct {
	// DefaultDays keeps the events of workspaces without a setting of their
	// own that many days; 0 keeps them forever.
	DefaultDays int
	// FloorDays is the least any workspace keeps, whatever its setting:
	// a compliance minimum such as PCI DSS 10.5.1's 365 days. Shorter
	// settings are raised to it.
	FloorDays int
}

// RetentionResult reports one retention pass.
type RetentionResult struct {
	// Removed counts the purged events; ByWorkspace splits it ("" is
	// events without a workspace).
	Removed     int            `json:"removed"`
	ByWorkspace map[string]int `json:"by_workspace,omitempty"`
	// Cutoffs is, per workspace purged, the time before which events went.
	Cutoffs map[string]time.Time `json:"cutoffs,omitempty"`
	// Held lists the workspaces skipped because of a legal hold.
	Held []string `json:"held,omitempty"`
}

// ApplyRetention purges, workspace by workspace, the events older than
// that workspace's retention, in small transactions (Purge) so writes and
// queries carry on. Workspaces under legal hold are not touched. When
// anything was removed, a lifecycle event "events_purged" records what,
// so the trail shows its own gaps; the integrity chain keeps a tombstone
// for each purged event and still verifies.
func (s *Store) ApplyRetention(ctx context.Context, now time.Time, p RetentionPolicy) (RetentionResult, error) {
	res := RetentionResult{ByWorkspace: map[string]int{}, Cutoffs: map[string]time.Time{}}
	if p.DefaultDays < 0 || p.FloorDays < 0 {
		return res, errors.New("retention days must not be negative")
	}
	workspaces, err := s.EventWorkspaces()
	if err != nil {
		return res, err
	}
	var failed error
	for _, ws := range workspaces {
		days := p.DefaultDays
		settings, err := s.GetWorkspace(ws)
		switch {
		case err == nil:
			if settings.LegalHold {
				res.Held = append(res.Held, ws)
				continue
			}
			if settings.RetentionDays > 0 {
				days = settings.RetentionDays
			}
		case !errors.Is(err, ErrNotFound):
			return res, err
		}
		if days == 0 {
			continue // kept forever
		}
		days = max(days, p.FloorDays)
		cutoff := now.AddDate(0, 0, -days)
		n, err := s.Purge(ctx, cutoff, ws, 0)
		if n > 0 {
			res.Removed += n
			res.ByWorkspace[ws] = n
			res.Cutoffs[ws] = cutoff.UTC()
		}
		if err != nil {
			// Record what did go before giving up on the rest.
			failed = fmt.Errorf("retention for workspace %q: %w", ws, err)
			break
		}
	}
	sort.Strings(res.Held)
	if res.Removed > 0 {
		ev := &Event{
			ID: NewID(now), Time: now.UTC(), Kind: KindLifecycle, Action: "events_purged",
			Details: map[string]any{
				"removed": res.Removed, "by_workspace": res.ByWorkspace,
				"cutoffs": res.Cutoffs, "held": res.Held,
				"default_days": p.DefaultDays, "floor_days": p.FloorDays,
			},
		}
		if err := s.Append(ev); err != nil {
			return res, errors.Join(failed, fmt.Errorf("recording the purge: %w", err))
		}
	}
	return res, failed
}
