package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/caddy-audit/caddy-audit/detectors/scenario"
	"github.com/caddy-audit/caddy-audit/storage"
)

func init() { addAuditCommand(simulateCommand) }

// simAttacks are the attack scenarios simulate knows, in the order it
// runs them. "exfiltration" is also accepted for data_exfiltration. The
// detector each should trip is the one the generator names.
var simAttacks = []string{
	scenario.AttackBruteForce,
	scenario.AttackCredentialStuffing,
	scenario.AttackProbing,
	scenario.AttackExfiltration,
	scenario.AttackPrivilegeEscalate,
	scenario.AttackMassDeletion,
	scenario.AttackUnusualAccess,
	scenario.AttackUnauthenticatedAPI,
}

// defaultSimScenarios is every attack but unauthenticated_api, which
// needs a deployment whose routes say /api is authenticated (the default
// detector config does; the stand-in app does not care).
const defaultSimScenarios = "brute_force,credential_stuffing,probing,exfiltration,privilege_escalation,mass_deletion,unusual_access"

func simulateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "simulate --target URL [--seed N] [--users N] [--workspaces N] [--requests N | --duration D] [--scenarios a,b,...]",
		Short: "Send deterministic benign traffic and named attacks through the sidecar",
		Long: `
Generates traffic with the detectors' own scenario generator
(detectors/scenario): benign users spread over workspaces, each with a
home network, a browser and working habits, then the named attacks, and
sends it as HTTP requests to --target: the sidecar in front of the
stand-in app of Caddyfile.example. The same --seed sends the same
requests.

Identity travels the way Caddyfile.example reads it: X-User-ID,
X-Workspace-ID, and X-User-Role: admin where a request must reach the
admin area (an administrator, or an attack that escalates). The stand-in
app has no writes, so benign writes are sent as reads of the same record.

Simulated client addresses matter to the per-address detectors (brute
force, probing). When the target is on loopback and the system allows it
(Linux), each simulated address is sent from its own loopback address
(198.18.1.10 from 127.18.1.10, and so on); otherwise every request comes
from this host, and X-Forwarded-For carries the simulated address for
deployments that trust this host as a proxy (trusted_proxies).

Attacks run after the benign traffic, one after another, in the order of
--scenarios: brute_force, credential_stuffing, probing, exfiltration
(data_exfiltration), privilege_escalation, mass_deletion, unusual_access,
unauthenticated_api. unusual_access fires only for users with history:
by default 50 events over 3 days, so in a fresh demo it stays quiet unless
the detector config lowers unusual_access.min_events and min_days.

A summary counts requests by scenario and status. Nothing here needs an
API key: see the alerts afterwards with caddy audit alerts list.`,
		Example: `  caddy audit simulate --target http://127.0.0.1:8080
  caddy audit simulate --target http://127.0.0.1:8080 --seed 7 --users 200 --workspaces 6 --requests 20000
  caddy audit simulate --target http://127.0.0.1:8080 --scenarios brute_force,probing --requests 0`,
		Args: cobra.NoArgs,
		RunE: runSimulate,
	}
	f := cmd.Flags()
	f.String("target", "", "the sidecar's address, such as http://127.0.0.1:8080 (required)")
	f.Uint64("seed", 1, "random seed: the same seed sends the same requests")
	f.Int("users", 60, "benign users in all")
	f.Int("workspaces", 3, "workspaces the users belong to, 1-6")
	f.Int("requests", 3000, "benign requests to send (0 for attacks only)")
	f.Duration("duration", 0, "send benign traffic for this long instead, repeating it as needed")
	f.String("scenarios", defaultSimScenarios, "attacks to run, comma-separated, or none")
	f.Int("concurrency", 8, "requests in flight at once (benign traffic; attacks run in order)")
	f.Float64("rate", 0, "at most this many requests per second (0: as fast as the target answers)")
	f.Bool("json", false, "print the summary as JSON")
	_ = cmd.MarkFlagRequired("target")
	return cmd
}

// simRequest is one request to send and what the stand-in app answers.
type simRequest struct {
	scenario string
	method   string
	path     string // with the query, if any
	header   http.Header
	body     string
	ip       string // the simulated client address
	want     int    // the stand-in app's status for it
}

// simPlan is everything simulate sends.
type simPlan struct {
	benign  []simRequest
	attacks []simAttack
}

type simAttack struct {
	name, detector string
	victim         string
	requests       []simRequest
}

type simOptions struct {
	seed                      uint64
	users, workspaces, benign int
	scenarios                 []string
}

// planSimulation builds the requests from the scenario generator.
func planSimulation(o simOptions) (*simPlan, error) {
	if o.workspaces < 1 || o.workspaces > 6 {
		return nil, errors.New("--workspaces must be between 1 and 6 (the generator has six tenants)")
	}
	if o.users < o.workspaces {
		return nil, fmt.Errorf("--users must be at least --workspaces (%d)", o.workspaces)
	}
	perWS := (o.users + o.workspaces - 1) / o.workspaces
	perWS = max(perWS, 2) // an administrator and at least one other user
	const days = 5        // the working week
	opts := scenario.Options{Seed: o.seed, Days: 7, UsersPerWorkspace: perWS,
		EventsPerDay: max(1, o.benign/(perWS*o.workspaces*days))}
	base := scenario.Benign(opts)
	active := map[string]bool{}
	for _, w := range base.Workspaces[:o.workspaces] {
		active[w.Name] = true
	}
	users := map[string]*scenario.User{}
	for i := range base.Users {
		if u := &base.Users[i]; active[u.Workspace] {
			users[u.Name] = u
		}
	}
	plan := &simPlan{}
	sent := map[string]int{}
	for _, ev := range base.Events {
		if len(plan.benign) >= o.benign {
			break
		}
		u := users[ev.User]
		if u == nil || (ev.Workspace != "" && !active[ev.Workspace]) {
			continue
		}
		plan.benign = append(plan.benign, simRequestFor(&ev, "benign", u.Admin))
		sent[ev.User]++
	}

	// Victims are ordinary users with the most history in this run, so
	// the baselines they need are there; each attack gets its own.
	var candidates []string
	for name, u := range users {
		if !u.Admin {
			candidates = append(candidates, name)
		}
	}
	slices.SortFunc(candidates, func(a, b string) int {
		if sent[a] != sent[b] {
			return sent[b] - sent[a]
		}
		return strings.Compare(a, b)
	})
	victim := func(i int) string { return candidates[i%len(candidates)] }
	at := opts.Start.AddDate(0, 0, 3).Add(14 * time.Hour)

	for i, name := range o.scenarios {
		// Each attack is injected into a scenario of its own that shares
		// the population, so its events are only the attack's.
		s := &scenario.Scenario{Options: base.Options, Workspaces: base.Workspaces, Users: base.Users}
		v := ""
		switch name {
		case scenario.AttackBruteForce:
			v = victim(i)
			s.InjectBruteForce(at, "203.0.113.7", v, 40)
		case scenario.AttackCredentialStuffing:
			s.InjectCredentialStuffing(at, "198.51.100.23", 25)
		case scenario.AttackProbing:
			s.InjectProbing(at, "192.0.2.66")
		case scenario.AttackExfiltration:
			v = victim(i)
			s.InjectExfiltration(at, v, 3001, 120)
		case scenario.AttackPrivilegeEscalate:
			v = victim(i)
			s.InjectPrivilegeEscalation(at, v)
		case scenario.AttackMassDeletion:
			v = victim(i)
			s.InjectMassDeletion(at, v, 120)
		case scenario.AttackUnusualAccess:
			v = victim(i)
			other := base.Workspaces[(slices.IndexFunc(base.Workspaces, func(w scenario.Workspace) bool { return w.Name == users[v].Workspace })+1)%len(base.Workspaces)]
			s.InjectUnusualAccess(at, v, "185.220.101.4", other.Name)
		case scenario.AttackUnauthenticatedAPI:
			s.InjectUnauthenticatedAPI(at, "203.0.113.50", 30)
		default:
			return nil, fmt.Errorf("--scenarios: unknown scenario %q; known: %s", name, strings.Join(simAttacks, ", "))
		}
		a := simAttack{name: name, detector: s.Attacks[0].Detector, victim: v}
		for _, ev := range s.Events {
			a.requests = append(a.requests, simRequestFor(&ev, name, false))
		}
		plan.attacks = append(plan.attacks, a)
	}
	return plan, nil
}

// parseScenarios reads --scenarios: names, "exfiltration" as an alias,
// "none" or "" for no attack, "all" for every one.
func parseScenarios(v string) ([]string, error) {
	v = strings.TrimSpace(v)
	switch v {
	case "", "none":
		return nil, nil
	case "all":
		return slices.Clone(simAttacks), nil
	}
	var out []string
	for _, name := range strings.Split(v, ",") {
		name = strings.TrimSpace(name)
		if name == "exfiltration" {
			name = scenario.AttackExfiltration
		}
		if !slices.Contains(simAttacks, name) {
			return nil, fmt.Errorf("--scenarios: unknown scenario %q; known: %s (or all, none)", name, strings.Join(simAttacks, ", "))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// simRequestFor turns a generated event into a request the stand-in app
// of Caddyfile.example understands, and predicts its answer. The app
// knows POST /login, GET and DELETE /api/items[/{id}] and /admin; the
// generator's other resources become items, writes become reads, and
// role changes go to the admin area.
func simRequestFor(ev *storage.Event, scen string, admin bool) simRequest {
	r := simRequest{scenario: scen, method: ev.Method, path: ev.Path, header: http.Header{}, ip: ev.ClientIP}
	if ev.User != "" {
		r.header.Set("X-User-ID", ev.User)
	}
	if ev.Workspace != "" {
		r.header.Set("X-Workspace-ID", ev.Workspace)
	}
	if ev.UserAgent != "" {
		r.header.Set("User-Agent", ev.UserAgent)
	}
	ok := ev.Status < 400
	resource, id := splitResource(ev.Path)
	switch {
	case ev.Path == "/login":
		password := "demo"
		if !ok {
			password = "not-the-password"
		}
		r.method = http.MethodPost
		r.body = url.Values{"username": {ev.User}, "password": {password}}.Encode()
		r.header.Set("Content-Type", "application/x-www-form-urlencoded")
	case strings.HasPrefix(ev.Path, "/api/users/") && strings.HasSuffix(ev.Path, "/roles"):
		// A role change: the stand-in app's admin area takes any method.
		r.path = "/admin" + strings.TrimPrefix(ev.Path, "/api")
		if ok {
			r.header.Set("X-User-Role", "admin")
		}
	case ev.Path == "/admin" || strings.HasPrefix(ev.Path, "/admin/"):
		// Administrators hold the role; a generated 2xx by anyone else is
		// an escalation, which the role header is how it happens here.
		if ok || admin {
			r.header.Set("X-User-Role", "admin")
		}
	case !ok:
		// Stale links, probes: paths the app does not know.
	case ev.Method == http.MethodDelete && id != "":
		r.path = "/api/items/" + id
	case resource != "" && id != "":
		r.method, r.path = http.MethodGet, "/api/items/"+id
	case strings.HasPrefix(ev.Path, "/api/"):
		r.method, r.path = http.MethodGet, "/api/items"
	}
	if ev.Query != "" && r.method == http.MethodGet && ok {
		r.path += "?" + ev.Query
	}
	r.want = standInStatus(r)
	return r
}

// splitResource splits /api/<resource>/<id> into its parts.
func splitResource(p string) (resource, id string) {
	rest, ok := strings.CutPrefix(p, "/api/")
	if !ok {
		return "", ""
	}
	resource, id, _ = strings.Cut(rest, "/")
	if strings.Contains(id, "/") {
		return "", ""
	}
	return resource, id
}

// standInStatus is the answer of Caddyfile.example's stand-in app (its
// contract is in the comment above its site block).
func standInStatus(r simRequest) int {
	path, _, _ := strings.Cut(r.path, "?")
	switch {
	case r.method == http.MethodPost && path == "/login":
		if v, _ := url.ParseQuery(r.body); v.Get("password") == "demo" {
			return http.StatusOK
		}
		return http.StatusUnauthorized
	case path == "/admin" || strings.HasPrefix(path, "/admin/"):
		if r.header.Get("X-User-Role") == "admin" {
			return http.StatusOK
		}
		return http.StatusForbidden
	case r.method == http.MethodGet && path == "/api/items":
		return http.StatusOK
	}
	if _, id := splitResource(path); id != "" && strings.HasPrefix(path, "/api/items/") && validItemID(id) {
		switch r.method {
		case http.MethodGet:
			return http.StatusOK
		case http.MethodDelete:
			return http.StatusNoContent
		}
	}
	return http.StatusNotFound
}

func validItemID(id string) bool {
	for _, c := range id {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("._~-", c)) {
			return false
		}
	}
	return id != ""
}

// simSender sends requests, each from its simulated address when the
// system lets it bind loopback addresses.
type simSender struct {
	target *url.URL
	bind   bool

	mu      sync.Mutex
	clients map[string]*http.Client
}

func newSimSender(target *url.URL) *simSender {
	s := &simSender{target: target, clients: make(map[string]*http.Client)}
	s.bind = canBindLoopback(target)
	return s
}

// canBindLoopback reports whether requests to target can come from
// 127.x.y.z addresses of their own: the target is on loopback, and the
// system routes all of 127/8 there (Linux does, macOS does not).
func canBindLoopback(target *url.URL) bool {
	addrs, err := net.LookupIP(target.Hostname())
	if err != nil || len(addrs) == 0 || !addrs[0].IsLoopback() || addrs[0].To4() == nil {
		return false
	}
	conn, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 18, 0, 1)}, Timeout: 2 * time.Second}).
		Dial("tcp", hostPort(target))
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// loopbackFor maps a simulated IPv4 address a.b.c.d to 127.b.c.d, which
// keeps the /24 networks the detectors compare apart.
func loopbackFor(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return ""
	}
	b := a.As4()
	if b[1] == 0 && b[2] == 0 && b[3] <= 1 {
		return ""
	}
	return fmt.Sprintf("127.%d.%d.%d", b[1], b[2], b[3])
}

func (s *simSender) client(ip string) *http.Client {
	src := ""
	if s.bind {
		src = loopbackFor(ip)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[src]; ok {
		return c
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	// A transport per source address: a shared one would reuse a
	// connection from one address for another's request.
	c := &http.Client{
		Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4, DisableCompression: true},
		Timeout:   30 * time.Second,
		// The stand-in app does not redirect; a redirect would be
		// someone else's app, and is reported as its status.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	s.clients[src] = c
	return c
}

func (s *simSender) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.clients {
		c.CloseIdleConnections()
	}
}

// send sends one request and returns its status.
func (s *simSender) send(ctx context.Context, r simRequest) (int, error) {
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, s.target.String()+r.path, body)
	if err != nil {
		return 0, err
	}
	req.Header = r.header.Clone()
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "caddy-audit-simulate")
	}
	if r.ip != "" {
		req.Header.Set("X-Forwarded-For", r.ip)
	}
	resp, err := s.client(r.ip).Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// simStats counts what was sent, by scenario and status.
type simStats struct {
	mu         sync.Mutex
	byScenario map[string]*simCounts
	order      []string
}

type simCounts struct {
	Scenario string `json:"scenario"`
	// Detector is the detector the attack should trip ("" for benign).
	Detector string `json:"detector,omitempty"`
	// Victim is the user the attack targets, if any.
	Victim     string         `json:"victim,omitempty"`
	Requests   int            `json:"requests"`
	ByStatus   map[string]int `json:"by_status"`
	Errors     int            `json:"errors"`
	Unexpected int            `json:"unexpected"`
	FirstError string         `json:"first_error,omitempty"`
}

func (st *simStats) scenario(name, detector, victim string) *simCounts {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.byScenario == nil {
		st.byScenario = make(map[string]*simCounts)
	}
	c, ok := st.byScenario[name]
	if !ok {
		c = &simCounts{Scenario: name, Detector: detector, Victim: victim, ByStatus: map[string]int{}}
		st.byScenario[name] = c
		st.order = append(st.order, name)
	}
	return c
}

func (st *simStats) add(r simRequest, status int, err error) {
	c := st.scenario(r.scenario, "", "")
	st.mu.Lock()
	defer st.mu.Unlock()
	c.Requests++
	if err != nil {
		c.Errors++
		if c.FirstError == "" {
			c.FirstError = err.Error()
		}
		return
	}
	c.ByStatus[strconv.Itoa(status)]++
	if status != r.want {
		c.Unexpected++
	}
}

// simSummary is what simulate prints.
type simSummary struct {
	Target        string       `json:"target"`
	Seed          uint64       `json:"seed"`
	SourceAddrs   string       `json:"source_addresses"`
	DurationMS    int64        `json:"duration_ms"`
	Requests      int          `json:"requests"`
	Scenarios     []*simCounts `json:"scenarios"`
	Interrupted   bool         `json:"interrupted,omitempty"`
	StatusesMatch bool         `json:"statuses_match"`
}

func runSimulate(cmd *cobra.Command, _ []string) error {
	f := cmd.Flags()
	target, _ := f.GetString("target")
	u, err := url.Parse(strings.TrimRight(target, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--target %q: expects the sidecar's URL, such as http://127.0.0.1:8080", target)
	}
	var o simOptions
	o.seed, _ = f.GetUint64("seed")
	o.users, _ = f.GetInt("users")
	o.workspaces, _ = f.GetInt("workspaces")
	o.benign, _ = f.GetInt("requests")
	duration, _ := f.GetDuration("duration")
	concurrency, _ := f.GetInt("concurrency")
	rate, _ := f.GetFloat64("rate")
	asJSON, _ := f.GetBool("json")
	scen, _ := f.GetString("scenarios")
	if o.scenarios, err = parseScenarios(scen); err != nil {
		return err
	}
	if o.benign < 0 || concurrency < 1 || rate < 0 || duration < 0 {
		return errors.New("--requests, --duration and --rate must not be negative, --concurrency at least 1")
	}
	if duration > 0 && o.benign == 0 {
		return errors.New("--duration repeats the benign traffic: give --requests more than 0")
	}
	plan, err := planSimulation(o)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sender := newSimSender(u)
	defer sender.close()
	sum := runPlan(ctx, cmd, sender, plan, duration, concurrency, rate)
	sum.Target, sum.Seed = u.String(), o.seed
	out := cmd.OutOrStdout()
	if asJSON {
		return printJSON(out, sum)
	}
	printSimSummary(out, sum)
	return nil
}

// runPlan sends the benign traffic with concurrency workers, then each
// attack in order, one request at a time.
func runPlan(ctx context.Context, cmd *cobra.Command, sender *simSender, plan *simPlan, duration time.Duration, concurrency int, rate float64) simSummary {
	var st simStats
	st.scenario("benign", "", "")
	for _, a := range plan.attacks {
		st.scenario(a.name, a.detector, a.victim)
	}
	total := int64(len(plan.benign))
	for _, a := range plan.attacks {
		total += int64(len(a.requests))
	}
	if duration > 0 {
		total = 0 // unknown: the benign traffic repeats until the time is up
	}
	bar := newProgress(cmd, "simulating", "requests", total)
	var pace <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		pace = t.C
	}
	wait := func() bool {
		if pace == nil {
			return ctx.Err() == nil
		}
		select {
		case <-pace:
			return true
		case <-ctx.Done():
			return false
		}
	}
	sendOne := func(r simRequest) {
		status, err := sender.send(ctx, r)
		if ctx.Err() != nil {
			return // interrupted: not a result
		}
		st.add(r, status, err)
		bar.add(1)
	}

	start := time.Now()
	if len(plan.benign) > 0 {
		work := make(chan simRequest)
		var wg sync.WaitGroup
		for range concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range work {
					sendOne(r)
				}
			}()
		}
	feed:
		for i := 0; ; i++ {
			if i == len(plan.benign) {
				if duration == 0 || time.Since(start) >= duration {
					break
				}
				i = 0
			}
			if duration > 0 && time.Since(start) >= duration {
				break
			}
			if !wait() {
				break
			}
			select {
			case work <- plan.benign[i]:
			case <-ctx.Done():
				break feed
			}
		}
		close(work)
		wg.Wait()
	}
	for _, a := range plan.attacks {
		for _, r := range a.requests {
			if !wait() {
				break
			}
			sendOne(r)
		}
	}
	bar.finish()

	sum := simSummary{DurationMS: time.Since(start).Milliseconds(), Interrupted: ctx.Err() != nil, StatusesMatch: true,
		SourceAddrs: "this host's address for every request (X-Forwarded-For carries the simulated one)"}
	if sender.bind {
		sum.SourceAddrs = "one loopback address per simulated address (127.b.c.d for a.b.c.d)"
	}
	for _, name := range st.order {
		c := st.byScenario[name]
		sum.Scenarios = append(sum.Scenarios, c)
		sum.Requests += c.Requests
		if c.Unexpected > 0 || c.Errors > 0 {
			sum.StatusesMatch = false
		}
	}
	return sum
}

func printSimSummary(w io.Writer, s simSummary) {
	fmt.Fprintf(w, "sent %d requests to %s in %s (seed %d)\n", s.Requests, s.Target,
		(time.Duration(s.DurationMS) * time.Millisecond).Round(time.Millisecond), s.Seed)
	fmt.Fprintf(w, "client addresses: %s\n\n", s.SourceAddrs)
	t := newTable(w, "SCENARIO", "REQUESTS", "STATUSES", "ERRORS", "EXPECTED ALERT")
	for _, c := range s.Scenarios {
		var parts []string
		for _, code := range slices.Sorted(maps.Keys(c.ByStatus)) {
			parts = append(parts, fmt.Sprintf("%s×%d", code, c.ByStatus[code]))
		}
		expect := c.Detector
		if c.Victim != "" {
			expect += " (" + c.Victim + ")"
		}
		t.row(c.Scenario, strconv.Itoa(c.Requests), strings.Join(parts, " "), strconv.Itoa(c.Errors), expect)
	}
	t.flush()
	for _, c := range s.Scenarios {
		if c.FirstError != "" {
			fmt.Fprintf(w, "\n%s: %d requests failed, the first with: %s\n", c.Scenario, c.Errors, cleanText(c.FirstError))
		}
		if c.Unexpected > 0 {
			fmt.Fprintf(w, "\n%s: %d answers differ from the stand-in app of Caddyfile.example; is --target that sidecar?\n", c.Scenario, c.Unexpected)
		}
	}
	if s.Interrupted {
		fmt.Fprintln(w, "\ninterrupted: the counts are what was sent")
	}
	fmt.Fprintln(w, "\nThe detectors judge each committed event within about a second. Next:")
	fmt.Fprintln(w, "  caddy audit alerts list")
	fmt.Fprintln(w, "  caddy audit report score")
}
