package policy

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./policy -run %s -update to create it)", err, t.Name())
	}
	if string(want) != string(got) {
		t.Errorf("%s differs from what the code produces; if the change is intended, run with -update and review the diff.\ngot:\n%s", path, got)
	}
}

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	eff, err := p.Effective()
	if err != nil {
		t.Fatal(err)
	}
	return eff
}

// TestProfilesGolden pins what each profile sets: the effective policy of
// a file that only names the profile.
func TestProfilesGolden(t *testing.T) {
	names := append([]string{""}, ProfileNames()...)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			src := ""
			if name != "" {
				src = "profile: " + name + "\n"
			}
			eff := mustParse(t, src)
			out, err := json.MarshalIndent(eff, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			file := name
			if file == "" {
				file = "none"
			}
			golden(t, "profiles/"+file+".json", append(out, '\n'))
		})
	}
}

// The retention the issue names for the regulated profiles.
func TestProfileRetention(t *testing.T) {
	want := map[string]int{"pci": 365, "hipaa": 2190, "sox": 2555}
	for name, days := range want {
		eff := mustParse(t, "profile: "+name)
		if eff.Defaults.RetentionDays == nil || *eff.Defaults.RetentionDays != days ||
			eff.Defaults.RetentionFloorDays == nil || *eff.Defaults.RetentionFloorDays != days {
			t.Errorf("%s: retention %v floor %v, want %d", name, eff.Defaults.RetentionDays, eff.Defaults.RetentionFloorDays, days)
		}
	}
	if g := mustParse(t, "profile: gdpr"); g.Defaults.IPHandling != IPPseudonymize || !contains(g.Defaults.Redact.Patterns, PatternEmail) {
		t.Errorf("gdpr: ip %s, patterns %v", g.Defaults.IPHandling, g.Defaults.Redact.Patterns)
	}
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// A policy's own settings win over its profile's; its lists add to them.
func TestPolicyOverridesProfile(t *testing.T) {
	eff := mustParse(t, `
profile: pci
defaults:
  level: headers
  retention_days: 400
  redact:
    body_fields: [member_no]
rules:
  - name: auth
    match: {routes: ["/login"]}
    level: body
`)
	d := eff.Defaults
	if d.Level != LevelHeaders || *d.RetentionDays != 400 || *d.RetentionFloorDays != 365 || d.FailureMode != FailureBestEffort {
		t.Fatalf("defaults %+v", d)
	}
	if !contains(d.Redact.BodyFields, "member_no") || !contains(d.Redact.BodyFields, "pan") {
		t.Fatalf("body fields %v: want the policy's and the profile's", d.Redact.BodyFields)
	}
	if eff.Rules[0].Name != "auth" || eff.Rules[1].Name != "pci:auth" {
		t.Fatalf("rules %s, %s: the policy's first, then the profile's", eff.Rules[0].Name, eff.Rules[1].Name)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown top-level key", "profile: pci\nlevel: body\n", "test.yaml:2:1: policy: unknown key \"level\""},
		{"unknown nested key", "defaults:\n  levle: headers\n", "test.yaml:2:3: policy.defaults: unknown key \"levle\""},
		{"unknown rule key", "rules:\n  - name: a\n    matches: {}\n", "test.yaml:3:5: policy.rules[0]: unknown key \"matches\""},
		{"unknown match key", "rules:\n  - match:\n      path: [/x]\n", "test.yaml:3:7: policy.rules[0].match: unknown key \"path\""},
		{"wrong type list", "rules:\n  - match:\n      methods: GET\n", "test.yaml:3:16: policy.rules[0].match.methods: want a list, got \"GET\""},
		{"wrong type int", "defaults:\n  retention_days: forever\n", "test.yaml:2:19: policy.defaults.retention_days: want an integer, got \"forever\""},
		{"wrong type mapping", "defaults: [1]\n", "test.yaml:1:11: policy.defaults: want a mapping"},
		{"rules not a list", "rules: {a: 1}\n", "test.yaml:1:8: policy.rules: want a list"},
		{"duplicate key", "profile: pci\nprofile: sox\n", "test.yaml:2:1: policy: key \"profile\" given twice"},
		{"bad level", "defaults:\n  level: everything\n", "test.yaml:2:10: defaults.level: unknown level \"everything\""},
		{"bad rule level", "rules:\n  - name: x\n    level: loud\n", "test.yaml:3:12: rules[0] (x).level: unknown level \"loud\""},
		{"bad failure mode", "defaults:\n  failure_mode: sometimes\n", "test.yaml:2:17: defaults.failure_mode: unknown failure mode"},
		{"bad profile", "profile: fedramp\n", "test.yaml:1:10: profile: unknown profile \"fedramp\""},
		{"bad ip handling", "defaults:\n  ip_handling: hash\n", "test.yaml:2:16: defaults.ip_handling: unknown mode \"hash\""},
		{"bad pattern", "defaults:\n  redact:\n    patterns: [card, iban]\n", "test.yaml:3:22: defaults.redact.patterns: unknown pattern \"iban\""},
		{"status with strict", "rules:\n  - name: errors\n    match: {status: [5xx]}\n    failure_mode: strict\n", "test.yaml:4:19: rules[0] (errors): failure_mode strict cannot be combined with match.status"},
		{"bad status", "rules:\n  - match:\n      status: [4x4]\n", "test.yaml:3:16: rules[0].match.status: status \"4x4\""},
		{"bad glob", "rules:\n  - match:\n      paths: [admin/**]\n", "test.yaml:3:15: rules[0].match.paths: path \"admin/**\" must start with /"},
		{"bad route", "rules:\n  - match:\n      routes: [\"/items/{id\"]\n", "test.yaml:3:16: rules[0].match.routes: route \"/items/{id\""},
		{"rest not last", "rules:\n  - match:\n      routes: [\"/a/{rest...}/b\"]\n", "must be the last segment"},
		{"duplicate rule name", "rules:\n  - name: a\n  - name: a\n", "test.yaml:3:11: rules[1] (a): name \"a\" already used by rules[0]"},
		{"bad tag", "rules:\n  - tags: [Admin Area]\n", "test.yaml:2:12: rules[0].tags: \"Admin Area\" is not a tag"},
		{"body too big", "defaults:\n  body: {max_bytes: 99999999}\n", "test.yaml:2:21: defaults.body.max_bytes"},
		{"bad content type", "defaults:\n  body: {content_types: [json]}\n", "test.yaml:2:26: defaults.body.content_types: \"json\" is not a media type"},
		{"floor above retention", "defaults:\n  retention_days: 30\n  retention_floor_days: 365\n", "test.yaml:2:19: defaults.retention_days: 30 is below retention_floor_days 365"},
		{"bad business hours", "defaults:\n  business_hours: {timezone: Mars/Base}\n", "test.yaml:2:19: defaults.business_hours: timezone"},
		// yaml.v3 gives syntax errors a line but no column.
		{"syntax error", "a: b\nc: d: e\n", "test.yaml:2: mapping values are not allowed in this context"},
		{"unterminated flow", "rules:\n  - name: a\n    level: [\n", "test.yaml:3: did not find expected node content"},
		{"tab indentation", "defaults:\n  level: headers\n\tx: 1\n", "test.yaml:2: found a tab character"},
		{"negative retention", "defaults:\n  retention_days: -1\n", "test.yaml:2:19: defaults.retention_days: must not be negative"},
		{"method with space", "rules:\n  - match: {methods: [\"GE T\"]}\n", "test.yaml:2:23: rules[0].match.methods: \"GE T\" is not a method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("accepted:\n%s", tt.src)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error\n  %v\nwant it to contain\n  %s", err, tt.want)
			}
		})
	}
}

// Every problem in a file is reported at once, in file order.
func TestParseReportsAllErrors(t *testing.T) {
	_, err := Parse("p.yaml", []byte("defaults:\n  level: loud\n  ip_handling: hash\nrules:\n  - colour: blue\n"))
	es, ok := err.(Errors)
	if !ok || len(es) != 1 {
		// Shape errors stop before value checks: a key that is not
		// understood may be what would have made the values right.
		t.Fatalf("shape errors first: %v", err)
	}
	_, err = Parse("p.yaml", []byte("defaults:\n  level: loud\n  ip_handling: hash\n"))
	if es, ok := err.(Errors); !ok || len(es) != 2 || es[0].Line != 2 || es[1].Line != 3 {
		t.Fatalf("want two value errors on lines 2 and 3: %v", err)
	}
}

func TestParseEmptyAndLoad(t *testing.T) {
	for _, src := range []string{"", "\n", "# only a comment\n", "---\n"} {
		if _, err := Parse("e.yaml", []byte(src)); err != nil {
			t.Errorf("%q: %v", src, err)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a missing file must be an error")
	}
	path := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(path, []byte("profile: hipaa\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eff, err := Validate(path)
	if err != nil || eff.Defaults.FailureMode != FailureStrict {
		t.Fatalf("Validate: %v %+v", err, eff)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("profile: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Validate(bad); err == nil || !strings.HasPrefix(err.Error(), bad+":1:10:") {
		t.Fatalf("want the file name, line and column first: %v", err)
	}
}

// Formatting does not change the hash; any decision does.
func TestHash(t *testing.T) {
	a := mustParse(t, "profile: pci\nrules:\n  - name: a\n    match: {methods: [GET]}\n")
	b := mustParse(t, "# same policy\nprofile: pci\nrules:\n- name: a\n  match:\n    methods:\n    - GET\n")
	c := mustParse(t, "profile: pci\nrules:\n  - name: a\n    match: {methods: [POST]}\n")
	if a.Hash() != b.Hash() || a.Hash() == c.Hash() || len(a.Hash()) != 64 {
		t.Fatalf("hashes %s %s %s", a.Hash(), b.Hash(), c.Hash())
	}
}

// FuzzParse: any input gives a policy or an error, never a panic, and an
// accepted policy resolves and compiles.
func FuzzParse(f *testing.F) {
	f.Add([]byte("profile: pci\n"))
	f.Add([]byte("defaults: {level: body, body: {max_bytes: 10, content_types: [text/*]}}\nrules:\n  - name: a\n    match: {routes: [\"/a/{id}\"], status: [4xx]}\n    level: none\n"))
	f.Add([]byte("rules:\n  - &r {name: a}\n  - *r\n"))
	f.Add([]byte("defaults:\n  redact: {patterns: [email]}\n"))
	f.Add([]byte("{{{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f.yaml", data)
		if err != nil {
			if _, ok := err.(Errors); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		eff, err := p.Effective()
		if err != nil {
			return // a rule name the profile also uses
		}
		if _, err := Compile(eff, testKey, Redact{}); err != nil {
			t.Fatalf("accepted policy does not compile: %v", err)
		}
	})
}

// The example policy in the README is a valid policy.
func TestREADMEExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Skip("README not found:", err)
	}
	_, rest, ok := strings.Cut(string(readme), "```yaml\nprofile: pci")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("the README's example policy (```yaml starting with profile: pci) is missing")
	}
	p, err := Parse("README.md", []byte("profile: pci"+example))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Effective(); err != nil {
		t.Fatal(err)
	}
}
