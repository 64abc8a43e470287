package detectors

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// Novelty kinds of unusual_access, also its rule names and figure keys.
const (
	NoveltyNewIP        = "new_ip"
	NoveltyNewUserAgent = "new_user_agent"
	NoveltyOffHours     = "off_hours"
	NoveltyNewWorkspace = "new_workspace"
)

const (
	bitNewWorkspace uint8 = 1 << iota
	bitNewIP
	bitNewUserAgent
	bitOffHours
)

// noveltyOrder is the priority order: the first kind present names the
// alert's rule.
var noveltyOrder = []struct {
	bit    uint8
	name   string
	points int
}{
	{bitNewWorkspace, NoveltyNewWorkspace, 2}, // reaching into another tenant weighs more
	{bitNewIP, NoveltyNewIP, 1},
	{bitNewUserAgent, NoveltyNewUserAgent, 1},
	{bitOffHours, NoveltyOffHours, 1},
}

func noveltyBit(name string) uint8 {
	for _, n := range noveltyOrder {
		if n.name == name {
			return n.bit
		}
	}
	return 0
}

// unusual_access keeps two baselines. Per workspace and user: how many
// events over how many days, the client networks and user agent families
// used there. Per user across workspaces (their habit): how many events
// over how many days, the hours of the week and the workspaces used. Once
// a baseline holds MinEvents events over MinDays days, an event is novel
// when it comes from a network or user agent family the user never used in
// this workspace (and fewer than PeerUsers other users of the workspace
// use), outside the workspace's business hours at an hour (or on a day)
// that is rare for this user, or in a workspace the user never used. The
// values are learnt right after judging, as Elastic's new terms rules do.
//
// Networks and agents are judged per workspace once the user is
// established there, because alerts are per workspace. Time of day and the
// workspaces used are the person's habit, so they are judged across
// workspaces (someone in London who also works in a Tokyo workspace keeps
// London hours there without being flagged, and reaching into a new tenant
// is only visible across tenants); so are networks and agents in a
// workspace where the user has no baseline yet (a stolen session reaching
// a new tenant from a new address is still seen as such). From the
// cross-workspace habit an alert carries only verdicts (new, rare, first
// access), never figures or events: its history_events and history_days
// count the user's events in the alert's workspace, and no share computed
// from other tenants' events is shown.
//
// All novelty kinds of one user share one rule family, so a stolen-session
// scenario (new network, new agent, 3 a.m., another workspace) is one alert
// whose figures list every kind seen and whose severity follows their
// weight: 1 point low, 2 medium, 3 or more high (a new workspace weighs 2).
// Every further novel event of that user within the suppression window
// (default 1h) is counted into it.
type unusualAccess struct {
	e      *Engine
	users  *table[inWS[string], profile] // by workspace and user
	habits *table[string, habit]         // by user, across workspaces
	peers  *table[string, peerSet]       // by workspace
}

// Per-profile caps: the oldest value is forgotten to make room.
const (
	maxProfileNets       = 32
	maxProfileAgents     = 16
	maxProfileWorkspaces = 32
	maxPeerValues        = 1024 // per workspace; beyond it nothing new is learnt
	maxPeerWorkspaces    = 256
)

// tally is how established a baseline is.
type tally struct {
	events  uint32
	days    uint32
	lastDay int64
}

func (n *tally) count(t int64) {
	n.events++
	if day := t / int64(24*time.Hour); n.days == 0 || day > n.lastDay {
		n.days++
		n.lastDay = day
	}
}

func (n *tally) established(cfg *UnusualAccessConfig) bool {
	return int(n.events) >= cfg.MinEvents && int(n.days) >= cfg.MinDays
}

// habit is a user's baseline across workspaces.
type habit struct {
	tally
	// week counts events per hour of the week in UTC (Sunday 00:00 is 0).
	// UTC keeps it independent of time zones: the user's time of day is
	// judged from it directly, and their days off are judged by viewing it
	// in the time zone and calendar of their home workspace (the one they
	// use most), so someone in New York who also works in a Tokyo workspace
	// keeps New York hours there without being flagged. Counters halve when
	// one saturates, which also ages old habits.
	week      [168]uint16
	weekTotal uint32
	wss       seenSet // n counts events, s is the workspace's settings
	known
}

// known are the networks and user agent families a baseline has seen.
type known struct {
	nets   seenSet
	agents seenSet
}

func (k *known) learn(net, agent uint64, t int64) {
	k.nets.learn(net, t, maxProfileNets, nil)
	k.agents.learn(agent, t, maxProfileAgents, nil)
}

// profile is a user's baseline in one workspace.
type profile struct {
	tally
	known
	// Caches: most requests repeat the previous one's IP and agent, and
	// string comparison is cheaper than hashing.
	lastIP, lastUA     string
	lastNet, lastAgent uint64
	// The novel session: once an alert is open, the values that made it
	// are learnt, so later requests of the same session are no longer
	// novel; they are still counted into the alert while it is open.
	sessNet, sessAgent uint64
	sessOff            bool
	sessUntil          int64
}

// hourOfWeek is the UTC hour of the week of t, Sunday 00:00 being 0.
func hourOfWeek(t int64) int {
	h := t / int64(time.Hour)
	if t < 0 && t%int64(time.Hour) != 0 {
		h--
	}
	return int(((h+4*24)%168 + 168) % 168) // 1970-01-01 was a Thursday
}

func (p *habit) learnTime(t int64) {
	i := hourOfWeek(t)
	if p.week[i] == math.MaxUint16 {
		p.weekTotal = 0
		for k := range p.week {
			p.week[k] /= 2
			p.weekTotal += uint32(p.week[k])
		}
	}
	p.week[i]++
	p.weekTotal++
}

// hourShare is the share of the user's events within an hour of t's time
// of day, any day of the week.
func (p *habit) hourShare(t int64) float64 {
	if p.weekTotal == 0 {
		return 0
	}
	h := hourOfWeek(t) % 24
	n := 0
	for d := 0; d < 7; d++ {
		for _, dh := range [3]int{23, 0, 1} {
			n += int(p.week[d*24+(h+dh)%24])
		}
	}
	return float64(n) / float64(p.weekTotal)
}

// offDayShare is the share of the user's events that fell on days off of
// the home calendar, viewed at the home zone's offset at t.
func (p *habit) offDayShare(home *settings, t int64) float64 {
	if p.weekTotal == 0 {
		return 0
	}
	_, off := time.Unix(0, t).In(home.hours.loc).Zone()
	shift := off / 3600
	n := 0
	for i, c := range p.week {
		local := ((i+shift)%168 + 168) % 168
		if !home.hours.days[local/24] {
			n += int(c)
		}
	}
	return float64(n) / float64(p.weekTotal)
}

// home returns the settings of the workspace the user uses most.
func (p *habit) home(fallback *settings) *settings {
	best := -1
	for i := range p.wss.v {
		if best < 0 || p.wss.v[i].n > p.wss.v[best].n {
			best = i
		}
	}
	if best < 0 || p.wss.v[best].s == nil {
		return fallback
	}
	return p.wss.v[best].s
}

// seenSet is a small set of value hashes with their last use.
type seenSet struct{ v []seenVal }

type seenVal struct {
	h    uint64
	last int64
	n    uint32
	s    *settings
}

func (s *seenSet) has(h uint64) bool {
	for i := range s.v {
		if s.v[i].h == h {
			return true
		}
	}
	return false
}

// learn records a use of h at now; when the set is full, the value unused
// for longest makes room.
func (s *seenSet) learn(h uint64, now int64, limit int, st *settings) {
	for i := range s.v {
		if s.v[i].h == h {
			if now > s.v[i].last {
				s.v[i].last = now
			}
			s.v[i].n++
			return
		}
	}
	if len(s.v) < limit {
		s.v = append(s.v, seenVal{h, now, 1, st})
		return
	}
	oldest := 0
	for i := range s.v {
		if s.v[i].last < s.v[oldest].last {
			oldest = i
		}
	}
	s.v[oldest] = seenVal{h, now, 1, st}
}

// peerSet knows, per workspace, which users use a network or agent family
// (up to 8 users per value: enough to say "common here", so PeerUsers is
// capped at 7).
type peerSet struct {
	users map[uint64]*[8]uint64
}

func (p *peerSet) known(h, user uint64, need int) bool {
	if need <= 0 || p.users == nil {
		return false
	}
	us := p.users[h]
	if us == nil {
		return false
	}
	n := 0
	for _, u := range us {
		if u != 0 && u != user {
			n++
		}
	}
	return n >= min(need, len(us)-1)
}

func (p *peerSet) learn(h, user uint64) {
	if p.users == nil {
		p.users = make(map[uint64]*[8]uint64)
	}
	us := p.users[h]
	if us == nil {
		if len(p.users) >= maxPeerValues {
			return
		}
		us = new([8]uint64)
		p.users[h] = us
	}
	for i, u := range us {
		if u == user {
			return
		}
		if u == 0 {
			us[i] = user
			return
		}
	}
}

func newUnusualAccess(e *Engine, lim Limits) *unusualAccess {
	return &unusualAccess{
		e:      e,
		users:  newTable[inWS[string], profile](lim.MaxProfiles, int64(lim.BaselineTTL)),
		habits: newTable[string, habit](lim.MaxProfiles, int64(lim.BaselineTTL)),
		peers:  newTable[string, peerSet](maxPeerWorkspaces, int64(lim.BaselineTTL)),
	}
}

func (u *unusualAccess) process(c *evctx) {
	ev := c.ev
	// Only access counts: a failed login from a new address is brute
	// force's business, and must not teach the baseline the attacker's
	// address either.
	if ev.User == "" || ev.Status < 200 || ev.Status >= 400 {
		return
	}
	e, cfg := u.e, &c.s.UnusualAccess
	p := u.users.upsert(scoped(c, ev.User), e.now)
	hb := u.habits.upsert(ev.User, e.now)
	if p.lastNet == 0 || ev.ClientIP != p.lastIP {
		p.lastIP, p.lastNet = ev.ClientIP, hashNetwork(ev.ClientIP, cfg.IPv4Prefix, cfg.IPv6Prefix)
	}
	if p.lastAgent == 0 || ev.UserAgent != p.lastUA {
		p.lastUA, p.lastAgent = ev.UserAgent, hashUserAgent(ev.UserAgent)
	}
	net, agent := p.lastNet, p.lastAgent
	ws := hashString(ev.Workspace)
	userH := hashString(ev.User)
	peers := u.peers.upsert(ev.Workspace, e.now)

	here, anywhere := p.established(cfg), hb.established(cfg)
	if here || anywhere {
		var kinds uint8
		// In a workspace where the user has no baseline yet, their
		// networks and agents elsewhere stand in for it.
		base := &p.known
		if !here {
			base = &hb.known
		}
		peerNeed := cfg.PeerUsers
		if c.s.checks&bitNewIP != 0 && !base.nets.has(net) && !peers.known(net, userH, peerNeed) {
			kinds |= bitNewIP
		}
		if c.s.checks&bitNewUserAgent != 0 && !base.agents.has(agent) && !peers.known(agent, userH, peerNeed) {
			kinds |= bitNewUserAgent
		}
		var share float64
		var lt time.Time
		if anywhere && c.s.checks&bitOffHours != 0 {
			lt = time.Unix(0, c.t).In(c.s.hours.loc)
			if !c.s.hours.withinLocal(lt) {
				// Outside the workspace's hours; unusual only if rare for
				// this user: the share of their history within an hour of
				// this time of day, or on days off at home.
				share = hb.hourShare(c.t)
				home := hb.home(e.global)
				if !home.hours.days[time.Unix(0, c.t).In(home.hours.loc).Weekday()] {
					share = min(share, hb.offDayShare(home, c.t))
				}
				if share < cfg.RareShare {
					kinds |= bitOffHours
				}
			}
		}
		if anywhere && c.s.checks&bitNewWorkspace != 0 && ev.Workspace != "" && !hb.wss.has(ws) {
			kinds |= bitNewWorkspace
		}
		switch {
		case kinds != 0:
			u.report(c, p, kinds, lt, share)
			if kinds&bitNewIP != 0 {
				p.sessNet = net
			}
			if kinds&bitNewUserAgent != 0 {
				p.sessAgent = agent
			}
			p.sessOff = p.sessOff || kinds&bitOffHours != 0
			p.sessUntil = c.t + c.s.suppress[idxUnusualAccess]
		case c.t <= p.sessUntil && ((p.sessNet != 0 && net == p.sessNet) || (p.sessAgent != 0 && agent == p.sessAgent) ||
			(p.sessOff && !c.s.hours.within(time.Unix(0, c.t)))):
			if e.attach(c, DetectorUnusualAccess, famNovelty, userSubject(ev)) {
				p.sessUntil = c.t + c.s.suppress[idxUnusualAccess]
			}
		case c.t > p.sessUntil:
			p.sessNet, p.sessAgent, p.sessOff = 0, 0, false
		}
	}

	// Learn.
	p.count(c.t)
	hb.count(c.t)
	hb.learnTime(c.t)
	p.known.learn(net, agent, c.t)
	hb.known.learn(net, agent, c.t)
	if ev.Workspace != "" {
		hb.wss.learn(ws, c.t, maxProfileWorkspaces, c.s)
	}
	if cfg.PeerUsers > 0 {
		peers.learn(net, userH)
		peers.learn(agent, userH)
	}
}

func (u *unusualAccess) report(c *evctx, p *profile, kinds uint8, lt time.Time, share float64) {
	e, ev, cfg := u.e, c.ev, &c.s.UnusualAccess
	subj := userSubject(ev)
	union := kinds
	if a := e.open(c, DetectorUnusualAccess, famNovelty, subj); a != nil {
		for _, n := range noveltyOrder {
			if _, ok := a.a.Evidence.Figures[n.name]; ok {
				union |= n.bit
			}
		}
	}
	rule, points := "", 0
	var parts []string
	figures := map[string]float64{
		"history_events": float64(p.events), "history_days": float64(p.days),
		"min_events": float64(cfg.MinEvents), "min_days": float64(cfg.MinDays),
	}
	observed := map[string]string{}
	for _, n := range noveltyOrder {
		if union&n.bit != 0 {
			points += n.points
		}
		if kinds&n.bit == 0 {
			continue
		}
		if rule == "" {
			rule = n.name
		}
		figures[n.name] = 1
		switch n.bit {
		case bitNewWorkspace:
			observed["workspace"] = ev.Workspace
			parts = append(parts, "first access to workspace "+quote(ev.Workspace))
		case bitNewIP:
			observed["client_ip"] = ev.ClientIP
			parts = append(parts, "first access from the network of "+ev.ClientIP)
		case bitNewUserAgent:
			observed["user_agent"] = ev.UserAgent
			parts = append(parts, "new user agent "+quote(ev.UserAgent))
		case bitOffHours:
			observed["local_time"] = lt.Format("Mon 15:04 MST")
			figures["rare_share"] = cfg.RareShare
			parts = append(parts, fmt.Sprintf("off hours (%s, a time of day under %.1f%% of the user's activity)", lt.Format("Mon 15:04 MST"), cfg.RareShare*100))
		}
	}
	severity := storage.SeverityLow
	switch {
	case points >= 3:
		severity = storage.SeverityHigh
	case points == 2:
		severity = storage.SeverityMedium
	}
	actions := []string{
		fmt.Sprintf("Confirm with user %s out of band that they made this request (%s from %s with %s)",
			ev.User, c.time().Format(time.RFC3339), ev.ClientIP, quote(ev.UserAgent)),
		"If they did not: revoke the sessions and API tokens of " + ev.User + " and force a password reset",
		"Review what " + ev.User + " did since " + c.time().Format(time.RFC3339) + " (search events by user)",
	}
	if kinds&bitNewWorkspace != 0 {
		actions = append(actions, "Check that "+ev.User+" is meant to have access to workspace "+quote(ev.Workspace))
	}
	u.e.raise(c, &finding{
		detector: DetectorUnusualAccess, rule: rule, family: famNovelty, subject: subj,
		severity: severity, figures: figures, observed: observed,
		summary: fmt.Sprintf("%s for %s (%d events over %d days in workspace %s)",
			strings.Join(parts, ", "), describe(subj), p.events, p.days, quote(ev.Workspace)),
		actions: actions,
		mitre:   mitreValidAccounts,
	})
}

const famNovelty = "novelty"

func (b *businessHours) withinLocal(lt time.Time) bool {
	if !b.days[lt.Weekday()] {
		return false
	}
	m := lt.Hour()*60 + lt.Minute()
	if b.start <= b.end {
		return m >= b.start && m < b.end
	}
	return m >= b.start || m < b.end
}
