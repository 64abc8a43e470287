package adminapi

import (
	"strings"

	"github.com/caddy-audit/caddy-audit/storage"
)

// The ECS export is NDJSON with Elastic Common Schema field names
// (ecsVersion), nested as Elasticsearch stores them, so an ingest
// pipeline or Filebeat's ndjson input can take it without mapping. What
// ECS has no field for goes under caddy_audit.

// ecsVersion is the ECS version the export targets.
const ecsVersion = "8.11.0"

// ecsDataset names the data set in event.dataset.
const ecsDataset = "caddy_audit.events"

// ecsEvent is one document.
type ecsEvent struct {
	// Timestamp is the event time, RFC 3339 in UTC with milliseconds.
	Timestamp string            `json:"@timestamp"`
	ECS       ecsVersionField   `json:"ecs"`
	Event     ecsEventField     `json:"event"`
	HTTP      *ecsHTTP          `json:"http,omitempty"`
	URL       *ecsURL           `json:"url,omitempty"`
	Source    *ecsEndpoint      `json:"source,omitempty"`
	User      *ecsUser          `json:"user,omitempty"`
	UserAgent *ecsUserAgent     `json:"user_agent,omitempty"`
	TLS       *ecsTLS           `json:"tls,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	// CaddyAudit holds the audit fields ECS has no place for.
	CaddyAudit map[string]any `json:"caddy_audit"`
}

type ecsVersionField struct {
	Version string `json:"version"`
}

type ecsEventField struct {
	Kind     string   `json:"kind"`
	Category []string `json:"category"`
	Type     []string `json:"type"`
	Action   string   `json:"action,omitempty"`
	// Outcome is success, failure or unknown.
	Outcome string `json:"outcome"`
	ID      string `json:"id"`
	// Sequence is the store's sequence number.
	Sequence uint64 `json:"sequence,omitempty"`
	// Duration is in nanoseconds.
	Duration  int64   `json:"duration,omitempty"`
	RiskScore float64 `json:"risk_score"`
	Dataset   string  `json:"dataset"`
	Module    string  `json:"module"`
}

type ecsHTTP struct {
	Request  ecsHTTPRequest   `json:"request"`
	Response *ecsHTTPResponse `json:"response,omitempty"`
	Version  string           `json:"version,omitempty"`
}

type ecsHTTPRequest struct {
	Method   string   `json:"method,omitempty"`
	ID       string   `json:"id,omitempty"`
	Referrer string   `json:"referrer,omitempty"`
	Body     *ecsBody `json:"body,omitempty"`
}

type ecsHTTPResponse struct {
	StatusCode int      `json:"status_code"`
	Body       *ecsBody `json:"body,omitempty"`
}

type ecsBody struct {
	Bytes int64 `json:"bytes"`
}

type ecsURL struct {
	Domain   string `json:"domain,omitempty"`
	Port     int    `json:"port,omitempty"`
	Path     string `json:"path,omitempty"`
	Query    string `json:"query,omitempty"`
	Scheme   string `json:"scheme,omitempty"`
	Original string `json:"original,omitempty"`
}

type ecsEndpoint struct {
	IP   string `json:"ip"`
	Port int    `json:"port,omitempty"`
}

type ecsUser struct {
	Name string `json:"name"`
}

type ecsUserAgent struct {
	Original string `json:"original"`
}

type ecsTLS struct {
	Version string `json:"version,omitempty"`
	Cipher  string `json:"cipher,omitempty"`
}

// ecsCategorize gives event.category and event.type: proxied requests
// and API calls are web access (denied for 401 and 403, error for 5xx);
// lifecycle events are configuration information.
func ecsCategorize(ev *storage.Event) (category, typ []string) {
	if ev.Kind == storage.KindLifecycle {
		return []string{"configuration"}, []string{"info"}
	}
	typ = []string{"access"}
	switch {
	case ev.Status == 401 || ev.Status == 403:
		typ = append(typ, "denied")
	case ev.Status >= 500:
		typ = append(typ, "error")
	}
	return []string{"web"}, typ
}

// toECS maps an audit event onto ECS fields.
func toECS(ev *storage.Event) ecsEvent {
	cat, typ := ecsCategorize(ev)
	outcome := ev.Outcome
	if outcome != "success" && outcome != "failure" {
		outcome = "unknown"
	}
	action := ev.Action
	if action == "" && ev.Kind == storage.KindHTTP {
		action = "http_request"
	}
	e := ecsEvent{
		Timestamp: ev.Time.UTC().Format(csvTimeLayout),
		ECS:       ecsVersionField{Version: ecsVersion},
		Event: ecsEventField{
			Kind: "event", Category: cat, Type: typ, Action: action, Outcome: outcome,
			ID: ev.ID, Sequence: ev.Seq, Duration: ev.DurationNS, RiskScore: float64(ev.RiskScore),
			Dataset: ecsDataset, Module: "caddy_audit",
		},
		CaddyAudit: auditExtras(ev),
	}
	if ev.Method != "" || ev.Path != "" {
		e.HTTP = &ecsHTTP{
			Request: ecsHTTPRequest{Method: strings.ToUpper(ev.Method), ID: ev.RequestID, Referrer: ev.Referer},
			Version: strings.TrimPrefix(ev.Proto, "HTTP/"),
		}
		if ev.BytesIn != 0 {
			e.HTTP.Request.Body = &ecsBody{Bytes: ev.BytesIn}
		}
		if ev.Status != 0 {
			e.HTTP.Response = &ecsHTTPResponse{StatusCode: ev.Status, Body: &ecsBody{Bytes: ev.BytesOut}}
		}
		host, port := splitRemote(ev.Host)
		e.URL = &ecsURL{Domain: host, Port: port, Path: ev.Path, Query: ev.Query, Scheme: ev.Scheme, Original: urlString(ev)}
	}
	if ev.ClientIP != "" {
		e.Source = &ecsEndpoint{IP: ev.ClientIP, Port: ev.ClientPort}
	}
	if ev.User != "" {
		e.User = &ecsUser{Name: ev.User}
	}
	if ev.UserAgent != "" {
		e.UserAgent = &ecsUserAgent{Original: ev.UserAgent}
	}
	if ev.TLSVersion != "" || ev.TLSCipher != "" {
		e.TLS = &ecsTLS{Version: ev.TLSVersion, Cipher: ev.TLSCipher}
	}
	if ev.Workspace != "" {
		e.Labels = map[string]string{"workspace": ev.Workspace}
	}
	return e
}
