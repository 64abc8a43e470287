package storage

import "time"

// Event kinds.
const (
	// KindHTTP is a request proxied through the audit handler.
	KindHTTP = "http"
	// KindAdmin is an action taken through the admin API: the audit trail
	// audits its own readers.
	KindAdmin = "admin"
	// KindLifecycle is something that happened to the audit pipeline itself:
	// start, stop, dropped events.
	KindLifecycle = "lifecycle"
)

// Stages of an HTTP event, after Kubernetes audit stages. A best-effort
// route records one ResponseComplete event per request; a strict route also
// records RequestReceived, durably, before the request is forwarded.
const (
	StageRequestReceived  = "request_received"
	StageResponseComplete = "response_complete"
)

// Event is one audit record. Field names are the JSON contract of the admin
// API and of exports; secrets never appear in it in clear (credential
// headers and sensitive query parameters are keyed HMAC tokens).
type Event struct {
	// ID is unique and sorts by creation time (a ULID).
	ID string `json:"id"`
	// Seq is the store's monotonic sequence number, assigned at commit.
	Seq uint64 `json:"seq"`
	// Time is when the request arrived (or the lifecycle action happened), UTC.
	Time time.Time `json:"time"`
	// Kind is http, admin or lifecycle.
	Kind string `json:"kind"`
	// Stage is request_received or response_complete for http events.
	Stage string `json:"stage,omitempty"`
	// Action names what an admin or lifecycle event did, such as
	// "events.search" or "events_dropped".
	Action string `json:"action,omitempty"`
	// Level is the audit level the event was recorded at.
	Level string `json:"level,omitempty"`
	// Rule names the audit policy rule that decided the event; empty when
	// the policy's defaults did.
	Rule string `json:"rule,omitempty"`
	// Tags are the deciding rule's tags (auth, admin, pii, chd, ...).
	Tags []string `json:"tags,omitempty"`

	RequestID string `json:"request_id,omitempty"`
	Method    string `json:"method,omitempty"`
	Scheme    string `json:"scheme,omitempty"`
	Host      string `json:"host,omitempty"`
	// Path is the escaped request path, as received.
	Path string `json:"path,omitempty"`
	// Query is the raw query with sensitive parameter values replaced.
	Query string `json:"query,omitempty"`
	Proto string `json:"proto,omitempty"`

	// Status is the HTTP status sent to the client (0 if none was sent).
	Status int `json:"status,omitempty"`
	// Outcome is success (status below 400) or failure.
	Outcome    string `json:"outcome,omitempty"`
	DurationNS int64  `json:"duration_ns,omitempty"`
	TTFBNS     int64  `json:"ttfb_ns,omitempty"`
	BytesIn    int64  `json:"bytes_in,omitempty"`
	BytesOut   int64  `json:"bytes_out,omitempty"`
	ClientIP   string `json:"client_ip,omitempty"`
	ClientPort int    `json:"client_port,omitempty"`
	// ForwardedFor is the raw X-Forwarded-For chain. Anyone can send it, so
	// it is evidence, not identity: the trusted address is ClientIP.
	ForwardedFor []string `json:"forwarded_for_untrusted,omitempty"`
	UserAgent    string   `json:"user_agent,omitempty"`
	Referer      string   `json:"referer,omitempty"`
	TLSVersion   string   `json:"tls_version,omitempty"`
	TLSCipher    string   `json:"tls_cipher,omitempty"`

	// User is who made the request, taken from the configured source.
	User string `json:"user,omitempty"`
	// UserSource says where User came from (header, jwt, basic_auth,
	// placeholder, api_key).
	UserSource string `json:"user_source,omitempty"`
	// UserVerified is true only when something checked the identity
	// (Caddy authentication, a verified JWT, an admin API key).
	UserVerified bool   `json:"user_verified"`
	Workspace    string `json:"workspace,omitempty"`

	UpstreamError   string              `json:"upstream_error,omitempty"`
	RequestHeaders  map[string][]string `json:"request_headers,omitempty"`
	ResponseHeaders map[string][]string `json:"response_headers,omitempty"`
	// RequestBody and ResponseBody are recorded at the body level.
	RequestBody  *Body `json:"request_body,omitempty"`
	ResponseBody *Body `json:"response_body,omitempty"`

	RiskScore   int          `json:"risk_score"`
	RiskLevel   string       `json:"risk_level,omitempty"`
	RiskFactors []RiskFactor `json:"risk_factors,omitempty"`
	Suspicious  bool         `json:"suspicious"`

	// Details carries what lifecycle and admin events need to say.
	Details map[string]any `json:"details,omitempty"`

	// Erased is true once the event's personal fields were replaced by
	// pseudonyms for a data subject's erasure request (Store.EraseSubject).
	// It is set by the store, never by the caller.
	Erased bool `json:"erased,omitempty"`

	// linked holds what chainEvent computed for encodeEvent; nil outside
	// putEvent, so stored and decoded events compare equal.
	linked *linkedParts
}

// Body is a request or response body recorded at the body level: its size
// always, and a bounded, redacted prefix when its content type is captured.
type Body struct {
	// ContentType is the body's Content-Type header.
	ContentType string `json:"content_type,omitempty"`
	// Size is the whole body's length in bytes, captured or not.
	Size int64 `json:"size"`
	// Truncated is true when Text holds only the first bytes of the body.
	Truncated bool `json:"truncated,omitempty"`
	// Text is the captured prefix with secrets replaced by HMAC tokens.
	Text string `json:"text,omitempty"`
	// Omitted says why there is no Text: the content type is not captured,
	// the body is compressed, or the subject's data was erased.
	Omitted string `json:"omitted,omitempty"`
}

// RiskFactor is one reason an event scored what it did.
type RiskFactor struct {
	// Name identifies the rule, such as "failed_auth".
	Name string `json:"name"`
	// Points is the rule's contribution to the score.
	Points int `json:"points"`
	// Detail says what was seen.
	Detail string `json:"detail,omitempty"`
}

// DetailImportedFrom is the Details key naming the access log an event was
// backfilled from (logimport). Imported events are history: the live
// detector engine skips them, because a replay has its own engine.
const DetailImportedFrom = "imported_from"

// Imported reports whether the event was backfilled from an access log.
func (ev *Event) Imported() bool {
	_, ok := ev.Details[DetailImportedFrom]
	return ok
}

// SetDetail sets one entry of Details, creating the map on first use.
func (e *Event) SetDetail(k string, v any) {
	if e.Details == nil {
		e.Details = make(map[string]any, 1)
	}
	e.Details[k] = v
}
