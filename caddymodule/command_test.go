package caddymodule

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

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

// TestSimulationPlan: the same seed plans the same requests, another seed
// others; every attack has requests and the stand-in app's answers are
// predicted from its contract.
func TestSimulationPlan(t *testing.T) {
	opts := simOptions{seed: 5, users: 24, workspaces: 3, benign: 800, scenarios: simAttacks}
	a, err := planSimulation(opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := planSimulation(opts)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed planned different requests")
	}
	opts.seed = 6
	if c, _ := planSimulation(opts); reflect.DeepEqual(a.benign, c.benign) {
		t.Fatal("another seed planned the same benign requests")
	}
	if len(a.benign) != 800 || len(a.attacks) != len(simAttacks) {
		t.Fatalf("%d benign requests, %d attacks", len(a.benign), len(a.attacks))
	}
	workspaces := map[string]bool{}
	for _, r := range a.benign {
		if ws := r.header.Get("X-Workspace-ID"); ws != "" {
			workspaces[ws] = true
		}
		if r.header.Get("X-User-ID") == "" {
			t.Fatalf("a benign request without a user: %+v", r)
		}
	}
	if len(workspaces) != 3 {
		t.Errorf("benign traffic in workspaces %v, want 3", workspaces)
	}
	statuses := map[string]map[int]int{}
	for _, at := range a.attacks {
		if len(at.requests) == 0 || at.detector == "" {
			t.Fatalf("attack %s: %d requests, detector %q", at.name, len(at.requests), at.detector)
		}
		statuses[at.name] = map[int]int{}
		for _, r := range at.requests {
			statuses[at.name][r.want]++
		}
	}
	// What makes each attack an attack against the stand-in app.
	for name, want := range map[string]map[int]int{
		"brute_force":          {401: 40, 200: 1},
		"credential_stuffing":  {401: 25},
		"mass_deletion":        {204: 120},
		"privilege_escalation": {403: 1, 200: 4},
	} {
		if !reflect.DeepEqual(statuses[name], want) {
			t.Errorf("%s: statuses %v, want %v", name, statuses[name], want)
		}
	}
	var escalated bool
	for _, r := range a.attacks[slices.IndexFunc(a.attacks, func(x simAttack) bool { return x.name == "privilege_escalation" })].requests {
		escalated = escalated || r.header.Get("X-User-Role") == "admin"
	}
	if !escalated {
		t.Error("privilege_escalation never sends X-User-Role: admin")
	}
}

func TestSimulationOptions(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "none"},
		{in: "brute_force, exfiltration,brute_force", want: []string{"brute_force", "data_exfiltration"}},
		{in: "all", want: simAttacks},
		{in: "bruteforce", err: `unknown scenario "bruteforce"`},
	} {
		got, err := parseScenarios(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %v %v, want %v", tc.in, got, err, tc.want)
		}
	}
	for _, o := range []simOptions{{users: 10, workspaces: 7, benign: 1}, {users: 2, workspaces: 3, benign: 1}} {
		if _, err := planSimulation(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	for ip, want := range map[string]string{"198.18.1.10": "127.18.1.10", "203.0.113.7": "127.0.113.7", "10.0.0.1": "", "2001:db8::1": "", "": ""} {
		if got := loopbackFor(ip); got != want {
			t.Errorf("loopbackFor(%q) = %q, want %q", ip, got, want)
		}
	}
}

// TestSimulateStandIn sends a plan to a Go rendition of the stand-in
// app's contract: every answer is the predicted one.
func TestSimulateStandIn(t *testing.T) {
	var mu sync.Mutex
	users := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		users[r.Header.Get("X-User-ID")] = true
		mu.Unlock()
		req := simRequest{method: r.Method, path: r.URL.Path, header: r.Header, body: string(body)}
		w.WriteHeader(standInStatus(req))
	}))
	defer srv.Close()
	cmd := simulateCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--target", srv.URL, "--users", "12", "--workspaces", "2", "--requests", "300", "--scenarios", "brute_force,probing", "--json"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	var sum simSummary
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		t.Fatal(err)
	}
	if !sum.StatusesMatch || sum.Requests != 300+41+80 || len(sum.Scenarios) != 3 {
		t.Fatalf("summary: %s", out.String())
	}
	if len(users) < 12 {
		t.Errorf("%d distinct users sent, want at least 12", len(users))
	}
}

// TestAdminClientErrors: each failure says what to do next.
func TestAdminClientErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		switch r.URL.Path {
		case "/api/v1/alerts":
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"status":401,"detail":"unknown API key"}`)
		default:
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"status":403,"detail":"this API key holds alerts:manage nowhere"}`)
		}
	}))
	defer srv.Close()
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("cka_test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CADDY_AUDIT_KEY", "")
	run := func(args ...string) error {
		root := &cobra.Command{Use: "audit"}
		buildAuditCommand(root)
		root.SetArgs(args)
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		return root.Execute()
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"alerts", "list", "--admin", srv.URL, "--key-file", keyFile}, []string{"401", keyFile, "bootstrap-admin.key", "keys create"}},
		{[]string{"alerts", "ack", "x", "--admin", srv.URL, "--key-file", keyFile}, []string{"403", "alerts:manage", "lacks the permission"}},
		{[]string{"alerts", "list", "--admin", srv.URL, "--key-file", filepath.Join(t.TempDir(), "none")}, []string{"CADDY_AUDIT_KEY", "--key-file"}},
		{[]string{"alerts", "list", "--admin", "127.0.0.1:1", "--key-file", keyFile}, []string{"http://127.0.0.1:1", "Is Caddy running", "audit_admin"}},
	} {
		err := run(tc.args...)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %v, want it to mention %q", tc.args, err, w)
			}
		}
	}
}
