package detectors

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// Engine runs the six detectors over a stream of events in event time. It
// keeps per-key state (per client IP, user or principal) in bounded LRU
// tables (see Limits), suppresses repeats into the open alert, and returns
// alerts as updates.
//
// An Engine is not safe for concurrent use: Process, Flush, Release and
// Stats must be called from one goroutine (the integration runs one
// detector worker per database). Nothing in it reads the wall clock, so
// replaying the same events into a fresh Engine yields the same updates.
type Engine struct {
	cfg     Config
	global  *settings
	ws      map[string]*settings
	routes  compiledRoutes
	updateN int64 // UpdateInterval in ns

	now int64  // watermark: the latest event time seen, Unix ns
	seq uint64 // events judged so far; tags which event an alert counted

	alerts  *table[alertKey, openAlert]
	byID    map[string]alertKey
	out     []AlertUpdate
	ignored uint64

	bf *bruteForce
	ua *unusualAccess
	ex *exfiltration
	pe *privilegeEscalation
	md *massDeletion
	un *unauthorizedAccess
}

// settings are one workspace's resolved Settings, compiled for the hot path.
type settings struct {
	Settings
	hours       businessHours
	admins      map[string]bool
	sensitive   prefixList
	adminIfaces prefixList
	static      []string
	checks      uint8
	suppress    [numDetectors]int64
	enabled     [numDetectors]bool
}

// Detector indexes for per-detector arrays.
const (
	idxBruteForce = iota
	idxUnusualAccess
	idxDataExfiltration
	idxPrivilegeEscalation
	idxMassDeletion
	idxUnauthorizedAccess
	numDetectors
)

type compiledRoutes struct {
	login, admin, roleChange, authenticated, public routes
	resources                                       prefixList
}

// NewEngine builds an engine from cfg. Zero fields take their defaults; a
// value that Validate would reject is replaced by its default rather than
// failing, so provision with Validate first.
func NewEngine(cfg Config) *Engine {
	cfg = cfg.WithDefaults()
	e := &Engine{
		cfg:     cfg,
		updateN: int64(cfg.UpdateInterval),
		byID:    make(map[string]alertKey),
		routes: compiledRoutes{
			login:         compileRoutes(cfg.Routes.Login),
			admin:         compileRoutes(cfg.Routes.Admin),
			roleChange:    compileRoutes(cfg.Routes.RoleChange),
			authenticated: compileRoutes(cfg.Routes.Authenticated),
			public:        compileRoutes(cfg.Routes.Public),
			resources:     lowerAll(cfg.Routes.ResourcePrefixes),
		},
	}
	e.global = compileSettings(cfg.Settings, nil)
	if len(cfg.Workspaces) > 0 {
		e.ws = make(map[string]*settings, len(cfg.Workspaces))
		for name, s := range cfg.Workspaces {
			e.ws[name] = compileSettings(s, cfg.AdminUsers)
		}
	}
	e.alerts = newTable[alertKey, openAlert](cfg.Limits.MaxAlerts, 0)
	e.alerts.onEvict = func(k alertKey, a *openAlert) {
		if a.dirty {
			e.emit(a, false, false)
		}
		delete(e.byID, a.a.ID)
	}
	lim := cfg.Limits
	e.bf = newBruteForce(e, lim)
	e.ua = newUnusualAccess(e, lim)
	e.ex = newExfiltration(e, lim)
	e.pe = newPrivilegeEscalation(e, lim)
	e.md = newMassDeletion(e, lim)
	e.un = newUnauthorizedAccess(e, lim)
	return e
}

func compileSettings(s Settings, globalAdmins []string) *settings {
	c := &settings{Settings: s}
	c.hours, _ = compileBusinessHours(s.BusinessHours)
	if c.hours.loc == nil {
		c.hours.loc = time.UTC
	}
	c.admins = make(map[string]bool)
	for _, lists := range [][]string{globalAdmins, s.AdminUsers} {
		for _, u := range lists {
			c.admins[u] = true
		}
	}
	u := s.UnauthorizedAccess
	c.sensitive = lowerAll(u.SensitivePaths)
	c.adminIfaces = lowerAll(u.AdminInterfacePaths)
	c.static = lowerAll(u.StaticExtensions)
	for _, name := range s.UnusualAccess.Checks {
		c.checks |= noveltyBit(name)
	}
	for i, en := range []*bool{s.BruteForce.Enabled, s.UnusualAccess.Enabled, s.DataExfiltration.Enabled,
		s.PrivilegeEscalation.Enabled, s.MassDeletion.Enabled, s.UnauthorizedAccess.Enabled} {
		c.enabled[i] = en == nil || *en
	}
	for i, d := range []Duration{s.BruteForce.Suppression, s.UnusualAccess.Suppression, s.DataExfiltration.Suppression,
		s.PrivilegeEscalation.Suppression, s.MassDeletion.Suppression, s.UnauthorizedAccess.Suppression} {
		if d <= 0 {
			d = s.Suppression
		}
		c.suppress[i] = int64(d)
	}
	return c
}

// maxOver returns the largest value of f over the global and workspace
// settings: tables are shared by all workspaces, so they must keep state for
// the longest window any workspace uses.
func (e *Engine) maxOver(f func(*settings) int64) int64 {
	m := f(e.global)
	for _, s := range e.ws {
		m = max(m, f(s))
	}
	return m
}

func (e *Engine) settingsFor(ws string) *settings {
	if e.ws != nil {
		if s, ok := e.ws[ws]; ok {
			return s
		}
	}
	return e.global
}

// Config returns the engine's configuration with defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// evctx is one event with what every detector wants to know about it,
// computed once.
type evctx struct {
	ev    *storage.Event
	t     int64 // event time, Unix ns
	s     *settings
	login bool // a login route
	admin bool // an admin route
	role  bool // a role or permission change call
	ok    bool // 2xx
}

func (c *evctx) time() time.Time { return time.Unix(0, c.t).UTC() }

// Times outside this range do not fit int64 nanoseconds.
var (
	minEventTime = time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC)
	maxEventTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Process judges one event and returns the alerts it opened or changed
// (nil for almost every event). Events must arrive roughly in event-time
// order; a late event is judged at its own time but never moves per-key
// state backwards. Only HTTP events at the response_complete stage are
// judged: a strict route's request_received record would count its
// request twice, and admin and lifecycle events are the audit trail's own.
// The event is not modified.
func (e *Engine) Process(ev *storage.Event) []AlertUpdate {
	if ev == nil || (ev.Kind != "" && ev.Kind != storage.KindHTTP) || ev.Stage == storage.StageRequestReceived {
		e.ignored++
		return nil
	}
	t := e.now
	if !ev.Time.IsZero() && ev.Time.After(minEventTime) && ev.Time.Before(maxEventTime) {
		t = ev.Time.UnixNano()
	}
	if t > e.now {
		e.now = t
	}
	e.seq++
	e.expireAlerts()

	c := evctx{ev: ev, t: t, s: e.settingsFor(ev.Workspace), ok: ev.Status >= 200 && ev.Status < 300}
	c.login = e.routes.login.match(ev.Method, ev.Path)
	c.admin = e.routes.admin.match(ev.Method, ev.Path)
	c.role = e.routes.roleChange.match(ev.Method, ev.Path)

	en := &c.s.enabled
	if en[idxBruteForce] {
		e.bf.process(&c)
	}
	if en[idxUnauthorizedAccess] {
		e.un.process(&c)
	}
	if en[idxPrivilegeEscalation] {
		e.pe.process(&c)
	}
	if en[idxMassDeletion] {
		e.md.process(&c)
	}
	if en[idxDataExfiltration] {
		e.ex.process(&c)
	}
	if en[idxUnusualAccess] {
		e.ua.process(&c)
	}
	if len(e.out) == 0 {
		return nil
	}
	out := e.out
	e.out = nil
	return out
}

// Flush returns an update for every open alert that changed since its last
// update (repeats are throttled by UpdateInterval), oldest alert first. Call
// it at the end of a replay, and periodically (the sweep) when live.
func (e *Engine) Flush() []AlertUpdate {
	var dirty []*openAlert
	e.alerts.each(func(_ alertKey, a *openAlert) {
		if a.dirty {
			dirty = append(dirty, a)
		}
	})
	slices.SortFunc(dirty, func(x, y *openAlert) int {
		return cmp.Or(cmp.Compare(x.firstNS, y.firstNS), cmp.Compare(x.a.ID, y.a.ID))
	})
	for _, a := range dirty {
		e.emit(a, false, false)
	}
	out := e.out
	e.out = nil
	return out
}

// Release forgets the open alert with this id (an analyst resolved it or
// marked it a false positive), so the next repeat opens a new alert instead
// of updating this one. It reports whether the alert was open.
func (e *Engine) Release(id string) bool {
	k, ok := e.byID[id]
	if !ok {
		return false
	}
	a := e.alerts.peek(k)
	a.dirty = false // the caller owns the alert now
	e.alerts.remove(k)
	return true
}

// Stats describe the engine's load and memory.
type Stats struct {
	// Events is how many events were judged.
	Events uint64 `json:"events"`
	// Ignored is how many were skipped (not HTTP, or the request_received
	// stage of a strict route).
	Ignored uint64 `json:"ignored"`
	// Keys is how many per-key states the detectors hold.
	Keys int `json:"keys"`
	// Evictions is how many keys were dropped because a table was full (a
	// sign the limits are too small for the traffic, or a flood of keys).
	Evictions uint64 `json:"evictions"`
	// OpenAlerts is how many alerts are open for suppression.
	OpenAlerts int `json:"open_alerts"`
	// Watermark is the latest event time seen.
	Watermark time.Time `json:"watermark"`
}

// Stats reports the engine's counters.
func (e *Engine) Stats() Stats {
	s := Stats{Events: e.seq, Ignored: e.ignored, OpenAlerts: e.alerts.len(), Evictions: e.alerts.evictions}
	if e.now != 0 {
		s.Watermark = time.Unix(0, e.now).UTC()
	}
	for _, t := range e.sizers() {
		n, ev := t()
		s.Keys += n
		s.Evictions += ev
	}
	return s
}

type sizer func() (keys int, evictions uint64)

func sizeOf[K comparable, V any](t *table[K, V]) sizer {
	return func() (int, uint64) { return t.len(), t.evictions }
}

func (e *Engine) sizers() []sizer {
	return []sizer{
		sizeOf(e.bf.ip), sizeOf(e.bf.user), sizeOf(e.ua.users), sizeOf(e.ua.habits), sizeOf(e.ua.peers),
		sizeOf(e.ex.principals), sizeOf(e.pe.users), sizeOf(e.pe.ips), sizeOf(e.md.principals),
		sizeOf(e.un.ips), sizeOf(e.un.principals),
	}
}

// ----- alerts -----

// alertKey is the suppression key: one open alert per workspace, detector,
// rule family and subject. The workspace is part of it so that an alert
// only ever counts one tenant's events: the same client IP failing logins
// in two workspaces is two alerts, each readable by its own tenant.
type alertKey struct {
	workspace, detector, family string
	subject                     storage.Subject
}

// inWS is a per-subject state key: detectors keep every bucket, window and
// baseline per workspace for the same reason alerts are.
type inWS[K comparable] struct {
	ws string
	k  K
}

// scoped keys k by the current event's workspace.
func scoped[K comparable](c *evctx, k K) inWS[K] { return inWS[K]{c.ev.Workspace, k} }

type openAlert struct {
	key      alertKey
	a        storage.Alert // Evidence.EventIDs holds the first MaxFirstEvidence ids
	tail     [storage.MaxLastEvidence]string
	tailN    int // ids written to tail (ring position is tailN % len)
	firstNS  int64
	lastNS   int64
	suppress int64
	lastEmit int64
	seq      uint64 // the last event counted
	dirty    bool
}

// finding is what a detector reports when a rule fires.
type finding struct {
	detector, rule, family string
	subject                storage.Subject
	severity               string
	// evidence are the events that made the rule fire (the current one
	// included) and the span of their times.
	evidence evidence
	// count, when larger than len(ids), is how many events the finding
	// stands for (evidence ids are bounded, counts are not).
	count int
	// refresh makes figures overwrite those of the open alert (running
	// totals) instead of keeping the first values (thresholds).
	refresh  bool
	figures  map[string]float64
	observed map[string]string
	summary  string
	actions  []string
	mitre    storage.Mitre
}

func detectorIndex(name string) int {
	for i, d := range Detectors {
		if d == name {
			return i
		}
	}
	return 0
}

// open returns the open alert for the key in the current event's
// workspace, or nil. An alert whose
// suppression window has passed is closed on the way.
func (e *Engine) open(c *evctx, detector, family string, subj storage.Subject) *openAlert {
	k := alertKey{c.ev.Workspace, detector, family, subj}
	a := e.alerts.peek(k)
	if a == nil {
		return nil
	}
	if c.t > a.lastNS+a.suppress {
		e.alerts.remove(k)
		return nil
	}
	return a
}

// attach counts the current event into the open alert for the key, if there
// is one, and reports whether there was.
func (e *Engine) attach(c *evctx, detector, family string, subj storage.Subject) bool {
	a := e.open(c, detector, family, subj)
	if a == nil {
		return false
	}
	e.count(c, a)
	e.touchAlert(c, a, false)
	return true
}

// count adds the current event to the alert once.
func (e *Engine) count(c *evctx, a *openAlert) {
	if a.seq == e.seq {
		return
	}
	a.seq = e.seq
	a.a.Count++
	e.addEvidence(a, c.ev.ID)
	if c.t > a.lastNS {
		a.lastNS = c.t
		a.a.LastSeen = c.time()
	}
	if c.t < a.firstNS {
		a.firstNS = c.t
		a.a.FirstSeen = c.time()
	}
}

func (e *Engine) addEvidence(a *openAlert, id string) {
	if len(a.a.Evidence.EventIDs) < storage.MaxFirstEvidence {
		a.a.Evidence.EventIDs = append(a.a.Evidence.EventIDs, id)
		return
	}
	a.tail[a.tailN%storage.MaxLastEvidence] = id
	a.tailN++
}

// touchAlert marks the alert used and emits an update now or later.
func (e *Engine) touchAlert(c *evctx, a *openAlert, escalated bool) {
	e.alerts.get(a.key, e.now)
	if escalated || c.t-a.lastEmit >= e.updateN {
		e.emit(a, false, escalated)
		return
	}
	a.dirty = true
}

// raise reports a finding: it opens an alert, or folds the finding into the
// open alert of the same workspace, detector, family and subject (counting the current
// event, merging figures and raising the severity).
func (e *Engine) raise(c *evctx, f *finding) *openAlert {
	if f.family == "" {
		f.family = f.rule
	}
	if a := e.open(c, f.detector, f.family, f.subject); a != nil {
		e.count(c, a)
		escalated := false
		if storage.SeverityRank(f.severity) > storage.SeverityRank(a.a.Severity) {
			a.a.Severity = f.severity
			escalated = true
		}
		if escalated || f.refresh {
			// The summary follows the strongest, then the latest, finding.
			a.a.Evidence.Summary = f.summary
		}
		for k, v := range f.figures {
			if _, ok := a.a.Evidence.Figures[k]; !ok || escalated || f.refresh {
				a.a.Evidence.Figures[k] = v
			}
		}
		for k, v := range f.observed {
			if a.a.Evidence.Observed == nil {
				a.a.Evidence.Observed = make(map[string]string)
			}
			if _, ok := a.a.Evidence.Observed[k]; !ok || escalated {
				a.a.Evidence.Observed[k] = v
			}
		}
		if escalated {
			// The new, stronger finding's actions come first.
			a.a.RecommendedActions = mergeActions(f.actions, a.a.RecommendedActions)
		} else {
			a.a.RecommendedActions = appendMissing(a.a.RecommendedActions, f.actions)
		}
		e.touchAlert(c, a, escalated)
		return a
	}
	ids := f.evidence.ids
	if len(ids) == 0 {
		ids = []string{c.ev.ID}
	}
	first, last := c.t, c.t
	if f.evidence.first != 0 {
		first = min(first, f.evidence.first)
		last = max(last, f.evidence.last)
	}
	k := alertKey{c.ev.Workspace, f.detector, f.family, f.subject}
	a := e.alerts.upsert(k, e.now)
	*a = openAlert{
		key: k,
		a: storage.Alert{
			ID:                 alertID(c.ev.Workspace, f.detector, f.family, f.subject, ids[0]),
			Detector:           f.detector,
			Rule:               f.rule,
			Severity:           f.severity,
			Subject:            f.subject,
			Workspace:          c.ev.Workspace,
			FirstSeen:          time.Unix(0, first).UTC(),
			LastSeen:           time.Unix(0, last).UTC(),
			Count:              max(len(ids), f.count),
			Evidence:           storage.Evidence{Figures: f.figures, Observed: f.observed, Summary: f.summary},
			Mitre:              f.mitre,
			RecommendedActions: f.actions,
			Status:             storage.StatusOpen,
		},
		firstNS:  first,
		lastNS:   last,
		suppress: c.s.suppress[detectorIndex(f.detector)],
		seq:      e.seq,
		lastEmit: c.t,
	}
	if a.a.Evidence.Figures == nil {
		a.a.Evidence.Figures = map[string]float64{}
	}
	for _, id := range ids {
		e.addEvidence(a, id)
	}
	e.byID[a.a.ID] = k
	e.emit(a, true, false)
	return a
}

// appendMissing returns list with the items of add that it lacks
// appended. A repeat of an open alert usually brings nothing new, and then
// list itself comes back: the hot path of a noisy alert allocates nothing.
// Clip makes an append copy, since snapshots may share list's array.
func appendMissing(list, add []string) []string {
	for _, s := range add {
		if !slices.Contains(list, s) {
			list = append(slices.Clip(list), s)
		}
	}
	return list
}

// mergeActions returns first then the items of then it lacks, in a new
// slice.
func mergeActions(first, then []string) []string {
	out := make([]string, 0, len(first)+len(then))
	for _, list := range [][]string{first, then} {
		for _, s := range list {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// emit appends a snapshot of the alert to the pending updates.
func (e *Engine) emit(a *openAlert, isNew, escalated bool) {
	snap := cloneAlert(&a.a)
	n := min(a.tailN, storage.MaxLastEvidence)
	for i := a.tailN - n; i < a.tailN; i++ {
		snap.Evidence.EventIDs = append(snap.Evidence.EventIDs, a.tail[i%storage.MaxLastEvidence])
	}
	e.out = append(e.out, AlertUpdate{Alert: snap, New: isNew, Escalated: escalated})
	a.dirty = false
	a.lastEmit = max(a.lastEmit, e.now)
}

// expireAlerts closes alerts from the least recently touched end while their
// suppression window has passed.
func (e *Engine) expireAlerts() {
	for n := e.alerts.tail; n != nil; n = e.alerts.tail {
		if e.now <= n.val.lastNS+n.val.suppress {
			return
		}
		e.alerts.remove(n.key)
	}
}

// ----- helpers shared by the detectors -----

// evidence is a set of event ids and the span of their times.
type evidence struct {
	ids         []string
	first, last int64
}

// recentEvidence returns the newest k stamps of r as evidence.
func recentEvidence(r *ring, k int) evidence {
	k = min(k, r.len())
	ev := evidence{ids: make([]string, 0, k)}
	for i := r.len() - k; i < r.len(); i++ {
		s := r.at(i)
		ev.ids = append(ev.ids, s.id)
		if ev.first == 0 || s.t < ev.first {
			ev.first = s.t
		}
		ev.last = max(ev.last, s.t)
	}
	return ev
}

// windowEvidence returns the values of d as evidence, oldest first.
func windowEvidence(d *distinctWindow) evidence {
	ev := evidence{ids: d.ids(nil)}
	for i, s := range d.e {
		if i == 0 || s.t < ev.first {
			ev.first = s.t
		}
		ev.last = max(ev.last, s.t)
	}
	return ev
}

// principal is who made a request: the user when there is one, else the
// client IP.
func principal(ev *storage.Event) storage.Subject {
	if ev.User != "" {
		return storage.Subject{Kind: storage.SubjectUser, Value: ev.User}
	}
	return storage.Subject{Kind: storage.SubjectIP, Value: ev.ClientIP}
}

func ipSubject(ev *storage.Event) storage.Subject {
	return storage.Subject{Kind: storage.SubjectIP, Value: ev.ClientIP}
}
func userSubject(ev *storage.Event) storage.Subject {
	return storage.Subject{Kind: storage.SubjectUser, Value: ev.User}
}

func seconds(d Duration) float64 { return time.Duration(d).Seconds() }

// describe names a subject for summaries: "client IP 203.0.113.7".
func describe(s storage.Subject) string {
	switch s.Kind {
	case storage.SubjectIP:
		return "client IP " + s.Value
	case storage.SubjectUser:
		return "user " + s.Value
	}
	return s.Kind + " " + s.Value
}

// blockIP is the edge action for an IP subject.
func blockIP(ip string) string {
	return "Block client IP " + ip + " at the edge (firewall, WAF, or a Caddy remote_ip matcher) and keep the block for at least 24h"
}

func quote(s string) string {
	if s == "" {
		return `""`
	}
	if strings.ContainsAny(s, " \t\"") {
		return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
	}
	return s
}
