package detectors

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDurationJSON(t *testing.T) {
	var v struct {
		A, B, C, D Duration
	}
	if err := json.Unmarshal([]byte(`{"A":"10s","B":"1h30m","C":"2d","D":5000000000}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A.D() != 10*time.Second || v.B.D() != 90*time.Minute || v.C.D() != 48*time.Hour || v.D.D() != 5*time.Second {
		t.Errorf("%+v", v)
	}
	b, _ := json.Marshal(v)
	if string(b) != `{"A":"10s","B":"1h30m0s","C":"48h0m0s","D":"5s"}` {
		t.Errorf("marshal %s", b)
	}
	for _, bad := range []string{`"ten"`, `"5x"`, `true`} {
		var d Duration
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
}

// A config as the Caddy module would receive it: zero fields take the
// defaults, workspace overrides inherit what they do not name.
func TestConfigJSON(t *testing.T) {
	in := `{
		"suppression": "30m",
		"admin_users": ["root"],
		"brute_force": {"burst": {"capacity": 3}},
		"routes": {"login": ["POST /auth/*"]},
		"workspaces": {
			"berlin": {
				"business_hours": {"timezone": "Europe/Berlin", "start": "07:30"},
				"admin_users": ["hans"],
				"mass_deletion": {"deletes": {"threshold": 50}}
			}
		}
	}`
	var cfg Config
	if err := json.Unmarshal([]byte(in), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := cfg.WithDefaults()
	if r.Suppression.D() != 30*time.Minute || r.BruteForce.Burst.Capacity != 3 || r.BruteForce.Burst.LeakSpeed.D() != 10*time.Second {
		t.Errorf("global: %+v", r.BruteForce)
	}
	if !reflect.DeepEqual(r.Routes.Login, []string{"POST /auth/*"}) || len(r.Routes.Admin) == 0 {
		t.Errorf("routes: %+v", r.Routes)
	}
	b := r.Workspaces["berlin"]
	if b.BusinessHours.Timezone != "Europe/Berlin" || b.BusinessHours.Start != "07:30" || b.BusinessHours.End != "18:00" || len(b.BusinessHours.Days) != 5 {
		t.Errorf("berlin hours: %+v", b.BusinessHours)
	}
	if b.MassDeletion.Deletes.Threshold != 50 || b.MassDeletion.Deletes.Window.D() != 5*time.Minute || b.BruteForce.Burst.Capacity != 3 || b.Suppression.D() != 30*time.Minute {
		t.Errorf("berlin inherits: %+v %+v", b.MassDeletion, b.BruteForce.Burst)
	}
	e := NewEngine(cfg)
	if s := e.settingsFor("berlin"); !s.admins["hans"] || !s.admins["root"] || s.hours.start != 7*60+30 {
		t.Errorf("compiled berlin: admins %v start %d", s.admins, s.hours.start)
	}
	if s := e.settingsFor("elsewhere"); s != e.global || s.admins["hans"] {
		t.Error("unknown workspaces use the global settings")
	}
}

func TestDefaultConfigRoundTrip(t *testing.T) {
	def := DefaultConfig()
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.WithDefaults(), def.WithDefaults()) {
		t.Errorf("round trip changed the config:\n%s", b)
	}
	if !reflect.DeepEqual(Config{}.WithDefaults(), def) {
		t.Error("Config{} does not resolve to DefaultConfig")
	}
	for _, key := range []string{`"brute_force"`, `"leak_speed":"10s"`, `"business_hours"`, `"max_keys":100000`, `"large_response_bytes"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("no %s in %s", key, b)
		}
	}
}

// Every config field is documented; the doc comments are the JSON docs.
func TestConfigFieldsHaveJSONNames(t *testing.T) {
	var walk func(reflect.Type, string)
	walk = func(tp reflect.Type, path string) {
		for i := range tp.NumField() {
			f := tp.Field(i)
			name := strings.Split(f.Tag.Get("json"), ",")[0]
			if name == "" && !f.Anonymous {
				t.Errorf("%s%s has no json name", path, f.Name)
			}
			if name != strings.ToLower(name) {
				t.Errorf("%s%s: json name %q is not snake_case", path, f.Name, name)
			}
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Time]() {
				walk(f.Type, path+name+".")
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
}

func TestValidate(t *testing.T) {
	var cfg Config
	cfg.BusinessHours = BusinessHours{Timezone: "Mars/Olympus", Days: []string{"mon", "funday"}, Start: "25:00", End: "9"}
	cfg.UnusualAccess.Checks = []string{"new_ip", "bogus"}
	cfg.BruteForce.Burst.LeakSpeed = Duration(-time.Second)
	cfg.Routes.Login = []string{"POST login"}
	cfg.Workspaces = map[string]Settings{"w": {UnusualAccess: UnusualAccessConfig{RareShare: 2}}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"Mars/Olympus", "funday", "25:00", `"9"`, "bogus", "brute_force.burst.leak_speed", "POST login", `workspaces["w"].unusual_access.rare_share`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	// NewEngine does not fail on a bad config; it falls back to UTC for
	// the unknown time zone.
	if e := NewEngine(cfg); e.global.hours.loc != time.UTC {
		t.Errorf("location %v, want the UTC fallback", e.global.hours.loc)
	}
}

func TestBusinessHours(t *testing.T) {
	b, err := compileBusinessHours(BusinessHours{Timezone: "Europe/Berlin", Days: []string{"Monday", "TUE"}, Start: "09:00", End: "17:30"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		t    time.Time
		want bool
	}{
		{time.Date(2025, 3, 3, 8, 0, 0, 0, time.UTC), true},    // Monday 09:00 in Berlin
		{time.Date(2025, 3, 3, 7, 59, 0, 0, time.UTC), false},  // 08:59
		{time.Date(2025, 3, 4, 16, 29, 0, 0, time.UTC), true},  // Tuesday 17:29
		{time.Date(2025, 3, 4, 16, 30, 0, 0, time.UTC), false}, // 17:30, exclusive
		{time.Date(2025, 3, 5, 10, 0, 0, 0, time.UTC), false},  // Wednesday
	} {
		if got := b.within(tc.t); got != tc.want {
			t.Errorf("%v: %v", tc.t, got)
		}
	}
	night, _ := compileBusinessHours(BusinessHours{Timezone: "UTC", Days: []string{"mon"}, Start: "22:00", End: "06:00"})
	if !night.within(time.Date(2025, 3, 3, 23, 0, 0, 0, time.UTC)) || !night.within(time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC)) || night.within(time.Date(2025, 3, 3, 12, 0, 0, 0, time.UTC)) {
		t.Error("a shift across midnight")
	}
}

func TestValidateBusinessHours(t *testing.T) {
	for _, tt := range []struct {
		b    BusinessHours
		want []string // substrings of the error; none means valid
	}{
		{BusinessHours{}, nil},
		{BusinessHours{Timezone: "Europe/Berlin", Days: []string{"Monday", "sat"}, Start: "22:00", End: "06:00"}, nil},
		{BusinessHours{Timezone: "Mars/Olympus"}, []string{`timezone "Mars/Olympus"`}},
		{BusinessHours{Days: []string{"mon", "funday"}}, []string{`day "funday"`}},
		{BusinessHours{Start: "8am", End: "25:00"}, []string{`start: "8am"`, `end: "25:00"`}},
	} {
		err := ValidateBusinessHours(tt.b)
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("ValidateBusinessHours(%+v) = %v, want nil", tt.b, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("ValidateBusinessHours(%+v) = nil, want %q", tt.b, tt.want)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ValidateBusinessHours(%+v) = %v, want it to mention %q", tt.b, err, w)
			}
		}
	}
}
