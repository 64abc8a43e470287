package policy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	eff := mustParse(t, precedencePolicy+`
  - name: bodies
    match: {routes: ["/api/orders"]}
    level: body
    tags: [chd]
`)
	tests := []struct {
		name      string
		req       ExplainRequest
		rule      string
		index     int
		level     string
		undecided []string
		check     func(t *testing.T, ex *Explanation, r *Redactor)
	}{
		{"health is not recorded", ExplainRequest{Method: "GET", URL: "/healthz"}, "health", 0, LevelNone, nil,
			func(t *testing.T, ex *Explanation, _ *Redactor) {
				if ex.Event != nil {
					t.Error("level none stores nothing")
				}
			}},
		{"login before its status is known", ExplainRequest{Method: "POST", URL: "https://app.example/login",
			Header: http.Header{"Authorization": {"Bearer T0PSECRETVALUE"}}}, "login", 2, LevelHeaders, []string{"login-failures"},
			func(t *testing.T, ex *Explanation, r *Redactor) {
				if ex.FailureMode != FailureStrict || ex.Event.Scheme != "https" ||
					ex.Event.RequestHeaders["Authorization"][0] != "Bearer "+r.Token("T0PSECRETVALUE") {
					t.Errorf("%+v", ex.Event)
				}
			}},
		{"login that failed", ExplainRequest{Method: "POST", URL: "/login", Status: 401}, "login-failures", 1, LevelBody, nil, nil},
		{"body level shows the redacted body", ExplainRequest{Method: "POST", URL: "/api/orders?token=QTOKEN12345&x=1",
			Header: http.Header{"content-type": {"application/json"}}, Body: []byte(`{"card_number":"4111111111111111","qty":2}`), Status: 201,
			User: "carol", ClientIP: "203.0.113.7"}, "carol", 8, LevelBody, nil,
			func(t *testing.T, ex *Explanation, r *Redactor) {
				ev := ex.Event
				if ev.RequestBody == nil || strings.Contains(ev.RequestBody.Text, "4111") || !strings.Contains(ev.RequestBody.Text, `"qty":2`) {
					t.Errorf("body %+v", ev.RequestBody)
				}
				if ev.Query != "token="+r.Token("QTOKEN12345")+"&x=1" || ev.User != "carol" || ev.ClientIP != "203.0.113.7" || ev.Outcome != "success" {
					t.Errorf("event %+v", ev)
				}
			}},
		{"defaults", ExplainRequest{URL: "/nothing/special", Status: 200}, "", -1, LevelMetadata, nil,
			func(t *testing.T, ex *Explanation, _ *Redactor) {
				if ex.Event.Method != "GET" || ex.Event.RequestHeaders != nil {
					t.Errorf("%+v", ex.Event)
				}
			}},
	}
	eng, err := Compile(eff, testKey, Redact{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex, err := eng.Explain(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if ex.Rule != tt.rule || ex.Index != tt.index || ex.Level != tt.level || strings.Join(ex.Undecided, ",") != strings.Join(tt.undecided, ",") {
				t.Fatalf("rule %q #%d level %s undecided %v", ex.Rule, ex.Index, ex.Level, ex.Undecided)
			}
			if ex.PolicyHash != eff.Hash() {
				t.Error("explain names the policy it used")
			}
			if tt.check != nil {
				tt.check(t, ex, eng.Defaults().Redactor())
			}
			if _, err := json.Marshal(ex); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, bad := range []ExplainRequest{{Method: "G E T"}, {URL: "no-slash"}, {URL: "http://[::1"}} {
		if _, err := Explain(eff, nil, bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestDiff(t *testing.T) {
	a := mustParse(t, "rules:\n  - {name: x, match: {paths: [/x]}}\n  - {name: y, match: {paths: [/y]}}\n  - {name: z, level: none}\n")
	b := mustParse(t, "defaults: {ip_handling: truncate}\nrules:\n  - {name: y, match: {paths: [/y]}}\n  - {name: x, match: {paths: [/x]}, tags: [t]}\n  - {name: w}\n")
	got := strings.Join(Diff(a, b), "\n")
	want := strings.Join([]string{
		`defaults.ip_handling: "keep" -> "truncate"`,
		"rule changed: x",
		"rule added: w",
		"rule removed: z",
		"rules reordered",
	}, "\n")
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if d := Diff(a, a); len(d) != 0 {
		t.Errorf("no change: %v", d)
	}
	if d := Diff(nil, a); len(d) != 1 || Diff(a, nil)[0] != "policy removed" {
		t.Errorf("%v", d)
	}
}
