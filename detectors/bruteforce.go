package detectors

import (
	"fmt"
	"strconv"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// brute_force watches failed logins: a 401 anywhere, or a 4xx other than
// 404 on a login route (Routes.Login). Rules:
//
//   - login_burst: the per client IP and per target user leaky bucket
//     (default capacity 5, one token back every 10s: the 6th failure in a
//     burst overflows). A user's bucket does not open its own alert while
//     the failing client IP already has one: a single-source attack is one
//     alert, not two. High.
//   - slow_brute_force: Slow.Threshold failures from one client IP within
//     Slow.Window (default 30 in 1h), for guessing paced under the bucket.
//     It shares login_burst's family, so an attacker who trips both has one
//     alert. Medium.
//   - credential_stuffing: StuffingUsers distinct users failing from one
//     client IP within StuffingWindow (default 10 in 10m). High, T1110.004.
//   - distributed_brute_force: one user failing from StuffingIPs distinct
//     client IPs within StuffingWindow (default 10 in 10m), a botnet or proxy
//     pool guessing one account. High, T1110.001.
//
// A successful login (2xx on a login route) from a client IP, or for a user,
// with an open alert whose last failure is within SuccessWindow makes that
// alert critical: the guessing probably worked.
type bruteForce struct {
	e    *Engine
	ip   *table[inWS[string], bfState]
	user *table[inWS[string], bfState]
}

// bfState is kept per workspace and client IP, and per workspace and
// target user.
type bfState struct {
	burst  leaky
	recent ring           // the latest failures; h is the user (per IP) or the IP (per user)
	others distinctWindow // distinct users (per IP) or IPs (per user)
}

const (
	ruleLoginBurst            = "login_burst"
	ruleSlowBruteForce        = "slow_brute_force"
	ruleCredentialStuffing    = "credential_stuffing"
	ruleDistributedBruteForce = "distributed_brute_force"
	famGuessing               = "password_guessing"
)

// maxRecentFailures bounds the per-key failure ring whatever Slow.Threshold
// says.
const maxRecentFailures = 256

func newBruteForce(e *Engine, lim Limits) *bruteForce {
	ttl := e.maxOver(func(s *settings) int64 {
		c := s.BruteForce
		return max(int64(c.Burst.Capacity+1)*int64(c.Burst.LeakSpeed), int64(c.Slow.Window),
			int64(c.StuffingWindow), int64(c.SuccessWindow))
	})
	return &bruteForce{
		e:    e,
		ip:   newTable[inWS[string], bfState](lim.MaxKeys, ttl),
		user: newTable[inWS[string], bfState](lim.MaxKeys, ttl),
	}
}

func (b *bruteForce) process(c *evctx) {
	ev := c.ev
	failed := ev.Status == 401 || (c.login && ev.Status >= 400 && ev.Status < 500 && ev.Status != 404)
	if c.login && c.ok {
		b.success(c)
		return
	}
	if !failed {
		return
	}
	e, cfg := b.e, &c.s.BruteForce
	ipSubj := ipSubject(ev)
	keep := min(maxRecentFailures, max(cfg.Burst.Capacity+1, cfg.Slow.Threshold))

	st := b.ip.upsert(scoped(c, ev.ClientIP), e.now)
	st.recent.push(stamp{t: c.t, id: ev.ID, h: hashString(ev.User)}, keep)
	overflow := st.burst.pour(c.t, cfg.Burst)
	slow := cfg.Slow.Threshold > 0 && st.recent.since(c.t-int64(cfg.Slow.Window)) >= cfg.Slow.Threshold
	switch {
	case overflow:
		b.raiseBurst(c, st, ipSubj)
	case slow:
		e.raise(c, &finding{
			detector: DetectorBruteForce, rule: ruleSlowBruteForce, family: famGuessing,
			subject: ipSubj, severity: storage.SeverityMedium, evidence: recentEvidence(&st.recent, cfg.Slow.Threshold),
			figures: windowFigures("failures", cfg.Slow.Threshold, cfg.Slow.Threshold, cfg.Slow.Window),
			summary: fmt.Sprintf("%d failed logins from %s within %s, paced under the burst bucket (slow brute force)",
				cfg.Slow.Threshold, describe(ipSubj), time.Duration(cfg.Slow.Window)),
			actions: ipGuessingActions(ev.ClientIP, ev.Path, ev.User),
			mitre:   mitreBruteForce,
		})
	default:
		e.attach(c, DetectorBruteForce, famGuessing, ipSubj)
	}
	if ev.User != "" && cfg.StuffingUsers > 0 {
		n := st.others.add(c.t, hashString(ev.User), ev.ID, int64(cfg.StuffingWindow), cfg.StuffingUsers)
		if n >= cfg.StuffingUsers {
			e.raise(c, &finding{
				detector: DetectorBruteForce, rule: ruleCredentialStuffing,
				subject: ipSubj, severity: storage.SeverityHigh, evidence: windowEvidence(&st.others),
				figures:  windowFigures("distinct_users", n, cfg.StuffingUsers, cfg.StuffingWindow),
				observed: map[string]string{"login_route": ev.Method + " " + ev.Path},
				summary: fmt.Sprintf("%d distinct users failed to log in from %s within %s (credential stuffing)",
					n, describe(ipSubj), time.Duration(cfg.StuffingWindow)),
				actions: []string{
					blockIP(ev.ClientIP),
					"Force a password reset for every targeted user that logged in successfully from " + ev.ClientIP + " (search events with client_ip=" + ev.ClientIP + " and a 2xx on the login route)",
					"Check the targeted usernames against breach corpora: the list came from somewhere",
					"Put bot protection (CAPTCHA or proof of work) in front of " + ev.Path,
				},
				mitre: mitreStuffing,
			})
		} else {
			e.attach(c, DetectorBruteForce, ruleCredentialStuffing, ipSubj)
		}
	}

	if ev.User == "" {
		return
	}
	userSubj := userSubject(ev)
	us := b.user.upsert(scoped(c, ev.User), e.now)
	us.recent.push(stamp{t: c.t, id: ev.ID, h: hashString(ev.ClientIP)}, cfg.Burst.Capacity+1)
	if us.burst.pour(c.t, cfg.Burst) {
		if e.open(c, DetectorBruteForce, famGuessing, ipSubj) == nil {
			b.raiseBurst(c, us, userSubj)
		}
	} else {
		e.attach(c, DetectorBruteForce, famGuessing, userSubj)
	}
	if cfg.StuffingIPs > 0 {
		n := us.others.add(c.t, hashString(ev.ClientIP), ev.ID, int64(cfg.StuffingWindow), cfg.StuffingIPs)
		if n >= cfg.StuffingIPs {
			e.raise(c, &finding{
				detector: DetectorBruteForce, rule: ruleDistributedBruteForce,
				subject: userSubj, severity: storage.SeverityHigh, evidence: windowEvidence(&us.others),
				figures: windowFigures("distinct_ips", n, cfg.StuffingIPs, cfg.StuffingWindow),
				summary: fmt.Sprintf("logins for %s failed from %d distinct client IPs within %s (distributed brute force)",
					describe(userSubj), n, time.Duration(cfg.StuffingWindow)),
				actions: []string{
					"Force a password reset for user " + ev.User + " and make sure MFA is on",
					"Lock user " + ev.User + " temporarily or require a CAPTCHA after repeated failures",
					"The failures come from many client IPs (a botnet or proxy pool): rate-limit " + ev.Path + " per user, not only per IP",
				},
				mitre: mitrePasswordGuessing,
			})
		} else {
			e.attach(c, DetectorBruteForce, ruleDistributedBruteForce, userSubj)
		}
	}
}

func (b *bruteForce) raiseBurst(c *evctx, st *bfState, subj storage.Subject) {
	cfg := &c.s.BruteForce
	ev := c.ev
	f := &finding{
		detector: DetectorBruteForce, rule: ruleLoginBurst, family: famGuessing,
		subject: subj, severity: storage.SeverityHigh, evidence: recentEvidence(&st.recent, cfg.Burst.Capacity+1),
		figures:  bucketFigures("failures", cfg.Burst),
		observed: map[string]string{"route": ev.Method + " " + ev.Path},
		summary: fmt.Sprintf("%d failed logins from %s in a burst (bucket capacity %d, one token back every %s)",
			cfg.Burst.Capacity+1, describe(subj), cfg.Burst.Capacity, time.Duration(cfg.Burst.LeakSpeed)),
		mitre: mitreBruteForce,
	}
	if subj.Kind == storage.SubjectIP {
		if ev.User != "" {
			f.observed["target_user"] = ev.User
		}
		f.actions = ipGuessingActions(ev.ClientIP, ev.Path, ev.User)
	} else {
		f.summary = fmt.Sprintf("%d failed logins for %s in a burst from %d client IPs (bucket capacity %d, one token back every %s)",
			cfg.Burst.Capacity+1, describe(subj), st.recent.distinctHashes(cfg.Burst.Capacity+1), cfg.Burst.Capacity, time.Duration(cfg.Burst.LeakSpeed))
		f.actions = []string{
			"Force a password reset for user " + ev.User + " and make sure MFA is on",
			"Lock user " + ev.User + " temporarily or require a CAPTCHA after repeated failures",
			"Block the client IPs listed in the evidence events at the edge",
		}
	}
	b.e.raise(c, f)
}

func ipGuessingActions(ip, route, user string) []string {
	out := []string{
		blockIP(ip),
		"Check whether any login from " + ip + " succeeded (search events with client_ip=" + ip + " and a 2xx on the login route)",
		"Rate-limit " + route + " per client IP",
	}
	if user != "" {
		out = append(out, "Tell user "+user+" their account is being guessed and make sure MFA is on")
	}
	return out
}

// success escalates open brute-force alerts of the same source or user.
func (b *bruteForce) success(c *evctx) {
	e, ev := b.e, c.ev
	win := int64(c.s.BruteForce.SuccessWindow)
	type target struct {
		family string
		subj   storage.Subject
	}
	targets := [4]target{
		{famGuessing, ipSubject(ev)}, {ruleCredentialStuffing, ipSubject(ev)},
		{famGuessing, userSubject(ev)}, {ruleDistributedBruteForce, userSubject(ev)},
	}
	for i, t := range targets {
		if i >= 2 && ev.User == "" {
			break
		}
		a := e.open(c, DetectorBruteForce, t.family, t.subj)
		if a == nil || c.t-a.lastNS > win {
			continue
		}
		who := ev.User
		if who == "" {
			who = "(unknown user)"
		}
		observed := map[string]string{"logged_in_user": who, "logged_in_from": ev.ClientIP}
		e.raise(c, &finding{
			detector: DetectorBruteForce, rule: a.a.Rule, family: t.family, subject: t.subj,
			severity: storage.SeverityCritical,
			figures: map[string]float64{
				"successful_logins":      1,
				"seconds_after_failures": float64((c.t - a.lastNS) / int64(time.Second)),
				"failures":               float64(a.a.Count),
			},
			observed: observed,
			summary: fmt.Sprintf("%s, then %s logged in successfully from %s %ss after the last failure: the guessing probably worked",
				a.a.Evidence.Summary, who, ev.ClientIP, strconv.FormatInt((c.t-a.lastNS)/int64(time.Second), 10)),
			actions: []string{
				"Treat account " + who + " as compromised: force a password reset and revoke its sessions and API tokens",
				"Review everything " + who + " did since " + c.time().Format(time.RFC3339) + " (search events by user)",
				blockIP(ev.ClientIP),
			},
			mitre: a.a.Mitre,
		})
	}
}
