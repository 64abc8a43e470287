// Package logimport turns existing access logs into audit events, so a team
// can replay last month's traffic through the detectors before deploying the
// sidecar (issue 4, "Backfill").
//
// It reads three formats, one record per line:
//
//	caddy     Caddy's JSON access log (logger http.log.access), with ts as
//	          float seconds (the default) or any of Caddy's other
//	          time_format choices (RFC 3339, ISO 8601, milli/nano floats,
//	          common_log, wall)
//	common    Common Log Format: host ident authuser [date] "request" status bytes
//	combined  Combined Log Format: common plus "referer" "user-agent"
//
// Detect guesses the format from one line; Options.Format forces it.
//
// Reader streams: it holds one line at a time (bounded by
// Options.MaxLineBytes; longer lines are skipped and counted), skips
// malformed lines without stopping and keeps the first few with their line
// numbers (Stats). Sorted puts a nearly ordered stream into event-time order
// within a bounded window, which the detectors need.
//
// # Mapping
//
//	storage.Event   Caddy JSON                          CLF / Combined
//	ID              deterministic ULID from time, source name and line (see below)
//	Time            ts minus duration (Caddy logs at    [date] (UTC)
//	                completion; events carry arrival), UTC
//	Kind/Stage      http / response_complete            same
//	Level           metadata (headers when Options.Headers stored some)
//	Method, Proto   request.method, request.proto       request line
//	Scheme          https when request.tls, else http   absolute URI, else Options.Scheme
//	Host            request.host                        absolute URI, else Options.Host
//	Path            request.uri before ?                request line URI before ?
//	Query           Options.Redact(raw query); dropped when Redact is nil
//	Status/Outcome  status; success when 200-399 (as the live handler)
//	DurationNS      duration (seconds; ns or "1.5ms" strings too)   -
//	BytesIn/Out     bytes_read / size                   - / bytes
//	ClientIP        request.client_ip, else remote_ip   host
//	ClientPort      request.remote_port                 -
//	ForwardedFor    X-Forwarded-For header (untrusted)  -
//	User            user_id (source placeholder,        authuser unless "-" (source
//	                verified: Caddy authenticated it)   access_log, unverified)
//	UserAgent       User-Agent header                   - / "user-agent"
//	Referer         Referer header, query redacted like Query
//	TLSVersion/Cipher request.tls.version/cipher_suite names  -
//	RequestID       X-Request-ID request or response header  -
//	Workspace       Options.Workspace, else Options.WorkspaceHeader
//	RequestHeaders  Options.Headers(request.headers); dropped when nil
//	ResponseHeaders Options.Headers(resp_headers); dropped when nil
//	Details         imported_from (Options.Source), line, import_format
//
// Every string from the log goes through policy.Clean (invalid UTF-8 kept as
// \xNN, long values cut), as live events do: a log file is as untrusted as a
// request. (Caddy's own log already holds U+FFFD where a request had
// invalid UTF-8, so only CLF lines can still carry the original bytes.)
// A Referer, being another page's URL, has its query redacted like the
// request's, also inside stored request headers.
//
// # Event ids
//
// Live events get a random ULID (storage.NewID). Imported events get a ULID
// whose 48-bit time part is the event time and whose 80 random bits are
// derived from Options.Source and the line number. The detectors derive alert
// ids from the first event's id, so this makes a replay of the same file give
// the same alerts, byte for byte, and importing the same file twice gives the
// same events rather than duplicates. Ids still sort by time. Give each file a
// distinct Source (its path) so two files never share ids.
//
// Caddy's log is written when a response completes, so it is ordered by
// completion while events are timed at arrival: use Sorted with a slack a
// bit longer than the slowest request.
//
// Nothing here panics on any input; the fuzz targets check that.
package logimport
