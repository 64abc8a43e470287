package adminapi

import (
	"bytes"
	"encoding/csv"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/storage"
)

// Fuzz targets of the query-string parsers and the CSV cell escaper. The
// HTTP-level FuzzEventsQuery (events_test.go) checks that no request
// escapes its workspace; these check the parsers' own promises.

// eventQuerySeeds are realistic and hostile query strings.
var eventQuerySeeds = []string{
	"", "user=alice&workspace=acme", "from=2025-03-14T00:00:00Z&to=2025-03-15T00:00:00Z",
	"from=2025-03-15T00:00:00Z&to=2025-03-14T00:00:00Z", "limit=1000&cursor=AQAAAAAAAAAAAAAAAAAAAAE",
	"limit=0", "limit=-1", "limit=1001", "status=404&status_class=4xx", "status_class=9", "method=delete",
	"method=GET%20X", "client_ip=2001:DB8::1", "client_ip=192.0.2.300", "path_prefix=/api/", "path_prefix=api",
	"kind=http&stage=request_received", "risk_level=critical&min_risk=40&suspicious=true", "min_risk=101",
	"suspicious=maybe", "%zz", "a=1&a=2", "user=a&user=b", "to=0000-01-01T00:00:00Z", "from=9999-12-31T23:59:59.999999999Z",
	"request_id=%00%ff", "format=csv", "interval=minute&tz=Europe/Paris", "top=10",
}

func FuzzParseEventsQuery(f *testing.F) {
	for _, s := range eventQuerySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseEventsQuery(raw)
		again, err2 := parseEventsQuery(raw)
		if (err == nil) != (err2 == nil) || err == nil && (q.limit != again.limit || q.cursor != again.cursor) {
			t.Fatalf("%q parses differently twice", raw)
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("%q: empty error", raw)
			}
			return
		}
		checkFilterInvariants(t, raw, q.filter)
		if q.limit < 1 || q.limit > storage.MaxPageSize {
			t.Fatalf("%q: limit %d", raw, q.limit)
		}
		// Every endpoint with the search's filters accepts what the search
		// accepts, paging aside.
		if !strings.Contains(raw, "limit") && !strings.Contains(raw, "cursor") {
			var eq exportQuery
			if err := parseParams(raw, &eq, exportParams); err != nil {
				t.Fatalf("%q: the search accepts it, the export refuses: %v", raw, err)
			}
			if eq.filter != q.filter && !sameSuspicious(eq.filter, q.filter) {
				t.Fatalf("%q: export filter %+v, search filter %+v", raw, eq.filter, q.filter)
			}
		}
	})
}

// sameSuspicious compares filters whose Suspicious pointers differ but
// point at equal values.
func sameSuspicious(a, b storage.Filter) bool {
	if a.Suspicious == nil || b.Suspicious == nil || *a.Suspicious != *b.Suspicious {
		return false
	}
	a.Suspicious, b.Suspicious = nil, nil
	return a == b
}

// checkFilterInvariants checks what a parsed filter promises the store.
func checkFilterInvariants(t *testing.T, raw string, f storage.Filter) {
	t.Helper()
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		t.Fatalf("%q: from %v not before to %v", raw, f.From, f.To)
	}
	if f.Status != 0 && (f.Status < 100 || f.Status > 599) || f.StatusClass < 0 || f.StatusClass > 5 || f.MinRisk < 0 || f.MinRisk > 100 {
		t.Fatalf("%q: numbers out of range: %+v", raw, f)
	}
	if f.Method != strings.ToUpper(f.Method) {
		t.Fatalf("%q: method %q not upper case", raw, f.Method)
	}
	if f.PathPrefix != "" && f.PathPrefix[0] != '/' {
		t.Fatalf("%q: path prefix %q", raw, f.PathPrefix)
	}
	if f.ClientIP != "" {
		ip, err := netip.ParseAddr(f.ClientIP)
		if err != nil || ip.String() != f.ClientIP {
			t.Fatalf("%q: client_ip %q is not canonical", raw, f.ClientIP)
		}
	}
	if f.Kind != "" && !slices.Contains([]string{storage.KindHTTP, storage.KindAdmin, storage.KindLifecycle}, f.Kind) ||
		f.RiskLevel != "" && !slices.Contains([]string{"low", "medium", "high", "critical"}, f.RiskLevel) ||
		f.Stage != "" && f.Stage != storage.StageRequestReceived && f.Stage != storage.StageResponseComplete {
		t.Fatalf("%q: enumerated value outside its set: %+v", raw, f)
	}
}

func FuzzParseAlertsQuery(f *testing.F) {
	for _, s := range []string{
		"", "detector=brute_force&severity=high&status=open", "detector=nope", "status=closed",
		"subject=192.0.2.1&workspace=acme", "from=2025-03-14T00:00:00Z&to=2025-03-13T00:00:00Z",
		"limit=1&cursor=AQ", "limit=5000", "severity=critical&severity=low", "%", "from=2025-03-14",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseAlertsQuery(raw)
		if err != nil {
			return
		}
		fl := q.filter
		if q.limit < 1 || q.limit > storage.MaxPageSize {
			t.Fatalf("%q: limit %d", raw, q.limit)
		}
		if !fl.From.IsZero() && !fl.To.IsZero() && !fl.From.Before(fl.To) {
			t.Fatalf("%q: from %v not before to %v", raw, fl.From, fl.To)
		}
		if fl.Detector != "" && !slices.Contains(detectors.Detectors, fl.Detector) ||
			fl.Severity != "" && !slices.Contains(storage.Severities, fl.Severity) ||
			fl.Status != "" && !slices.Contains(alertStatuses, fl.Status) {
			t.Fatalf("%q: enumerated value outside its set: %+v", raw, fl)
		}
	})
}

func FuzzCSVEscape(f *testing.F) {
	for _, s := range []string{
		"", "alice", "=cmd|' /C calc'!A0", "+1", "-1", "@SUM(1)", "\tx", "\rx", "\nx", `"quoted"`, "a,b",
		"in\r\nside", "\xff\xfe", "=\xff", " =1", "'already", "\r", "\"\r\n\"", "x\r",
	} {
		f.Add(s, "/api/items")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		esc := csvEscape(a)
		if !utf8.ValidString(esc) {
			t.Fatalf("%q escapes to invalid UTF-8 %q", a, esc)
		}
		if esc != "" && strings.ContainsRune("=+-@\t\r\n", rune(esc[0])) {
			t.Fatalf("%q escapes to %q, which starts a formula", a, esc)
		}
		if want := strings.ToValidUTF8(a, "\uFFFD"); esc != want && esc != "'"+want {
			t.Fatalf("%q escapes to %q: more than a prefix", a, esc)
		}
		// A row of two cells parses back, with a real CSV parser, to the
		// escaped values (which read CRLF inside a field as LF).
		row := appendCSVCell(appendCSVCell(nil, 0, a), 1, b)
		row = append(row, '\r', '\n')
		recs, err := csv.NewReader(bytes.NewReader(row)).ReadAll()
		if err != nil || len(recs) != 1 || len(recs[0]) != 2 {
			t.Fatalf("row %q parses to %q, %v", row, recs, err)
		}
		norm := func(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }
		if recs[0][0] != norm(esc) || recs[0][1] != norm(csvEscape(b)) {
			t.Fatalf("row %q parses to %q, want %q", row, recs[0], []string{norm(esc), norm(csvEscape(b))})
		}
	})
}
