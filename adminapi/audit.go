package adminapi

import (
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
		Workspace: key.Workspace,
		Details:   details,
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
