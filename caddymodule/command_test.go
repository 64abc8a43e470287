package caddymodule

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// TestVerifyCommandOffline runs `caddy audit verify --file` on an export
// and a checkpoint kept off the host, then on a tampered copy.
func TestVerifyCommandOffline(t *testing.T) {
	dir := t.TempDir()
	store, err := storage.Open(filepath.Join(dir, "audit.db"), storage.Options{CheckpointKeyPath: filepath.Join(dir, "checkpoint.key")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i := 0; i < 20; i++ {
		if err := store.Append(&storage.Event{ID: fmt.Sprint(i), Time: time.Now(), Kind: storage.KindHTTP, User: "alice", Path: "/api/items", Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := store.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := store.CheckpointPublicKey()
	var export bytes.Buffer
	if _, err := store.ExportNDJSON(context.Background(), &export, nil); err != nil {
		t.Fatal(err)
	}
	exportPath := filepath.Join(dir, "export.ndjson")
	cpPath := filepath.Join(dir, "checkpoint.json")
	cpJSON, _ := json.Marshal(map[string]any{"checkpoint": cp, "public_key": base64.StdEncoding.EncodeToString(pub)})
	for path, data := range map[string][]byte{exportPath: export.Bytes(), cpPath: cpJSON} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	run := func(args ...string) (string, error) {
		cmd := verifyCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		err := cmd.Execute()
		return out.String(), err
	}
	out, err := run("--file", exportPath, "--checkpoint", cpPath)
	if err != nil || !strings.Contains(out, "integrity: OK") || !strings.Contains(out, "checkpoint seq 20: verified true") {
		t.Fatalf("clean export: %v\n%s", err, out)
	}

	// Drop the last line: a truncated file, caught by the checkpoint.
	truncated := export.Bytes()[:bytes.LastIndexByte(export.Bytes()[:export.Len()-1], '\n')+1]
	if err := os.WriteFile(exportPath, truncated, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = run("--file", exportPath, "--checkpoint", cpPath, "--json")
	if err == nil || !strings.Contains(out, `"ok": false`) || !strings.Contains(out, "truncated") {
		t.Fatalf("truncated export passed: %v\n%s", err, out)
	}

	if _, err := run("--file", exportPath, "--checkpoint", filepath.Join(dir, "missing.json")); err == nil {
		t.Fatal("a missing checkpoint file must be an error")
	}
	if _, err := run("--file", exportPath, "--public-key", "not base64!"); err == nil {
		t.Fatal("a bad public key must be an error")
	}
}
