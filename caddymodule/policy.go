package caddymodule

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-audit/caddy-audit/policy"
)

// Lifecycle actions for the audit policy.
const (
	// actionPolicyLoaded is the first policy a pipeline applies after it
	// opened the database (a start, not a change: the previous process's
	// policy is in its own policy_loaded or policy_changed event).
	actionPolicyLoaded = "policy_loaded"
	// actionPolicyChanged is a reload (or a reverted reload) that put
	// another policy in force.
	actionPolicyChanged = "policy_changed"
)

// policyState is the policy in force on a pipeline; it outlives configs as
// the pipeline does, so a reload is compared with what ran before it.
type policyState struct {
	applied bool
	policy  *policy.Policy // effective; nil without a policy file
	hash    string
}

// loadPolicy reads the policy file, if any, and resolves its profile. It
// only reads the file, so `caddy validate` can run it.
func (a *App) loadPolicy() error {
	a.policy, a.policyPath = nil, ""
	if a.PolicyFile == "" {
		return nil
	}
	path, err := caddy.NewReplacer().ReplaceOrErr(a.PolicyFile, true, true)
	if err != nil {
		return fmt.Errorf("policy_file: %w", err)
	}
	if a.policyPath, err = filepath.Abs(path); err != nil {
		return fmt.Errorf("policy_file: %w", err)
	}
	p, err := policy.Validate(a.policyPath)
	if err != nil {
		return fmt.Errorf("policy_file: %w", err)
	}
	a.policy = p
	return nil
}

// applyPolicyToDetectors hands the policy's business hours and detector
// sensitivity to the detector config, where it leaves them unset.
func (a *App) applyPolicyToDetectors() {
	if a.policy == nil {
		return
	}
	policy.ApplyBusinessHours(a.policy.Defaults.BusinessHours, &a.detectorCfg)
	policy.ApplySensitivity(a.policy.Defaults.DetectorSensitivity, &a.detectorCfg)
}

// retentionFromPolicy returns the retention days and floor in force: the
// app's own settings, with the policy's where the app sets no retention,
// and the higher of the two floors.
func (a *App) retentionFromPolicy() (days, floor int) {
	days, floor = a.RetentionDays, a.RetentionFloorDays
	if a.policy == nil {
		return days, floor
	}
	d := a.policy.Defaults
	if days == 0 && d.RetentionDays != nil {
		days = *d.RetentionDays
	}
	if d.RetentionFloorDays != nil {
		floor = max(floor, *d.RetentionFloorDays)
	}
	if days != 0 && days < floor {
		days = floor // a floor is a promise: the default cannot undercut it
	}
	return days, floor
}

// recordPolicy records the policy this config puts in force on the
// pipeline, if it differs from the one in force. Called with p.mu held.
func (a *App) recordPolicy(p *pipeline) {
	st := &p.policy
	hash := ""
	if a.policy != nil {
		hash = a.policy.Hash()
	}
	if st.applied && st.hash == hash {
		return
	}
	action := actionPolicyChanged
	if !st.applied {
		if a.policy == nil {
			st.applied = true
			return // no policy before, none now: nothing to say
		}
		action = actionPolicyLoaded
	}
	details := map[string]any{
		"old_sha256": st.hash,
		"new_sha256": hash,
		"file":       a.policyPath,
		"changes":    policy.Diff(st.policy, a.policy),
	}
	if a.policy != nil {
		details["profile"] = a.policy.Profile
		// The whole effective policy: an auditor can see exactly what
		// was in force from then on, without the file.
		raw, _ := json.Marshal(a.policy) // a Policy always marshals
		details["policy"] = json.RawMessage(raw)
	}
	p.lifecycle(action, details)
	p.logger.L().Info("audit policy in force", zap.String("action", action), zap.String("file", a.policyPath),
		zap.String("sha256", hash), zap.Strings("changes", details["changes"].([]string)))
	*st = policyState{applied: true, policy: a.policy, hash: hash}
}
