package caddymodule_test

// CLI integration tests: the `caddy audit` commands, built the way the
// caddy binary builds them (from the registered command), run in-process
// against a running sidecar: caddytest with the audit proxy in front of
// the stand-in app copied from Caddyfile.example, and the admin API.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// itSyncBuffer is a buffer that a running command writes while the test
// reads it.
type itSyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *itSyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *itSyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// itCLI runs `caddy audit <args>` in-process and returns its standard
// output and error.
func itCLI(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	var out, errOut itSyncBuffer
	err = itCLIStream(ctx, &out, &errOut, args...)
	return out.String(), errOut.String(), err
}

func itCLIStream(ctx context.Context, out, errOut *itSyncBuffer, args ...string) error {
	audit, ok := caddycmd.Commands()["audit"]
	if !ok {
		return fmt.Errorf("no audit command is registered")
	}
	root := &cobra.Command{Use: audit.Name, SilenceErrors: true}
	audit.CobraFunc(root)
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(errOut)
	root.SetIn(strings.NewReader(""))
	return root.ExecuteContext(ctx)
}

// itStandIn returns the stand-in app's site block from Caddyfile.example,
// listening on port instead of 9000.
func itStandIn(t *testing.T, port int) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "\n:9000 {\n")
	if start < 0 {
		t.Fatal("Caddyfile.example has no :9000 site block")
	}
	end := strings.Index(text[start:], "\n}\n")
	if end < 0 {
		t.Fatal("the :9000 site block of Caddyfile.example does not end")
	}
	return fmt.Sprintf(":%d", port) + text[start+len("\n:9000"):start+end+3]
}

// TestCLI runs every `caddy audit` subcommand against a running sidecar,
// starting with a simulation whose attacks must raise the alerts of all
// six detectors.
func TestCLI(t *testing.T) {
	e := itNewEnv(t)
	appPort := itFreePorts(t, 1)[0]
	// unusual_access needs days of history per user; a test has seconds.
	detectorsFile := filepath.Join(t.TempDir(), "detectors.yaml")
	if err := os.WriteFile(detectorsFile, []byte("unusual_access:\n  min_events: 5\n  min_days: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.load(e.caddyfile("detectors_file "+detectorsFile, fmt.Sprintf(`
:%d {
	bind 127.0.0.1
	audit {
		level metadata
		user header X-User-ID
		workspace header X-Workspace-ID
	}
	reverse_proxy 127.0.0.1:%d
}

%s
`, e.proxyPort, appPort, itStandIn(t, appPort))), "caddyfile")
	t.Setenv("CADDY_AUDIT_KEY", "")
	ctx := context.Background()
	admin := []string{"--admin", e.adminURL(""), "--key-file", filepath.Join(e.dataDir, "bootstrap-admin.key")}
	cli := func(args ...string) (string, string, error) { return itCLI(ctx, append(args, admin...)...) }
	mustCLI := func(args ...string) string {
		t.Helper()
		out, errOut, err := cli(args...)
		if err != nil {
			t.Fatalf("caddy audit %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}
	e.apiKey() // waits for nothing, but fails early if the app did not start

	// simulate: no key needed; every answer is the stand-in app's.
	out, _, err := itCLI(ctx, "simulate", "--target", e.proxyURL(""), "--seed", "3", "--users", "30",
		"--workspaces", "3", "--requests", "1500", "--scenarios", "all", "--json")
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, out)
	}
	var sum struct {
		Requests      int  `json:"requests"`
		StatusesMatch bool `json:"statuses_match"`
		Scenarios     []struct {
			Scenario string `json:"scenario"`
			Requests int    `json:"requests"`
		} `json:"scenarios"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("simulate --json: %v\n%s", err, out)
	}
	if !sum.StatusesMatch || len(sum.Scenarios) != 9 || sum.Requests < 1500 {
		t.Fatalf("simulate summary: %s", out)
	}

	// alerts list: every detector raised its alert.
	var alerts struct {
		Alerts []struct {
			ID, Detector, Severity, Status string
		} `json:"alerts"`
	}
	want := []string{"brute_force", "unauthorized_access", "data_exfiltration", "privilege_escalation", "mass_deletion", "unusual_access"}
	itEventually(t, "alerts from every detector", func() (bool, string) {
		out, errOut, err := cli("alerts", "list", "--limit", "1000", "--json")
		if err != nil {
			return false, err.Error() + errOut
		}
		if err := json.Unmarshal([]byte(out), &alerts); err != nil {
			return false, err.Error()
		}
		var got []string
		for _, a := range alerts.Alerts {
			if !slices.Contains(got, a.Detector) {
				got = append(got, a.Detector)
			}
		}
		for _, d := range want {
			if !slices.Contains(got, d) {
				return false, fmt.Sprintf("no %s alert; got %v", d, got)
			}
		}
		return true, ""
	})
	table := mustCLI("alerts", "list", "--detector", "mass_deletion")
	if !strings.Contains(table, "SEVERITY") || !strings.Contains(table, "mass_deletion") {
		t.Fatalf("alerts list table:\n%s", table)
	}
	id := alerts.Alerts[0].ID
	if out := mustCLI("alerts", "show", id); !strings.Contains(out, "summary:") || !strings.Contains(out, id) {
		t.Fatalf("alerts show:\n%s", out)
	}
	if out := mustCLI("alerts", "ack", id, "--comment", "looking"); !strings.Contains(out, "acknowledged") {
		t.Fatalf("alerts ack: %s", out)
	}
	if out := mustCLI("alerts", "resolve", id); !strings.Contains(out, "resolved") {
		t.Fatalf("alerts resolve: %s", out)
	}
	if out := mustCLI("alerts", "show", id, "--json"); !strings.Contains(out, `"comment": "looking"`) {
		t.Fatalf("the comment is not in the alert's history:\n%s", out)
	}

	// events: a table, JSON, and --follow picking up a new request.
	if out := mustCLI("events", "--kind", "http", "--limit", "5"); !strings.Contains(out, "TIME") || strings.Count(out, "\n") != 6 {
		t.Fatalf("events table:\n%s", out)
	}
	var page struct {
		Events []struct {
			Kind string `json:"kind"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(mustCLI("events", "--kind", "http", "--limit", "5", "--json")), &page); err != nil || len(page.Events) != 5 {
		t.Fatalf("events --json: %v %+v", err, page)
	}
	followCtx, stopFollow := context.WithCancel(ctx)
	var followOut, followErr itSyncBuffer
	followDone := make(chan error, 1)
	go func() {
		followDone <- itCLIStream(followCtx, &followOut, &followErr,
			append([]string{"events", "--follow", "--interval", "100ms", "--kind", "http", "--limit", "3"}, admin...)...)
	}()
	marker := "/api/items/follow-marker"
	itEventually(t, "events --follow prints a new request", func() (bool, string) {
		resp, err := e.client.Get(e.proxyURL(marker))
		if err == nil {
			resp.Body.Close()
		}
		return strings.Contains(followOut.String(), marker), followOut.String() + followErr.String()
	})
	stopFollow()
	if err := <-followDone; err != nil {
		t.Fatalf("events --follow ended with %v", err)
	}
	// The header, the newest page (3), then only what came after.
	var older int
	for _, line := range strings.Split(strings.TrimSpace(followOut.String()), "\n") {
		if !strings.Contains(line, marker) {
			older++
		}
	}
	if older > 4 {
		t.Fatalf("events --follow printed %d lines of older events:\n%s", older, followOut.String())
	}

	// export: to a file, trailers checked; the file verifies offline.
	exported := filepath.Join(t.TempDir(), "events.ndjson")
	_, errOut, err := cli("export", "-o", exported)
	if err != nil || !strings.Contains(errOut, "X-Export-Sha256:") || !strings.Contains(errOut, "(checked)") {
		t.Fatalf("export: %v\n%s", err, errOut)
	}
	if out := mustCLI("verify", "--file", exported); !strings.Contains(out, "integrity: OK") {
		t.Fatalf("verify --file on the export:\n%s", out)
	}
	if out := mustCLI("export", "--format", "csv", "--kind", "http", "--status", "204"); !strings.HasPrefix(out, `"`) || strings.Count(out, "\n") < 100 {
		t.Fatalf("export --format csv to stdout: %.300s", out)
	}
	if out := mustCLI("verify"); !strings.Contains(out, "integrity: OK") {
		t.Fatalf("verify through the API:\n%s", out)
	}
	_, _, err = cli("verify", "--db", filepath.Join(e.dataDir, "audit.db"))
	if err == nil || !strings.Contains(err.Error(), "Stop Caddy") {
		t.Fatalf("verify --db on the live database: %v", err)
	}

	// report: summaries and full documents.
	if out := mustCLI("report", "score"); !strings.Contains(out, "score:") || !strings.Contains(out, "detector_coverage") {
		t.Fatalf("report score:\n%s", out)
	}
	for name, want := range map[string]string{"soc2": "CC7.2", "pci": "10.2.1", "gdpr": "legal basis"} {
		if out := mustCLI("report", name); !strings.Contains(out, want) {
			t.Errorf("report %s lacks %q:\n%s", name, want, out)
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(mustCLI("report", name, "--json")), &doc); err != nil || doc["report"] != name {
			t.Errorf("report %s --json: %v %v", name, err, doc["report"])
		}
	}

	// import: a Common Log Format file.
	logFile := filepath.Join(t.TempDir(), "access.log")
	now := time.Now().UTC().Add(-time.Hour).Format("02/Jan/2006:15:04:05 -0700")
	if err := os.WriteFile(logFile, []byte(fmt.Sprintf("192.0.2.9 - bob [%s] \"GET /api/items HTTP/1.1\" 200 120\nnot a log line\n", now)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := mustCLI("import", "--file", logFile); !strings.Contains(out, "1 events") || !strings.Contains(out, "1 malformed") {
		t.Fatalf("import:\n%s", out)
	}

	// keys: create (secret once), list, a role without a permission, revoke.
	var created struct {
		Secret string `json:"secret"`
		Key    struct {
			ID string `json:"id"`
		} `json:"key"`
	}
	if err := json.Unmarshal([]byte(mustCLI("keys", "create", "--name", "cli test", "--role", "auditor", "--json")), &created); err != nil || !strings.HasPrefix(created.Secret, "cka_") {
		t.Fatalf("keys create: %v %+v", err, created)
	}
	if out := mustCLI("keys", "list"); !strings.Contains(out, created.Key.ID) || strings.Contains(out, created.Secret) {
		t.Fatalf("keys list (must show the key, never the secret):\n%s", out)
	}
	t.Setenv("CADDY_AUDIT_KEY", created.Secret)
	if _, _, err := cli("alerts", "ack", id); err == nil || !strings.Contains(err.Error(), "alerts:manage") || !strings.Contains(err.Error(), "lacks the permission") {
		t.Fatalf("an auditor acknowledging an alert: %v", err)
	}
	t.Setenv("CADDY_AUDIT_KEY", "")
	if out := mustCLI("keys", "revoke", created.Key.ID); !strings.Contains(out, "revoked") {
		t.Fatalf("keys revoke: %s", out)
	}
	t.Setenv("CADDY_AUDIT_KEY", created.Secret)
	if _, _, err := cli("alerts", "list"); err == nil || !strings.Contains(err.Error(), "bootstrap-admin.key") {
		t.Fatalf("a revoked key: %v", err)
	}
	t.Setenv("CADDY_AUDIT_KEY", "")

	// Nothing listening: the error names the address and what to check.
	closed := fmt.Sprintf("http://127.0.0.1:%d", itFreePorts(t, 1)[0])
	if _, _, err := itCLI(ctx, "alerts", "list", "--admin", closed, "--key-file", admin[3]); err == nil || !strings.Contains(err.Error(), closed) || !strings.Contains(err.Error(), "audit_admin") {
		t.Fatalf("an unreachable admin API: %v", err)
	}
}
