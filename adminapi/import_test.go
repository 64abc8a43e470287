package adminapi

import (
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"testing"

	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

// TestImportRaisesAlerts backfills the access logs the logimport package
// tests with (a brute-force burst and a probing scan among normal traffic)
// through the API, and finds the alerts in the alert store.
func TestImportRaisesAlerts(t *testing.T) {
	for _, file := range []string{"access.combined.log", "access.caddy.json"} {
		t.Run(file, func(t *testing.T) {
			e := newEnv(t, nil)
			e.h, _ = New(Config{Store: e.store, Recorder: e.rec, Redactor: policy.NewRedactor([]byte("0123456789abcdef0123456789abcdef"), nil, nil)})
			admin := e.key("admin", "", nil)
			body, err := os.ReadFile("../logimport/testdata/" + file)
			if err != nil {
				t.Fatal(err)
			}
			w := e.send(http.MethodPost, "/api/v1/import?source="+file, admin, string(body))
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			var res ImportResult
			if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			if res.Events != 400 || res.Errors != 0 || len(res.Alerts) != 2 {
				t.Fatalf("import result %s", w.Body)
			}
			page, err := e.store.ListAlerts(storage.AlertFilter{}, 10, "")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range page.Alerts {
				got = append(got, a.Detector+"/"+a.Severity)
			}
			slices.Sort(got)
			if want := []string{"brute_force/critical", "unauthorized_access/medium"}; !slices.Equal(got, want) {
				t.Fatalf("alerts %v, want %v", got, want)
			}
			if n := e.store.Count(); n != 400 {
				t.Fatalf("%d events stored, want 400", n)
			}
			// The same source again would duplicate every event.
			wantProblem(t, e.send(http.MethodPost, "/api/v1/import?source="+file, admin, string(body)), http.StatusConflict, "imported before")
			if n := e.store.Count(); n != 400 {
				t.Fatalf("a refused re-import stored events: %d", n)
			}
		})
	}
}

func TestImportRefusals(t *testing.T) {
	e := newEnv(t, nil)
	e.h, _ = New(Config{Store: e.store, Recorder: e.rec, Redactor: policy.NewRedactor([]byte("0123456789abcdef0123456789abcdef"), nil, nil)})
	admin := e.key("admin", "", nil)
	wantProblem(t, e.send(http.MethodPost, "/api/v1/import", admin, "x"), http.StatusBadRequest, "source")
	wantProblem(t, e.send(http.MethodPost, "/api/v1/import?source=a&format=xml", admin, "x"), http.StatusBadRequest, "format")
	wantProblem(t, e.send(http.MethodPost, "/api/v1/import?source=a", e.key("admin", "acme", nil), "x"), http.StatusForbidden, "unscoped")
	wantProblem(t, e.send(http.MethodPost, "/api/v1/import?source=a", e.key("auditor", "", nil), "x"), http.StatusForbidden, "events:import")
}
