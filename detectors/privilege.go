package detectors

import (
	"fmt"
	"strconv"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// privilege_escalation watches the privileged routes: Routes.Admin and the
// role or permission changes of Routes.RoleChange. The event carries no
// role, so an administrator is someone in AdminUsers. Rules:
//
//   - admin_route_access: with AdminUsers configured, a principal not in it
//     gets a 2xx on an admin route. High, T1068.
//   - denied_then_allowed: a 403 on a privileged route, then a 2xx on the
//     same route (ids folded, "/admin/users/7" is "/admin/users/8") within
//     DeniedWindow (default 1h), by the same user, or from the same client
//     IP when the 403 had no user (a spoofed identity or role header). This
//     is the rule that works without AdminUsers. It shares
//     admin_route_access's family. High, T1068.
//   - role_change: a successful role or permission change. Critical when
//     the path names the caller (a user changing their own roles); high by
//     a principal not in AdminUsers; medium, for review, when AdminUsers is
//     empty; none by an administrator changing someone else (routine).
//     T1098.
type privilegeEscalation struct {
	e     *Engine
	users *table[inWS[string], peState] // 403s by workspace and user
	ips   *table[inWS[string], peState] // 403s without a user, by workspace and client IP
}

type peState struct {
	denied []stamp // h is the route key
}

const (
	ruleAdminRouteAccess  = "admin_route_access"
	ruleDeniedThenAllowed = "denied_then_allowed"
	ruleRoleChange        = "role_change"
	famAdminAccess        = "admin_access"
	maxDeniedRoutes       = 16
)

func newPrivilegeEscalation(e *Engine, lim Limits) *privilegeEscalation {
	ttl := e.maxOver(func(s *settings) int64 { return int64(s.PrivilegeEscalation.DeniedWindow) })
	return &privilegeEscalation{
		e:     e,
		users: newTable[inWS[string], peState](lim.MaxKeys, ttl),
		ips:   newTable[inWS[string], peState](lim.MaxKeys, ttl),
	}
}

func (p *peState) remember(s stamp, window int64) {
	kept := p.denied[:0]
	for _, d := range p.denied {
		if d.h != s.h && d.t > s.t-window {
			kept = append(kept, d)
		}
	}
	clear(p.denied[len(kept):])
	p.denied = kept
	if len(p.denied) >= maxDeniedRoutes {
		p.denied = append(p.denied[:0], p.denied[1:]...)
	}
	p.denied = append(p.denied, s)
}

func (p *peState) find(route uint64, since int64) *stamp {
	for i := range p.denied {
		if p.denied[i].h == route && p.denied[i].t > since {
			return &p.denied[i]
		}
	}
	return nil
}

func (pe *privilegeEscalation) process(c *evctx) {
	if !c.admin && !c.role {
		return
	}
	e, ev, cfg := pe.e, c.ev, &c.s.PrivilegeEscalation
	route := routeKey(ev.Path)
	window := int64(cfg.DeniedWindow)
	if ev.Status == 403 {
		s := stamp{t: c.t, id: ev.ID, h: route}
		if ev.User != "" {
			pe.users.upsert(scoped(c, ev.User), e.now).remember(s, window)
		} else {
			pe.ips.upsert(scoped(c, ev.ClientIP), e.now).remember(s, window)
		}
		return
	}
	if !c.ok {
		return
	}
	subj := principal(ev)
	admins := c.s.admins
	isAdmin := ev.User != "" && admins[ev.User]

	var denied *stamp
	if ev.User != "" && !isAdmin {
		if st := pe.users.get(scoped(c, ev.User), e.now); st != nil {
			denied = st.find(route, c.t-window)
		}
	}
	if denied == nil {
		if st := pe.ips.get(scoped(c, ev.ClientIP), e.now); st != nil {
			denied = st.find(route, c.t-window)
		}
	}
	if denied != nil {
		secs := (c.t - denied.t) / int64(time.Second)
		e.raise(c, &finding{
			detector: DetectorPrivilegeEscalation, rule: ruleDeniedThenAllowed, family: famAdminAccess,
			subject: subj, severity: storage.SeverityHigh, evidence: evidence{ids: []string{denied.id, ev.ID}, first: denied.t, last: c.t},
			figures: map[string]float64{
				"denied_status": 403, "allowed_status": float64(ev.Status),
				"seconds_between": float64(secs), "window_s": seconds(cfg.DeniedWindow),
			},
			observed: map[string]string{"route": ev.Method + " " + ev.Path},
			summary: fmt.Sprintf("%s was denied (403) on privileged route %s, then allowed (%d) %ss later",
				describe(subj), ev.Path, ev.Status, strconv.FormatInt(secs, 10)),
			actions: []string{
				"Find out what changed between the 403 and the " + strconv.Itoa(ev.Status) + " for " + describe(subj) + " on " + ev.Path + ": a role granted in between, or a spoofed identity or role header (such as X-User-Role)",
				"Suspend the access of " + describe(subj) + " to " + ev.Path + " until this is explained",
				"Review the requests of " + describe(subj) + " since the 403 (the evidence lists both events)",
			},
			mitre: mitreExploitPrivEsc,
		})
	}
	if c.admin && len(admins) > 0 && !isAdmin {
		who := ev.User
		if who == "" {
			who = "a request without a user"
		}
		e.raise(c, &finding{
			detector: DetectorPrivilegeEscalation, rule: ruleAdminRouteAccess, family: famAdminAccess,
			subject: subj, severity: storage.SeverityHigh,
			figures:  map[string]float64{"status": float64(ev.Status), "admin_users": float64(len(admins))},
			observed: map[string]string{"route": ev.Method + " " + ev.Path},
			summary: fmt.Sprintf("%s, not in admin_users, got %d on admin route %s %s",
				who, ev.Status, ev.Method, ev.Path),
			actions: []string{
				"Verify the application's authorization on " + ev.Path + ": " + describe(subj) + " is not an administrator but was served",
				"Suspend the sessions of " + describe(subj) + " pending review",
				"If " + describe(subj) + " is a new administrator, add them to admin_users",
			},
			mitre: mitreExploitPrivEsc,
		})
	}
	if c.role {
		self := hasPathSegment(ev.Path, ev.User)
		sev := ""
		switch {
		case self:
			sev = storage.SeverityCritical
		case len(admins) == 0:
			sev = storage.SeverityMedium
		case !isAdmin:
			sev = storage.SeverityHigh
		}
		if sev == "" {
			return
		}
		summary := fmt.Sprintf("%s changed roles or permissions: %s %s answered %d", describe(subj), ev.Method, ev.Path, ev.Status)
		actions := []string{
			"Review the role and permission changes by " + describe(subj) + " (search events by " + subj.Kind + " on the role routes) and revert unauthorized ones",
		}
		selfFig := 0.0
		if self {
			selfFig = 1
			summary = fmt.Sprintf("user %s changed their own roles or permissions: %s %s answered %d", ev.User, ev.Method, ev.Path, ev.Status)
			actions = append([]string{"Revert the change " + ev.User + " made to their own roles and suspend the account pending investigation"}, actions...)
		} else if len(admins) > 0 {
			actions = append(actions, "Verify the application's authorization on "+ev.Path+": "+describe(subj)+" is not in admin_users")
		}
		e.raise(c, &finding{
			detector: DetectorPrivilegeEscalation, rule: ruleRoleChange, subject: subj, severity: sev,
			figures:  map[string]float64{"status": float64(ev.Status), "self_change": selfFig, "admin_users": float64(len(admins))},
			observed: map[string]string{"route": ev.Method + " " + ev.Path},
			summary:  summary,
			actions:  actions,
			mitre:    mitreAccountManip,
		})
	}
}
