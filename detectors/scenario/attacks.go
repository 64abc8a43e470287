package scenario

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// Attack names, one or more per detector.
const (
	AttackBruteForce         = "brute_force"
	AttackCredentialStuffing = "credential_stuffing"
	AttackProbing            = "probing"
	AttackUnauthenticatedAPI = "unauthenticated_api"
	AttackExfiltration       = "data_exfiltration"
	AttackPrivilegeEscalate  = "privilege_escalation"
	AttackMassDeletion       = "mass_deletion"
	AttackUnusualAccess      = "unusual_access"
)

// Tool user agents the attacks use.
const (
	AgentScript  = "python-requests/2.31.0"
	AgentScanner = "Mozilla/5.0 zgrab/0.x"
)

// The victims of Mixed, one per workspace.
const (
	VictimBruteForce   = "alice@acme"
	VictimExfiltration = "eve@globex"
	VictimPrivilege    = "mallory@initech"
	VictimMassDeletion = "dave@hooli"
	VictimUnusual      = "carol@wayne"
)

// Mixed generates the benign traffic and injects one instance of every
// attack, from Thursday on, after three working days of baseline. It needs
// at least 7 users per workspace (the victims) and 5 days.
func Mixed(opts Options) *Scenario {
	opts = opts.withDefaults()
	opts.UsersPerWorkspace = max(opts.UsersPerWorkspace, 7)
	opts.Days = max(opts.Days, 5)
	s := generate(opts, func(s *Scenario) {
		// The victims are ordinary users: in one workspace, not late
		// workers, so what the attacks do is what makes them stand out.
		for _, v := range []string{VictimBruteForce, VictimExfiltration, VictimPrivilege, VictimMassDeletion, VictimUnusual} {
			if u := s.User(v); u != nil {
				u.Secondary, u.Late = "", false
			}
		}
	})
	day := func(d int, h, m int) time.Time {
		return opts.Start.AddDate(0, 0, d).Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
	}
	// Thursday, UTC times chosen to fall in the victims' working hours.
	s.InjectProbing(day(3, 2, 14), "192.0.2.66")
	s.InjectExfiltration(day(3, 10, 5), VictimExfiltration, 3001, 700)     // 11:05 in Berlin
	s.InjectBruteForce(day(3, 15, 2), "203.0.113.7", VictimBruteForce, 40) // 10:02 in New York
	s.InjectCredentialStuffing(day(3, 16, 20), "198.51.100.23", 25)
	// Friday.
	s.InjectUnusualAccess(day(4, 3, 10), VictimUnusual, "185.220.101.4", "umbrella") // 03:10 in London
	s.InjectUnauthenticatedAPI(day(4, 12, 0), "203.0.113.50", 30)
	s.InjectPrivilegeEscalation(day(4, 15, 30), VictimPrivilege)  // 09:30 in Chicago
	s.InjectMassDeletion(day(4, 19, 10), VictimMassDeletion, 120) // 11:10 in Los Angeles
	return s
}

func (s *Scenario) rng(salt uint64) *rand.Rand {
	return rand.New(rand.NewPCG(s.Options.Seed^0xa77ac4, salt))
}

// home returns the address and agent the user normally has.
func (s *Scenario) home(user string) (ip, agent, workspace string) {
	u := s.User(user)
	if u == nil {
		return "198.18.200.1", browsers[0], ""
	}
	w := s.workspace(u.Workspace)
	if u.Office {
		return w.OfficeNet + ".10", u.Agent, u.Workspace
	}
	return w.VPNNet + ".77", u.Agent, u.Workspace
}

// InjectBruteForce: a script guesses one user's password from one address,
// two tries a second, then gets in.
func (s *Scenario) InjectBruteForce(at time.Time, ip, user string, failures int) {
	var evs []storage.Event
	t := at
	for range failures {
		evs = append(evs, storage.Event{Time: t, Method: "POST", Path: "/login", Status: 401, ClientIP: ip,
			UserAgent: AgentScript, User: user, UserSource: "header", BytesOut: 64})
		t = t.Add(500 * time.Millisecond)
	}
	evs = append(evs, storage.Event{Time: t.Add(time.Second), Method: "POST", Path: "/login", Status: 200, ClientIP: ip,
		UserAgent: AgentScript, User: user, UserSource: "header", BytesOut: 220})
	s.Inject(Attack{Name: AttackBruteForce, Detector: "brute_force", Rule: "login_burst", Severity: "critical",
		IPs: []string{ip}, Users: []string{user}}, evs)
}

// InjectCredentialStuffing: one address tries a leaked list of 25
// usernames, one attempt each about every 12 seconds, slow enough never to
// fill the burst bucket.
func (s *Scenario) InjectCredentialStuffing(at time.Time, ip string, n int) {
	r := s.rng(2)
	var users []string
	for i := 0; i < n; i++ {
		var u string
		switch {
		case i%3 == 0 && i/3 < len(s.Users):
			u = s.Users[(i*37)%len(s.Users)].Name // some accounts exist
		default:
			u = fmt.Sprintf("%s%d@mail.example", firstNames[(i*7)%len(firstNames)], 1970+i)
		}
		users = append(users, u)
	}
	var evs []storage.Event
	t := at
	for _, u := range users {
		evs = append(evs, storage.Event{Time: t, Method: "POST", Path: "/login", Status: 401, ClientIP: ip,
			UserAgent: browsers[0], User: u, UserSource: "header", BytesOut: 64})
		t = t.Add(12*time.Second + time.Duration(r.IntN(2000))*time.Millisecond)
	}
	s.Inject(Attack{Name: AttackCredentialStuffing, Detector: "brute_force", Rule: "credential_stuffing", Severity: "high",
		IPs: []string{ip}, Users: users}, evs)
}

var probePaths = []struct {
	path   string
	status int
}{
	{"/.env", 404}, {"/.git/config", 403}, {"/.aws/credentials", 404}, {"/config.php", 404},
	{"/backup.zip", 404}, {"/.git/HEAD", 403}, {"/wp-config.php.bak", 404}, {"/.htpasswd", 403},
	{"/server-status", 403}, {"/db.sql", 404}, {"/phpinfo.php", 404}, {"/.DS_Store", 404},
	{"/wp-admin/", 404}, {"/wp-login.php", 404}, {"/phpmyadmin/", 404}, {"/administrator/", 404},
	{"/manager/html", 404}, {"/adminer.php", 404}, {"/actuator/env", 404}, {"/console", 404},
	{"/admin/", 403}, {"/old", 404}, {"/test", 404}, {"/tmp", 404}, {"/dev", 404}, {"/staging", 404},
	{"/cgi-bin/test.cgi", 404}, {"/shell.php", 404}, {"/xmlrpc.php", 404}, {"/api/swagger.json", 404},
	{"/graphql", 400}, {"/login.asp", 404}, {"/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", 404},
	{"/.svn/entries", 404}, {"/id_rsa", 404}, {"/debug", 404}, {"/api/v1/debug", 404}, {"/info.php", 404},
	{"/solr/admin/", 404}, {"/jenkins/login", 404},
}

// InjectProbing: a scanner walks a wordlist of secrets, admin interfaces and
// common paths, eight requests a second.
func (s *Scenario) InjectProbing(at time.Time, ip string) {
	var evs []storage.Event
	t := at
	for round := 0; round < 2; round++ {
		for _, p := range probePaths {
			path := p.path
			if round == 1 {
				path += ".bak"
			}
			evs = append(evs, storage.Event{Time: t, Method: "GET", Path: path, Status: p.status, ClientIP: ip,
				UserAgent: AgentScanner, BytesOut: 150})
			t = t.Add(125 * time.Millisecond)
		}
	}
	s.Inject(Attack{Name: AttackProbing, Detector: "unauthorized_access", Rule: "sensitive_file_probing", Severity: "high",
		IPs: []string{ip}}, evs)
}

// InjectUnauthenticatedAPI: a client without any identity reads records
// from an API that should require one, once a second.
func (s *Scenario) InjectUnauthenticatedAPI(at time.Time, ip string, n int) {
	r := s.rng(4)
	var evs []storage.Event
	for i := range n {
		evs = append(evs, storage.Event{Time: at.Add(time.Duration(i) * time.Second), Method: "GET",
			Path: fmt.Sprintf("/api/items/%d", 1+r.IntN(20000)), Status: 200, ClientIP: ip,
			UserAgent: "curl/8.5.0", BytesOut: int64(2048 + r.IntN(8192))})
	}
	s.Inject(Attack{Name: AttackUnauthenticatedAPI, Detector: "unauthorized_access", Rule: "unauthenticated_api", Severity: "high",
		IPs: []string{ip}}, evs)
}

// InjectExfiltration: a user (or a script with their session) fetches
// documents by consecutive id, three a second, from their usual address.
func (s *Scenario) InjectExfiltration(at time.Time, user string, firstID, n int) {
	r := s.rng(5)
	ip, agent, ws := s.home(user)
	var evs []storage.Event
	for i := range n {
		evs = append(evs, storage.Event{Time: at.Add(time.Duration(i) * 333 * time.Millisecond), Method: "GET",
			Path: fmt.Sprintf("/api/documents/%d", firstID+i), Status: 200, ClientIP: ip, UserAgent: agent,
			User: user, UserSource: "header", Workspace: ws, BytesOut: int64(60*1024 + r.IntN(60*1024))})
	}
	s.Inject(Attack{Name: AttackExfiltration, Detector: "data_exfiltration", Rule: "enumeration", Severity: "high",
		IPs: []string{ip}, Users: []string{user}}, evs)
}

// InjectPrivilegeEscalation: a regular user is denied the admin area, gets
// in by spoofing the role header, and grants themselves a role.
func (s *Scenario) InjectPrivilegeEscalation(at time.Time, user string) {
	ip, agent, ws := s.home(user)
	ev := func(d time.Duration, method, path string, status int) storage.Event {
		return storage.Event{Time: at.Add(d), Method: method, Path: path, Status: status, ClientIP: ip, UserAgent: agent,
			User: user, UserSource: "header", Workspace: ws, BytesOut: 900}
	}
	evs := []storage.Event{
		ev(0, "GET", "/admin/users", 403),
		ev(40*time.Second, "GET", "/admin/users", 200),
		ev(55*time.Second, "GET", "/admin/settings", 200),
		ev(80*time.Second, "PUT", "/api/users/"+user+"/roles", 200),
		ev(95*time.Second, "GET", "/admin/audit", 200),
	}
	s.Inject(Attack{Name: AttackPrivilegeEscalate, Detector: "privilege_escalation", Rule: "role_change", Severity: "critical",
		IPs: []string{ip}, Users: []string{user}}, evs)
}

// InjectMassDeletion: a user deletes records of three kinds, one every 1.5
// seconds.
func (s *Scenario) InjectMassDeletion(at time.Time, user string, n int) {
	r := s.rng(7)
	ip, agent, ws := s.home(user)
	kinds := []string{"items", "projects", "documents"}
	var evs []storage.Event
	for i := range n {
		evs = append(evs, storage.Event{Time: at.Add(time.Duration(i) * 1500 * time.Millisecond), Method: "DELETE",
			Path: fmt.Sprintf("/api/%s/%d", kinds[i%3], 1+r.IntN(20000)), Status: 204, ClientIP: ip, UserAgent: agent,
			User: user, UserSource: "header", Workspace: ws})
	}
	s.Inject(Attack{Name: AttackMassDeletion, Detector: "mass_deletion", Rule: "bulk_delete", Severity: "critical",
		IPs: []string{ip}, Users: []string{user}}, evs)
}

// InjectUnusualAccess: someone with a user's credentials logs in at night
// from an unknown address with a script, and reads another workspace.
func (s *Scenario) InjectUnusualAccess(at time.Time, user, ip, workspace string) {
	r := s.rng(8)
	evs := []storage.Event{{Time: at, Method: "POST", Path: "/login", Status: 200, ClientIP: ip, UserAgent: AgentScript,
		User: user, UserSource: "header", BytesOut: 220}}
	for i := 1; i <= 15; i++ {
		evs = append(evs, storage.Event{Time: at.Add(time.Duration(i) * 20 * time.Second), Method: "GET",
			Path: fmt.Sprintf("/api/items/%d", 1+r.IntN(20000)), Status: 200, ClientIP: ip, UserAgent: AgentScript,
			User: user, UserSource: "header", Workspace: workspace, BytesOut: int64(4096 + r.IntN(8192))})
	}
	s.Inject(Attack{Name: AttackUnusualAccess, Detector: "unusual_access", Rule: "new_ip", Severity: "high",
		IPs: []string{ip}, Users: []string{user}}, evs)
}
