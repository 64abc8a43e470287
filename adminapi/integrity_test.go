package adminapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

func seedMany(e *testEnv, n int) {
	e.t.Helper()
	for i := 0; i < n; i++ {
		e.seed(&storage.Event{ID: fmt.Sprintf("e%02d", i), Time: t0.Add(time.Duration(i) * time.Second), Kind: storage.KindHTTP,
			Workspace: []string{"acme", "globex"}[i%2], User: "alice", Method: "GET", Path: "/api/items", Status: 200})
	}
}

func TestCheckpointEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.key("admin", "", nil)
	wantProblem(t, e.get("/api/v1/integrity/checkpoint", admin), http.StatusNotFound, "no checkpoint")
	seedMany(e, 4)
	if _, err := e.store.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	w := e.get("/api/v1/integrity/checkpoint", admin)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var body checkpointBody
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	pub, err := base64.StdEncoding.DecodeString(body.PublicKey)
	if err != nil || body.Checkpoint == nil || body.Checkpoint.Seq != 4 {
		t.Fatalf("body %s", w.Body)
	}
	if err := body.Checkpoint.Verify(pub); err != nil {
		t.Fatalf("the served checkpoint does not verify with the served key: %v", err)
	}
	wantProblem(t, e.get("/api/v1/integrity/checkpoint", e.key("workspace_viewer", "acme", nil)), http.StatusForbidden, "integrity:verify")
}

func TestVerifyEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.key("admin", "", nil)
	seedMany(e, 6)
	cp, err := e.store.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	cpJSON, _ := json.Marshal(map[string]any{"checkpoint": cp})
	tests := []struct {
		name, body string
		status     int
		verified   bool
	}{
		{"no body", "", http.StatusOK, true}, // the store's own checkpoint
		{"off-host checkpoint", string(cpJSON), http.StatusOK, true},
		{"not json", "{", http.StatusBadRequest, false},
		{"unknown field", `{"checkpont": {}}`, http.StatusBadRequest, false},
		{"too large", `{"checkpoint": {"link": "` + strings.Repeat("a", maxCheckpointBody) + `"}}`, http.StatusRequestEntityTooLarge, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.send(http.MethodPost, "/api/v1/integrity/verify", admin, tt.body)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if tt.status != http.StatusOK {
				return
			}
			var rep storage.VerifyReport
			if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
			if !rep.OK || rep.Events != 6 || rep.CheckpointVerified != tt.verified {
				t.Fatalf("report %s", w.Body)
			}
		})
	}
	// A forged checkpoint (a head the store never had) fails verification.
	forged := cp
	forged.Link = strings.Repeat("0", 64)
	body, _ := json.Marshal(map[string]any{"checkpoint": forged})
	w := e.send(http.MethodPost, "/api/v1/integrity/verify", admin, string(body))
	var rep storage.VerifyReport
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil || rep.OK {
		t.Fatalf("forged checkpoint accepted: %s", w.Body)
	}
	e.verifyMu.Lock()
	n := len(e.verified)
	e.verifyMu.Unlock()
	if n != 3 {
		t.Errorf("OnVerify told %d times, want 3", n)
	}
	wantProblem(t, e.send(http.MethodPost, "/api/v1/integrity/verify", e.key("admin", "acme", nil), ""), http.StatusForbidden, "spans every workspace")
	if got := e.rec.recorded(); got[len(got)-1].Action != "auth.forbidden" || got[len(got)-2].Action != "integrity.verify" {
		t.Errorf("verification not audited")
	}
}

func TestExportEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	seedMany(e, 10)
	cp, err := e.store.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := e.store.CheckpointPublicKey()

	w := e.get("/api/v1/events/export", e.key("auditor", "", nil))
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if lines := strings.Count(w.Body.String(), "\n"); lines != 10 || w.Header().Get("X-Export-Rows") != "10" || w.Header().Get("X-Export-Verifiable") != "true" {
		t.Fatalf("%d lines, trailers %v", lines, w.Header())
	}
	rep, err := storage.VerifyNDJSON(bytes.NewReader(w.Body.Bytes()), &cp, pub)
	if err != nil || !rep.OK || !rep.CheckpointVerified {
		t.Fatalf("the full export does not verify offline: %+v %v", rep, err)
	}
	if ev := e.rec.recorded(); ev[len(ev)-1].Action != "events.export" || ev[len(ev)-1].Details["sha256"] != w.Header().Get("X-Export-Sha256") {
		t.Fatalf("export not audited with its hash: %+v", ev[len(ev)-1])
	}

	scoped := e.get("/api/v1/events/export", e.key("workspace_viewer", "acme", func(k *storage.APIKey) { k.Role = "auditor" }))
	if scoped.Code != http.StatusOK || strings.Contains(scoped.Body.String(), "globex") || strings.Count(scoped.Body.String(), "\n") != 5 {
		t.Fatalf("scoped export: %d\n%s", scoped.Code, scoped.Body)
	}
	if scoped.Header().Get("X-Export-Verifiable") != "false" {
		t.Error("a filtered export must say it cannot be verified")
	}
	wantProblem(t, e.get("/api/v1/events/export?limit=5", e.key("admin", "", nil)), http.StatusBadRequest, "limit")
	wantProblem(t, e.get("/api/v1/events/export", e.key("workspace_viewer", "acme", nil)), http.StatusForbidden, "events:export")
}
