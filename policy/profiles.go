package policy

import (
	"fmt"
	"slices"

	"github.com/caddy-audit/caddy-audit/detectors"
)

// Default body capture bounds.
const DefaultBodyMaxBytes = 8192

// DefaultBodyContentTypes are captured at the body level unless the policy
// says otherwise: the types whose fields the redactor understands.
var DefaultBodyContentTypes = []string{"application/json", "application/*+json", "application/x-www-form-urlencoded"}

// profile is what a built-in profile sets: defaults, and rules that follow
// the policy's own.
type profile struct {
	why      string
	defaults Defaults
	rules    []Rule
}

func days(n int) *int { return &n }

var officeHours = &detectors.BusinessHours{Timezone: "UTC", Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: "08:00", End: "18:00"}

// Rules the regulated profiles share. Paths follow the detectors' login
// and admin route defaults, so the profile and the detectors agree on what
// an authentication request is.
var (
	authMatch  = Match{Routes: []string{"/login", "/logout", "/signin", "/auth/{rest...}", "/oauth/{rest...}", "/api/login", "/api/auth/{rest...}", "/api/session"}}
	adminMatch = Match{Paths: []string{"/admin", "/admin/**"}}
	writes     = []string{"POST", "PUT", "PATCH", "DELETE"}
	health     = Rule{Name: "health-checks", Match: Match{Methods: []string{"GET", "HEAD"}, Paths: []string{"/healthz", "/readyz", "/livez", "/health"}}, Level: LevelNone}
)

func rule(name string, m Match, level, failure string, tags ...string) Rule {
	return Rule{Name: name, Match: m, Level: level, FailureMode: failure, Tags: tags}
}

// profiles are the built-in profiles. Their reasons are in the README's
// profile table; each line here says what the regime asks for.
var profiles = map[string]profile{
	"development": {
		why: "verbose, never blocks, short-lived",
		defaults: Defaults{
			Level: LevelHeaders, FailureMode: FailureBestEffort,
			RetentionDays: days(14), IPHandling: IPKeep, DetectorSensitivity: SensitivityLow,
		},
		rules: []Rule{
			health,
			rule("auth", authMatch, LevelBody, "", "auth"),
		},
	},
	"production": {
		why: "metadata for all, headers where identity is decided, never blocks",
		defaults: Defaults{
			Level: LevelMetadata, FailureMode: FailureBestEffort,
			RetentionDays: days(90), IPHandling: IPKeep, DetectorSensitivity: SensitivityNormal,
		},
		rules: []Rule{
			health,
			rule("auth", authMatch, LevelHeaders, "", "auth"),
			rule("admin", adminMatch, LevelHeaders, "", "admin"),
			rule("delete", Match{Methods: []string{"DELETE"}}, LevelMetadata, "", "delete"),
		},
	},
	// SOX ITGC: changes to financial data and access must be provably
	// recorded (strict for writes), kept seven years (SEC 17a-4 / SOX 802).
	"sox": {
		why: "every change durably recorded, 7 years",
		defaults: Defaults{
			Level: LevelMetadata, FailureMode: FailureBestEffort,
			RetentionDays: days(2555), RetentionFloorDays: days(2555), IPHandling: IPKeep,
			BusinessHours: officeHours, DetectorSensitivity: SensitivityNormal,
		},
		rules: []Rule{
			rule("auth", authMatch, LevelHeaders, FailureStrict, "auth"),
			rule("admin", adminMatch, LevelHeaders, FailureStrict, "admin"),
			rule("delete", Match{Methods: []string{"DELETE"}}, LevelMetadata, FailureStrict, "delete", "change"),
			rule("changes", Match{Methods: writes}, LevelMetadata, FailureStrict, "change"),
		},
	},
	// PCI DSS 10: all access to cardholder data and all admin actions
	// logged (10.2), trail kept 12 months (10.5.1), PAN never in clear
	// (3.3, 3.4).
	"pci": {
		why: "card data never stored, auth and admin strict, 1 year",
		defaults: Defaults{
			Level: LevelMetadata, FailureMode: FailureBestEffort,
			RetentionDays: days(365), RetentionFloorDays: days(365), IPHandling: IPKeep,
			BusinessHours: officeHours, DetectorSensitivity: SensitivityHigh,
			Redact: Redact{
				BodyFields: []string{"pan", "card", "track1", "track2", "track_data", "expiry", "exp_month", "exp_year", "cardholder_name"},
				Patterns:   []string{PatternCard},
			},
		},
		rules: []Rule{
			rule("auth", authMatch, LevelHeaders, FailureStrict, "auth"),
			rule("admin", adminMatch, LevelHeaders, FailureStrict, "admin"),
			rule("delete", Match{Methods: []string{"DELETE"}}, LevelMetadata, FailureStrict, "delete"),
		},
	},
	// HIPAA 164.312(b) audit controls and 164.316(b)(2) six-year
	// retention; PHI includes e-mail addresses, so those are tokenized.
	"hipaa": {
		why: "PHI access strictly recorded, e-mail tokenized, 6 years",
		defaults: Defaults{
			Level: LevelMetadata, FailureMode: FailureStrict,
			RetentionDays: days(2190), RetentionFloorDays: days(2190), IPHandling: IPKeep,
			BusinessHours: officeHours, DetectorSensitivity: SensitivityHigh,
			Redact: Redact{
				BodyFields: []string{"mrn", "medical_record_number", "dob", "date_of_birth", "diagnosis", "insurance_id", "member_id"},
				Patterns:   []string{PatternEmail},
			},
		},
		rules: []Rule{
			rule("auth", authMatch, LevelHeaders, FailureStrict, "auth"),
			rule("admin", adminMatch, LevelHeaders, FailureStrict, "admin"),
			rule("delete", Match{Methods: []string{"DELETE"}}, LevelMetadata, FailureStrict, "delete"),
		},
	},
	// GDPR Art. 5(1)(c) and (e): data minimisation and storage limitation;
	// Art. 32 pseudonymisation. Client addresses become keyed tokens (the
	// detectors still see equal addresses as equal), e-mail addresses are
	// tokenized, and the trail is kept six months.
	"gdpr": {
		why: "minimal personal data: IPs pseudonymized, e-mail tokenized, 6 months",
		defaults: Defaults{
			Level: LevelMetadata, FailureMode: FailureBestEffort,
			RetentionDays: days(180), IPHandling: IPPseudonymize, DetectorSensitivity: SensitivityNormal,
			Redact: Redact{
				BodyFields: []string{"email", "phone", "address", "birthdate", "date_of_birth", "national_id", "iban"},
				Patterns:   []string{PatternEmail},
			},
		},
		rules: []Rule{
			health,
			rule("auth", authMatch, LevelMetadata, "", "auth", "pii"),
			rule("admin", adminMatch, LevelHeaders, "", "admin"),
			rule("delete", Match{Methods: []string{"DELETE"}}, LevelMetadata, "", "delete"),
		},
	},
}

// ProfileNames lists the built-in profiles.
func ProfileNames() []string {
	return sortedKeys(profiles)
}

// Effective returns the policy with its profile applied and every default
// filled in: the rules the handler follows, the policy's own first and the
// profile's after them, and defaults where neither the policy nor the
// profile set one. The result has no profile left to resolve and is what
// Hash and explain report.
func (p *Policy) Effective() (*Policy, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	out := &Policy{Profile: p.Profile, Defaults: p.Defaults}
	out.Rules = append(out.Rules, cloneRules(p.Rules)...)
	if p.Profile != "" {
		prof := profiles[p.Profile]
		overlay(&out.Defaults, prof.defaults)
		for _, r := range cloneRules(prof.rules) {
			r.Name = p.Profile + ":" + r.Name
			out.Rules = append(out.Rules, r)
		}
	}
	overlay(&out.Defaults, baseDefaults())
	d := &out.Defaults
	d.Redact.Patterns = union(d.Redact.Patterns, DefaultPatterns)
	for i := range out.Rules {
		r := &out.Rules[i]
		if r.Name == "" {
			r.Name = fmt.Sprintf("rule-%d", i+1)
		}
	}
	if err := out.Validate(); err != nil {
		return nil, err // a profile rule clashes with a policy rule's name
	}
	return out, nil
}

func baseDefaults() Defaults {
	return Defaults{
		Level: LevelMetadata, FailureMode: FailureBestEffort,
		Body:       &Body{MaxBytes: DefaultBodyMaxBytes, ContentTypes: DefaultBodyContentTypes},
		IPHandling: IPKeep, DetectorSensitivity: SensitivityNormal,
	}
}

// overlay fills what d leaves unset from base; lists add up, because a
// redaction list that a policy could shorten would let it store a secret
// the profile promised to hide.
func overlay(d *Defaults, base Defaults) {
	if d.Level == "" {
		d.Level = base.Level
	}
	if d.FailureMode == "" {
		d.FailureMode = base.FailureMode
	}
	if d.Body == nil && base.Body != nil {
		b := *base.Body
		b.ContentTypes = slices.Clone(b.ContentTypes)
		d.Body = &b
	} else if d.Body != nil && base.Body != nil {
		if d.Body.MaxBytes == 0 {
			d.Body.MaxBytes = base.Body.MaxBytes
		}
		if d.Body.ContentTypes == nil {
			d.Body.ContentTypes = slices.Clone(base.Body.ContentTypes)
		}
	}
	if d.RetentionDays == nil && base.RetentionDays != nil {
		d.RetentionDays = days(*base.RetentionDays)
	}
	if d.RetentionFloorDays == nil && base.RetentionFloorDays != nil {
		d.RetentionFloorDays = days(*base.RetentionFloorDays)
	}
	if d.IPHandling == "" {
		d.IPHandling = base.IPHandling
	}
	if d.BusinessHours == nil && base.BusinessHours != nil {
		bh := *base.BusinessHours
		bh.Days = slices.Clone(bh.Days)
		d.BusinessHours = &bh
	}
	if d.DetectorSensitivity == "" {
		d.DetectorSensitivity = base.DetectorSensitivity
	}
	d.Redact = mergeRedact(d.Redact, base.Redact)
}

func mergeRedact(a, b Redact) Redact {
	return Redact{
		Headers:      union(a.Headers, b.Headers),
		AllowHeaders: union(a.AllowHeaders, b.AllowHeaders),
		Query:        union(a.Query, b.Query),
		BodyFields:   union(a.BodyFields, b.BodyFields),
		Patterns:     union(a.Patterns, b.Patterns),
	}
}

// union appends the values of b missing from a, keeping a's order.
func union(a, b []string) []string {
	if len(b) == 0 {
		return slices.Clone(a)
	}
	out := slices.Clone(a)
	for _, v := range b {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func cloneRules(rs []Rule) []Rule {
	out := make([]Rule, len(rs))
	for i, r := range rs {
		r.Tags = slices.Clone(r.Tags)
		m := &r.Match
		m.Methods, m.Hosts, m.Paths, m.Routes = slices.Clone(m.Methods), slices.Clone(m.Hosts), slices.Clone(m.Paths), slices.Clone(m.Routes)
		m.Workspaces, m.Users, m.Status = slices.Clone(m.Workspaces), slices.Clone(m.Users), slices.Clone(m.Status)
		if r.Body != nil {
			b := *r.Body
			b.ContentTypes = slices.Clone(b.ContentTypes)
			r.Body = &b
		}
		r.Redact = mergeRedact(r.Redact, Redact{})
		out[i] = r
	}
	return out
}

// ApplySensitivity tunes the detector thresholds cfg leaves at zero (its
// defaults) for the sensitivity: high fires sooner (regulated data, where
// a missed attack costs more than a false alert), low later (development,
// where tests hammer logins). Values cfg sets are kept.
func ApplySensitivity(sensitivity string, cfg *detectors.Config) {
	type knobs struct {
		bruteBurst, denied, probing, deletes, minEvents int
		sigma                                           float64
	}
	var k knobs
	switch sensitivity {
	case SensitivityHigh:
		k = knobs{bruteBurst: 3, denied: 5, probing: 5, deletes: 10, minEvents: 30, sigma: 2.5}
	case SensitivityLow:
		k = knobs{bruteBurst: 10, denied: 20, probing: 20, deletes: 50, minEvents: 100, sigma: 4}
	default:
		return
	}
	setInt := func(dst *int, v int) {
		if *dst == 0 {
			*dst = v
		}
	}
	s := &cfg.Settings
	setInt(&s.BruteForce.Burst.Capacity, k.bruteBurst)
	setInt(&s.UnauthorizedAccess.Denied.Capacity, k.denied)
	setInt(&s.UnauthorizedAccess.Probing.Capacity, k.probing)
	setInt(&s.MassDeletion.Deletes.Threshold, k.deletes)
	setInt(&s.UnusualAccess.MinEvents, k.minEvents)
	if s.DataExfiltration.Sigma == 0 {
		s.DataExfiltration.Sigma = k.sigma
	}
}

// ApplyBusinessHours sets cfg's global business hours from the policy
// where cfg names none.
func ApplyBusinessHours(bh *detectors.BusinessHours, cfg *detectors.Config) {
	if bh == nil {
		return
	}
	dst := &cfg.Settings.BusinessHours
	if dst.Timezone == "" {
		dst.Timezone = bh.Timezone
	}
	if dst.Days == nil {
		dst.Days = slices.Clone(bh.Days)
	}
	if dst.Start == "" {
		dst.Start = bh.Start
	}
	if dst.End == "" {
		dst.End = bh.End
	}
}

// ProfileDescription says in a few words what a built-in profile is for,
// or "" for an unknown name.
func ProfileDescription(name string) string { return profiles[name].why }
