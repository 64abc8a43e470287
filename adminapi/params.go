package adminapi

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// param is one accepted query parameter: how to parse it into a query of
// type Q, and what it means, for the OpenAPI document. A parse error says
// what the parameter expects; parseParams names the parameter.
type param[Q any] struct {
	// doc describes the parameter for API users.
	doc string
	// typ is its OpenAPI type: "string" (the default), "integer" or
	// "boolean"; format refines it ("date-time", "ipv4"...).
	typ, format string
	parse       func(q *Q, v string) error
}

// params are the query parameters one endpoint accepts, by name.
type params[Q any] map[string]param[Q]

// liftParams is base without the names in drop, lifted onto a query type
// Q that embeds base's query type B (get finds it), plus extra: how an
// endpoint accepts another's parameters and some of its own, parsed by
// the one table.
func liftParams[Q, B any](base params[B], get func(*Q) *B, extra params[Q], drop ...string) params[Q] {
	out := params[Q]{}
	for name, p := range base {
		if slices.Contains(drop, name) {
			continue
		}
		out[name] = param[Q]{doc: p.doc, typ: p.typ, format: p.format,
			parse: func(q *Q, v string) error { return p.parse(get(q), v) }}
	}
	maps.Copy(out, extra)
	return out
}

// paramDoc is a query parameter as the OpenAPI document shows it.
type paramDoc struct {
	name, doc, typ, format string
}

// docs lists the parameters sorted by name.
func (ps params[Q]) docs() []paramDoc {
	out := make([]paramDoc, 0, len(ps))
	for _, name := range slices.Sorted(maps.Keys(ps)) {
		p := ps[name]
		out = append(out, paramDoc{name: name, doc: p.doc, typ: p.typ, format: p.format})
	}
	return out
}

// intIn parses v into *dst as an integer from lo to hi; otherwise the
// error says "expects <what> between lo and hi".
func intIn(v string, lo, hi int, dst *int, what string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return fmt.Errorf("expects %s between %d and %d", what, lo, hi)
	}
	*dst = n
	return nil
}

// paramError is a query parameter the API cannot use.
type paramError struct {
	name, value, problem string
}

func (e *paramError) Error() string {
	if e.value == "" {
		return fmt.Sprintf("query parameter %q: %s", e.name, e.problem)
	}
	return fmt.Sprintf("query parameter %q: %s (got %q)", e.name, e.problem, truncate(e.value, 64))
}

// parseParams parses a raw query string into q with one parser per
// accepted parameter. It is strict: an unknown or repeated parameter is an
// error, because a typo such as "usr=alice" would otherwise answer with
// everyone's events and look like a result. An empty value means no
// filter, as an empty HTML form field does.
func parseParams[Q any](raw string, q *Q, params params[Q]) error {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return fmt.Errorf("malformed query string: %v", err)
	}
	// Sorted, so the same bad request always gets the same answer.
	for _, name := range slices.Sorted(maps.Keys(vals)) {
		p, ok := params[name]
		if !ok {
			accepted := strings.Join(slices.Sorted(maps.Keys(params)), ", ")
			return &paramError{name: truncate(name, 64), problem: "unknown parameter; accepted: " + accepted}
		}
		vs := vals[name]
		if len(vs) > 1 {
			return &paramError{name: name, problem: "given more than once"}
		}
		if vs[0] == "" {
			continue
		}
		if err := p.parse(q, vs[0]); err != nil {
			return &paramError{name: name, value: vs[0], problem: err.Error()}
		}
	}
	return nil
}

// checkTimeRange refuses an empty or inverted from/to range.
func checkTimeRange(from, to time.Time) error {
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return &paramError{name: "from", problem: `must be earlier than "to"`}
	}
	return nil
}

func parseTime(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, errors.New("expects an RFC 3339 time such as 2024-05-01T12:00:00Z")
	}
	return t, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}
