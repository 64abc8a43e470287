package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/caddy-audit/caddy-audit/detectors"
)

// Audit levels, from least to most recorded.
const (
	LevelNone     = "none"     // nothing is recorded; an explicit, reviewable choice
	LevelMetadata = "metadata" // who, what, when, where from, outcome
	LevelHeaders  = "headers"  // metadata plus sanitized request and response headers
	LevelBody     = "body"     // headers plus bounded, redacted request and response bodies
)

// Levels lists the audit levels from least to most recorded.
var Levels = []string{LevelNone, LevelMetadata, LevelHeaders, LevelBody}

// LevelRank orders levels: none 0 < metadata 1 < headers 2 < body 3, and
// -1 for an unknown level.
func LevelRank(level string) int { return slices.Index(Levels, level) }

// Failure modes: what happens to a request that cannot be recorded.
const (
	// FailureBestEffort never slows or fails a request; an event that
	// cannot be written is dropped, counted and reported.
	FailureBestEffort = "best_effort"
	// FailureStrict records the request durably before forwarding it; if
	// that fails the client gets 503 and the upstream sees nothing.
	FailureStrict = "strict"
)

// IP handling modes for the client address and the forwarded-for chain.
const (
	IPKeep         = "keep"         // stored as received
	IPPseudonymize = "pseudonymize" // replaced by a keyed HMAC token
	IPTruncate     = "truncate"     // IPv4 to /24, IPv6 to /48
)

// Detector sensitivities; see Sensitivity.
const (
	SensitivityLow    = "low"
	SensitivityNormal = "normal"
	SensitivityHigh   = "high"
)

// Policy is the audit policy file: what is recorded for which requests,
// what is never stored, how long it is kept and what happens when recording
// fails. Field names are the YAML keys.
type Policy struct {
	// Profile names the built-in profile this policy extends: development,
	// production, sox, pci, hipaa or gdpr. Its defaults apply where the
	// policy sets none, and its rules follow the policy's own.
	Profile string `yaml:"profile" json:"profile,omitempty"`
	// Defaults apply to requests no rule matches, and fill what a
	// matching rule leaves unset.
	Defaults Defaults `yaml:"defaults" json:"defaults"`
	// Rules are tried in order; the first whose match holds decides.
	Rules []Rule `yaml:"rules" json:"rules,omitempty"`
}

// Defaults are the policy-wide settings.
type Defaults struct {
	// Level is none, metadata (the default), headers or body.
	Level string `yaml:"level" json:"level,omitempty"`
	// FailureMode is best_effort (the default) or strict.
	FailureMode string `yaml:"failure_mode" json:"failure_mode,omitempty"`
	// Body bounds body capture at the body level.
	Body *Body `yaml:"body" json:"body,omitempty"`
	// RetentionDays keeps events that many days where neither the audit
	// app nor the workspace sets a retention; 0 keeps them forever.
	RetentionDays *int `yaml:"retention_days" json:"retention_days,omitempty"`
	// RetentionFloorDays is the least any workspace keeps, whatever its
	// own setting (a compliance minimum).
	RetentionFloorDays *int `yaml:"retention_floor_days" json:"retention_floor_days,omitempty"`
	// IPHandling is keep (the default), pseudonymize (keyed HMAC token) or
	// truncate (IPv4 /24, IPv6 /48), for the client IP and the
	// forwarded-for chain.
	IPHandling string `yaml:"ip_handling" json:"ip_handling,omitempty"`
	// BusinessHours are the working hours the detectors judge off-hours
	// access by, where the detector settings name none.
	BusinessHours *detectors.BusinessHours `yaml:"business_hours" json:"business_hours,omitempty"`
	// DetectorSensitivity is low, normal (the default) or high; see
	// Sensitivity.
	DetectorSensitivity string `yaml:"detector_sensitivity" json:"detector_sensitivity,omitempty"`
	// Redact adds to the built-in redaction of every request.
	Redact Redact `yaml:"redact" json:"redact"`
}

// Body bounds body capture.
type Body struct {
	// MaxBytes is how much of each body is kept. Default 8192, at most
	// 1 MiB.
	MaxBytes int `yaml:"max_bytes" json:"max_bytes,omitempty"`
	// ContentTypes are the media types captured ("application/json",
	// "application/*+json", "text/*"); others are recorded by size only.
	// Default JSON and form bodies.
	ContentTypes []string `yaml:"content_types" json:"content_types,omitempty"`
}

// Redact lists what, beyond the built-in lists, is never stored in clear.
// Every list adds to the built-in one and to the defaults: a rule can
// redact more than the defaults, never less.
type Redact struct {
	// Headers are request and response headers whose values are replaced
	// by tokens (a deny-list).
	Headers []string `yaml:"headers" json:"headers,omitempty"`
	// AllowHeaders, when set, are the only headers stored at the headers
	// and body levels; the others are left out. Credential headers on the
	// list are still tokenized.
	AllowHeaders []string `yaml:"allow_headers" json:"allow_headers,omitempty"`
	// Query are query parameters whose values are replaced by tokens.
	Query []string `yaml:"query" json:"query,omitempty"`
	// BodyFields are JSON keys and form fields whose values are replaced
	// by tokens, at any depth, compared case-insensitively.
	BodyFields []string `yaml:"body_fields" json:"body_fields,omitempty"`
	// Patterns are value patterns replaced wherever they appear (path,
	// query, headers, bodies): card, ssn, jwt, bearer, cloud_key,
	// private_key, email. All but email are always on.
	Patterns []string `yaml:"patterns" json:"patterns,omitempty"`
}

// Rule decides the audit of the requests it matches.
type Rule struct {
	// Name identifies the rule in events (the rule field) and in explain
	// output. Default "rule-<n>", counted from 1.
	Name string `yaml:"name" json:"name"`
	// Match says which requests the rule is for; empty matches all.
	Match Match `yaml:"match" json:"match"`
	// Level overrides the default level.
	Level string `yaml:"level" json:"level,omitempty"`
	// FailureMode overrides the default failure mode.
	FailureMode string `yaml:"failure_mode" json:"failure_mode,omitempty"`
	// Tags are recorded on matching events (auth, admin, delete, pii, chd,
	// phi, ...).
	Tags []string `yaml:"tags" json:"tags,omitempty"`
	// Body overrides the default body capture bounds.
	Body *Body `yaml:"body" json:"body,omitempty"`
	// Redact adds redactions for matching requests.
	Redact Redact `yaml:"redact" json:"redact"`
}

// Match lists conditions that must all hold; within one condition any of
// the listed values will do.
type Match struct {
	// Methods are HTTP methods, such as GET or DELETE.
	Methods []string `yaml:"methods" json:"methods,omitempty"`
	// Hosts are host names without port; "*.example.com" matches any
	// subdomain.
	Hosts []string `yaml:"hosts" json:"hosts,omitempty"`
	// Paths are globs over the request path: "*" matches within one
	// segment, "**" across segments ("/admin/**").
	Paths []string `yaml:"paths" json:"paths,omitempty"`
	// Routes are templates such as "/api/items/{id}": a "{name}" is one
	// non-empty segment, a trailing "{name...}" the rest of the path.
	Routes []string `yaml:"routes" json:"routes,omitempty"`
	// Workspaces are the tenants the rule is for.
	Workspaces []string `yaml:"workspaces" json:"workspaces,omitempty"`
	// Users are the acting users the rule is for.
	Users []string `yaml:"users" json:"users,omitempty"`
	// Status are response statuses: "404", "4xx" or "500-599". A rule
	// with status is decided after the response, so it can change what is
	// stored but not the failure mode (a strict request is recorded before
	// the status exists).
	Status []string `yaml:"status" json:"status,omitempty"`
}

// Error is a problem in a policy file, with where it is when known.
type Error struct {
	File   string // the file, or "" for a policy not read from a file
	Line   int    // 1-based; 0 when unknown
	Column int    // 1-based; 0 when unknown
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteByte(':')
		if e.Column > 0 {
			b.WriteString(strconv.Itoa(e.Column))
			b.WriteByte(':')
		}
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors are all the problems found in one file, in file order.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// maxErrors bounds what one bad file reports: the first screenful helps,
// ten thousand lines of a fuzzed file do not.
const maxErrors = 20

// Load reads and checks the policy file at path. It reads nothing else and
// has no side effects, so `caddy validate` can call it.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading audit policy: %w", err)
	}
	return Parse(path, data)
}

// Parse checks a policy document. Unknown keys, values of the wrong type
// and bad values are errors of type Errors, each with file, line and
// column. An empty document is the empty policy (all defaults).
func Parse(file string, data []byte) (*Policy, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors{syntaxError(file, err)}
	}
	p := new(Policy)
	if len(root.Content) == 0 {
		return p, nil
	}
	doc := root.Content[0]
	c := &checker{file: file}
	c.shape(doc, reflect.TypeOf(Policy{}), "policy")
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	// The tree already parsed is decoded; shape has refused unknown keys.
	if err := doc.Decode(p); err != nil {
		// shape accepted what the decoder refuses: report it with the
		// position the message names.
		return nil, Errors{syntaxError(file, err)}
	}
	c.validate(p, doc)
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	return p, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// syntaxError turns a yaml.v3 error, which knows the line but not the
// column, into an Error.
func syntaxError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	e := &Error{File: file}
	if m := yamlLineRE.FindStringSubmatchIndex(msg); m != nil {
		e.Line, _ = strconv.Atoi(msg[m[2]:m[3]])
		msg = strings.TrimLeft(msg[m[1]:], ": ")
	}
	e.Msg = strings.Join(strings.Fields(msg), " ")
	return e
}

// checker collects positioned errors.
type checker struct {
	file string
	errs Errors
}

func (c *checker) errorf(n *yaml.Node, format string, args ...any) {
	if len(c.errs) >= maxErrors {
		return
	}
	e := &Error{File: c.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	c.errs = append(c.errs, e)
}

// shape checks n against the Go type it will be decoded into, so that an
// unknown key or a value of the wrong kind is reported where it is, with
// its column (yaml.v3's own errors carry only the line).
func (c *checker) shape(n *yaml.Node, t reflect.Type, where string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // absent: the zero value
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.errorf(n, "%s: want a mapping of keys to values, got %s", where, describe(n))
			return
		}
		fields := yamlFields(t)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			name := k.Value
			f, ok := fields[name]
			if !ok {
				c.errorf(k, "%s: unknown key %q (known: %s)", where, name, strings.Join(sortedKeys(fields), ", "))
				continue
			}
			if seen[name] {
				c.errorf(k, "%s: key %q given twice", where, name)
				continue
			}
			seen[name] = true
			c.shape(v, f.Type, where+"."+name)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.errorf(n, "%s: want a list, got %s", where, describe(n))
			return
		}
		for i, e := range n.Content {
			c.shape(e, t.Elem(), fmt.Sprintf("%s[%d]", where, i))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			c.errorf(n, "%s: want a string, got %s", where, describe(n))
		}
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			c.errorf(n, "%s: want an integer, got %s", where, describe(n))
			return
		}
		if _, err := strconv.ParseInt(n.Value, 0, 32); err != nil {
			c.errorf(n, "%s: %q is out of range", where, n.Value)
		}
	default:
		c.errorf(n, "%s: unsupported type %s", where, t)
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for f := range fieldsOf(t) {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		out[name] = f
	}
	return out
}

func fieldsOf(t reflect.Type) func(func(reflect.StructField) bool) {
	return func(yield func(reflect.StructField) bool) {
		for i := 0; i < t.NumField(); i++ {
			if f := t.Field(i); f.IsExported() && !yield(f) {
				return
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// at finds the node under path (mapping keys, or "#i" for list index i);
// it returns the deepest node found, so an error points as close as
// possible. n may be nil (a policy that was not parsed from YAML).
func at(n *yaml.Node, path ...string) *yaml.Node {
	for _, step := range path {
		if n == nil {
			return nil
		}
		for n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		var next *yaml.Node
		if i, ok := strings.CutPrefix(step, "#"); ok {
			if idx, err := strconv.Atoi(i); err == nil && n.Kind == yaml.SequenceNode && idx < len(n.Content) {
				next = n.Content[idx]
			}
		} else if n.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == step {
					next = n.Content[j+1]
				}
			}
		}
		if next == nil {
			return n
		}
		n = next
	}
	return n
}

// validate checks values; doc, when not nil, gives the positions.
func (c *checker) validate(p *Policy, doc *yaml.Node) {
	if p.Profile != "" {
		if _, ok := profiles[p.Profile]; !ok {
			c.errorf(at(doc, "profile"), "profile: unknown profile %q (want one of %s)", p.Profile, strings.Join(ProfileNames(), ", "))
		}
	}
	c.defaults(&p.Defaults, at(doc, "defaults"))
	names := map[string]int{}
	for i := range p.Rules {
		r := &p.Rules[i]
		rn := at(doc, "rules", "#"+strconv.Itoa(i))
		where := fmt.Sprintf("rules[%d]", i)
		if r.Name != "" {
			where += " (" + r.Name + ")"
			if prev, dup := names[r.Name]; dup {
				c.errorf(at(rn, "name"), "%s: name %q already used by rules[%d]", where, r.Name, prev)
			}
			names[r.Name] = i
		}
		c.level(r.Level, at(rn, "level"), where+".level")
		c.failureMode(r.FailureMode, at(rn, "failure_mode"), where+".failure_mode")
		if len(r.Match.Status) > 0 && r.FailureMode == FailureStrict {
			c.errorf(at(rn, "failure_mode"), "%s: failure_mode strict cannot be combined with match.status: a strict request is recorded before it is forwarded, when its status is not known yet; split the rule in two", where)
		}
		c.body(r.Body, at(rn, "body"), where+".body")
		c.redact(&r.Redact, at(rn, "redact"), where+".redact")
		c.match(&r.Match, at(rn, "match"), where+".match")
		for j, tag := range r.Tags {
			if !tagRE.MatchString(tag) {
				c.errorf(at(rn, "tags", "#"+strconv.Itoa(j)), "%s.tags: %q is not a tag (lower-case letters, digits, '_' and '-', at most 32)", where, tag)
			}
		}
	}
}

var tagRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

func (c *checker) defaults(d *Defaults, n *yaml.Node) {
	c.level(d.Level, at(n, "level"), "defaults.level")
	c.failureMode(d.FailureMode, at(n, "failure_mode"), "defaults.failure_mode")
	c.body(d.Body, at(n, "body"), "defaults.body")
	if d.RetentionDays != nil && *d.RetentionDays < 0 {
		c.errorf(at(n, "retention_days"), "defaults.retention_days: must not be negative")
	}
	if d.RetentionFloorDays != nil && *d.RetentionFloorDays < 0 {
		c.errorf(at(n, "retention_floor_days"), "defaults.retention_floor_days: must not be negative")
	}
	if d.RetentionDays != nil && d.RetentionFloorDays != nil && *d.RetentionDays != 0 && *d.RetentionDays < *d.RetentionFloorDays {
		c.errorf(at(n, "retention_days"), "defaults.retention_days: %d is below retention_floor_days %d", *d.RetentionDays, *d.RetentionFloorDays)
	}
	switch d.IPHandling {
	case "", IPKeep, IPPseudonymize, IPTruncate:
	default:
		c.errorf(at(n, "ip_handling"), "defaults.ip_handling: unknown mode %q (want keep, pseudonymize or truncate)", d.IPHandling)
	}
	switch d.DetectorSensitivity {
	case "", SensitivityLow, SensitivityNormal, SensitivityHigh:
	default:
		c.errorf(at(n, "detector_sensitivity"), "defaults.detector_sensitivity: unknown sensitivity %q (want low, normal or high)", d.DetectorSensitivity)
	}
	if d.BusinessHours != nil {
		if err := detectors.ValidateBusinessHours(*d.BusinessHours); err != nil {
			c.errorf(at(n, "business_hours"), "defaults.business_hours: %v", err)
		}
	}
	c.redact(&d.Redact, at(n, "redact"), "defaults.redact")
}

func (c *checker) level(level string, n *yaml.Node, where string) {
	if level != "" && LevelRank(level) < 0 {
		c.errorf(n, "%s: unknown level %q (want none, metadata, headers or body)", where, level)
	}
}

func (c *checker) failureMode(mode string, n *yaml.Node, where string) {
	switch mode {
	case "", FailureBestEffort, FailureStrict:
	default:
		c.errorf(n, "%s: unknown failure mode %q (want best_effort or strict)", where, mode)
	}
}

// MaxBodyBytes bounds body capture: an audit trail is not a packet
// capture, and every captured byte is held in memory until the event is
// written.
const MaxBodyBytes = 1 << 20

func (c *checker) body(b *Body, n *yaml.Node, where string) {
	if b == nil {
		return
	}
	if b.MaxBytes < 0 || b.MaxBytes > MaxBodyBytes {
		c.errorf(at(n, "max_bytes"), "%s.max_bytes: %d is outside 0..%d", where, b.MaxBytes, MaxBodyBytes)
	}
	for i, ct := range b.ContentTypes {
		if !mediaRangeRE.MatchString(strings.ToLower(ct)) {
			c.errorf(at(n, "content_types", "#"+strconv.Itoa(i)), "%s.content_types: %q is not a media type such as application/json, application/*+json or text/*", where, ct)
		}
	}
}

var mediaRangeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9!#$&^_.+-]*/(\*|\*\+[a-z0-9.-]+|[a-z0-9][a-z0-9!#$&^_.+-]*)$`)

func (c *checker) redact(r *Redact, n *yaml.Node, where string) {
	for i, p := range r.Patterns {
		if !slices.Contains(PatternNames, p) {
			c.errorf(at(n, "patterns", "#"+strconv.Itoa(i)), "%s.patterns: unknown pattern %q (want one of %s)", where, p, strings.Join(PatternNames, ", "))
		}
	}
	lists := []struct {
		key  string
		vals []string
	}{{"headers", r.Headers}, {"allow_headers", r.AllowHeaders}, {"query", r.Query}, {"body_fields", r.BodyFields}}
	for _, l := range lists {
		for i, v := range l.vals {
			if strings.TrimSpace(v) == "" {
				c.errorf(at(n, l.key, "#"+strconv.Itoa(i)), "%s.%s: empty name", where, l.key)
			}
		}
	}
}

func (c *checker) match(m *Match, n *yaml.Node, where string) {
	for i, v := range m.Methods {
		if !IsToken(v) {
			c.errorf(at(n, "methods", "#"+strconv.Itoa(i)), "%s.methods: %q is not a method", where, v)
		}
	}
	for i, v := range m.Hosts {
		if v == "" || strings.ContainsAny(v, "/ ") {
			c.errorf(at(n, "hosts", "#"+strconv.Itoa(i)), "%s.hosts: %q is not a host name", where, v)
		}
	}
	for i, v := range m.Paths {
		if _, err := compileGlob(v); err != nil {
			c.errorf(at(n, "paths", "#"+strconv.Itoa(i)), "%s.paths: %v", where, err)
		}
	}
	for i, v := range m.Routes {
		if _, err := compileRoute(v); err != nil {
			c.errorf(at(n, "routes", "#"+strconv.Itoa(i)), "%s.routes: %v", where, err)
		}
	}
	for i, v := range m.Status {
		if _, err := parseStatus(v); err != nil {
			c.errorf(at(n, "status", "#"+strconv.Itoa(i)), "%s.status: %v", where, err)
		}
	}
}

// Validate checks a policy built in Go or decoded from JSON, as Parse
// checks a file (without positions).
func (p *Policy) Validate() error {
	c := &checker{}
	c.validate(p, nil)
	if len(c.errs) > 0 {
		return c.errs
	}
	return nil
}

// Validate reads and checks the policy file at path and resolves its
// profile: what `caddy audit policy validate` reports. It returns the
// effective policy.
func Validate(path string) (*Policy, error) {
	p, err := Load(path)
	if err != nil {
		return nil, err
	}
	return p.Effective()
}

// Hash is the SHA-256 of the policy's canonical JSON: equal for policies
// that decide the same, whatever their YAML formatting.
func (p *Policy) Hash() string {
	b, _ := json.Marshal(p) // strings, ints and slices always marshal
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
