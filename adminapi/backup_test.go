package adminapi

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

func TestBackup(t *testing.T) {
	e := newEnv(t, nil)
	e.seed(&storage.Event{ID: "a", Time: t0, Kind: storage.KindHTTP, Workspace: "acme"},
		&storage.Event{ID: "b", Time: t0.Add(time.Second), Kind: storage.KindHTTP, Workspace: "globex"})

	w := e.get("/api/v1/backup", e.key("admin", "", nil))
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("status %d, type %q: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	path := filepath.Join(t.TempDir(), "restored.db")
	if err := os.WriteFile(path, w.Body.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	restored, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatalf("the backup does not open as a database: %v", err)
	}
	defer restored.Close()
	page, err := restored.Query(storage.Filter{Kind: storage.KindHTTP}, 10, "")
	if err != nil || len(page.Events) != 2 {
		t.Fatalf("restored events: %d, %v", len(page.Events), err)
	}
	if got := e.rec.recorded(); len(got) == 0 || got[len(got)-1].Action != "backup.download" {
		t.Fatalf("backup not audited: %+v", got)
	}

	wantProblem(t, e.get("/api/v1/backup", e.key("admin", "acme", nil)), http.StatusForbidden, "every workspace")
	wantProblem(t, e.get("/api/v1/backup", e.key("auditor", "", nil)), http.StatusForbidden, "backup:read")
}
