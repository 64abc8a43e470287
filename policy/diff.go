package policy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Diff summarises how the effective policy changed from old to new, one
// line per change, for the policy_changed audit event: the profile,
// each default that changed (with old and new value), and the rules added,
// removed, changed or moved, by name. nil old means there was none.
func Diff(old, new *Policy) []string {
	if old == nil && new == nil {
		return nil
	}
	if old == nil {
		return []string{"policy loaded"}
	}
	if new == nil {
		return []string{"policy removed"}
	}
	var out []string
	if old.Profile != new.Profile {
		out = append(out, fmt.Sprintf("profile: %q -> %q", old.Profile, new.Profile))
	}
	ov, nv := reflect.ValueOf(old.Defaults), reflect.ValueOf(new.Defaults)
	for f := range fieldsOf(ov.Type()) {
		a, b := ov.FieldByIndex(f.Index).Interface(), nv.FieldByIndex(f.Index).Interface()
		ja, jb := compactJSON(a), compactJSON(b)
		if ja != jb {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			out = append(out, fmt.Sprintf("defaults.%s: %s -> %s", name, ja, jb))
		}
	}
	oldRules := map[string]string{}
	var oldNames, newNames []string
	for _, r := range old.Rules {
		oldRules[r.Name] = compactJSON(r)
		oldNames = append(oldNames, r.Name)
	}
	for _, r := range new.Rules {
		newNames = append(newNames, r.Name)
		prev, ok := oldRules[r.Name]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("rule added: %s", r.Name))
		case prev != compactJSON(r):
			out = append(out, fmt.Sprintf("rule changed: %s", r.Name))
		}
	}
	for _, n := range oldNames {
		if !slices.Contains(newNames, n) {
			out = append(out, fmt.Sprintf("rule removed: %s", n))
		}
	}
	// Order decides (first match wins): same rules in another order is a
	// change too.
	kept := func(names, other []string) []string {
		return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return !slices.Contains(other, n) })
	}
	if !slices.Equal(kept(oldNames, newNames), kept(newNames, oldNames)) {
		out = append(out, "rules reordered")
	}
	return out
}

func compactJSON(v any) string {
	b, _ := json.Marshal(v) // policy values always marshal
	return string(b)
}
