package detectors

import (
	"strconv"
	"strings"

	"github.com/caddy-audit/caddy-audit/storage"
)

// Severity points, after the OWASP Core Rule Set's anomaly scoring: a
// request's points are summed, so several weak signals add up to a strong one.
const (
	Critical = 5
	Error    = 4
	Warning  = 3
	Notice   = 2
)

// pointsToScore scales summed points to 0-100: one critical factor alone
// (5 points) is a score of 25, four of them saturate.
const pointsToScore = 5

// Risk levels by score.
const (
	LevelLow      = "low"
	LevelMedium   = "medium"
	LevelHigh     = "high"
	LevelCritical = "critical"
)

// SuspiciousScore is the score from which an event is flagged suspicious.
const SuspiciousScore = 40

// Score fills ev's risk fields from the request alone. It is stateless and
// allocation-light because it runs on the request path; anything that needs
// history belongs in a detector.
func Score(ev *storage.Event) {
	factors := ev.RiskFactors[:0]
	add := func(name string, points int, detail string) {
		factors = append(factors, storage.RiskFactor{Name: name, Points: points, Detail: detail})
	}
	switch {
	case ev.Status == 401:
		add("failed_auth", Warning, "401 Unauthorized")
	case ev.Status == 403:
		add("access_denied", Notice, "403 Forbidden")
	case ev.Status >= 500:
		add("upstream_error", Notice, "status "+strconv.Itoa(ev.Status))
	}
	if tool := scannerAgent(ev.UserAgent); tool != "" {
		add("scanner_user_agent", Critical, tool)
	}
	lowerPath := strings.ToLower(ev.Path)
	if p := sensitivePath(lowerPath); p != "" {
		add("sensitive_path", Error, p)
	}
	target := lowerPath + "?" + strings.ToLower(ev.Query)
	if kind := attackPattern(target); kind != "" {
		add("attack_pattern", Critical, kind)
	}
	if ev.Method == "DELETE" && ev.Status < 400 {
		add("destructive_method", Notice, "successful DELETE")
	}
	if ev.User != "" && !ev.UserVerified && ev.Kind == storage.KindHTTP {
		// Claimed identities are worth a look only when they reach
		// privileged routes; elsewhere they are the normal case for a
		// header-based legacy app.
		if strings.HasPrefix(lowerPath, "/admin") {
			add("unverified_identity", Notice, "claimed user on an admin route")
		}
	}
	points := 0
	for _, f := range factors {
		points += f.Points
	}
	score := points * pointsToScore
	if score > 100 {
		score = 100
	}
	ev.RiskFactors = factors
	ev.RiskScore = score
	ev.RiskLevel = Level(score)
	ev.Suspicious = score >= SuspiciousScore
}

// Level names a score's band.
func Level(score int) string {
	switch {
	case score >= 70:
		return LevelCritical
	case score >= 40:
		return LevelHigh
	case score >= 20:
		return LevelMedium
	}
	return LevelLow
}

var scannerAgents = []string{"sqlmap", "nikto", "nmap", "masscan", "zgrab", "nuclei", "gobuster", "dirbuster", "wpscan", "acunetix", "nessus", "openvas", "hydra", "ffuf", "feroxbuster", "burpcollaborator"}

func scannerAgent(ua string) string {
	ua = strings.ToLower(ua)
	for _, s := range scannerAgents {
		if strings.Contains(ua, s) {
			return s
		}
	}
	return ""
}

var sensitivePaths = []string{"/.env", "/.git", "/.svn", "/.htaccess", "/.htpasswd", "/wp-admin", "/wp-login", "/phpmyadmin", "/server-status", "/actuator", "/etc/passwd", "/.aws", "/.ssh", "/backup", "/config.php", "/web.config", "/admin"}

func sensitivePath(lowerPath string) string {
	for _, p := range sensitivePaths {
		if strings.HasPrefix(lowerPath, p) || strings.Contains(lowerPath, p+"/") {
			return p
		}
	}
	return ""
}

// attackPatterns are cheap substring checks for the most common probes.
// They look at the raw (escaped) target as well as the usual encodings.
var attackPatterns = []struct{ kind, needle string }{
	{"path_traversal", "../"},
	{"path_traversal", "..%2f"},
	{"path_traversal", "%2e%2e"},
	{"sql_injection", "union select"},
	{"sql_injection", "union+select"},
	{"sql_injection", "union%20select"},
	{"sql_injection", "' or '1'='1"},
	{"sql_injection", "%27%20or%20"},
	{"sql_injection", "'+or+"},
	{"sql_injection", "sleep("},
	{"xss", "<script"},
	{"xss", "%3cscript"},
	{"xss", "javascript:"},
	{"xss", "onerror="},
}

func attackPattern(lowerTarget string) string {
	for _, p := range attackPatterns {
		if strings.Contains(lowerTarget, p.needle) {
			return p.kind
		}
	}
	return ""
}
