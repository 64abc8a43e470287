// Package scenario generates deterministic audit traffic for the detectors:
// a week of benign work by many users across workspaces, and named attack
// injections, one or more per detector, each labelled with the detector,
// rule and severity it should raise. Tests use it, and so can a future
// "caddy audit simulate" command: the same seed always gives the same
// events, with the same ids.
//
// The benign model, per user: a home workspace (some users also work in a
// second one), a stable set of networks (the workspace's office NAT, its
// VPN egress pool, or both for hybrid workers; VPN addresses change daily
// inside the pool's /24), one browser (updated mid-week for some, which
// changes only its version digits) and, for some, a phone. Users work on
// their workspace's working days between about 08:30 and 17:15 local time,
// with a lunch break; a few habitually stay until about 19:30. They log in
// (sometimes mistyping the password once), read items, projects and
// documents, page through lists, search, write, now and then delete one
// record or follow a stale link to a 404, and rarely click the admin menu
// (403) unless they are the workspace administrator.
package scenario

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // workspaces use IANA zones; do not depend on the host's tz database

	"github.com/caddy-audit/caddy-audit/storage"
)

// Options shape the benign traffic. Zero fields take the defaults.
type Options struct {
	// Seed makes the run reproducible. Default 1.
	Seed uint64
	// Start is the first day, midnight UTC; it should be a Monday so the
	// week has its weekend at the end. Default 2025-03-03 (a Monday).
	Start time.Time
	// Days is how many days to generate. Default 7.
	Days int
	// UsersPerWorkspace is the population of each workspace. Default 40.
	UsersPerWorkspace int
	// EventsPerDay is the mean number of requests of an active user-day.
	// Default 100.
	EventsPerDay int
}

func (o Options) withDefaults() Options {
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	}
	if o.Days <= 0 {
		o.Days = 7
	}
	if o.UsersPerWorkspace <= 0 {
		o.UsersPerWorkspace = 40
	}
	if o.EventsPerDay <= 0 {
		o.EventsPerDay = 100
	}
	return o
}

// Workspace is one tenant of the simulated application.
type Workspace struct {
	// Name is the workspace id.
	Name string
	// Timezone is where the workspace works (IANA name).
	Timezone string
	// Start and End are its business hours, "HH:MM".
	Start, End string
	// Days are its working days.
	Days []string
	// Admin is its administrator (also in Users).
	Admin string
	// OfficeNet and VPNNet are the first three octets of its office NAT and
	// VPN egress /24s.
	OfficeNet, VPNNet string
}

// User is one simulated person.
type User struct {
	// Name is the user id, "first@workspace".
	Name string
	// Workspace is the home workspace; Secondary, if set, is another one the
	// user works in regularly.
	Workspace, Secondary string
	// Office and VPN say which of the workspace's networks the user uses.
	Office, VPN bool
	// Agent is the user's browser; Phone, if set, their phone's browser.
	Agent, Phone string
	// Admin is true for the workspace administrator.
	Admin bool
	// Late is true for users who habitually work until about 19:30.
	Late bool
	// rate is the user's mean requests per day.
	rate float64
}

// Attack is one injected attack and what it should raise.
type Attack struct {
	// Name names the injection, such as "credential_stuffing".
	Name string `json:"name"`
	// Detector is the detector that should raise the alert.
	Detector string `json:"detector"`
	// Rule is the rule expected to open it (for the record; the severity is
	// what the mixed run checks).
	Rule string `json:"rule"`
	// Severity is the severity the alert should reach.
	Severity string `json:"severity"`
	// Start is the time of the attack's first event.
	Start time.Time `json:"start"`
	// End is the time of its last event.
	End time.Time `json:"end"`
	// IPs are the attack's client addresses: an alert about one of them
	// within the attack's time belongs to the attack.
	IPs []string `json:"ips"`
	// Users are the accounts the attack uses or targets, likewise.
	Users []string `json:"users"`
	// Events is how many events the attack injected.
	Events int `json:"events"`
}

// Scenario is generated traffic.
type Scenario struct {
	// Options are the options it was generated with, defaults filled in.
	Options Options
	// Workspaces are the simulated tenants.
	Workspaces []Workspace
	// Users are the simulated people.
	Users []User
	// Events are in event-time order, with deterministic ids and sequence
	// numbers.
	Events []storage.Event
	// Attacks are the injections, in the order they were added.
	Attacks []Attack
	// Benign counts the benign events.
	Benign int
}

var workspaceCatalog = []Workspace{
	{Name: "acme", Timezone: "America/New_York", OfficeNet: "198.18.1", VPNNet: "198.18.101"},
	{Name: "globex", Timezone: "Europe/Berlin", OfficeNet: "198.18.2", VPNNet: "198.18.102"},
	{Name: "initech", Timezone: "America/Chicago", OfficeNet: "198.18.3", VPNNet: "198.18.103"},
	{Name: "umbrella", Timezone: "Asia/Tokyo", OfficeNet: "198.18.4", VPNNet: "198.18.104"},
	{Name: "hooli", Timezone: "America/Los_Angeles", OfficeNet: "198.18.5", VPNNet: "198.18.105"},
	{Name: "wayne", Timezone: "Europe/London", OfficeNet: "198.18.6", VPNNet: "198.18.106"},
}

// The first name of every workspace is its administrator.
var firstNames = []string{
	"oscar", "alice", "bob", "carol", "dave", "eve", "mallory", "frank", "grace", "heidi",
	"ivan", "judy", "ken", "laura", "mike", "nina", "olga", "peggy", "quinn", "rupert",
	"sybil", "trent", "ursula", "victor", "wendy", "xavier", "yara", "zoe", "adam", "bella",
	"chris", "diana", "ethan", "fiona", "george", "hannah", "isaac", "julia", "kevin", "lily",
	"marco", "nora", "owen", "paula", "raj", "sara", "tom", "uma", "vera", "will",
}

var browsers = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:123.0) Gecko/20100101 Firefox/123.0",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36 Edg/122.0.2365.66",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_3) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
}

var phones = []string{
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.6261.64 Mobile Safari/537.36",
}

// Benign generates the benign traffic alone.
func Benign(opts Options) *Scenario { return generate(opts, nil) }

// generate builds the population, lets adjust change it, then generates
// everyone's traffic.
func generate(opts Options, adjust func(*Scenario)) *Scenario {
	opts = opts.withDefaults()
	s := &Scenario{Options: opts}
	r := rand.New(rand.NewPCG(opts.Seed, 0x5eed))
	for _, w := range workspaceCatalog {
		w.Start, w.End = "08:00", "18:00"
		w.Days = []string{"mon", "tue", "wed", "thu", "fri"}
		w.Admin = firstNames[0] + "@" + w.Name
		s.Workspaces = append(s.Workspaces, w)
	}
	for wi, w := range s.Workspaces {
		for i := 0; i < opts.UsersPerWorkspace; i++ {
			name := firstNames[i%len(firstNames)]
			if i >= len(firstNames) {
				name += strconv.Itoa(i / len(firstNames))
			}
			u := User{Name: name + "@" + w.Name, Workspace: w.Name, Admin: i == 0}
			switch x := r.Float64(); {
			case x < 0.5:
				u.Office = true
			case x < 0.75:
				u.VPN = true
			default:
				u.Office, u.VPN = true, true
			}
			u.Agent = browsers[r.IntN(len(browsers))]
			if r.Float64() < 0.25 {
				u.Phone = phones[r.IntN(len(phones))]
			}
			u.Late = r.Float64() < 0.08
			if r.Float64() < 0.2 {
				u.Secondary = s.Workspaces[(wi+1+r.IntN(len(s.Workspaces)-1))%len(s.Workspaces)].Name
			}
			u.rate = float64(opts.EventsPerDay) * (0.4 + 1.2*r.Float64())
			s.Users = append(s.Users, u)
		}
	}
	if adjust != nil {
		adjust(s)
	}
	for ui := range s.Users {
		s.Events = append(s.Events, s.userTraffic(ui)...)
	}
	s.Benign = len(s.Events)
	s.finish()
	return s
}

// userTraffic generates one user's week.
func (s *Scenario) userTraffic(ui int) []storage.Event {
	u := &s.Users[ui]
	r := rand.New(rand.NewPCG(s.Options.Seed, uint64(ui)+1))
	w := s.workspace(u.Workspace)
	loc, _ := time.LoadLocation(w.Timezone)
	items := make([]int, 150) // the user's working set of records
	for i := range items {
		items[i] = 1 + r.IntN(20000)
	}
	upgradeDay := -1
	if r.Float64() < 0.3 {
		upgradeDay = 2 + r.IntN(3)
	}
	var out []storage.Event
	for d := 0; d < s.Options.Days; d++ {
		day := s.Options.Start.AddDate(0, 0, d).In(loc)
		date := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, loc)
		if wd := date.Weekday(); wd == time.Saturday || wd == time.Sunday || r.Float64() > 0.95 {
			continue
		}
		at := func(h float64) time.Time { return date.Add(time.Duration(h * float64(time.Hour))) }
		start := clamp(8.5+0.4*r.NormFloat64(), 8.05, 10)
		end := clamp(17.25+0.35*r.NormFloat64(), 16, 17.95)
		if u.Late {
			end = clamp(19.5+0.25*r.NormFloat64(), 19, 19.95)
		}
		lunch := clamp(12+0.3*r.NormFloat64(), 11.5, 13)
		n := int(u.rate * (0.8 + 0.4*r.Float64()))
		times := make([]time.Time, 0, n)
		work := (lunch - start) + (end - lunch - 0.75)
		for range n {
			h := start + r.Float64()*work
			if h >= lunch {
				h += 0.75
			}
			times = append(times, at(h))
		}
		slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })

		ip := s.dayIP(u, w, r)
		agent := u.Agent
		if upgradeDay >= 0 && d >= upgradeDay {
			agent = upgraded(agent)
		}
		base := storage.Event{User: u.Name, UserSource: "header", ClientIP: ip, UserAgent: agent}

		// The day starts with a login; now and then the first try fails.
		login := at(start - 0.01)
		if r.Float64() < 0.07 {
			ev := base
			ev.Time, ev.Method, ev.Path, ev.Status, ev.BytesOut = login.Add(-12*time.Second), "POST", "/login", 401, 64
			out = append(out, ev)
		}
		ev := base
		ev.Time, ev.Method, ev.Path, ev.Status, ev.BytesOut = login, "POST", "/login", 200, 220
		out = append(out, ev)

		for _, t := range times {
			ev := base
			ev.Time = t
			ev.Workspace = u.Workspace
			if u.Secondary != "" && r.Float64() < 0.12 {
				ev.Workspace = u.Secondary
			}
			if u.Phone != "" && r.Float64() < 0.05 {
				ev.UserAgent = u.Phone
			}
			s.request(&ev, u, items, r)
			out = append(out, ev)
		}
	}
	return out
}

// dayIP picks the user's address for the day: one of four office NAT
// addresses, or a VPN address that changes daily inside the pool.
func (s *Scenario) dayIP(u *User, w *Workspace, r *rand.Rand) string {
	office := u.Office && (!u.VPN || r.Float64() < 0.6)
	if office {
		return fmt.Sprintf("%s.%d", w.OfficeNet, 10+r.IntN(4))
	}
	return fmt.Sprintf("%s.%d", w.VPNNet, 20+r.IntN(200))
}

// upgraded bumps the browser's major version: a new build, not a new agent.
func upgraded(agent string) string { return upgrader.Replace(agent) }

var upgrader = strings.NewReplacer("Chrome/122", "Chrome/123", "Firefox/123", "Firefox/124",
	"rv:123", "rv:124", "Version/17.3", "Version/17.4", "Edg/122", "Edg/123")

// request fills one benign request.
func (s *Scenario) request(ev *storage.Event, u *User, items []int, r *rand.Rand) {
	item := func() int {
		if r.Float64() < 0.8 {
			return items[r.IntN(len(items))]
		}
		return 1 + r.IntN(20000)
	}
	kb := func(lo, hi int) int64 { return int64(lo*1024 + r.IntN((hi-lo)*1024)) }
	ev.Method, ev.Status = "GET", 200
	switch x := r.Float64(); {
	case u.Admin && x < 0.05:
		ev.Path = []string{"/admin/users", "/admin/audit", "/admin/settings"}[r.IntN(3)]
		ev.BytesOut = kb(5, 40)
	case u.Admin && x < 0.053:
		ev.Method, ev.Path = "PUT", fmt.Sprintf("/api/users/%s@%s/roles", firstNames[1+r.IntN(20)], u.Workspace)
		ev.BytesOut = kb(1, 2)
	case !u.Admin && x < 0.0015:
		ev.Path, ev.Status, ev.BytesOut = "/admin", 403, 120
	case x < 0.45:
		ev.Path, ev.BytesOut = fmt.Sprintf("/api/items/%d", item()), kb(2, 30)
	case x < 0.60:
		ev.Path, ev.Query, ev.BytesOut = "/api/items", fmt.Sprintf("page=%d", 1+r.IntN(3)), kb(20, 60)
	case x < 0.70:
		ev.Path, ev.BytesOut = fmt.Sprintf("/api/projects/%d", 1+r.IntN(400)), kb(3, 20)
	case x < 0.78:
		ev.Path, ev.BytesOut = fmt.Sprintf("/api/documents/%d", item()), kb(30, 300)
	case x < 0.81:
		ev.Path, ev.Query, ev.BytesOut = "/api/search", "q="+firstNames[r.IntN(len(firstNames))], kb(5, 40)
	case x < 0.84:
		ev.Path, ev.BytesOut = "/api/me", kb(1, 2)
	case x < 0.89:
		ev.Method, ev.Path, ev.Status, ev.BytesOut = "POST", "/api/items", 201, kb(1, 3)
	case x < 0.94:
		ev.Method, ev.Path, ev.BytesOut = "PUT", fmt.Sprintf("/api/items/%d", item()), kb(1, 3)
	case x < 0.96:
		ev.Method, ev.Path, ev.BytesOut = "PATCH", fmt.Sprintf("/api/documents/%d", item()), kb(1, 3)
	case x < 0.97:
		ev.Method, ev.Path, ev.Status, ev.BytesOut = "DELETE", fmt.Sprintf("/api/items/%d", item()), 204, 0
	case x < 0.98:
		ev.Path, ev.Status, ev.BytesOut = fmt.Sprintf("/api/items/%d", 20000+r.IntN(5000)), 404, 90
	case x < 0.99 && u.rate > float64(s.Options.EventsPerDay):
		// Busy users export a report now and then.
		ev.Path, ev.Query, ev.BytesOut = "/api/export", "format=csv", kb(1024, 4096)
	default:
		ev.Path, ev.Query, ev.BytesOut = "/api/items", "page=1", kb(20, 60)
	}
}

func (s *Scenario) workspace(name string) *Workspace {
	for i := range s.Workspaces {
		if s.Workspaces[i].Name == name {
			return &s.Workspaces[i]
		}
	}
	return &s.Workspaces[0]
}

// User returns the named user, or nil.
func (s *Scenario) User(name string) *User {
	for i := range s.Users {
		if s.Users[i].Name == name {
			return &s.Users[i]
		}
	}
	return nil
}

// Admins lists the workspace administrators.
func (s *Scenario) Admins() []string {
	var out []string
	for _, w := range s.Workspaces {
		out = append(out, w.Admin)
	}
	return out
}

// Inject adds an attack's events and records the attack.
func (s *Scenario) Inject(a Attack, events []storage.Event) {
	for i := range events {
		t := events[i].Time
		if a.Start.IsZero() || t.Before(a.Start) {
			a.Start = t
		}
		if t.After(a.End) {
			a.End = t
		}
	}
	a.Events = len(events)
	s.Attacks = append(s.Attacks, a)
	s.Events = append(s.Events, events...)
	s.finish()
}

// finish sorts the events by time and gives them ids, sequence numbers and
// the fields every recorded request has.
func (s *Scenario) finish() {
	slices.SortStableFunc(s.Events, func(a, b storage.Event) int { return a.Time.Compare(b.Time) })
	for i := range s.Events {
		ev := &s.Events[i]
		ev.Time = ev.Time.UTC().Truncate(time.Millisecond)
		ev.Seq = uint64(i + 1)
		ev.ID = ulid(ev.Time, uint64(i+1))
		ev.RequestID = "req-" + ev.ID[16:]
		ev.Kind = storage.KindHTTP
		ev.Stage = storage.StageResponseComplete
		ev.Level = "metadata"
		ev.Scheme, ev.Host, ev.Proto = "https", "app.example.com", "HTTP/2.0"
		ev.Outcome = storage.Outcome(ev.Status)
		if ev.DurationNS == 0 {
			// Plausible latency, derived from the id so it is stable.
			ev.DurationNS = int64(5+ev.Seq*7919%120) * int64(time.Millisecond)
		}
		if ev.ClientPort == 0 {
			ev.ClientPort = 20000 + int(ev.Seq*104729%40000)
		}
	}
}

// ulid is an id from the time and a counter instead of random bits, so
// ids are deterministic and still sort by time.
func ulid(t time.Time, n uint64) string {
	var tail [10]byte
	binary.BigEndian.PutUint64(tail[2:], n)
	return storage.IDWithTail(t, tail)
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
