package adminapi

import (
	"context"
	"net"
	"net/http"
	"strconv"

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
		Path:   policy.Clean(r.URL.EscapedPath()),
		// The raw query is safe to keep: API keys travel in a header, and
		// the parameters are the filter, which is what an auditor wants.
		Query:     policy.Clean(r.URL.RawQuery),
		Proto:     r.Proto,
		Status:    status,
		Outcome:   storage.Outcome(status),
		UserAgent: policy.Clean(r.UserAgent()),
		Workspace: storage.AuditWorkspace,
		Details:   details,
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
