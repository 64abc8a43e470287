package adminapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

// zoe is the data subject of the GDPR tests: long enough that finding
// her id in the database file cannot be chance.
const zoe = "zoe.subject-7731@example.org"

// seedSubject stores three events of zoe (two in acme, one in globex),
// one of someone else, and an alert about her.
func seedSubject(e *testEnv) {
	e.t.Helper()
	z1 := hev(0, "acme", zoe, true, "GET", "/api/items", 200, "10.7.7.1", "zoe-agent/1", 0)
	z1.ClientPort = 50123
	z1.RequestHeaders = map[string][]string{"X-User-Id": {zoe}}
	e.seed(
		z1,
		hev(1, "acme", zoe, true, "DELETE", "/api/items/3", 204, "10.7.7.1", "zoe-agent/1", 10),
		hev(2, "globex", zoe, true, "GET", "/api/items", 200, "10.7.7.2", "zoe-agent/2", 0),
		hev(3, "acme", "yann", true, "GET", "/api/items", 200, "10.8.8.8", "other", 0),
	)
	if _, _, err := e.store.PutAlert(storage.Alert{ID: "al-z", Detector: "unusual_access", Severity: "medium", Workspace: "acme",
		Subject: storage.Subject{Kind: storage.SubjectUser, Value: zoe}, FirstSeen: rb, LastSeen: rb, Count: 1}); err != nil {
		e.t.Fatal(err)
	}
}

func TestSubjectExport(t *testing.T) {
	e := newReportEnv(t, nil)
	admin := e.key("admin", "", nil)
	scoped := e.key("admin", "acme", nil)
	seedSubject(e)
	pseud := policy.NewRedactor(testHMACKey, nil, nil).Token(zoe)

	for _, tt := range []struct {
		name, secret, query string
		rows                int
	}{
		{"global ndjson", admin, "", 3},
		{"scoped ndjson", scoped, "", 2},
		{"global json", admin, "?format=json", 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := e.get("/api/v1/gdpr/subjects/"+zoe+"/export"+tt.query, tt.secret)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			body := w.Body.Bytes()
			var evs []storage.Event
			if tt.query == "" {
				if ct := w.Header().Get("Content-Type"); ct != "application/x-ndjson" {
					t.Errorf("Content-Type = %q", ct)
				}
				sc := bufio.NewScanner(bytes.NewReader(body))
				for sc.Scan() {
					var ev storage.Event
					if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
						t.Fatalf("line %q: %v", sc.Text(), err)
					}
					evs = append(evs, ev)
				}
			} else {
				var page struct{ Events []storage.Event }
				if err := json.Unmarshal(body, &page); err != nil {
					t.Fatalf("json export: %v: %s", err, body)
				}
				evs = page.Events
			}
			if len(evs) != tt.rows {
				t.Fatalf("rows = %d, want %d: %s", len(evs), tt.rows, body)
			}
			for _, ev := range evs {
				if ev.User != zoe || (tt.secret == scoped && ev.Workspace != "acme") {
					t.Errorf("exported %+v", ev)
				}
			}
			tr := w.Result().Trailer
			sum := sha256.Sum256(body)
			if tr.Get("X-Export-Rows") != strconv.Itoa(tt.rows) || tr.Get("X-Export-Sha256") != hex.EncodeToString(sum[:]) {
				t.Errorf("trailers = %v, want %d rows and sha256 %x", tr, tt.rows, sum)
			}
			evsRec := e.rec.recorded()
			last := evsRec[len(evsRec)-1]
			if last.Action != actionSubjectExport || last.Details["subject"] != pseud || last.Details["rows"] != int64(tt.rows) ||
				last.Details["sha256"] != hex.EncodeToString(sum[:]) || strings.Contains(last.Path, zoe) || !strings.Contains(last.Path, pseud) {
				t.Errorf("audit event = %s %s %v", last.Action, last.Path, last.Details)
			}
		})
	}
}

func TestSubjectErase(t *testing.T) {
	e := newReportEnv(t, nil)
	admin := e.key("admin", "", nil)
	scoped := e.key("admin", "acme", nil)
	analyst := e.key("security_analyst", "", nil)
	seedSubject(e)
	pseud := policy.NewRedactor(testHMACKey, nil, nil).Token(zoe)
	target := "/api/v1/gdpr/subjects/" + zoe + "/erase"

	wantProblem(t, e.send(http.MethodPost, target, scoped, `{"reason":"ticket 42"}`), http.StatusForbidden, `scoped to workspace "acme"`)
	wantProblem(t, e.send(http.MethodPost, target, admin, ``), http.StatusBadRequest, "a JSON body is required")
	wantProblem(t, e.send(http.MethodPost, target, admin, `{"reason":"  "}`), http.StatusBadRequest, "body field reason")
	wantProblem(t, e.send(http.MethodPost, target, admin, `{"reason":"x","user":"y"}`), http.StatusBadRequest, "unknown field")
	for _, ev := range e.rec.recorded() {
		if strings.Contains(ev.Path, zoe) {
			t.Errorf("a refused erasure was recorded with the clear id: %s %s", ev.Action, ev.Path)
		}
	}
	// Refused for want of the permission: the shared permission check
	// records that (with the path as requested).
	wantProblem(t, e.send(http.MethodPost, target, analyst, `{"reason":"x"}`), http.StatusForbidden, "gdpr:manage")

	w := e.send(http.MethodPost, target, admin, `{"reason":"DSR-2025-17 from `+zoe+`"}`)
	if w.Code != http.StatusOK {
		t.Fatalf("erase = %d: %s", w.Code, w.Body)
	}
	var res EraseResult
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.Subject != pseud || res.ErasedEvents != 3 || !res.ErasedAt.Equal(t0) || strings.Contains(w.Body.String(), zoe) {
		t.Errorf("result = %s", w.Body)
	}
	evs := e.rec.recorded()
	last := evs[len(evs)-1]
	if last.Action != actionSubjectErase || last.Status != 200 || last.Details["subject"] != pseud || last.Details["erased_events"] != 3 ||
		last.Details["reason"] != "DSR-2025-17 from "+pseud {
		t.Errorf("audit event = %s %d %v", last.Action, last.Status, last.Details)
	}
	raw, _ := json.Marshal(last)
	if bytes.Contains(raw, []byte(zoe)) {
		t.Errorf("the erasure's audit event names the subject in clear: %s", raw)
	}

	// The chain still verifies, with the erasure accounted for.
	rep, err := e.store.Verify(context.Background(), nil)
	if err != nil || !rep.OK || rep.Erased != 3 {
		t.Fatalf("verify after erasure: %+v, %v", rep, err)
	}
	// The events now carry pseudonyms; the other user is untouched.
	page, err := e.store.Query(storage.Filter{User: pseud}, 10, "")
	if err != nil || len(page.Events) != 3 {
		t.Fatalf("events under the pseudonym: %d, %v", len(page.Events), err)
	}
	for _, ev := range page.Events {
		if !ev.Erased || ev.ClientIP == "" || strings.HasPrefix(ev.ClientIP, "10.7") || ev.ClientPort != 0 || !strings.HasPrefix(ev.UserAgent, policy.TokenPrefix) {
			t.Errorf("erased event = %+v", ev)
		}
	}
	if page, _ := e.store.Query(storage.Filter{User: "yann"}, 10, ""); len(page.Events) != 1 || page.Events[0].Erased {
		t.Errorf("yann = %+v", page.Events)
	}
	al, err := e.store.GetAlert("al-z")
	if err != nil || al.Subject.Value != pseud {
		t.Errorf("alert subject = %+v, %v", al.Subject, err)
	}
	// An export of the erased subject finds nothing.
	if w := e.get("/api/v1/gdpr/subjects/"+zoe+"/export", admin); w.Code != 200 || w.Body.Len() != 0 || w.Result().Trailer.Get("X-Export-Rows") != "0" {
		t.Errorf("export after erasure = %d %q %v", w.Code, w.Body, w.Result().Trailer)
	}

	// The GDPR report counts the erasure.
	var gr GDPRReport
	getReport(t, e, "/api/v1/reports/gdpr?from=2025-03-01T00:00:00Z&to="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339), admin, &gr)
	if gr.Figures.ErasureRequests != 1 || gr.Figures.ErasedEvents != 3 {
		t.Errorf("GDPR figures after erasure = %+v", gr.Figures)
	}

	// Nothing of the subject is left in clear in the database file.
	db, err := os.ReadFile(e.store.Path())
	if err != nil {
		t.Fatal(err)
	}
	for _, clear := range []string{zoe, "zoe-agent/1", "10.7.7.1"} {
		if n := bytes.Count(db, []byte(clear)); n > 0 {
			t.Errorf("the database file still holds %q %d time(s)", clear, n)
		}
	}
}
