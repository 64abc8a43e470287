package caddymodule

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestValidateHasNoSideEffects: `caddy validate` provisions a config and
// cleans it up. It must not create or lock the database, write keys, or
// start background work, or validating next to a running Caddy would wait
// on the lock and a CI check would leave state behind.
func TestValidateHasNoSideEffects(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	raw, _ := json.Marshal(map[string]any{
		"apps": map[string]any{
			"audit": map[string]any{"data_dir": dir},
			"http": map[string]any{"servers": map[string]any{"s": map[string]any{
				"listen": []string{"127.0.0.1:0"},
				"routes": []any{map[string]any{"handle": []any{
					map[string]any{"handler": "audit", "failure_mode": "strict"},
					map[string]any{"handler": "audit_admin"},
				}}},
			}}},
		},
	})
	var cfg caddy.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&cfg); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(dir)
		t.Fatalf("validate created the data directory (%v): %v", err, entries)
	}
}
