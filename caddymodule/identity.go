package caddymodule

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Identity sources: where the user or workspace of a request comes from.
const (
	sourceHeader      = "header"       // a request header, as sent (unverified)
	sourceJWT         = "jwt"          // a claim of the bearer JWT
	sourceBasicAuth   = "basic_auth"   // the basic-auth user name
	sourcePlaceholder = "placeholder"  // any Caddy placeholder, read after the request is handled
	sourceHost        = "host"         // the request host (workspace only)
	sourcePathSegment = "path_segment" // the Nth path segment, 1-based (workspace only)
)

// IdentitySource says where to read a user or workspace from.
type IdentitySource struct {
	// Source is one of header, jwt, basic_auth, placeholder, host or
	// path_segment.
	Source string `json:"source"`
	// Name is the header name (header), claim (jwt, default "sub"),
	// placeholder such as {http.auth.user.id} (placeholder), or segment
	// number (path_segment). Unused for basic_auth and host.
	Name string `json:"name,omitempty"`

	// header is Name as net/http stores it: Header.Get canonicalizes a key
	// that is not canonical yet by allocating, once per request.
	header  string
	segment int
}

// The sources each identity may come from.
var (
	userSources      = []string{sourceHeader, sourceJWT, sourceBasicAuth, sourcePlaceholder}
	workspaceSources = []string{sourceHeader, sourceJWT, sourcePlaceholder, sourceHost, sourcePathSegment}
)

func (s *IdentitySource) validate(what string, allowed ...string) error {
	ok := false
	for _, a := range allowed {
		ok = ok || s.Source == a
	}
	if !ok {
		return fmt.Errorf("%s: unknown identity source %q (want one of %s)", what, s.Source, strings.Join(allowed, ", "))
	}
	switch s.Source {
	case sourceHeader, sourcePlaceholder:
		if s.Name == "" {
			return fmt.Errorf("%s: source %s needs a name", what, s.Source)
		}
		if s.Source == sourceHeader {
			s.header = http.CanonicalHeaderKey(s.Name)
		}
	case sourceBasicAuth, sourceHost:
		if s.Name != "" {
			return fmt.Errorf("%s: source %s takes no name", what, s.Source)
		}
	case sourceJWT:
		if s.Name == "" {
			s.Name = "sub"
		}
	case sourcePathSegment:
		n, err := strconv.Atoi(s.Name)
		if err != nil || n < 1 {
			return fmt.Errorf("%s: path_segment needs a segment number from 1, got %q", what, s.Name)
		}
		s.segment = n
	}
	return nil
}

// afterHandling reports whether the value only exists once the rest of the
// chain ran (authentication handlers set {http.auth.user.*} on the way in,
// after the audit handler).
func (s *IdentitySource) afterHandling() bool {
	return s.Source == sourcePlaceholder || s.Source == sourceBasicAuth
}

// identity is a resolved user or workspace.
type identity struct {
	value    string
	source   string
	verified bool
}

// resolve reads the identity from r. claims lazily decodes the bearer JWT
// once per request for all sources that need it.
func (s *IdentitySource) resolve(r *http.Request, repl *caddy.Replacer, claims func() (map[string]any, bool)) identity {
	switch s.Source {
	case sourceHeader:
		return identity{value: r.Header.Get(s.header), source: sourceHeader}
	case sourceJWT:
		c, verified := claims()
		if v, ok := c[s.Name]; ok {
			return identity{value: claimString(v), source: sourceJWT, verified: verified}
		}
	case sourceBasicAuth:
		user, _, ok := r.BasicAuth()
		if !ok {
			return identity{}
		}
		// basic_auth (the Caddy handler) sets the user id only after the
		// password checked out.
		authed := repl != nil && repl.ReplaceAll("{http.auth.user.id}", "") == user
		return identity{value: user, source: sourceBasicAuth, verified: authed}
	case sourcePlaceholder:
		if repl == nil {
			return identity{}
		}
		// ReplaceAll, not ReplaceKnown: a placeholder nobody set (no
		// authentication handler ran) must read as no user, not as its
		// own literal text.
		v := repl.ReplaceAll(s.Name, "")
		// Caddy's authentication handlers are the ones that set
		// http.auth.*; anything else is as trustworthy as its input.
		return identity{value: v, source: sourcePlaceholder, verified: v != "" && strings.HasPrefix(s.Name, "{http.auth.")}
	case sourceHost:
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		return identity{value: strings.ToLower(host), source: sourceHost}
	case sourcePathSegment:
		segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
		if s.segment <= len(segs) {
			return identity{value: segs[s.segment-1], source: sourcePathSegment}
		}
	}
	return identity{}
}

func claimString(v any) string {
	switch c := v.(type) {
	case string:
		return c
	case float64:
		return strconv.FormatFloat(c, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(c)
	}
	return ""
}

// bearerClaims returns a function decoding the request's bearer JWT at most
// once.
func bearerClaims(r *http.Request, v *jwtVerifier) func() (map[string]any, bool) {
	var (
		done     bool
		claims   map[string]any
		verified bool
	)
	return func() (map[string]any, bool) {
		if done {
			return claims, verified
		}
		done = true
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return nil, false
		}
		claims, verified, _ = jwtClaims(strings.TrimSpace(token), v, time.Now())
		return claims, verified
	}
}
