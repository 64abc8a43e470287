package adminapi

import (
	"context"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

// record queues an admin event saying that key did action through r with
// the given outcome (a zero key is an unauthenticated caller): the audit trail audits its own readers (PCI DSS 10.2.1.3). A
// full queue loses the event, but the writer counts the drop and records
// the gap, so the response is not held back for it.
func (a *api) record(r *http.Request, key storage.APIKey, action string, status int, details map[string]any) {
	if st, ok := r.Context().Value(auditStateKey{}).(*auditState); ok {
		st.recorded = true
	}
	if a.recorder == nil {
		return
	}
	now := a.now()
	ev := &storage.Event{
		ID:     storage.NewID(now),
		Time:   now.UTC(),
		Kind:   storage.KindAdmin,
		Action: action,
		Method: policy.Clean(r.Method),
		Host:   policy.Clean(r.Host),
		Path:   policy.Clean(a.subjectPath(r)),
		// The query is safe to keep once the subject is tokenized: API
		// keys travel in a header, and the parameters are the filter,
		// which is what an auditor wants.
		Query:     policy.Clean(a.subjectQuery(r)),
		Proto:     r.Proto,
		Status:    status,
		Outcome:   storage.Outcome(status),
		UserAgent: policy.Clean(r.UserAgent()),
		Workspace: storage.AuditWorkspace,
	}
	// Tokenized on copies: details and its filter are often the caller's
	// response values too (the stats echo their filter), which must keep
	// what the client asked for.
	if details != nil {
		ev.Details = a.subjectDetails(details)
	}
	if key.Workspace != "" {
		// The principal's own scope, for "what did acme's key do".
		ev.SetDetail("principal_workspace", key.Workspace)
	}
	if key.ID != "" {
		ev.User, ev.UserSource, ev.UserVerified = key.ID, "api_key", true
	}
	ev.ClientIP, ev.ClientPort = splitRemote(r.RemoteAddr)
	if err := a.recorder.Enqueue(ev); err != nil {
		a.log.Warn("recording admin API use", "action", action, "error", err)
	}
}

// subjectParam is the path value and query parameter that carry a data
// subject's id: the GDPR subject routes, the risk profile, the user
// filter of searches and exports.
const subjectParam = "user"

// subjectParams are the query parameters and filter detail names whose
// values may be a data subject's id: the user filter, and the alerts'
// subject filter (a user id for user alerts). At the top level of
// details only "user" is a clear id: the GDPR calls put the subject's
// pseudonym under "subject" already.
var subjectParams = []string{subjectParam, "subject"}

// subjectToken is what the admin trail keeps of a data subject's id: its
// keyed token, which matches the subject's other records for whoever
// holds the key, so an investigator can still follow who looked up whom,
// while an erasure (which removes the clear id from events) is not undone
// by the record of the lookups. Without a key the id is dropped.
func (a *api) subjectToken(user string) string {
	if a.redactor == nil {
		return "{" + subjectParam + "}"
	}
	return a.redactor.Token(user)
}

// redactedKey replaces what looks like an API key secret in a recorded
// path or query: keys travel in the Authorization header, but one pasted
// into a URL by mistake must not reach the trail in clear either.
const redactedKey = keyPrefix + "[redacted]"

// looksLikeKey reports whether v may be an API key secret: the marker
// and more than the public prefix a key record shows (keyPrefixLen
// characters, kept in the trail on purpose to name the key).
func looksLikeKey(v string) bool {
	return strings.HasPrefix(v, keyPrefix) && len(v) > keyPrefixLen && v != redactedKey
}

// subjectDetails is a copy of details with every subject value (at the
// top level and in its filter) tokenized and API key lookalikes redacted.
func (a *api) subjectDetails(details map[string]any) map[string]any {
	out := maps.Clone(details)
	if filter, ok := out["filter"].(map[string]any); ok {
		out["filter"] = a.tokenizeSubjects(maps.Clone(filter), subjectParams)
	}
	return a.tokenizeSubjects(out, subjectParams[:1])
}

// tokenizeSubjects tokenizes the values of d named in names and redacts
// every string value that looks like an API key, in place.
func (a *api) tokenizeSubjects(d map[string]any, names []string) map[string]any {
	for name, v := range d {
		switch s, ok := v.(string); {
		case !ok || s == "":
		case slices.Contains(names, name):
			d[name] = a.subjectToken(s)
		case looksLikeKey(s):
			d[name] = redactedKey
		}
	}
	return d
}

// subjectPath is r's path with the segment at the route's {user}
// position tokenized (matched by position in the route pattern, not by
// value, so a user named like a fixed segment, "v1" or "api", does not
// tokenize the wrong one) and any segment that looks like an API key
// redacted.
func (a *api) subjectPath(r *http.Request) string {
	segs := strings.Split(r.URL.EscapedPath(), "/")
	userAt := -1
	if _, pattern, ok := strings.Cut(r.Pattern, "/"); ok {
		for i, seg := range strings.Split(pattern, "/") {
			if seg == "{"+subjectParam+"}" {
				userAt = i + 1 // the path's leading "" segment
			}
		}
	}
	for i, seg := range segs {
		v, err := url.PathUnescape(seg)
		if err != nil {
			v = seg
		}
		switch {
		case i == userAt:
			segs[i] = a.subjectToken(r.PathValue(subjectParam))
		case looksLikeKey(v):
			segs[i] = redactedKey
		}
	}
	return strings.Join(segs, "/")
}

// subjectQuery is r's raw query with the subject filters tokenized and
// API key lookalikes redacted. A query that does not parse (the call is
// refused with 400) is tokenized pair by pair on the raw text, so its
// subject does not reach the trail in clear either.
func (a *api) subjectQuery(r *http.Request) string {
	raw := r.URL.RawQuery
	if vals, err := url.ParseQuery(raw); err == nil {
		safe := make(url.Values, len(vals))
		for name, vs := range vals {
			if looksLikeKey(name) {
				name = redactedKey
			}
			for _, v := range vs {
				safe.Add(name, a.safeQueryValue(name, v))
			}
		}
		return safe.Encode()
	}
	pairs := strings.Split(raw, "&")
	for i, pair := range pairs {
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			name = rawName
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			value = rawValue
		}
		if looksLikeKey(name) {
			rawName = url.QueryEscape(redactedKey)
		}
		if safe := a.safeQueryValue(name, value); safe != value || looksLikeKey(name) {
			pairs[i] = rawName + "=" + url.QueryEscape(safe)
		}
	}
	return strings.Join(pairs, "&")
}

// safeQueryValue is what the trail keeps of query parameter name's value:
// a subject's token, an API key lookalike redacted, anything else as is.
func (a *api) safeQueryValue(name, v string) string {
	switch {
	case v == "":
		return v
	case slices.Contains(subjectParams, name):
		return a.subjectToken(v)
	case looksLikeKey(v):
		return redactedKey
	}
	return v
}

// splitRemote splits a RemoteAddr into host and port. The admin listener
// is reached directly by operators, so the connection's address is the
// client; no forwarding header is trusted here.
func splitRemote(addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// auditStateKey carries an *auditState in a request's context.
type auditStateKey struct{}

// auditState notes whether a handler recorded the call itself.
type auditState struct{ recorded bool }

// audited makes sure every authenticated call leaves an event. Handlers
// record their own, with the details that matter (filters, rows,
// hashes); a path they do not record (a malformed parameter, a body too
// large) is recorded here with its route and status, so the trail shows
// refused calls too.
func (a *api) audited(rt route, next http.Handler) http.Handler {
	name := rt.method + " " + rt.path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &auditState{}
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), auditStateKey{}, st))
		next.ServeHTTP(sw, r)
		if !st.recorded {
			key, _ := principalFrom(r.Context())
			a.record(r, key, "api.call", sw.status(), map[string]any{"route": name})
		}
	})
}

// statusWriter remembers the status a handler sent. Unwrap keeps
// http.NewResponseController (flushes of streamed exports) working.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
