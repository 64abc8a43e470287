package policy

import (
	"fmt"
	"net"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Request is what a rule is matched against. Path is the decoded path as
// the application sees it; it is cleaned and compared case-insensitively,
// so "/ADMIN/./x" cannot slip past a rule for "/admin/**".
type Request struct {
	Method, Host, Path string
	Workspace, User    string
	Status             int
	// Unknown marks what is not known yet: the status before the response,
	// and a user or workspace whose source is resolved after handling.
	// A condition on something unknown neither holds nor fails.
	Unknown Unknown

	// norm is method, host and path in the form rules are compiled to,
	// computed once however many rules and passes (Plan, then Match)
	// look at the request: this runs on every proxied request.
	norm struct {
		done               bool
		method, host, path string
	}
}

// normalize cleans Path (dot segments and double slashes cannot dodge a
// rule) and fills norm, once, when the first rule looks at the request: a
// policy without rules pays nothing for it.
func (req *Request) normalize() {
	if req.norm.done {
		return
	}
	req.Path = cleanPath(req.Path)
	host := req.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	req.norm.method = strings.ToUpper(req.Method)
	req.norm.host = strings.ToLower(strings.TrimSuffix(host, "."))
	req.norm.path = strings.ToLower(req.Path)
	req.norm.done = true
}

// Unknown is a set of request attributes not known yet.
type Unknown uint8

// Attributes that may be unknown when a rule is matched.
const (
	UnknownStatus Unknown = 1 << iota
	UnknownUser
	UnknownWorkspace
)

// Decision is what the policy decided for a request.
type Decision struct {
	// Rule is the matching rule's name, or "" when the defaults applied.
	Rule string `json:"rule,omitempty"`
	// Index is the rule's position in the effective policy, or -1.
	Index       int      `json:"index"`
	Level       string   `json:"level"`
	FailureMode string   `json:"failure_mode"`
	Tags        []string `json:"tags,omitempty"`
	Body        Body     `json:"body"`
	IPHandling  string   `json:"ip_handling"`

	redactor *Redactor
}

// Redactor is the redactor for requests with this decision: the built-in
// lists, the defaults' and the rule's.
func (d *Decision) Redactor() *Redactor { return d.redactor }

// Plan is the decision made before the request is forwarded.
type Plan struct {
	// Decision is the first rule that certainly matches, or the defaults.
	*Decision
	// Final is false when a rule before it may still match once the
	// unknown attributes are known: call Engine.Match after the response.
	Final bool
	// Capture is the highest level any rule that may match asks for: what
	// to collect now so that the final decision finds it.
	Capture string
	// CaptureBytes is the largest body bound among those rules.
	CaptureBytes int
}

// Engine matches requests against a compiled effective policy. It is safe
// for concurrent use.
type Engine struct {
	policy   *Policy
	hash     string
	rules    []compiledRule
	defaults *Decision
}

type compiledRule struct {
	methods    []string
	hosts      []string // lower-case; "*.x" matches subdomains of x
	paths      []*regexp.Regexp
	literal    []string // paths without wildcards, lower-case
	workspaces []string
	users      []string
	status     []statusRange
	decision   *Decision
}

// Compile prepares the effective policy p (see Policy.Effective) for
// matching, with redactors keyed by key. extra adds redactions to every
// decision (the handler's own redact_headers and redact_query).
func Compile(p *Policy, key []byte, extra Redact) (*Engine, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	base := NewRedactor(key, nil, nil).With(mergeRedact(p.Defaults.Redact, extra))
	// p is normally effective already; for one that is not, the built-in
	// defaults are the same ones Effective fills in.
	builtin := baseDefaults()
	body := *builtin.Body
	if p.Defaults.Body != nil {
		body = *p.Defaults.Body
	}
	e := &Engine{policy: p, hash: p.Hash()}
	e.defaults = &Decision{
		Index: -1, Level: or(p.Defaults.Level, builtin.Level), FailureMode: or(p.Defaults.FailureMode, builtin.FailureMode),
		Body: body, IPHandling: or(p.Defaults.IPHandling, builtin.IPHandling), redactor: base,
	}
	for i, r := range p.Rules {
		cr := compiledRule{
			methods:    upper(r.Match.Methods),
			hosts:      lower(r.Match.Hosts),
			workspaces: r.Match.Workspaces,
			users:      r.Match.Users,
		}
		for _, g := range r.Match.Paths {
			if !strings.ContainsAny(g, "*?") {
				cr.literal = append(cr.literal, strings.ToLower(path.Clean(g)))
				continue
			}
			re, err := compileGlob(g)
			if err != nil {
				return nil, err
			}
			cr.paths = append(cr.paths, re)
		}
		for _, t := range r.Match.Routes {
			re, err := compileRoute(t)
			if err != nil {
				return nil, err
			}
			cr.paths = append(cr.paths, re)
		}
		for _, s := range r.Match.Status {
			sr, err := parseStatus(s)
			if err != nil {
				return nil, err
			}
			cr.status = append(cr.status, sr)
		}
		d := &Decision{
			Rule: r.Name, Index: i, Level: or(r.Level, e.defaults.Level),
			FailureMode: or(r.FailureMode, e.defaults.FailureMode),
			Tags:        slices.Clone(r.Tags), Body: body, IPHandling: e.defaults.IPHandling,
			redactor: base,
		}
		if r.Body != nil {
			d.Body = Body{MaxBytes: or(r.Body.MaxBytes, body.MaxBytes), ContentTypes: r.Body.ContentTypes}
			if d.Body.ContentTypes == nil {
				d.Body.ContentTypes = body.ContentTypes
			}
		}
		if !emptyRedact(r.Redact) {
			d.redactor = base.With(r.Redact)
		}
		cr.decision = d
		e.rules = append(e.rules, cr)
	}
	return e, nil
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func upper(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = strings.ToUpper(v)
	}
	return out
}

func lower(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = strings.ToLower(v)
	}
	return out
}

func emptyRedact(r Redact) bool {
	return len(r.Headers)+len(r.AllowHeaders)+len(r.Query)+len(r.BodyFields)+len(r.Patterns) == 0
}

// Policy returns the effective policy the engine was compiled from.
func (e *Engine) Policy() *Policy { return e.policy }

// Hash is the effective policy's SHA-256 (Policy.Hash).
func (e *Engine) Hash() string { return e.hash }

// Defaults is the decision for requests no rule matches.
func (e *Engine) Defaults() *Decision { return e.defaults }

// Match returns the decision for a request whose attributes are all known
// (after the response): the first matching rule's, or the defaults.
func (e *Engine) Match(req *Request) *Decision {
	req.Unknown = 0
	for i := range e.rules {
		if e.rules[i].match(req) == yes {
			return e.rules[i].decision
		}
	}
	return e.defaults
}

// Plan decides before the request is forwarded, when the status (and
// perhaps the user or workspace) is not known.
func (e *Engine) Plan(req *Request) Plan {
	p := Plan{Decision: e.defaults, Final: true}
	capture, bytes := -1, 0
	consider := func(d *Decision) {
		capture = max(capture, LevelRank(d.Level))
		if d.Level == LevelBody {
			bytes = max(bytes, d.Body.MaxBytes)
		}
	}
	for i := range e.rules {
		switch e.rules[i].match(req) {
		case yes:
			p.Decision = e.rules[i].decision
			consider(p.Decision)
			p.Capture, p.CaptureBytes = Levels[capture], bytes
			return p
		case maybe:
			p.Final = false
			consider(e.rules[i].decision)
		}
	}
	consider(p.Decision)
	p.Capture, p.CaptureBytes = Levels[capture], bytes
	return p
}

type tri uint8

const (
	no tri = iota
	yes
	maybe
)

func (r *compiledRule) match(req *Request) tri {
	req.normalize()
	if len(r.methods) > 0 && !slices.Contains(r.methods, req.norm.method) {
		return no
	}
	if len(r.hosts) > 0 && !matchHost(r.hosts, req.norm.host) {
		return no
	}
	if len(r.literal)+len(r.paths) > 0 && !r.matchPath(req.norm.path) {
		return no
	}
	out := yes
	cond := func(set []string, v string, unknown Unknown) bool {
		if len(set) == 0 {
			return true
		}
		if req.Unknown&unknown != 0 {
			out = maybe
			return true
		}
		return slices.Contains(set, v)
	}
	if !cond(r.workspaces, req.Workspace, UnknownWorkspace) || !cond(r.users, req.User, UnknownUser) {
		return no
	}
	if len(r.status) > 0 {
		if req.Unknown&UnknownStatus != 0 {
			return maybe
		}
		if !slices.ContainsFunc(r.status, func(s statusRange) bool { return s.lo <= req.Status && req.Status <= s.hi }) {
			return no
		}
	}
	return out
}

// matchPath matches a cleaned, lower-cased path.
func (r *compiledRule) matchPath(lp string) bool {
	if slices.Contains(r.literal, lp) {
		return true
	}
	for _, re := range r.paths {
		if re.MatchString(lp) {
			return true
		}
	}
	return false
}

// matchHost matches a host without port or trailing dot, lower-cased.
func matchHost(hosts []string, h string) bool {
	for _, m := range hosts {
		if sub, ok := strings.CutPrefix(m, "*."); ok {
			if strings.HasSuffix(h, "."+sub) {
				return true
			}
		} else if m == h {
			return true
		}
	}
	return false
}

// cleanPath is path.Clean with a leading slash, so dot segments and double
// slashes cannot dodge a rule.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	if !strings.Contains(p, "//") && !strings.Contains(p, "/.") && (len(p) == 1 || p[len(p)-1] != '/') {
		return p // already clean: the common case, without allocating
	}
	return path.Clean(p)
}

// compileGlob compiles a path glob: "*" is any run within a segment, "**"
// any run across segments, "?" one character within a segment.
func compileGlob(g string) (*regexp.Regexp, error) {
	if !strings.HasPrefix(g, "/") {
		return nil, fmt.Errorf("path %q must start with /", g)
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(g); i++ {
		switch c := g[i]; c {
		case '*':
			if i+1 < len(g) && g[i+1] == '*' {
				i++
				// "/**" at the end also matches the directory itself.
				if i == len(g)-1 && i >= 2 && g[i-2] == '/' {
					s := b.String()
					b.Reset()
					b.WriteString(strings.TrimSuffix(s, "/"))
					b.WriteString("(/.*)?")
					continue
				}
				b.WriteString(".*")
				continue
			}
			b.WriteString("[^/]*")
		case '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(strings.ToLower(b.String()))
}

var routeParamRE = regexp.MustCompile(`^\{[A-Za-z_][A-Za-z0-9_]*(\.\.\.)?\}$`)

// compileRoute compiles a route template such as /api/items/{id}: a
// "{name}" segment is one non-empty segment, a final "{name...}" the rest
// of the path, possibly empty.
func compileRoute(t string) (*regexp.Regexp, error) {
	if !strings.HasPrefix(t, "/") {
		return nil, fmt.Errorf("route %q must start with /", t)
	}
	segs := strings.Split(t[1:], "/")
	var b strings.Builder
	b.WriteString("^")
	for i, seg := range segs {
		switch {
		case strings.ContainsAny(seg, "{}"):
			if !routeParamRE.MatchString(seg) {
				return nil, fmt.Errorf("route %q: segment %q is not a parameter such as {id} or {rest...}", t, seg)
			}
			if strings.HasSuffix(seg, "...}") {
				if i != len(segs)-1 {
					return nil, fmt.Errorf("route %q: %s must be the last segment", t, seg)
				}
				b.WriteString("(/.*)?")
				continue
			}
			b.WriteString("/[^/]+")
		case strings.ContainsAny(seg, "*?"):
			return nil, fmt.Errorf("route %q: use paths for globs; routes take {param} segments", t)
		default:
			if seg != "" || i < len(segs)-1 || len(segs) == 1 {
				b.WriteString("/" + regexp.QuoteMeta(strings.ToLower(seg)))
			}
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

type statusRange struct{ lo, hi int }

// parseStatus reads "404", "4xx" or "500-599".
func parseStatus(s string) (statusRange, error) {
	bad := fmt.Errorf("status %q: want a code (404), a class (4xx) or a range (500-599)", s)
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) == 3 && s[1:] == "xx" && s[0] >= '1' && s[0] <= '5' {
		lo := int(s[0]-'0') * 100
		return statusRange{lo, lo + 99}, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	l, err := strconv.Atoi(lo)
	if err != nil || l < 100 || l > 599 {
		return statusRange{}, bad
	}
	h := l
	if isRange {
		if h, err = strconv.Atoi(hi); err != nil || h < l || h > 599 {
			return statusRange{}, bad
		}
	}
	return statusRange{l, h}, nil
}
