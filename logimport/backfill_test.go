package logimport

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

var update = flag.Bool("update", false, "rewrite testdata/ from the generator")

// The attackers in the generated logs.
const (
	bruteIP   = "203.0.113.7"
	scannerIP = "198.51.100.23"
)

// request is one line of a generated log, format-neutral.
type request struct {
	start    time.Time
	dur      time.Duration
	ip, user string
	method   string
	uri      string
	status   int
	size     int64
	ua, ref  string
}

// genTraffic is a deterministic half hour of a small app behind Caddy:
// five users working through the API, plus a brute-force burst against
// POST /login (8 failures a second apart, then a success) and a wordlist
// scan (12 distinct 404 paths in 6 s).
func genTraffic() []request {
	rng := rand.New(rand.NewPCG(4, 2026))
	base := time.Date(2026, 10, 14, 9, 0, 0, 0, time.UTC)
	browser := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36"
	var out []request
	users := []string{"alice", "bob", "carol", "dave", "erin"}
	for i, u := range users {
		ip := fmt.Sprintf("10.1.0.%d", 11+i)
		t := base.Add(time.Duration(i) * 7 * time.Second)
		out = append(out, request{start: t, dur: 40 * time.Millisecond, ip: ip, user: u, method: "POST", uri: "/login", status: 200, size: 112, ua: browser})
		for t.Before(base.Add(30 * time.Minute)) {
			t = t.Add(time.Duration(5+rng.IntN(40)) * time.Second)
			r := request{start: t, dur: time.Duration(2+rng.IntN(80)) * time.Millisecond, ip: ip, user: u, method: "GET", status: 200, ua: browser, ref: "https://app.example.com/items"}
			switch n := rng.IntN(10); {
			case n < 5:
				r.uri, r.size = fmt.Sprintf("/api/items/%d", 1+rng.IntN(300)), int64(300+rng.IntN(900))
			case n < 8:
				r.uri, r.size = fmt.Sprintf("/api/items?page=%d&session=s3cr3t-%s", 1+rng.IntN(5), u), int64(4000+rng.IntN(4000))
			case n < 9:
				r.uri, r.size = "/static/app.js", 81234
			default:
				r.uri, r.status, r.size = "/api/items/99999", 404, 21
			}
			if rng.IntN(50) == 0 {
				r.dur = 12 * time.Second // a slow export: logged long after later requests
			}
			out = append(out, r)
		}
	}
	script := "python-requests/2.31.0"
	t := base.Add(10 * time.Minute)
	for i := range 8 {
		out = append(out, request{start: t.Add(time.Duration(i) * time.Second), dur: 90 * time.Millisecond, ip: bruteIP, method: "POST", uri: "/login", status: 401, size: 27, ua: script})
	}
	out = append(out, request{start: t.Add(9 * time.Second), dur: 95 * time.Millisecond, ip: bruteIP, method: "POST", uri: "/login", status: 200, size: 112, ua: script})
	scan := []string{
		"/cgi-bin/luci", "/HNAP1/", "/boaform/formLogin", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
		"/owa/auth/logon.aspx", "/remote/login", "/geoserver/web/", "/solr/", "/api/v1/pods",
		"/cgi-bin/test.cgi", "/shell?cd+/tmp", "/GponForm/diag_Form",
	}
	t = base.Add(20 * time.Minute)
	for i, p := range scan {
		out = append(out, request{start: t.Add(time.Duration(i) * 500 * time.Millisecond), dur: time.Millisecond, ip: scannerIP, method: "GET", uri: p, status: 404, size: 19, ua: `Mozilla/5.0 zgrab/0.x "scan"`})
	}
	return out
}

// writeCombined renders the traffic as Apache does: %t is when the request
// arrived but the line is written when it completes, so a slow request's
// line comes after later ones. The UA's quotes are escaped as \x22 (nginx
// style; Apache writes \").
func writeCombined(reqs []request) []byte {
	reqs = slices.Clone(reqs)
	slices.SortStableFunc(reqs, func(a, b request) int { return a.start.Add(a.dur).Compare(b.start.Add(b.dur)) })
	var b bytes.Buffer
	for _, r := range reqs {
		user, ref := "-", "-"
		if r.user != "" {
			user = r.user
		}
		if r.ref != "" {
			ref = r.ref
		}
		fmt.Fprintf(&b, "%s - %s [%s] \"%s %s HTTP/1.1\" %d %d \"%s\" \"%s\"\n",
			r.ip, user, r.start.Format(clfTime), r.method, r.uri, r.status, r.size, ref, strings.ReplaceAll(r.ua, `"`, `\x22`))
	}
	return b.Bytes()
}

// writeCaddy renders the traffic as Caddy's JSON access log: ts (float
// seconds) at completion, so a slow request's line comes after those of
// later requests.
func writeCaddy(reqs []request) []byte {
	reqs = slices.Clone(reqs)
	slices.SortStableFunc(reqs, func(a, b request) int { return a.start.Add(a.dur).Compare(b.start.Add(b.dur)) })
	var b bytes.Buffer
	for i, r := range reqs {
		end := r.start.Add(r.dur)
		hdr := map[string][]string{"User-Agent": {r.ua}, "Accept": {"*/*"}}
		if r.ref != "" {
			hdr["Referer"] = []string{r.ref}
		}
		if r.user != "" {
			hdr["Authorization"] = []string{"Basic " + r.user + "-credential"}
			hdr["X-Workspace-Id"] = []string{"acme"}
		}
		entry := map[string]any{
			"level": "info", "ts": float64(end.UnixMicro()) / 1e6, "logger": "http.log.access.log0", "msg": "handled request",
			"request": map[string]any{
				"remote_ip": r.ip, "remote_port": fmt.Sprint(40000 + i), "client_ip": r.ip, "proto": "HTTP/2.0",
				"method": r.method, "host": "app.example.com", "uri": r.uri, "headers": hdr,
				"tls": map[string]any{"resumed": false, "version": 772, "cipher_suite": 4865, "proto": "h2", "server_name": "app.example.com"},
			},
			"bytes_read": 0, "user_id": r.user, "duration": r.dur.Seconds(), "size": r.size, "status": r.status,
			"resp_headers": map[string][]string{"Content-Type": {"application/json"}, "X-Request-Id": {fmt.Sprintf("req-%05d", i)}},
		}
		line, err := json.Marshal(entry)
		if err != nil {
			panic(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// testdataFile returns the committed file, checking that it is what the
// generator writes (go test -update rewrites it).
func testdataFile(t *testing.T, name string, want []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestBackfill -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what the generator writes; run go test -run TestBackfill -update", path)
	}
	return got
}

type alertKey struct{ detector, rule, subject, severity string }

// replay imports a log, sorted, through a fresh detector engine and
// returns the final state of every alert.
func replay(t *testing.T, name string, data []byte, opts Options) (map[alertKey]int, []string, Stats) {
	t.Helper()
	opts.Source = name
	s := Sorted(NewReader(bytes.NewReader(data), opts), 30*time.Second)
	eng := detectors.NewEngine(detectors.DefaultConfig())
	final := map[string]storage.Alert{}
	var prev time.Time
	for {
		ev, err := s.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Time.Before(prev) {
			t.Fatalf("event %s at %s after one at %s: not in time order", ev.ID, ev.Time, prev)
		}
		prev = ev.Time
		for _, u := range eng.Process(&ev) {
			final[u.Alert.ID] = u.Alert
		}
	}
	for _, u := range eng.Flush() {
		final[u.Alert.ID] = u.Alert
	}
	if s.OutOfOrder() != 0 {
		t.Errorf("%d events out of order with a 30s slack", s.OutOfOrder())
	}
	got := map[alertKey]int{}
	var ids []string
	for id, a := range final {
		got[alertKey{a.Detector, a.Rule, a.Subject.Kind + ":" + a.Subject.Value, a.Severity}]++
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return got, ids, s.Reader().Stats()
}

// TestBackfill is issue 4's done-when line: importing a Caddy JSON access
// log and a Combined Log Format file with a brute-force burst and a probing
// scan raises those alerts, and nothing else.
func TestBackfill(t *testing.T) {
	reqs := genTraffic()
	red := policy.NewRedactor([]byte("backfill-test-key"), nil, nil)
	want := map[alertKey]int{
		{detectors.DetectorBruteForce, "login_burst", "ip:" + bruteIP, storage.SeverityCritical}:          1,
		{detectors.DetectorUnauthorizedAccess, "path_probing", "ip:" + scannerIP, storage.SeverityMedium}: 1,
	}
	for _, tc := range []struct {
		name   string
		data   []byte
		format Format
	}{
		{"access.combined.log", writeCombined(reqs), FormatCombined},
		{"access.caddy.json", writeCaddy(reqs), FormatCaddyJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := testdataFile(t, tc.name, tc.data)
			if f := Detect(data[:bytes.IndexByte(data, '\n')]); f != tc.format {
				t.Fatalf("Detect = %v, want %v", f, tc.format)
			}
			opts := Options{Redactor: red, WorkspaceHeader: "X-Workspace-ID"}
			got, ids, st := replay(t, tc.name, data, opts)
			t.Logf("%d events, alerts: %v", st.Events, got)
			if st.Errors != 0 || st.Events != int64(len(reqs)) {
				t.Fatalf("stats %+v, want %d events and no errors", st, len(reqs))
			}
			for k, n := range want {
				if got[k] != n {
					t.Errorf("alert %+v: got %d, want %d", k, got[k], n)
				}
			}
			for k, n := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("unexpected alert %+v (x%d)", k, n)
				}
			}
			// A replay gives the same alerts, ids included.
			_, again, _ := replay(t, tc.name, data, opts)
			if !slices.Equal(ids, again) {
				t.Errorf("replay gave alert ids %v, first run %v", again, ids)
			}
			if bytes.Contains(data, []byte("s3cr3t")) {
				ev := firstEvent(t, data, opts, func(ev storage.Event) bool { return ev.Query != "" })
				if b, _ := json.Marshal(ev); bytes.Contains(b, []byte("s3cr3t")) {
					t.Errorf("session secret stored: %s", b)
				}
			}
		})
	}
}

func firstEvent(t *testing.T, data []byte, opts Options, match func(storage.Event) bool) storage.Event {
	t.Helper()
	r := NewReader(bytes.NewReader(data), opts)
	for ev, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		if match(ev) {
			return ev
		}
	}
	t.Fatal("no matching event")
	return storage.Event{}
}
