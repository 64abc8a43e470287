package detectors

import (
	"fmt"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

func probes(paths []string, every time.Duration, status int, opts ...opt) func() []storage.Event {
	return func() []storage.Event {
		s := &stream{}
		for i, p := range paths {
			s.add(t0.Add(time.Duration(i)*every), "GET", p, status, opts...)
		}
		return s.evs
	}
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func TestUnauthorizedAccess(t *testing.T) {
	scanner := ip("192.0.2.66")
	sensitive := []string{"/.env", "/.git/config", "/backup.zip", "/.aws/credentials", "/config.php", "/.htpasswd"}
	adminPaths := []string{"/wp-admin/", "/phpmyadmin/", "/manager/html", "/adminer.php"}
	runCases(t, DetectorUnauthorizedAccess, []detectorCase{
		{name: "11 distinct 404s in 2 seconds", events: probes(numbered("/page", 11), 200*time.Millisecond, 404, scanner),
			rule: rulePathProbing, severity: storage.SeverityMedium, check: func(t *testing.T, a storage.Alert) {
				f := a.Evidence.Figures
				if f["distinct_paths"] != 11 || f["capacity"] != 10 || f["leak_s"] != 10 || a.Mitre.ID != "T1595.003" || a.Count != 11 {
					t.Errorf("figures %v mitre %v count %d", f, a.Mitre, a.Count)
				}
			}},
		{name: "near miss: 10 distinct 404s", events: probes(numbered("/page", 10), 200*time.Millisecond, 404, scanner)},
		{name: "near miss: the same 404 twenty times", events: probes(make20("/missing"), 100*time.Millisecond, 404, scanner)},
		{name: "near miss: broken static assets", events: func() []storage.Event {
			paths := numbered("/static/chunk-", 20)
			for i := range paths {
				paths[i] += ".js"
			}
			return probes(paths, 100*time.Millisecond, 404, scanner)()
		}},
		{name: "5 distinct sensitive files", events: probes(sensitive[:5], 500*time.Millisecond, 404, scanner),
			rule: ruleSensitiveFileProbing, severity: storage.SeverityHigh},
		{name: "near miss: 4 sensitive files", events: probes(sensitive[:4], 500*time.Millisecond, 404, scanner)},
		{name: "3 admin interfaces", events: probes(adminPaths[:3], time.Second, 404, scanner),
			rule: ruleAdminProbing, severity: storage.SeverityMedium},
		{name: "near miss: 2 admin interfaces", events: probes(adminPaths[:2], time.Second, 404, scanner)},
		{name: "a scanner trips several buckets: one alert, the worst severity", events: func() []storage.Event {
			paths := append(append(numbered("/x", 8), adminPaths...), sensitive...)
			return probes(paths, 100*time.Millisecond, 404, scanner)()
		}, rule: ruleAdminProbing, severity: storage.SeverityHigh, check: func(t *testing.T, a storage.Alert) {
			// Opened by the third admin path (3 events), then 7 more probes.
			f := a.Evidence.Figures
			if f["distinct_admin_paths"] != 3 || f["distinct_sensitive_paths"] != 5 || f["distinct_paths"] != 11 || a.Count != 10 {
				t.Errorf("figures %v count %d", f, a.Count)
			}
		}},
		{name: "11 denials of one user", events: probes(make20("/api/items/9")[:11], 300*time.Millisecond, 403, user("bob")),
			rule: ruleDeniedBurst, severity: storage.SeverityMedium, check: func(t *testing.T, a storage.Alert) {
				if a.Subject != (storage.Subject{Kind: storage.SubjectUser, Value: "bob"}) || a.Evidence.Figures["denied"] != 11 {
					t.Errorf("subject %v figures %v", a.Subject, a.Evidence.Figures)
				}
			}},
		{name: "near miss: 10 denials", events: probes(make20("/api/items/9")[:10], 300*time.Millisecond, 403, user("bob"))},
		{name: "near miss: failed logins belong to brute_force", events: func() []storage.Event {
			return failures(&stream{}, 20, 100*time.Millisecond, t0, user("bob")).evs
		}},
		{name: "slow scanner: high 4xx ratio over many paths", events: func() []storage.Event {
			s := &stream{}
			start := t0.Truncate(5 * time.Minute)
			for i := range 24 {
				status := 404
				if i%4 == 3 {
					status = 200
				}
				s.add(start.Add(time.Duration(i)*12*time.Second), "GET", fmt.Sprintf("/wordlist/%d", i), status, scanner)
			}
			return s.evs
		}, rule: ruleErrorRatio, severity: storage.SeverityMedium, check: func(t *testing.T, a storage.Alert) {
			f := a.Evidence.Figures
			if f["requests"] < 20 || f["ratio"] < 0.5 || f["distinct_paths"] < 15 {
				t.Errorf("figures %v", f)
			}
		}},
		{name: "near miss: the same pace at a 40% error ratio", events: func() []storage.Event {
			s := &stream{}
			start := t0.Truncate(5 * time.Minute)
			for i := range 24 {
				status := 200
				if i%5 < 2 {
					status = 404
				}
				s.add(start.Add(time.Duration(i)*12*time.Second), "GET", fmt.Sprintf("/wordlist/%d", i), status, scanner)
			}
			return s.evs
		}},
		{name: "6 unauthenticated 2xx on the API", events: probes(numbered("/api/items/", 6), 5*time.Second, 200, ip("203.0.113.50")),
			rule: ruleUnauthenticatedAPI, severity: storage.SeverityHigh, check: func(t *testing.T, a storage.Alert) {
				if a.Mitre.ID != "T1190" || a.Evidence.Figures["unauthenticated_2xx"] != 6 {
					t.Errorf("mitre %v figures %v", a.Mitre, a.Evidence.Figures)
				}
			}},
		{name: "near miss: 5 unauthenticated 2xx", events: probes(numbered("/api/items/", 5), 5*time.Second, 200, ip("203.0.113.50"))},
		{name: "near miss: public health checks", events: probes(make20("/api/health"), time.Second, 200, ip("10.0.0.2"))},
		{name: "near miss: the API refusing anonymous calls", events: probes(numbered("/api/items/", 8), 5*time.Second, 401, ip("10.0.0.3"))},
		{name: "near miss: authenticated API reads", events: probes(numbered("/api/items/", 30), time.Second, 200, user("bob"))},
	})
}

func make20(p string) []string {
	out := make([]string, 20)
	for i := range out {
		out[i] = p
	}
	return out
}
