package detectors

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"

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

// RiskLevels are the risk levels from lowest to highest.
var RiskLevels = []string{LevelLow, LevelMedium, LevelHigh, LevelCritical}

// SuspiciousScore is the score from which an event is flagged suspicious.
const SuspiciousScore = 40

// Scorer scores single events from stateless, explainable factors. Its
// configurable parts (the privileged routes and the large-response size)
// come from Config; NewScorer compiles them once. A Scorer is read-only
// after NewScorer and safe for concurrent use.
//
// Stateful factors (off-hours for the workspace, a first-seen IP or user
// agent for an established user) are not scored here: in the pipeline the
// event is committed before the engine sees it, and scoring must stay cheap
// on the request path. The engine reports them as unusual_access alerts
// instead of rewriting stored scores.
type Scorer struct {
	admin, roleChange routes
	largeResponse     int64
	largeDetail       string
}

// NewScorer builds a Scorer from cfg (zero fields take their defaults).
func NewScorer(cfg Config) *Scorer {
	cfg = cfg.WithDefaults()
	s := &Scorer{
		admin:         compileRoutes(cfg.Routes.Admin),
		roleChange:    compileRoutes(cfg.Routes.RoleChange),
		largeResponse: cfg.Risk.LargeResponseBytes,
	}
	if s.largeResponse > 0 {
		s.largeDetail = "response above " + humanize.IBytes(uint64(s.largeResponse))
	}
	return s
}

var defaultScorer = NewScorer(Config{})

// Score fills ev's risk fields with the default Scorer.
func Score(ev *storage.Event) { defaultScorer.Score(ev) }

// Score fills ev's risk fields from the request alone. It is stateless and
// allocation-light because it runs on the request path; anything that needs
// history belongs in a detector.
func (s *Scorer) Score(ev *storage.Event) {
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
	sensitive := sensitivePath(lowerPath)
	if sensitive != "" {
		add("sensitive_path", Error, sensitive)
	}
	admin := s.admin.match(ev.Method, ev.Path)
	role := ev.Method != "GET" && ev.Method != "HEAD" && s.roleChange.match(ev.Method, ev.Path)
	switch {
	case admin && sensitive == "":
		// "/admin" is already a sensitive path; do not count it twice.
		add("privileged_route", Error, "admin route")
	case role:
		add("privileged_route", Warning, "role or permission change")
	}
	// Path and query are checked apart: joining them would allocate, and no
	// pattern spans the "?".
	kind := attackPattern(lowerPath)
	if kind == "" && ev.Query != "" {
		kind = attackPattern(strings.ToLower(ev.Query))
	}
	if kind != "" {
		add("attack_pattern", Critical, kind)
	}
	if ev.Method == "DELETE" && ev.Status < 400 {
		add("destructive_method", Notice, "successful DELETE")
	}
	if ev.User != "" && !ev.UserVerified && ev.Kind == storage.KindHTTP {
		// Claimed identities are worth a look only when they reach
		// privileged routes; elsewhere they are the normal case for a
		// header-based legacy app.
		if admin || role || strings.HasPrefix(lowerPath, "/admin") {
			add("unverified_identity", Notice, "claimed user on a privileged route")
		}
	}
	if s.largeResponse > 0 && ev.BytesOut > s.largeResponse {
		add("large_response", Notice, s.largeDetail)
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

// scannerAgent lowers the agent into a stack buffer instead of calling
// strings.ToLower: every browser agent has capitals, and the copy was the
// only allocation on the benign path.
func scannerAgent(ua string) string {
	var buf [512]byte
	if len(ua) > len(buf) {
		ua = ua[:len(buf)] // tools put their name first; the tail is noise
	}
	b := buf[:len(ua)]
	for i := 0; i < len(ua); i++ {
		b[i] = lowerASCII(ua[i])
	}
	for i, s := range scannerAgentBytes {
		if bytes.Contains(b, s) {
			return scannerAgents[i]
		}
	}
	return ""
}

var scannerAgentBytes = func() [][]byte {
	out := make([][]byte, len(scannerAgents))
	for i, s := range scannerAgents {
		out[i] = []byte(s)
	}
	return out
}()

var sensitivePaths = []string{"/.env", "/.git", "/.svn", "/.htaccess", "/.htpasswd", "/wp-admin", "/wp-login", "/phpmyadmin", "/server-status", "/actuator", "/etc/passwd", "/.aws", "/.ssh", "/backup", "/config.php", "/web.config", "/admin"}

// sensitiveDirs are sensitivePaths with a trailing slash, built once:
// concatenating them per request was half of Score's time.
var sensitiveDirs = func() []string {
	out := make([]string, len(sensitivePaths))
	for i, p := range sensitivePaths {
		out[i] = p + "/"
	}
	return out
}()

func sensitivePath(lowerPath string) string {
	for i, p := range sensitivePaths {
		if strings.HasPrefix(lowerPath, p) || strings.Contains(lowerPath, sensitiveDirs[i]) {
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
