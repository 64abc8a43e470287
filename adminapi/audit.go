package adminapi

import (
	"context"
	"net"
	"net/http"
	"net/url"
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
		Details:   details,
	}
	filter, _ := details["filter"].(map[string]any)
	for _, d := range []map[string]any{details, filter} {
		if u, ok := d[subjectParam].(string); ok {
			d[subjectParam] = a.subjectToken(u)
		}
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

// subjectPath is r's path with the subject's segment tokenized.
func (a *api) subjectPath(r *http.Request) string {
	path := r.URL.EscapedPath()
	user := r.PathValue(subjectParam)
	if user == "" {
		return path
	}
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		if v, err := url.PathUnescape(seg); err == nil && v == user {
			segs[i] = a.subjectToken(user)
			break
		}
	}
	return strings.Join(segs, "/")
}

// subjectQuery is r's raw query with the user filter tokenized.
func (a *api) subjectQuery(r *http.Request) string {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil || !vals.Has(subjectParam) {
		return r.URL.RawQuery
	}
	for i, u := range vals[subjectParam] {
		vals[subjectParam][i] = a.subjectToken(u)
	}
	return vals.Encode()
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
