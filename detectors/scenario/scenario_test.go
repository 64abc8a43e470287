package scenario

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDeterministic(t *testing.T) {
	a := Mixed(Options{Seed: 3, UsersPerWorkspace: 8})
	b := Mixed(Options{Seed: 3, UsersPerWorkspace: 8})
	if !reflect.DeepEqual(a.Events, b.Events) || !reflect.DeepEqual(a.Attacks, b.Attacks) {
		t.Fatal("the same seed gave different traffic")
	}
	c := Mixed(Options{Seed: 4, UsersPerWorkspace: 8})
	if reflect.DeepEqual(a.Events, c.Events) {
		t.Fatal("different seeds gave the same traffic")
	}
}

func TestEvents(t *testing.T) {
	s := Mixed(Options{Seed: 1, UsersPerWorkspace: 10})
	if len(s.Attacks) != 8 || s.Benign == 0 || len(s.Events) <= s.Benign {
		t.Fatalf("%d attacks, %d benign of %d events", len(s.Attacks), s.Benign, len(s.Events))
	}
	seen := map[string]bool{}
	for i, ev := range s.Events {
		if i > 0 && (ev.Time.Before(s.Events[i-1].Time) || ev.ID <= s.Events[i-1].ID) {
			t.Fatalf("event %d out of order", i)
		}
		if seen[ev.ID] || ev.Seq != uint64(i+1) || ev.Kind != "http" || ev.Method == "" || ev.Path == "" ||
			ev.Status == 0 || ev.ClientIP == "" || ev.Time.Location() != time.UTC {
			t.Fatalf("event %d: %+v", i, ev)
		}
		seen[ev.ID] = true
	}
	for _, a := range s.Attacks {
		if a.Detector == "" || a.Severity == "" || a.Events == 0 || a.End.Before(a.Start) || len(a.IPs) == 0 {
			t.Errorf("attack %+v", a)
		}
	}
}

// Benign users work in their workspace's business hours on working days,
// except the habitual late workers, and never come from outside their
// workspace's networks.
func TestBenignShape(t *testing.T) {
	s := Benign(Options{Seed: 2, UsersPerWorkspace: 10})
	users := map[string]*User{}
	for i := range s.Users {
		users[s.Users[i].Name] = &s.Users[i]
	}
	kinds := map[string]int{}
	for _, ev := range s.Events {
		u := users[ev.User]
		if u == nil {
			t.Fatalf("unknown user %q", ev.User)
		}
		w := s.workspace(u.Workspace)
		loc, _ := time.LoadLocation(w.Timezone)
		lt := ev.Time.In(loc)
		if wd := lt.Weekday(); wd == time.Saturday || wd == time.Sunday {
			t.Fatalf("weekend work: %v", lt)
		}
		if h := lt.Hour(); h < 8 || (h >= 18 && !u.Late) || h >= 20 {
			t.Fatalf("%s works at %v", u.Name, lt)
		}
		if !strings.HasPrefix(ev.ClientIP, w.OfficeNet+".") && !strings.HasPrefix(ev.ClientIP, w.VPNNet+".") {
			t.Fatalf("%s comes from %s", u.Name, ev.ClientIP)
		}
		kinds[ev.Method+" "+strings.SplitN(ev.Path[1:], "/", 3)[0]+" "+statusClass(ev.Status)]++
	}
	// The noise the detectors must stay quiet on is there.
	for _, k := range []string{"POST login 4xx", "DELETE api 2xx", "GET api 4xx", "GET admin 4xx", "PUT api 2xx", "GET admin 2xx"} {
		if kinds[k] == 0 {
			t.Errorf("no %q requests: %v", k, kinds)
		}
	}
}

func statusClass(s int) string { return string(rune('0'+s/100)) + "xx" }
