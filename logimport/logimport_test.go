package logimport

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

var testRedactor = policy.NewRedactor([]byte("logimport-test-key"), nil, nil)

// withRedactor is what a caller normally passes.
func withRedactor(o Options) Options {
	o.Redactor = testRedactor
	return o
}

// importAll reads every event of s.
func importAll(t *testing.T, s string, o Options) ([]storage.Event, Stats) {
	t.Helper()
	r := NewReader(strings.NewReader(s), o)
	var evs []storage.Event
	for ev, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs, r.Stats()
}

func importOne(t *testing.T, line string, o Options) storage.Event {
	t.Helper()
	evs, st := importAll(t, line, o)
	if len(evs) != 1 {
		t.Fatalf("got %d events, stats %+v", len(evs), st)
	}
	return evs[0]
}

const (
	caddyFloatTS = `{"level":"info","ts":1760432400.123456,"logger":"http.log.access.log0","msg":"handled request","request":{"remote_ip":"10.0.0.9","remote_port":"51234","client_ip":"192.0.2.44","proto":"HTTP/2.0","method":"GET","host":"app.example.com","uri":"/api/items/7?page=2&token=abc123secret","headers":{"User-Agent":["curl/8.5.0"],"Referer":["https://app.example.com/list?password=hunter2"],"Authorization":["Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"],"X-Request-Id":["req-42"],"X-Workspace-Id":["acme"],"X-Forwarded-For":["198.51.100.1, 10.0.0.9"]},"tls":{"resumed":false,"version":772,"cipher_suite":4865,"proto":"h2","server_name":"app.example.com"}},"bytes_read":12,"user_id":"alice","duration":0.0025,"size":5120,"status":200,"resp_headers":{"Content-Type":["application/json"],"Set-Cookie":["sid=abcdef; Path=/"]}}`
	caddyRFC3339 = `{"level":"info","ts":"2025-10-14T09:00:00.5Z","logger":"http.log.access","msg":"handled request","request":{"remote_ip":"192.0.2.45","remote_port":"443","proto":"HTTP/1.1","method":"POST","host":"app.example.com","uri":"/login","headers":{}},"user_id":"","duration":"1.5s","size":27,"status":401,"resp_headers":{}}`
	clfLine      = `192.0.2.7 - bob [10/Oct/2025:13:55:36 -0700] "GET /apache_pb.gif?key=s3cret HTTP/1.0" 200 2326`
	combinedLine = `192.0.2.8 - - [10/Oct/2025:13:55:36 +0200] "GET /search?q=a%20b HTTP/1.1" 404 - "http://example.com/start.html?sig=zzz#top" "Mozilla/4.08 [en] (Win98; I ;Nav) \"quoted\" \\back \x22nginx\x22"`
)

func TestParseFormats(t *testing.T) {
	tests := []struct {
		name string
		line string
		opts Options
		want storage.Event // compared field by field below; zero fields not checked
		det  map[string]any
	}{
		{
			name: "caddy float ts",
			line: caddyFloatTS,
			opts: withRedactor(Options{Source: "caddy.log", WorkspaceHeader: "X-Workspace-ID"}),
			want: storage.Event{
				Time: time.Unix(1760432400, 123456000).Add(-2500 * time.Microsecond).UTC(), Method: "GET", Scheme: "https",
				Host: "app.example.com", Path: "/api/items/7", Proto: "HTTP/2.0", Status: 200, Outcome: "success",
				DurationNS: 2500000, BytesIn: 12, BytesOut: 5120, ClientIP: "192.0.2.44", ClientPort: 51234,
				UserAgent: "curl/8.5.0", TLSVersion: "TLS 1.3", TLSCipher: "TLS_AES_128_GCM_SHA256",
				User: "alice", UserSource: "placeholder", UserVerified: true, RequestID: "req-42", Workspace: "acme",
				Level: "headers",
			},
			det: map[string]any{"imported_from": "caddy.log", "line": int64(1), "import_format": "caddy"},
		},
		{
			name: "caddy rfc3339 ts and string duration",
			line: caddyRFC3339,
			want: storage.Event{
				Time: time.Date(2025, 10, 14, 8, 59, 59, 0, time.UTC), Method: "POST", Scheme: "http", Host: "app.example.com",
				Path: "/login", Status: 401, Outcome: "failure", DurationNS: int64(1500 * time.Millisecond), BytesOut: 27,
				ClientIP: "192.0.2.45", ClientPort: 443, Level: "metadata",
			},
		},
		{
			name: "common",
			line: clfLine,
			opts: Options{Host: "legacy.example.com", Scheme: "https"},
			want: storage.Event{
				Time: time.Date(2025, 10, 10, 20, 55, 36, 0, time.UTC), Method: "GET", Scheme: "https", Host: "legacy.example.com",
				Path: "/apache_pb.gif", Proto: "HTTP/1.0", Status: 200, Outcome: "success", BytesOut: 2326,
				ClientIP: "192.0.2.7", User: "bob", UserSource: "access_log", Level: "metadata",
			},
			det: map[string]any{"query_dropped": true, "import_format": "common"},
		},
		{
			name: "combined with escapes",
			line: combinedLine,
			opts: withRedactor(Options{}),
			want: storage.Event{
				Time: time.Date(2025, 10, 10, 11, 55, 36, 0, time.UTC), Method: "GET", Scheme: "http", Path: "/search",
				Query: "q=a%20b", Proto: "HTTP/1.1", Status: 404, Outcome: "failure", ClientIP: "192.0.2.8",
				UserAgent: `Mozilla/4.08 [en] (Win98; I ;Nav) "quoted" \back "nginx"`,
				Referer:   "http://example.com/start.html?sig=" + testRedactor.Token("zzz") + "#top", Level: "metadata",
			},
		},
		{
			name: "combined absolute uri",
			line: `192.0.2.9 - - [10/Oct/2025:13:55:36 +0000] "GET http://evil.example:8080?x=1 HTTP/1.1" 400 0 "-" "-"`,
			opts: withRedactor(Options{}),
			want: storage.Event{Method: "GET", Scheme: "http", Host: "evil.example:8080", Path: "/", Query: "x=1", Status: 400},
		},
		{
			name: "combined garbage request line",
			line: `192.0.2.10 - - [10/Oct/2025:13:55:36 +0000] "\x16\x03\x01\x00\xa5\x01" 400 157 "-" "-"`,
			opts: withRedactor(Options{}),
			want: storage.Event{Status: 400, ClientIP: "192.0.2.10", BytesOut: 157},
			det:  map[string]any{"request_line": "\x16\x03\x01\x00\\xa5\x01"}, // unescaped, the invalid byte kept as \xNN
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := importOne(t, tc.line, tc.opts)
			if ev.Kind != storage.KindHTTP || ev.Stage != storage.StageResponseComplete || len(ev.ID) != 26 {
				t.Errorf("kind %q stage %q id %q", ev.Kind, ev.Stage, ev.ID)
			}
			checkFields(t, ev, tc.want)
			for k, v := range tc.det {
				if ev.Details[k] != v {
					t.Errorf("Details[%s] = %#v, want %#v", k, ev.Details[k], v)
				}
			}
		})
	}
}

// checkFields compares the non-zero fields of want.
func checkFields(t *testing.T, got, want storage.Event) {
	t.Helper()
	var g, w map[string]any
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	_ = json.Unmarshal(gb, &g)
	_ = json.Unmarshal(wb, &w)
	for k, wv := range w {
		switch wv {
		case "", "0001-01-01T00:00:00Z", false, float64(0), nil:
			continue // not set in want: not checked
		}
		if gv, _ := json.Marshal(g[k]); string(gv) != mustJSON(wv) {
			t.Errorf("%s = %s, want %s", k, gv, mustJSON(wv))
		}
	}
	if want.Time.IsZero() && got.Time.IsZero() {
		t.Error("time not set")
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestCaddyTimeFormats(t *testing.T) {
	want := time.Date(2025, 10, 14, 9, 0, 0, 0, time.UTC)
	for _, ts := range []string{
		`1760432400`, `1760432400.0`, `1760432400000`, `1760432400000.0`, `1760432400000000000`,
		`"2025-10-14T09:00:00Z"`, `"2025-10-14T11:00:00+02:00"`, `"2025-10-14T09:00:00.000Z"`,
		`"2025-10-14T09:00:00.000+0000"`, `"14/Oct/2025:09:00:00 +0000"`, `"2025/10/14 09:00:00.000"`,
		`"2025/10/14 09:00:00"`, `"1760432400"`,
	} {
		line := `{"ts":` + ts + `,"request":{"method":"GET","uri":"/"},"status":200}`
		ev := importOne(t, line, Options{})
		if !ev.Time.Equal(want) {
			t.Errorf("ts %s: time %s, want %s", ts, ev.Time, want)
		}
	}
}

func TestDurationFormats(t *testing.T) {
	for raw, want := range map[string]time.Duration{
		`0.25`: 250 * time.Millisecond, `2`: 2 * time.Second, `1500000`: 1500 * time.Microsecond,
		`"1.5ms"`: 1500 * time.Microsecond, `null`: 0,
	} {
		line := `{"ts":1760432400,"request":{"method":"GET","uri":"/"},"status":200,"duration":` + raw + `}`
		if ev := importOne(t, line, Options{}); ev.DurationNS != int64(want) {
			t.Errorf("duration %s: %v, want %v", raw, time.Duration(ev.DurationNS), want)
		}
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		line string
		want Format
	}{
		{caddyFloatTS, FormatCaddyJSON},
		{"\ufeff  " + caddyRFC3339, FormatCaddyJSON},
		{clfLine, FormatCommon},
		{combinedLine, FormatCombined},
		{`::1 - - [10/Oct/2025:13:55:36 +0000] "GET / HTTP/1.1" 200 12 "-" "curl/8" "203.0.113.9"`, FormatCombined}, // nginx + XFF
		{"", FormatAuto},
		{"hello world", FormatAuto},
		{`192.0.2.7 - - [yesterday] "GET / HTTP/1.0" 200 1`, FormatAuto},
		{`192.0.2.7 - - [10/Oct/2025:13:55:36 -0700] "GET / HTTP/1.0" 2000 1`, FormatAuto},
	}
	for _, tc := range tests {
		if got := Detect([]byte(tc.line)); got != tc.want {
			t.Errorf("Detect(%.50q) = %v, want %v", tc.line, got, tc.want)
		}
	}
	for _, name := range []string{"auto", "caddy", "common", "combined", "CLF", "json"} {
		if _, err := ParseFormat(name); err != nil {
			t.Errorf("ParseFormat(%q): %v", name, err)
		}
	}
	if _, err := ParseFormat("w3c"); err == nil {
		t.Error("ParseFormat(w3c) accepted")
	}
}

func TestMalformedLinesReported(t *testing.T) {
	input := strings.Join([]string{
		clfLine, // 1
		"",      // 2 blank
		`192.0.2.7 - - [10/Oct/2025:13:55:36 -0700] "GET / HTTP/1.0" 99 1`,              // 3 bad status
		`192.0.2.7 - - [10/Oct/2025:13:55:36 -0700] "GET / HTTP/1.0 200 1`,              // 4 unterminated quote
		`192.0.2.7 - - [31/Feb/2025:13:55:36 -0700] "GET / HTTP/1.0" 200 1`,             // 5 bad date
		`192.0.2.7 - - [10/Oct/2025:13:55:36 -0700] "GET / HTTP/1.0" 200 -5`,            // 6 bad size
		`{"ts":1760432400,"request":{"method":"GET","uri":"/"},"status":200}`,           // 7 JSON in a CLF file
		`192.0.2.7 - - [10/Oct/2025:13:55:37 -0700] "GET /two HTTP/1.0" 200 1`,          // 8
		`192.0.2.7 - - [10/Oct/2025:13:55:38 -0700] "GET /three HTTP/1.0" 304 -` + "\r", // 9 CRLF
	}, "\n")
	evs, st := importAll(t, input, Options{})
	if len(evs) != 3 || evs[1].Path != "/two" || evs[2].Path != "/three" || evs[2].Status != 304 {
		t.Fatalf("events %+v", evs)
	}
	if evs[2].Details["line"] != int64(9) {
		t.Errorf("line detail %v", evs[2].Details["line"])
	}
	if st.Errors != 5 || st.Lines != 9 || st.Blank != 1 || st.Events != 3 {
		t.Errorf("stats %+v", st)
	}
	var lines []int64
	for _, e := range st.FirstErrors {
		lines = append(lines, e.Line)
		if !strings.HasPrefix(e.Error(), "line ") {
			t.Errorf("error text %q", e.Error())
		}
	}
	if mustJSON(lines) != "[3,4,5,6,7]" {
		t.Errorf("error lines %v", lines)
	}

	// Only MaxLineErrors are kept, all are counted.
	bad := strings.Repeat("garbage\n", 50)
	_, st = importAll(t, bad+clfLine, Options{MaxLineErrors: 3})
	if st.Errors != 50 || len(st.FirstErrors) != 3 || st.Events != 1 || st.FirstErrors[2].Line != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestCaddyNonAccessEntriesSkipped(t *testing.T) {
	input := `{"level":"info","ts":1760432400,"logger":"tls.obtain","msg":"certificate obtained"}` + "\n" + caddyFloatTS + "\n{not json\n"
	evs, st := importAll(t, input, Options{})
	if len(evs) != 1 || st.Skipped != 1 || st.Errors != 1 || st.FirstErrors[0].Line != 3 {
		t.Errorf("events %d, stats %+v", len(evs), st)
	}
}

func TestSecretsNeverStored(t *testing.T) {
	secrets := []string{"abc123secret", "hunter2", "s3cret", "zzz", "eyJhbGciOiJIUzI1NiJ9", "abcdef"}
	files := []string{caddyFloatTS + "\n", `192.0.2.8 - - [10/Oct/2025:13:55:36 +0200] "GET /reset?password=hunter2&token=abc123secret&key=s3cret HTTP/1.1" 200 5 "https://x.example/?sig=zzz" "ua"` + "\n"}
	for _, tc := range []struct {
		name      string
		opts      Options
		wantQuery string
	}{
		{"redactor", withRedactor(Options{}), "token=" + testRedactor.Token("abc123secret")},
		{"no redactor: dropped", Options{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var evs []storage.Event
			for _, f := range files {
				e, _ := importAll(t, f, tc.opts)
				evs = append(evs, e...)
			}
			if len(evs) != 2 {
				t.Fatalf("%d events", len(evs))
			}
			for _, ev := range evs {
				b, _ := json.Marshal(ev)
				for _, s := range secrets {
					if bytes.Contains(b, []byte(s)) {
						t.Errorf("secret %q stored: %s", s, b)
					}
				}
			}
			if tc.wantQuery == "" {
				if evs[0].Query != "" || evs[1].Query != "" || evs[0].RequestHeaders != nil || evs[0].ResponseHeaders != nil {
					t.Errorf("query or headers kept without a redactor: %+v", evs[0])
				}
				if evs[1].Referer != "https://x.example/" || evs[0].Details["query_dropped"] != true {
					t.Errorf("referer %q details %v", evs[1].Referer, evs[0].Details)
				}
				return
			}
			if !strings.Contains(evs[0].Query, tc.wantQuery) || !strings.HasPrefix(evs[0].Query, "page=2&") {
				t.Errorf("query %q", evs[0].Query)
			}
			if got := evs[0].RequestHeaders["Authorization"]; len(got) != 1 || !strings.HasPrefix(got[0], "Bearer hmac:") {
				t.Errorf("authorization %v", got)
			}
			// Redacted once, the same way in the field and the header.
			want := "https://app.example.com/list?password=" + testRedactor.Token("hunter2")
			if got := evs[0].RequestHeaders["Referer"]; evs[0].Referer != want || len(got) != 1 || got[0] != want {
				t.Errorf("referer field %q, header %v; want %q in both", evs[0].Referer, got, want)
			}
		})
	}
}

func TestInvalidUTF8Kept(t *testing.T) {
	line := "192.0.2.8 - us\xffer [10/Oct/2025:13:55:36 +0200] \"GET /caf\xe9 HTTP/1.1\" 200 5 \"-\" \"bot\\xfe/1\""
	ev := importOne(t, line, Options{})
	if ev.Path != `/caf\xe9` || ev.User != `us\xffer` || ev.UserAgent != `bot\xfe/1` {
		t.Errorf("path %q user %q ua %q", ev.Path, ev.User, ev.UserAgent)
	}
	if b, err := json.Marshal(ev); err != nil || bytes.Contains(b, []byte("\ufffd")) {
		t.Errorf("json %s %v", b, err)
	}
}

func TestLongLines(t *testing.T) {
	ua := strings.Repeat("A", 1<<20) // a 1 MB user agent
	long := `192.0.2.8 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 5 "-" "` + ua + `"`
	input := long + "\n" + combinedLine + "\n"

	// Under the default bound: imported, the value cut as live events are.
	evs, st := importAll(t, input, Options{})
	if len(evs) != 2 || st.Errors != 0 {
		t.Fatalf("%d events, stats %+v", len(evs), st)
	}
	if n := len(evs[0].UserAgent); n > policy.MaxValueLen+64 || !strings.Contains(evs[0].UserAgent, "truncated") {
		t.Errorf("user agent %d bytes", n)
	}

	// Over a smaller bound: skipped and counted, and the next line still
	// has the right number.
	evs, st = importAll(t, input, Options{MaxLineBytes: 64 << 10})
	if len(evs) != 1 || st.Overlong != 1 || st.Errors != 1 || !errors.Is(st.FirstErrors[0], ErrLineTooLong) || st.FirstErrors[0].Line != 1 {
		t.Fatalf("%d events, stats %+v", len(evs), st)
	}
	if evs[0].Details["line"] != int64(2) {
		t.Errorf("line %v", evs[0].Details["line"])
	}
	// The same for an overlong last line without a newline, and a line
	// just at the bound.
	_, st = importAll(t, combinedLine+"\n"+long, Options{MaxLineBytes: 1000})
	if st.Events != 1 || st.Overlong != 1 {
		t.Errorf("stats %+v", st)
	}
	_, st = importAll(t, combinedLine+"\n", Options{MaxLineBytes: len(combinedLine)})
	if st.Events != 1 || st.Overlong != 0 {
		t.Errorf("at the bound: stats %+v", st)
	}
}

func TestReaderEdges(t *testing.T) {
	// BOM, no final newline, one byte at a time.
	r := NewReader(iotest.OneByteReader(strings.NewReader("\ufeff"+clfLine+"\n"+clfLine)), Options{})
	n := 0
	for _, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 || r.Format() != FormatCommon {
		t.Errorf("%d events, format %v", n, r.Format())
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the end: %v", err)
	}

	// A read error is returned, after the lines before it.
	boom := errors.New("disk on fire")
	r = NewReader(io.MultiReader(strings.NewReader(clfLine+"\n"), iotest.ErrReader(boom)), Options{})
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, boom) {
		t.Errorf("got %v, want the read error", err)
	}
	if _, err := r.Next(); !errors.Is(err, boom) {
		t.Errorf("second call: %v", err)
	}
}

func TestDeterministicIDs(t *testing.T) {
	input := clfLine + "\n" + clfLine + "\n"
	a, _ := importAll(t, input, Options{Source: "a.log"})
	b, _ := importAll(t, input, Options{Source: "a.log"})
	c, _ := importAll(t, input, Options{Source: "b.log"})
	if a[0].ID != b[0].ID || a[1].ID != b[1].ID {
		t.Error("ids differ between runs")
	}
	if a[0].ID == a[1].ID || a[0].ID == c[0].ID {
		t.Error("ids collide")
	}
	// Ids sort by time like storage.NewID's: same 10-character time prefix.
	if a[0].ID[:10] != storage.NewID(a[0].Time)[:10] {
		t.Errorf("id %s does not start with the time of %s", a[0].ID, a[0].Time)
	}
}

func TestWorkspaceFunc(t *testing.T) {
	o := Options{Workspace: func(ev *storage.Event, h http.Header) string {
		if ev.Host == "app.example.com" {
			return "tenant-" + h.Get("X-Workspace-ID")
		}
		return ""
	}}
	if ev := importOne(t, caddyFloatTS, o); ev.Workspace != "tenant-acme" {
		t.Errorf("workspace %q", ev.Workspace)
	}
	if ev := importOne(t, clfLine, o); ev.Workspace != "" {
		t.Errorf("workspace %q", ev.Workspace)
	}
}

// An imported line cannot write into a reserved workspace, from the header
// or the Workspace function: the claim is kept in the details, the event
// gets no workspace, as on live traffic.
func TestReservedWorkspaceRefused(t *testing.T) {
	line := strings.Replace(caddyFloatTS, `"X-Workspace-Id":["acme"]`, `"X-Workspace-Id":["`+storage.AuditWorkspace+`"]`, 1)
	for name, o := range map[string]Options{
		"header":   {WorkspaceHeader: "X-Workspace-ID"},
		"function": {Workspace: func(*storage.Event, http.Header) string { return "_system" }},
	} {
		ev := importOne(t, line, o)
		if ev.Workspace != "" || ev.Details["reserved_workspace_claimed"] == nil {
			t.Errorf("%s: workspace %q details %v", name, ev.Workspace, ev.Details)
		}
	}
}

// TestImportRedactsLikeTheLiveHandler: a logged referer, path and user
// agent go through the same redactor calls as live traffic, so a token in
// a referer's fragment, a card number in a path or a password pair in a
// user agent is no more in clear in an import than in a live event.
func TestImportRedactsLikeTheLiveHandler(t *testing.T) {
	const (
		card     = "4111111111111111"
		fragment = "https://idp.example/cb#access_token=frag-secret-123"
		agent    = "bot/1.0 password=ua-secret-456"
	)
	line := `192.0.2.8 - - [10/Oct/2025:13:55:36 +0200] "GET /cards/` + card + `/view HTTP/1.1" 200 12 "` + fragment + `" "` + agent + `"`
	ev := importOne(t, line, withRedactor(Options{Format: FormatCombined}))
	for _, c := range []struct{ field, got, want string }{
		{"referer", ev.Referer, testRedactor.URL(fragment)},
		{"path", ev.Path, testRedactor.Path("/cards/" + card + "/view")},
		{"user_agent", ev.UserAgent, testRedactor.Text(agent)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q as the live handler stores it", c.field, c.got, c.want)
		}
	}
	for _, secret := range []string{card, "frag-secret-123", "ua-secret-456"} {
		if s := ev.Referer + ev.Path + ev.UserAgent; strings.Contains(s, secret) {
			t.Errorf("%q stored in clear: %s", secret, s)
		}
	}
	// Without a redactor the referer keeps neither query nor fragment.
	if ev := importOne(t, line, Options{Format: FormatCombined}); ev.Referer != "https://idp.example/cb" {
		t.Errorf("referer without a redactor = %q", ev.Referer)
	}
}

// A query over policy.MaxValueLen is cut once, with the marker the live
// handler stores, not cut again through its own marker.
func TestLongQueryStoredLikeTheLiveHandler(t *testing.T) {
	query := "q=" + strings.Repeat("a", policy.MaxValueLen+100)
	line := `192.0.2.8 - - [10/Oct/2025:13:55:36 +0200] "GET /search?` + query + ` HTTP/1.1" 200 12`
	ev := importOne(t, line, withRedactor(Options{Format: FormatCommon}))
	if want := testRedactor.Query(query); ev.Query != want {
		t.Errorf("query ends %q, want it to end %q as the live handler stores it", ev.Query[len(ev.Query)-40:], want[len(want)-40:])
	}
}
