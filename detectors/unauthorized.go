package detectors

import (
	"fmt"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// unauthorized_access watches denials and probing. Rules of the probing
// family (one alert per subject however many of them trip):
//
//   - path_probing: per client IP, distinct paths answered 400, 403 or 404
//     (static assets excluded), leaky bucket with distinct (default capacity
//     10, leak 10s, CrowdSec http-probing). Medium.
//   - sensitive_file_probing: per client IP, distinct SensitivePaths
//     answered 4xx (default capacity 4, leak 5s, CrowdSec
//     http-sensitive-files). High.
//   - admin_probing: per client IP, distinct AdminInterfacePaths answered
//     4xx (default capacity 2, leak 10s, CrowdSec
//     http-admin-interface-probing). Medium.
//   - denied_burst: per principal, 401 and 403 outside the login routes
//     (default capacity 10, leak 10s). Medium.
//   - error_ratio: per principal, a window (default 5m) with at least 20
//     requests, half of them 4xx (static assets excluded), over at least 15
//     distinct failing paths: the slow scanner that never fills a bucket.
//     Medium.
//
// These map to T1595 (T1595.003 for path probing: wordlist scanning).
//
// And unauthenticated_api: per client IP, 2xx answers to requests without a
// user on Routes.Authenticated (not Public, not a login route), default
// capacity 5, leak 60s. The application served a protected route to
// nobody: a broken access control being used (T1190), or the audit
// handler's user source is misconfigured. High.
type unauthorizedAccess struct {
	e          *Engine
	ips        *table[inWS[string], unIP]
	principals *table[inWS[storage.Subject], unPrincipal]
}

type unIP struct {
	probing, sensitive, adminProbe distinctLeaky
	unauth                         leaky
	recent                         ring // the latest probe-like events
	unauthRecent                   ring
}

type unPrincipal struct {
	denied       leaky
	deniedRecent ring
	win          int64
	started      bool
	total, errs  int
	paths        hashSet
}

const (
	rulePathProbing          = "path_probing"
	ruleSensitiveFileProbing = "sensitive_file_probing"
	ruleAdminProbing         = "admin_probing"
	ruleDeniedBurst          = "denied_burst"
	ruleErrorRatio           = "error_ratio"
	ruleUnauthenticatedAPI   = "unauthenticated_api"
	famProbing               = "probing"
	unEvidence               = storage.MaxFirstEvidence + storage.MaxLastEvidence
)

func newUnauthorizedAccess(e *Engine, lim Limits) *unauthorizedAccess {
	ttl := e.maxOver(func(s *settings) int64 {
		c := s.UnauthorizedAccess
		drain := func(b Bucket) int64 { return int64(b.Capacity+1) * int64(b.LeakSpeed) }
		return max(drain(c.Denied), drain(c.Probing), drain(c.SensitiveFiles), drain(c.AdminProbing),
			drain(c.Unauthenticated), 2*int64(c.ErrorRatio.Window))
	})
	return &unauthorizedAccess{
		e:          e,
		ips:        newTable[inWS[string], unIP](lim.MaxKeys, ttl),
		principals: newTable[inWS[storage.Subject], unPrincipal](lim.MaxKeys, ttl),
	}
}

func (u *unauthorizedAccess) process(c *evctx) {
	e, ev, s := u.e, c.ev, c.s
	cfg := &s.UnauthorizedAccess
	is4xx := ev.Status >= 400 && ev.Status < 500
	ipSubj := ipSubject(ev)
	subj := principal(ev)

	// Per principal: denied bursts and the error ratio see every event.
	ps := u.principals.upsert(scoped(c, subj), e.now)
	static := u.static(s, ev.Path)
	u.errorRatio(c, ps, subj, is4xx && !static)
	if (ev.Status == 401 || ev.Status == 403) && !c.login {
		ps.deniedRecent.push(stamp{t: c.t, id: ev.ID}, cfg.Denied.Capacity+1)
		if ps.denied.pour(c.t, cfg.Denied) {
			f := u.probeFinding(c, subj, ruleDeniedBurst, storage.SeverityMedium, recentEvidence(&ps.deniedRecent, cfg.Denied.Capacity+1))
			f.figures = bucketFigures("denied", cfg.Denied)
			f.summary = fmt.Sprintf("%s got %d answers 401 or 403 in a burst (bucket capacity %d, one token back every %s), last on %s",
				describe(subj), cfg.Denied.Capacity+1, cfg.Denied.Capacity, time.Duration(cfg.Denied.LeakSpeed), ev.Path)
			if subj.Kind == storage.SubjectUser {
				f.actions = []string{
					"Ask why " + ev.User + " keeps being denied: a broken client, or someone trying records they should not see (look for sequential ids in the evidence paths)",
					"Suspend the sessions of " + ev.User + " if the paths target other users' or workspaces' data",
				}
			}
			e.raise(c, f)
		} else {
			e.attach(c, DetectorUnauthorizedAccess, famProbing, subj)
		}
	}

	probe := ev.Status == 400 || ev.Status == 403 || ev.Status == 404
	unauth := ev.User == "" && c.ok && !c.login &&
		e.routes.authenticated.match(ev.Method, ev.Path) && !e.routes.public.match(ev.Method, ev.Path)
	if !(is4xx || unauth) {
		return
	}
	ip := u.ips.upsert(scoped(c, ev.ClientIP), e.now)
	if unauth {
		ip.unauthRecent.push(stamp{t: c.t, id: ev.ID}, cfg.Unauthenticated.Capacity+1)
		if ip.unauth.pour(c.t, cfg.Unauthenticated) {
			e.raise(c, &finding{
				detector: DetectorUnauthorizedAccess, rule: ruleUnauthenticatedAPI, subject: ipSubj,
				severity: storage.SeverityHigh, evidence: recentEvidence(&ip.unauthRecent, cfg.Unauthenticated.Capacity+1),
				figures:  bucketFigures("unauthenticated_2xx", cfg.Unauthenticated),
				observed: map[string]string{"route": ev.Method + " " + ev.Path},
				summary: fmt.Sprintf("%s got %d answers 2xx without a user on authenticated routes (last %s %s)",
					describe(ipSubj), cfg.Unauthenticated.Capacity+1, ev.Method, ev.Path),
				actions: []string{
					"Check the application's authentication on " + ev.Path + ": it answered " + fmt.Sprint(ev.Status) + " to a request without an identity (or fix the audit handler's user source if the request had one)",
					blockIP(ev.ClientIP) + ", unless it is a known integration",
					"Review what " + ev.ClientIP + " fetched without an identity (search events by client_ip)",
				},
				mitre: mitreExploitPublic,
			})
		} else {
			e.attach(c, DetectorUnauthorizedAccess, ruleUnauthenticatedAPI, ipSubj)
		}
	}
	if !is4xx {
		return
	}
	ip.recent.push(stamp{t: c.t, id: ev.ID}, unEvidence)
	raised := false
	if p := s.sensitive.match(ev.Path); p != "" {
		if over, _ := ip.sensitive.pour(c.t, hashFold(ev.Path), cfg.SensitiveFiles); over {
			b := cfg.SensitiveFiles
			f := u.bucketFinding(c, ip, ruleSensitiveFileProbing, storage.SeverityHigh, b, "distinct_sensitive_paths",
				fmt.Sprintf("%s probed %d distinct sensitive files (such as %s) in a burst (bucket capacity %d, leak %s)",
					describe(ipSubj), b.Capacity+1, p, b.Capacity, time.Duration(b.LeakSpeed)))
			f.actions = append(f.actions, "Make sure files such as .env, .git and backups are never served by the application or the proxy")
			e.raise(c, f)
			raised = true
		}
	}
	if p := s.adminIfaces.match(ev.Path); p != "" {
		if over, _ := ip.adminProbe.pour(c.t, hashFold(ev.Path), cfg.AdminProbing); over {
			b := cfg.AdminProbing
			e.raise(c, u.bucketFinding(c, ip, ruleAdminProbing, storage.SeverityMedium, b, "distinct_admin_paths",
				fmt.Sprintf("%s probed %d distinct administration interfaces (such as %s) in a burst (bucket capacity %d, leak %s)",
					describe(ipSubj), b.Capacity+1, p, b.Capacity, time.Duration(b.LeakSpeed))))
			raised = true
		}
	}
	if probe && !static {
		if over, _ := ip.probing.pour(c.t, hashFold(ev.Path), cfg.Probing); over {
			b := cfg.Probing
			e.raise(c, u.bucketFinding(c, ip, rulePathProbing, storage.SeverityMedium, b, "distinct_paths",
				fmt.Sprintf("%s got 400, 403 or 404 on %d distinct paths in a burst (bucket capacity %d, leak %s)",
					describe(ipSubj), b.Capacity+1, b.Capacity, time.Duration(b.LeakSpeed))))
			raised = true
		}
	}
	if !raised {
		e.attach(c, DetectorUnauthorizedAccess, famProbing, ipSubj)
	}
}

func (u *unauthorizedAccess) static(s *settings, path string) bool {
	for _, ext := range s.static {
		if hasSuffixFold(path, ext) {
			return true
		}
	}
	return false
}

func (u *unauthorizedAccess) bucketFinding(c *evctx, ip *unIP, rule, sev string, b Bucket, figure, summary string) *finding {
	f := u.probeFinding(c, ipSubject(c.ev), rule, sev, recentEvidence(&ip.recent, b.Capacity+1))
	f.figures = bucketFigures(figure, b)
	f.summary = summary
	return f
}

func (u *unauthorizedAccess) probeFinding(c *evctx, subj storage.Subject, rule, sev string, evd evidence) *finding {
	ev := c.ev
	f := &finding{
		detector: DetectorUnauthorizedAccess, rule: rule, family: famProbing, subject: subj, severity: sev,
		evidence: evd,
		observed: map[string]string{rule + "_last_path": ev.Path},
		mitre:    mitreActiveScanning,
	}
	if rule == rulePathProbing {
		f.mitre = mitreWordlistScan
	}
	if ev.UserAgent != "" {
		f.observed["user_agent"] = ev.UserAgent
	}
	if subj.Kind == storage.SubjectIP {
		f.actions = []string{
			blockIP(subj.Value),
			"Check that none of the probed paths answered 2xx: search events with client_ip=" + subj.Value + " and status below 400",
			"If " + subj.Value + " is your own vulnerability scanner, allow-list it in the detector config instead",
		}
	} else {
		f.actions = []string{
			"Review the paths " + describe(subj) + " was refused (search events by user and status 4xx): a broken client, or someone mapping what they can reach",
			"Check that none of those paths answered 2xx for " + subj.Value,
			"Suspend the sessions of " + subj.Value + " if the paths target other users' or workspaces' data",
		}
	}
	return f
}

// errorRatio keeps the per-principal window and fires on a high share of
// 4xx over many distinct paths.
func (u *unauthorizedAccess) errorRatio(c *evctx, ps *unPrincipal, subj storage.Subject, is4xx bool) {
	r := c.s.UnauthorizedAccess.ErrorRatio
	W := int64(r.Window)
	if W <= 0 || r.MinPaths < 0 {
		return
	}
	switch w := c.t / W; {
	case !ps.started || w > ps.win:
		ps.win, ps.started = w, true
		ps.total, ps.errs = 0, 0
		ps.paths.reset()
	case w < ps.win:
		return // a late event of a finished window
	}
	ps.total++
	if !is4xx {
		return
	}
	ps.errs++
	if ps.paths.n <= r.MinPaths {
		ps.paths.add(hashFold(c.ev.Path))
	}
	ratio := float64(ps.errs) / float64(ps.total)
	if ps.total < r.MinRequests || ratio < r.MinRatio || ps.paths.n < r.MinPaths {
		return
	}
	f := u.probeFinding(c, subj, ruleErrorRatio, storage.SeverityMedium, evidence{})
	f.count = ps.errs
	f.refresh = true
	f.figures = map[string]float64{
		"requests": float64(ps.total), "errors": float64(ps.errs), "ratio": ratio, "min_ratio": r.MinRatio,
		"distinct_paths": float64(ps.paths.n), "min_paths": float64(r.MinPaths), "window_s": seconds(r.Window),
	}
	f.summary = fmt.Sprintf("%s got 4xx on %d of %d requests (%.0f%%) over %d or more distinct paths within %s",
		describe(subj), ps.errs, ps.total, ratio*100, ps.paths.n, time.Duration(r.Window))
	u.e.raise(c, f)
}
