package adminapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// exportFixture is a small trail over two workspaces with the details
// every format maps: four proxied requests and a lifecycle event.
func exportFixture(e *testEnv) []*storage.Event {
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec-60) * time.Second) }
	evs := []*storage.Event{
		{Time: at(1), Kind: storage.KindHTTP, Stage: storage.StageResponseComplete, RequestID: "req-1", Method: "GET", Scheme: "https", Host: "app.example:8443",
			Path: "/api/items", Query: "q=1", Proto: "HTTP/2.0", Status: 200, Outcome: "success", DurationNS: 1_500_000, BytesIn: 0, BytesOut: 512,
			ClientIP: "192.0.2.1", ClientPort: 50123, UserAgent: "curl/8.5", User: "alice", UserSource: "header", Workspace: "acme", RiskLevel: "low"},
		{Time: at(2), Kind: storage.KindHTTP, Method: "POST", Host: "app.example", Path: "/login", Status: 401, Outcome: "failure",
			ClientIP: "192.0.2.2", ClientPort: 40000, User: "bob", Workspace: "acme", RiskScore: 45, RiskLevel: "high", Suspicious: true,
			RiskFactors: []storage.RiskFactor{{Name: "failed_auth", Points: 25}, {Name: "sensitive_path", Points: 20}}},
		{Time: at(3), Kind: storage.KindHTTP, Method: "DELETE", Host: "app.example", Path: "/api/items/7", Status: 204, Outcome: "success",
			ClientIP: "2001:db8::1", User: "carol", Workspace: "globex", RiskScore: 30, RiskLevel: "medium"},
		{Time: at(4), Kind: storage.KindHTTP, Method: "PATCH", Host: "app.example", Path: "/api/items/8", Status: 500, Outcome: "failure",
			ClientIP: "192.0.2.1", User: "alice", Workspace: "acme", RiskScore: 80, RiskLevel: "critical", Suspicious: true},
		{Time: at(5), Kind: storage.KindLifecycle, Action: "audit_started"},
	}
	for _, ev := range evs {
		ev.ID = storage.NewID(ev.Time)
	}
	e.seed(evs...)
	return evs
}

// checkExport checks what every export states: status, content type,
// the trailers (rows, SHA-256 of the body) and the audit event.
func checkExport(t *testing.T, e *testEnv, w *httptest.ResponseRecorder, format string, rows int) {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	f := exportFormats[format]
	if ct := w.Header().Get("Content-Type"); ct != f.contentType {
		t.Errorf("Content-Type = %q, want %q", ct, f.contentType)
	}
	if cd := w.Header().Get("Content-Disposition"); cd != `attachment; filename="audit-events.`+f.ext+`"` {
		t.Errorf("Content-Disposition = %q", cd)
	}
	sum := sha256.Sum256(w.Body.Bytes())
	if got := w.Header().Get("X-Export-Sha256"); got != hex.EncodeToString(sum[:]) {
		t.Errorf("X-Export-Sha256 = %s, body hashes to %x", got, sum)
	}
	if got := w.Header().Get("X-Export-Rows"); got != strconv.Itoa(rows) {
		t.Errorf("X-Export-Rows = %s, want %d", got, rows)
	}
	recs := e.rec.recorded()
	last := recs[len(recs)-1]
	if last.Action != "events.export" || last.Details["format"] != format || last.Details["rows"] != int64(rows) ||
		last.Details["sha256"] != hex.EncodeToString(sum[:]) || last.Status != http.StatusOK {
		t.Errorf("audit event = %s %d %v", last.Action, last.Status, last.Details)
	}
}

// ndjsonLines splits an NDJSON body into its lines.
func ndjsonLines(t *testing.T, body []byte) [][]byte {
	t.Helper()
	if len(body) > 0 && body[len(body)-1] != '\n' {
		t.Fatalf("NDJSON body does not end with a newline: %q", body)
	}
	return bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
}

// storedEvents reads back every stored event, newest first.
func storedEvents(t *testing.T, e *testEnv, f storage.Filter) []storage.Event {
	t.Helper()
	page, err := e.store.Query(f, storage.MaxPageSize, "")
	if err != nil {
		t.Fatal(err)
	}
	return page.Events
}

func TestExportCSVInjection(t *testing.T) {
	e := newEnv(t, nil)
	payloads := []string{
		"=cmd|' /C calc'!A0", "+1", "-1", "@SUM(1)", "\tindented", "\rcarriage", "\nline",
		`=HYPERLINK("http://evil.example","x")`, `plain "quoted", with comma`, "in\nside\r\nbreaks",
		"bad\xffutf8", "=\xfe", "ok",
	}
	for i, p := range payloads {
		at := t0.Add(time.Duration(i) * time.Second)
		e.seed(&storage.Event{ID: storage.NewID(at), Time: at, Kind: storage.KindHTTP, Method: "GET", Path: "/" + p,
			User: p, UserAgent: p, Query: p, Status: 200, Workspace: "acme"})
	}
	w := e.get("/api/v1/events/export?format=csv", e.key("auditor", "", nil))
	checkExport(t, e, w, "csv", len(payloads))
	if !bytes.Contains(w.Body.Bytes(), []byte("\r\n")) || bytes.Count(w.Body.Bytes(), []byte("\"\r\n")) != len(payloads)+1 {
		t.Errorf("rows must end in CRLF after a quoted cell")
	}
	rd := csv.NewReader(bytes.NewReader(w.Body.Bytes()))
	records, err := rd.ReadAll()
	if err != nil {
		t.Fatalf("a real CSV parser refuses the export: %v", err)
	}
	var header []string
	for _, c := range csvColumns {
		header = append(header, c.name)
	}
	if !slices.Equal(records[0], header) {
		t.Fatalf("header = %v, want %v", records[0], header)
	}
	col := func(name string) int { return slices.Index(header, name) }
	if len(records) != len(payloads)+1 {
		t.Fatalf("%d records, want %d", len(records), len(payloads)+1)
	}
	for i, rec := range records[1:] {
		// Newest first: row i holds payload len-1-i.
		p := payloads[len(payloads)-1-i]
		want := strings.ToValidUTF8(p, "\uFFFD")
		if strings.ContainsRune("=+-@\t\r\n", rune(p[0])) {
			want = "'" + want
		}
		// encoding/csv reads a CRLF inside a quoted field as LF.
		want = strings.ReplaceAll(want, "\r\n", "\n")
		for _, name := range []string{"user", "user_agent", "query"} {
			if got := rec[col(name)]; got != want {
				t.Errorf("row %d %s = %q, want %q", i, name, got, want)
			}
		}
		if got := rec[col("path")]; got != strings.ReplaceAll(strings.ToValidUTF8("/"+p, "\uFFFD"), "\r\n", "\n") {
			t.Errorf("row %d path = %q", i, got)
		}
		for j, cell := range rec {
			if cell != "" && strings.ContainsRune("=+-@\t\r\n", rune(cell[0])) {
				t.Errorf("row %d column %s starts with a formula character: %q", i, header[j], cell)
			}
		}
	}
}

func TestExportCSVColumns(t *testing.T) {
	e := newEnv(t, nil)
	evs := exportFixture(e)
	w := e.get("/api/v1/events/export?format=csv&workspace=acme&user=bob", e.key("admin", "", nil))
	checkExport(t, e, w, "csv", 1)
	records, err := csv.NewReader(w.Body).ReadAll()
	if err != nil || len(records) != 2 {
		t.Fatalf("records %v, %v", records, err)
	}
	got := map[string]string{}
	for i, c := range csvColumns {
		got[c.name] = records[1][i]
	}
	stored := storedEvents(t, e, storage.Filter{User: "bob"})[0]
	want := map[string]string{
		"time": "2025-03-14T15:08:28.000Z", "id": evs[1].ID, "seq": strconv.FormatUint(stored.Seq, 10), "kind": "http",
		"workspace": "acme", "user": "bob", "user_verified": "false", "client_ip": "192.0.2.2", "client_port": "40000",
		"method": "POST", "host": "app.example", "path": "/login", "status": "401", "outcome": "failure",
		"risk_score": "45", "risk_level": "high", "risk_factors": "failed_auth:25; sensitive_path:20", "suspicious": "true",
		"duration_ms": "", "bytes_out": "",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	w = e.get("/api/v1/events/export?format=csv&user=alice", e.key("admin", "", nil))
	records, _ = csv.NewReader(w.Body).ReadAll()
	if d := records[2][slices.IndexFunc(csvColumns, func(c csvColumn) bool { return c.name == "duration_ms" })]; d != "1.500" {
		t.Errorf("duration_ms = %q, want 1.500", d)
	}
}

func TestExportNDJSONRoundTrip(t *testing.T) {
	e := newEnv(t, nil)
	exportFixture(e)
	stored := map[string]storage.Event{}
	for _, ev := range storedEvents(t, e, storage.Filter{}) {
		stored[ev.ID] = ev
	}
	for _, target := range []string{"/api/v1/events/export", "/api/v1/events/export?format=ndjson&workspace=acme"} {
		w := e.get(target, e.key("auditor", "", nil))
		lines := ndjsonLines(t, w.Body.Bytes())
		checkExport(t, e, w, "ndjson", len(lines))
		if len(lines) == 0 {
			t.Fatalf("%s: empty export", target)
		}
		for _, line := range lines {
			var got storage.Event
			if err := json.Unmarshal(line, &got); err != nil {
				t.Fatalf("%s: line does not decode: %v\n%s", target, err, line)
			}
			want, ok := stored[got.ID]
			if !ok {
				t.Fatalf("%s: unknown event %q", target, got.ID)
			}
			a, _ := json.Marshal(got)
			b, _ := json.Marshal(want)
			if !bytes.Equal(a, b) {
				t.Errorf("%s: event %s does not round-trip:\n got %s\nwant %s", target, got.ID, a, b)
			}
		}
	}
}

func TestExportJSON(t *testing.T) {
	e := newEnv(t, nil)
	exportFixture(e)
	w := e.get("/api/v1/events/export?format=json", e.key("auditor", "", nil))
	checkExport(t, e, w, "json", 5)
	var doc struct {
		Events []storage.Event `json:"events"`
	}
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("the JSON export does not parse: %v\n%s", err, w.Body)
	}
	want := storedEvents(t, e, storage.Filter{})
	if len(doc.Events) != len(want) {
		t.Fatalf("%d events, want %d", len(doc.Events), len(want))
	}
	for i := range want {
		a, _ := json.Marshal(doc.Events[i])
		b, _ := json.Marshal(want[i])
		if !bytes.Equal(a, b) {
			t.Errorf("event %d:\n got %s\nwant %s", i, a, b)
		}
	}
	// No events: still a document.
	w = e.get("/api/v1/events/export?format=json&user=nobody", e.key("auditor", "", nil))
	checkExport(t, e, w, "json", 0)
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || len(doc.Events) != 0 {
		t.Errorf("empty JSON export %q: %v", w.Body, err)
	}
}

// path walks a decoded JSON object by dotted path.
func path(m map[string]any, p string) (any, bool) {
	var cur any = m
	for _, k := range strings.Split(p, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// decodeLines decodes an NDJSON export, one object per line.
func decodeLines(t *testing.T, body []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range ndjsonLines(t, body) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line does not decode: %v\n%s", err, line)
		}
		out = append(out, m)
	}
	return out
}

// wantFields checks the listed fields of obj (nil: present, any value).
func wantFields(t *testing.T, what string, obj map[string]any, fields map[string]any) {
	t.Helper()
	for p, want := range fields {
		got, ok := path(obj, p)
		if !ok {
			t.Errorf("%s: %s missing", what, p)
			continue
		}
		if want != nil && got != want {
			t.Errorf("%s: %s = %v (%T), want %v (%T)", what, p, got, got, want, want)
		}
	}
}

func TestExportOCSF(t *testing.T) {
	e := newEnv(t, nil)
	evs := exportFixture(e)
	w := e.get("/api/v1/events/export?format=ocsf", e.key("auditor", "", nil))
	checkExport(t, e, w, "ocsf", 5)
	lines := decodeLines(t, w.Body.Bytes())
	// Required by HTTP Activity and its base event in every line.
	for i, m := range lines {
		wantFields(t, "line "+strconv.Itoa(i), m, map[string]any{
			"class_uid": 4002.0, "category_uid": 4.0, "activity_id": nil, "type_uid": nil, "severity_id": nil, "time": nil,
			"status_id": nil, "metadata.version": ocsfVersion, "metadata.product.name": "caddy-audit",
			"metadata.product.vendor_name": "caddy-audit", "metadata.uid": nil,
		})
		if m["type_uid"] != 4002*100+m["activity_id"].(float64) {
			t.Errorf("line %d: type_uid %v for activity %v", i, m["type_uid"], m["activity_id"])
		}
	}
	// Newest first: lifecycle, PATCH, DELETE, POST, GET.
	wantFields(t, "GET", lines[4], map[string]any{
		"activity_id": 3.0, "activity_name": "Get", "type_uid": 400203.0, "time": float64(evs[0].Time.UnixMilli()),
		"severity_id": 1.0, "status_id": 1.0, "status_code": "200", "duration": 1.0, "metadata.uid": evs[0].ID, "metadata.tenant_uid": "acme",
		"http_request.http_method": "GET", "http_request.url.hostname": "app.example", "http_request.url.port": 8443.0,
		"http_request.url.path": "/api/items", "http_request.url.query_string": "q=1", "http_request.url.scheme": "https",
		"http_request.url.url_string": "https://app.example:8443/api/items?q=1", "http_request.user_agent": "curl/8.5",
		"http_request.uid": "req-1", "http_request.version": "2.0", "http_response.code": 200.0, "http_response.length": 512.0,
		"src_endpoint.ip": "192.0.2.1", "src_endpoint.port": 50123.0, "dst_endpoint.hostname": "app.example",
		"actor.user.name": "alice", "actor.user.uid": "alice", "unmapped.kind": "http", "unmapped.risk_level": "low",
	})
	wantFields(t, "POST", lines[3], map[string]any{"activity_id": 6.0, "type_uid": 400206.0, "severity_id": 4.0, "status_id": 2.0,
		"unmapped.suspicious": true, "unmapped.risk_score": 45.0})
	wantFields(t, "DELETE", lines[2], map[string]any{"activity_id": 2.0, "type_uid": 400202.0, "severity_id": 3.0, "src_endpoint.ip": "2001:db8::1"})
	wantFields(t, "PATCH", lines[1], map[string]any{"activity_id": 99.0, "activity_name": "PATCH", "type_uid": 400299.0, "severity_id": 5.0})
	wantFields(t, "lifecycle", lines[0], map[string]any{"activity_id": 0.0, "type_uid": 400200.0, "status_id": 0.0, "message": "audit_started"})
}

func TestExportECS(t *testing.T) {
	e := newEnv(t, nil)
	evs := exportFixture(e)
	w := e.get("/api/v1/events/export?format=ecs", e.key("auditor", "", nil))
	checkExport(t, e, w, "ecs", 5)
	lines := decodeLines(t, w.Body.Bytes())
	for i, m := range lines {
		wantFields(t, "line "+strconv.Itoa(i), m, map[string]any{
			"@timestamp": nil, "ecs.version": ecsVersion, "event.kind": "event", "event.category": nil, "event.type": nil,
			"event.outcome": nil, "event.id": nil, "event.dataset": ecsDataset, "event.risk_score": nil,
		})
	}
	wantFields(t, "GET", lines[4], map[string]any{
		"@timestamp": "2025-03-14T15:08:27.000Z", "event.id": evs[0].ID, "event.action": "http_request", "event.outcome": "success",
		"event.duration": 1_500_000.0, "http.request.method": "GET", "http.request.id": "req-1", "http.response.status_code": 200.0,
		"http.response.body.bytes": 512.0, "url.domain": "app.example", "url.port": 8443.0, "url.path": "/api/items", "url.query": "q=1",
		"url.scheme": "https", "source.ip": "192.0.2.1", "source.port": 50123.0, "user.name": "alice", "user_agent.original": "curl/8.5",
		"labels.workspace": "acme", "http.version": "2.0",
	})
	wantFields(t, "POST", lines[3], map[string]any{"event.outcome": "failure", "event.risk_score": 45.0, "caddy_audit.suspicious": true})
	if typ, _ := path(lines[3], "event.type"); len(typ.([]any)) != 2 || typ.([]any)[1] != "denied" {
		t.Errorf("a 401 is event.type %v, want [access denied]", typ)
	}
	wantFields(t, "lifecycle", lines[0], map[string]any{"event.action": "audit_started", "event.outcome": "unknown"})
	if cat, _ := path(lines[0], "event.category"); cat.([]any)[0] != "configuration" {
		t.Errorf("lifecycle category %v", cat)
	}
}

func TestExportScopeAndErrors(t *testing.T) {
	e := newEnv(t, nil)
	exportFixture(e)
	scoped := e.key("auditor", "acme", nil)
	for format := range exportFormats {
		t.Run(format, func(t *testing.T) {
			w := e.get("/api/v1/events/export?format="+format, scoped)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			body := w.Body.String()
			for _, foreign := range []string{"globex", "carol", "2001:db8::1", "audit_started"} {
				if strings.Contains(body, foreign) {
					t.Errorf("a key scoped to acme exported %q:\n%s", foreign, body)
				}
			}
			if got := w.Header().Get("X-Export-Rows"); got != "3" {
				t.Errorf("rows = %s, want acme's 3", got)
			}
			if v := w.Header().Get("X-Export-Verifiable"); v != "false" {
				t.Errorf("a scoped %s export says verifiable=%s", format, v)
			}
		})
	}
	admin := e.key("admin", "", nil)
	wantProblem(t, e.get("/api/v1/events/export?format=xlsx", admin), http.StatusBadRequest, `"format"`)
	wantProblem(t, e.get("/api/v1/events/export?format=csv&limit=5", admin), http.StatusBadRequest, `"limit"`)
	wantProblem(t, e.get("/api/v1/events/export?format=csv&cursor=AQ", admin), http.StatusBadRequest, `"cursor"`)
	wantProblem(t, e.get("/api/v1/events/export?format=csv&workspace=globex", scoped), http.StatusForbidden, "acme")
	wantProblem(t, e.get("/api/v1/events/export?format=csv&status=999", admin), http.StatusBadRequest, `"status"`)
}

func TestExportFailure(t *testing.T) {
	e := newEnv(t, nil)
	a := e.h.(*api)
	key := storage.APIKey{ID: "k1", Role: "admin"}
	q := exportJob{action: "events.export", file: "audit-events", format: "csv"}
	req := httptest.NewRequest(http.MethodGet, "/api/v1/events/export?format=csv", nil)

	// Nothing streamed yet: the client gets a problem, not a cut body,
	// and the failure is recorded.
	w := httptest.NewRecorder()
	a.streamExport(w, req, key, q, func(io.Writer) (int64, bool, error) { return 0, false, storage.ErrClosed })
	wantProblem(t, w, http.StatusServiceUnavailable, "closed")
	if w.Header().Get("Trailer") != "" || w.Header().Get("Content-Disposition") != "" {
		t.Errorf("a refused export keeps its download headers: %v", w.Header())
	}
	recs := e.rec.recorded()
	if last := recs[len(recs)-1]; last.Action != "events.export" || last.Status != http.StatusInternalServerError || last.Details["format"] != "csv" {
		t.Errorf("failure not recorded: %s %d %v", last.Action, last.Status, last.Details)
	}

	// Part of the body sent: the stream is aborted, so the client sees a
	// broken download rather than a short file that looks whole.
	w = httptest.NewRecorder()
	func() {
		defer func() {
			if r := recover(); r != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler", r)
			}
		}()
		a.streamExport(w, req, key, q, func(out io.Writer) (int64, bool, error) {
			_, _ = out.Write([]byte("\"time\"\r\n"))
			return 1, false, errors.New("disk on fire")
		})
	}()
	if w.Header().Get("X-Export-Sha256") != "" {
		t.Error("an aborted export states a hash")
	}
	recs = e.rec.recorded()
	if last := recs[len(recs)-1]; last.Status != http.StatusInternalServerError || last.Details["bytes"] != int64(8) {
		t.Errorf("abort not recorded: %d %v", last.Status, last.Details)
	}
}

// The body must not be buffered whole: a slow reader sees rows before
// the export ends. The writer here counts the writes that reach it.
type countingWriter struct {
	http.ResponseWriter
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	return c.ResponseWriter.Write(p)
}

func TestExportStreams(t *testing.T) {
	e := newEnv(t, nil)
	var evs []*storage.Event
	for i := range 3000 {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		evs = append(evs, &storage.Event{ID: storage.NewID(at), Time: at, Kind: storage.KindHTTP, Method: "GET",
			Path: "/api/items/" + strconv.Itoa(i), UserAgent: strings.Repeat("x", 100), Status: 200, Workspace: "acme"})
	}
	e.seed(evs...)
	req := httptest.NewRequest(http.MethodGet, "/api/v1/events/export?format=csv", nil)
	req.Header.Set("Authorization", "Bearer "+e.key("admin", "", nil))
	rec := httptest.NewRecorder()
	cw := &countingWriter{ResponseWriter: rec}
	e.h.ServeHTTP(cw, req)
	if rec.Code != http.StatusOK || rec.Header().Get("X-Export-Rows") != "3000" {
		t.Fatalf("status %d rows %s", rec.Code, rec.Header().Get("X-Export-Rows"))
	}
	if want := rec.Body.Len() / exportBuffer; cw.writes < want {
		t.Errorf("%d writes for %d bytes: the body was not streamed in %d-byte pieces", cw.writes, rec.Body.Len(), exportBuffer)
	}
	if n, _ := io.Copy(io.Discard, rec.Body); n < 3000*100 {
		t.Errorf("body of %d bytes", n)
	}
}
