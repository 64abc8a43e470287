package adminapi

import (
	"strconv"
	"strings"

	"github.com/caddy-audit/caddy-audit/storage"
)

// The OCSF export is NDJSON: one HTTP Activity event (class 4002 of the
// Network Activity category, OCSF schema ocsfVersion) per audit event, the
// shape Amazon Security Lake and other OCSF-native SIEMs ingest. What has
// no OCSF attribute (risk factors, the event kind, the integrity fields)
// goes under unmapped, so nothing is lost.

// ocsfVersion is the OCSF schema version the export targets.
const ocsfVersion = "1.3.0"

// OCSF classification of HTTP Activity.
const (
	ocsfCategoryNetwork = 4
	ocsfClassHTTP       = 4002
)

// ocsfActivities are the activity_id values of HTTP Activity by method,
// OCSF 1.3.0. Other methods (PATCH has no id before 1.4) are 99, Other,
// with the method as activity_name; no method at all is 0, Unknown.
var ocsfActivities = map[string]int{
	"CONNECT": 1, "DELETE": 2, "GET": 3, "HEAD": 4, "OPTIONS": 5, "POST": 6, "PUT": 7, "TRACE": 8,
}

// ocsfEvent is one HTTP Activity event.
type ocsfEvent struct {
	ActivityID   int    `json:"activity_id"`
	ActivityName string `json:"activity_name"`
	CategoryUID  int    `json:"category_uid"`
	CategoryName string `json:"category_name"`
	ClassUID     int    `json:"class_uid"`
	ClassName    string `json:"class_name"`
	// TypeUID is class_uid*100 + activity_id.
	TypeUID  int    `json:"type_uid"`
	TypeName string `json:"type_name"`
	// Time is the event time in milliseconds since the Unix epoch.
	Time       int64  `json:"time"`
	SeverityID int    `json:"severity_id"`
	Severity   string `json:"severity"`
	// StatusID is 1 Success, 2 Failure or 0 Unknown (no outcome).
	StatusID   int    `json:"status_id"`
	Status     string `json:"status"`
	StatusCode string `json:"status_code,omitempty"`
	// Duration is in milliseconds.
	Duration     int64             `json:"duration,omitempty"`
	Message      string            `json:"message,omitempty"`
	Metadata     ocsfMetadata      `json:"metadata"`
	HTTPRequest  *ocsfHTTPRequest  `json:"http_request,omitempty"`
	HTTPResponse *ocsfHTTPResponse `json:"http_response,omitempty"`
	SrcEndpoint  *ocsfEndpoint     `json:"src_endpoint,omitempty"`
	DstEndpoint  *ocsfEndpoint     `json:"dst_endpoint,omitempty"`
	Actor        *ocsfActor        `json:"actor,omitempty"`
	TLS          *ocsfTLS          `json:"tls,omitempty"`
	Unmapped     map[string]any    `json:"unmapped,omitempty"`
}

type ocsfMetadata struct {
	Version string      `json:"version"`
	Product ocsfProduct `json:"product"`
	// UID is the audit event's id.
	UID string `json:"uid"`
	// Sequence is the store's sequence number of the event.
	Sequence  uint64 `json:"sequence,omitempty"`
	TenantUID string `json:"tenant_uid,omitempty"`
	LogName   string `json:"log_name"`
}

type ocsfProduct struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
}

type ocsfHTTPRequest struct {
	HTTPMethod string   `json:"http_method,omitempty"`
	URL        *ocsfURL `json:"url,omitempty"`
	UserAgent  string   `json:"user_agent,omitempty"`
	Referrer   string   `json:"referrer,omitempty"`
	// UID is the request id (X-Request-ID).
	UID     string `json:"uid,omitempty"`
	Version string `json:"version,omitempty"`
	// Length is the request body length in bytes.
	Length int64 `json:"length,omitempty"`
}

type ocsfURL struct {
	Hostname    string `json:"hostname,omitempty"`
	Port        int    `json:"port,omitempty"`
	Path        string `json:"path,omitempty"`
	QueryString string `json:"query_string,omitempty"`
	Scheme      string `json:"scheme,omitempty"`
	URLString   string `json:"url_string,omitempty"`
}

type ocsfHTTPResponse struct {
	Code int `json:"code"`
	// Length is the response body length in bytes.
	Length int64 `json:"length,omitempty"`
}

type ocsfEndpoint struct {
	IP       string `json:"ip,omitempty"`
	Port     int    `json:"port,omitempty"`
	Hostname string `json:"hostname,omitempty"`
}

type ocsfActor struct {
	User ocsfUser `json:"user"`
}

type ocsfUser struct {
	Name string `json:"name"`
	// UID is the recorded identity too: the audit trail knows no other
	// identifier of a user.
	UID string `json:"uid"`
}

type ocsfTLS struct {
	Version string `json:"version,omitempty"`
	Cipher  string `json:"cipher,omitempty"`
}

// ocsfSeverity maps the risk level onto severity_id: ordinary traffic
// (low, or unscored) is Informational, the others their namesakes.
func ocsfSeverity(level string) (int, string) {
	switch level {
	case "medium":
		return 3, "Medium"
	case "high":
		return 4, "High"
	case "critical":
		return 5, "Critical"
	}
	return 1, "Informational"
}

// toOCSF maps an audit event onto HTTP Activity.
func toOCSF(ev *storage.Event) ocsfEvent {
	o := ocsfEvent{
		CategoryUID: ocsfCategoryNetwork, CategoryName: "Network Activity",
		ClassUID: ocsfClassHTTP, ClassName: "HTTP Activity",
		Time: ev.Time.UnixMilli(),
		Metadata: ocsfMetadata{
			Version: ocsfVersion, Product: ocsfProduct{Name: "caddy-audit", VendorName: "caddy-audit"},
			UID: ev.ID, Sequence: ev.Seq, TenantUID: ev.Workspace, LogName: "audit",
		},
	}
	method := strings.ToUpper(ev.Method)
	switch id, ok := ocsfActivities[method]; {
	case ok:
		o.ActivityID, o.ActivityName = id, method[:1]+strings.ToLower(method[1:])
	case method == "":
		o.ActivityID, o.ActivityName = 0, "Unknown"
	default:
		o.ActivityID, o.ActivityName = 99, method
	}
	o.TypeUID = o.ClassUID*100 + o.ActivityID
	o.TypeName = "HTTP Activity: " + o.ActivityName
	o.SeverityID, o.Severity = ocsfSeverity(ev.RiskLevel)
	switch ev.Outcome {
	case "success":
		o.StatusID, o.Status = 1, "Success"
	case "failure":
		o.StatusID, o.Status = 2, "Failure"
	default:
		o.StatusID, o.Status = 0, "Unknown"
	}
	if ev.Status != 0 {
		o.StatusCode = strconv.Itoa(ev.Status)
		o.HTTPResponse = &ocsfHTTPResponse{Code: ev.Status, Length: ev.BytesOut}
	}
	o.Duration = ev.DurationNS / 1e6
	if method != "" {
		o.Message = method + " " + ev.Path
	} else {
		o.Message = ev.Action
	}
	if method != "" || ev.Path != "" {
		host, port := splitRemote(ev.Host) // a Host without a port comes back whole
		o.HTTPRequest = &ocsfHTTPRequest{
			HTTPMethod: method, UserAgent: ev.UserAgent, Referrer: ev.Referer, UID: ev.RequestID,
			Version: strings.TrimPrefix(ev.Proto, "HTTP/"), Length: ev.BytesIn,
			URL: &ocsfURL{Hostname: host, Port: port, Path: ev.Path, QueryString: ev.Query, Scheme: ev.Scheme, URLString: urlString(ev)},
		}
		if host != "" {
			o.DstEndpoint = &ocsfEndpoint{Hostname: host, Port: port}
		}
	}
	if ev.ClientIP != "" {
		o.SrcEndpoint = &ocsfEndpoint{IP: ev.ClientIP, Port: ev.ClientPort}
	}
	if ev.User != "" {
		o.Actor = &ocsfActor{User: ocsfUser{Name: ev.User, UID: ev.User}}
	}
	if ev.TLSVersion != "" || ev.TLSCipher != "" {
		o.TLS = &ocsfTLS{Version: ev.TLSVersion, Cipher: ev.TLSCipher}
	}
	o.Unmapped = auditExtras(ev)
	return o
}

// auditExtras are the audit fields no SIEM schema has a place for, for
// OCSF's unmapped and ECS's caddy_audit object.
func auditExtras(ev *storage.Event) map[string]any {
	m := map[string]any{
		"kind":          ev.Kind,
		"risk_score":    ev.RiskScore,
		"suspicious":    ev.Suspicious,
		"user_verified": ev.UserVerified,
	}
	set := func(k string, v any, ok bool) {
		if ok {
			m[k] = v
		}
	}
	set("stage", ev.Stage, ev.Stage != "")
	set("action", ev.Action, ev.Action != "")
	set("level", ev.Level, ev.Level != "")
	set("risk_level", ev.RiskLevel, ev.RiskLevel != "")
	set("risk_factors", ev.RiskFactors, len(ev.RiskFactors) > 0)
	set("user_source", ev.UserSource, ev.UserSource != "")
	set("forwarded_for_untrusted", ev.ForwardedFor, len(ev.ForwardedFor) > 0)
	set("upstream_error", ev.UpstreamError, ev.UpstreamError != "")
	set("ttfb_ns", ev.TTFBNS, ev.TTFBNS != 0)
	set("request_headers", ev.RequestHeaders, len(ev.RequestHeaders) > 0)
	set("response_headers", ev.ResponseHeaders, len(ev.ResponseHeaders) > 0)
	set("details", ev.Details, len(ev.Details) > 0)
	set("erased", ev.Erased, ev.Erased)
	return m
}

// urlString rebuilds the request URL from its recorded parts (the query
// is the recorded one, sensitive values already replaced).
func urlString(ev *storage.Event) string {
	if ev.Host == "" {
		return ""
	}
	scheme := ev.Scheme
	if scheme == "" {
		scheme = "http"
	}
	s := scheme + "://" + ev.Host + ev.Path
	if ev.Query != "" {
		s += "?" + ev.Query
	}
	return s
}
