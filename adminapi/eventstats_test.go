package adminapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

func decodeJSONBody[T any](t *testing.T, w interface {
	Result() *http.Response
}, body []byte) T {
	t.Helper()
	var v T
	if code := w.Result().StatusCode; code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	return v
}

func TestEventStats(t *testing.T) {
	e := newEnv(t, nil)
	exportFixture(e)
	admin := e.key("admin", "", nil)
	w := e.get("/api/v1/events/stats", admin)
	st := decodeJSONBody[eventStats](t, w, w.Body.Bytes())
	if st.Total != 5 {
		t.Errorf("total = %d, want 5", st.Total)
	}
	if st.ByStatusClass != (storage.StatusClassCounts{Success: 2, ClientError: 1, ServerError: 1, Other: 1}) {
		t.Errorf("by status class = %+v", st.ByStatusClass)
	}
	counts := func(tc storage.TopCounts) map[string]int64 {
		m := map[string]int64{}
		for _, kc := range tc.Items {
			m[kc.Key] = kc.Count
		}
		return m
	}
	for name, tt := range map[string]struct {
		got     storage.TopCounts
		want    map[string]int64
		missing int64
	}{
		"risk":    {st.ByRiskLevel, map[string]int64{"low": 1, "medium": 1, "high": 1, "critical": 1}, 1},
		"outcome": {st.ByOutcome, map[string]int64{"success": 2, "failure": 2}, 1},
		"users":   {st.TopUsers, map[string]int64{"alice": 2, "bob": 1, "carol": 1}, 1},
		"paths":   {st.TopPaths, map[string]int64{"/api/items": 1, "/login": 1, "/api/items/7": 1, "/api/items/8": 1}, 1},
		"ips":     {st.TopClientIPs, map[string]int64{"192.0.2.1": 2, "192.0.2.2": 1, "2001:db8::1": 1}, 1},
	} {
		if got := counts(tt.got); len(got) != len(tt.want) || tt.got.Missing != tt.missing || tt.got.Total != 5 {
			t.Errorf("%s = %+v, want %v missing %d", name, tt.got, tt.want, tt.missing)
		} else {
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s[%s] = %d, want %d", name, k, got[k], v)
				}
			}
		}
	}
	if st.TopUsers.Items[0].Key != "alice" {
		t.Errorf("top user %v, want alice first", st.TopUsers.Items)
	}

	// Scoped, filtered and shortened: only acme's counts, filter echoed.
	w = e.get("/api/v1/events/stats?top=1&status_class=2", e.key("workspace_viewer", "acme", nil))
	st = decodeJSONBody[eventStats](t, w, w.Body.Bytes())
	if st.Total != 1 || len(st.TopUsers.Items) != 1 || st.TopUsers.Items[0].Key != "alice" || st.Filter["workspace"] != "acme" || st.Filter["status_class"] != 2.0 {
		t.Errorf("scoped stats = %+v", st)
	}
	recs := e.rec.recorded()
	if last := recs[len(recs)-1]; last.Action != "events.stats" || last.Details["total"] != int64(1) {
		t.Errorf("audit = %s %v", last.Action, last.Details)
	}
	wantProblem(t, e.get("/api/v1/events/stats?top=0", admin), http.StatusBadRequest, `"top"`)
	wantProblem(t, e.get("/api/v1/events/stats?limit=5", admin), http.StatusBadRequest, `"limit"`)
	wantProblem(t, e.get("/api/v1/events/stats?workspace=globex", e.key("workspace_viewer", "acme", nil)), http.StatusForbidden, "acme")
}

func TestEventTimeseries(t *testing.T) {
	e := newEnv(t, nil)
	exportFixture(e) // 15:08:27-15:08:31 UTC, t0 = 15:09:26
	admin := e.key("admin", "", nil)
	get := func(q string) timeseries {
		t.Helper()
		w := e.get("/api/v1/events/timeseries?"+q, admin)
		return decodeJSONBody[timeseries](t, w, w.Body.Bytes())
	}
	// Defaults: hourly, UTC, the last 24 hours up to now.
	ts := get("")
	if ts.Interval != "hour" || ts.TZ != "UTC" || !ts.To.Equal(t0) || !ts.From.Equal(t0.Add(-24*time.Hour)) || ts.Total != 5 {
		t.Fatalf("default series = %s %s %v-%v total %d", ts.Interval, ts.TZ, ts.From, ts.To, ts.Total)
	}
	if n := len(ts.Buckets); n != 25 || ts.Buckets[n-1].Count != 5 || !ts.Buckets[n-1].Start.Equal(time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC)) {
		t.Errorf("hourly buckets %d, last %+v", n, ts.Buckets[n-1])
	}

	ts = get("interval=minute&from=2025-03-14T15:07:00Z&to=2025-03-14T15:10:00Z&workspace=acme")
	var got []int64
	for _, b := range ts.Buckets {
		got = append(got, b.Count)
	}
	if !slices.Equal(got, []int64{0, 3, 0}) || ts.Total != 3 || ts.Filter["workspace"] != "acme" {
		t.Errorf("minute series %v total %d filter %v", got, ts.Total, ts.Filter)
	}

	// Days in Tokyo: 15:08 UTC is already March 15th there.
	ts = get("interval=day&tz=Asia/Tokyo&from=2025-03-13T15:00:00Z&to=2025-03-15T15:00:00Z")
	if ts.TZ != "Asia/Tokyo" || len(ts.Buckets) != 2 || ts.Buckets[1].Count != 5 || ts.Buckets[1].Start.Day() != 15 {
		t.Errorf("Tokyo days %+v", ts.Buckets)
	}

	recs := e.rec.recorded()
	if last := recs[len(recs)-1]; last.Action != "events.timeseries" || last.Details["interval"] != "day" || last.Details["total"] != int64(5) {
		t.Errorf("audit = %s %v", last.Action, last.Details)
	}

	scoped := e.key("workspace_viewer", "globex", nil)
	w := e.get("/api/v1/events/timeseries?interval=minute", scoped)
	// The last hour, 14:09:26-15:09:26: 61 minutes are touched, the
	// first and last in part.
	if ts := decodeJSONBody[timeseries](t, w, w.Body.Bytes()); ts.Total != 1 || len(ts.Buckets) != 61 {
		t.Errorf("globex minutes: total %d, %d buckets", ts.Total, len(ts.Buckets))
	}

	for q, param := range map[string]string{
		"interval=week":   `"interval"`,
		"tz=Mars/Olympus": `"tz"`,
		"tz=Local":        `"tz"`,
		"interval=minute&from=2025-01-01T00:00:00Z": "buckets",
		"from=2026-01-01T00:00:00Z":                 `"from"`,
		"cursor=AQ":                                 `"cursor"`,
	} {
		wantProblem(t, e.get("/api/v1/events/timeseries?"+q, admin), http.StatusBadRequest, param)
	}
}

func TestGetEvent(t *testing.T) {
	e := newEnv(t, nil)
	evs := exportFixture(e)
	admin := e.key("admin", "", nil)
	w := e.get("/api/v1/events/"+evs[2].ID, admin)
	ev := decodeJSONBody[storage.Event](t, w, w.Body.Bytes())
	if ev.ID != evs[2].ID || ev.User != "carol" || ev.Workspace != "globex" || ev.Seq != 3 {
		t.Errorf("got %+v", ev)
	}
	recs := e.rec.recorded()
	if last := recs[len(recs)-1]; last.Action != "events.get" || last.Details["event_id"] != evs[2].ID {
		t.Errorf("audit = %s %v", last.Action, last.Details)
	}
	// Another workspace's event is not found, exactly like a missing one.
	acme := e.key("workspace_viewer", "acme", nil)
	unknown := storage.NewID(t0)
	out := wantProblem(t, e.get("/api/v1/events/"+evs[2].ID, acme), http.StatusNotFound, "no event")
	missing := wantProblem(t, e.get("/api/v1/events/"+unknown, acme), http.StatusNotFound, "no event")
	if strings.Replace(out.Detail, evs[2].ID, "X", 1) != strings.Replace(missing.Detail, unknown, "X", 1) {
		t.Errorf("out of scope %q and missing %q answers differ", out.Detail, missing.Detail)
	}
	if w := e.get("/api/v1/events/"+strings.ToLower(evs[0].ID), acme); w.Code != http.StatusOK {
		t.Errorf("lower-case id: %d", w.Code)
	}
	wantProblem(t, e.get("/api/v1/events/not-an-id", admin), http.StatusBadRequest, "ULID")
	// The literal routes are not taken for ids.
	if w := e.get("/api/v1/events/stats", admin); w.Code != http.StatusOK {
		t.Errorf("stats: %d", w.Code)
	}
}

func TestSuspiciousEvents(t *testing.T) {
	e := newEnv(t, nil)
	evs := exportFixture(e)
	admin := e.key("admin", "", nil)
	p := decodePage(t, e.get("/api/v1/events/suspicious", admin))
	if got := ids(p.Events); !slices.Equal(got, []string{evs[3].ID, evs[1].ID}) {
		t.Errorf("suspicious = %v", got)
	}
	p = decodePage(t, e.get("/api/v1/events/suspicious?limit=1", admin))
	if len(p.Events) != 1 || p.Events[0].ID != evs[3].ID || p.NextCursor == "" {
		t.Fatalf("page 1 = %v %q", ids(p.Events), p.NextCursor)
	}
	p = decodePage(t, e.get("/api/v1/events/suspicious?limit=1&cursor="+p.NextCursor, admin))
	if len(p.Events) != 1 || p.Events[0].ID != evs[1].ID {
		t.Errorf("page 2 = %v", ids(p.Events))
	}
	p = decodePage(t, e.get("/api/v1/events/suspicious?user=alice", e.key("workspace_viewer", "acme", nil)))
	if got := ids(p.Events); !slices.Equal(got, []string{evs[3].ID}) {
		t.Errorf("alice's suspicious = %v", got)
	}
	recs := e.rec.recorded()
	if last := recs[len(recs)-1]; last.Action != "events.suspicious" || last.Details["filter"].(map[string]any)["suspicious"] != true {
		t.Errorf("audit = %s %v", last.Action, last.Details)
	}
	wantProblem(t, e.get("/api/v1/events/suspicious?suspicious=false", admin), http.StatusBadRequest, `"suspicious"`)
}

func TestEventRoutesMethods(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.key("admin", "", nil)
	for _, target := range []string{"/api/v1/events/stats", "/api/v1/events/timeseries", "/api/v1/events/suspicious", "/api/v1/events/" + storage.NewID(t0)} {
		w := e.do(http.MethodPost, target, admin)
		wantProblem(t, w, http.StatusMethodNotAllowed, "GET, HEAD")
		if got := w.Header().Get("Allow"); got != "GET, HEAD" {
			t.Errorf("POST %s: Allow = %q", target, got)
		}
	}
	// Exports answer no HEAD: it would run the whole export to send
	// headers only (C13).
	for _, m := range []string{http.MethodPost, http.MethodHead} {
		w := e.do(m, "/api/v1/events/export", admin)
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET" {
			t.Errorf("%s /api/v1/events/export: %d, Allow = %q", m, w.Code, w.Header().Get("Allow"))
		}
	}
	before := len(e.rec.recorded())
	e.do(http.MethodHead, "/api/v1/gdpr/subjects/alice/export", admin)
	if n := len(e.rec.recorded()); n != before {
		t.Errorf("HEAD of the subject export ran it: %d audit events recorded", n-before)
	}
	if d := exportParams["format"].doc; !strings.Contains(d, "time, id, seq, request_id") || !strings.Contains(d, "ocsf") {
		t.Errorf("format doc does not list the CSV columns: %s", d)
	}
}
