package caddymodule

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/caddy-audit/caddy-audit/policy"
)

// runAudit runs `caddy audit <args>` in-process and returns its output.
func runAudit(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := &cobra.Command{Use: "audit", SilenceErrors: true, SilenceUsage: true}
	buildAuditCommand(root)
	var out bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.Execute()
	return out.String(), err
}

const testPolicy = `profile: production
rules:
  - name: health
    match: {paths: ["/healthz"]}
    level: none
  - name: admin
    match: {paths: ["/admin/**"]}
    level: headers
    tags: [admin]
`

func TestPolicyValidateCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte(testPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("profile: production\nrules:\n  - name: x\n    levle: none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := policy.Validate(good)
	if err != nil {
		t.Fatal(err)
	}
	out, err := runAudit(t, "policy", "validate", good)
	if err != nil || !strings.Contains(out, "valid, profile production") || !strings.Contains(out, p.Hash()) || !strings.Contains(out, "admin") {
		t.Errorf("validate good: %v\n%s", err, out)
	}
	out, err = runAudit(t, "policy", "validate", good, "--json")
	var eff policy.Policy
	if err != nil || json.Unmarshal([]byte(out), &eff) != nil || eff.Hash() != p.Hash() {
		t.Errorf("validate --json: %v\n%s", err, out)
	}
	// The error names the file, line and column of the unknown key.
	if _, err := runAudit(t, "policy", "validate", bad); err == nil || !strings.Contains(err.Error(), "bad.yaml:4:5") {
		t.Errorf("validate bad: %v", err)
	}
}

func TestPolicyExplainCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(file, []byte(testPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "hmac.key")
	key, err := policy.LoadOrCreateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	secret := "s3cr3t-session-value"
	out, err := runAudit(t, "policy", "explain", file, "--method", "get", "--url", "/admin/users?token="+secret,
		"-H", "Authorization: Bearer "+secret, "--key-file", keyFile, "--json")
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	var ex policy.Explanation
	if err := json.Unmarshal([]byte(out), &ex); err != nil {
		t.Fatalf("explain --json: %v\n%s", err, out)
	}
	if ex.Rule != "admin" || ex.Index != 1 || ex.Level != "headers" || ex.Event == nil || ex.Event.Path != "/admin/users" {
		t.Errorf("explanation %+v", ex)
	}
	// The secret is shown as the token the sidecar would store, and never in clear.
	token := policy.NewRedactor(key, nil, nil).Token(secret)
	if strings.Contains(out, secret) || !strings.Contains(out, token) {
		t.Errorf("explain shows the secret in clear or not as the stored token %s:\n%s", token, out)
	}

	out, err = runAudit(t, "policy", "explain", file, "--url", "/healthz")
	if err != nil || !strings.Contains(out, `rule 0 "health"`) || !strings.Contains(out, "level: none") || !strings.Contains(out, "stored event: none") {
		t.Errorf("explain /healthz: %v\n%s", err, out)
	}
	if _, err := runAudit(t, "policy", "explain", file, "-H", "no colon"); err == nil || !strings.Contains(err.Error(), "Name: value") {
		t.Errorf("bad header: %v", err)
	}
	if _, err := runAudit(t, "policy", "explain", file, "--key-file", filepath.Join(dir, "missing.key")); err == nil || !strings.Contains(err.Error(), "data_dir") {
		t.Errorf("missing key file: %v", err)
	}
}
