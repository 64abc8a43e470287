package logimport

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// caddyEntry is the part of a Caddy access log entry that is imported. The
// log is zap's JSON encoder output of caddyhttp's LoggableHTTPRequest and
// the access logger's fields.
type caddyEntry struct {
	TS       json.RawMessage `json:"ts"`
	Logger   string          `json:"logger"`
	Msg      string          `json:"msg"`
	Request  *caddyRequest   `json:"request"`
	BytesRd  int64           `json:"bytes_read"`
	UserID   string          `json:"user_id"`
	Duration json.RawMessage `json:"duration"`
	Size     int64           `json:"size"`
	Status   int             `json:"status"`
	Resp     http.Header     `json:"resp_headers"`
}

type caddyRequest struct {
	RemoteIP   string      `json:"remote_ip"`
	RemotePort string      `json:"remote_port"`
	ClientIP   string      `json:"client_ip"`
	Proto      string      `json:"proto"`
	Method     string      `json:"method"`
	Host       string      `json:"host"`
	URI        string      `json:"uri"`
	Headers    http.Header `json:"headers"`
	TLS        *caddyTLS   `json:"tls"`
}

type caddyTLS struct {
	Version     uint16 `json:"version"`
	CipherSuite uint16 `json:"cipher_suite"`
}

// errNotAccess marks a valid Caddy log entry that is not an access log
// entry (a reverse_proxy or tls message in the same file): skipped and
// counted, not an error.
var errNotAccess = errors.New("not an access log entry")

// parseCaddyJSON parses one Caddy access log line into rec.
func parseCaddyJSON(line []byte, rec *record) error {
	*rec = record{}
	var e caddyEntry
	if err := json.Unmarshal(line, &e); err != nil {
		return fmt.Errorf("bad JSON: %w", err)
	}
	if e.Request == nil {
		return errNotAccess
	}
	t, err := parseTS(e.TS)
	if err != nil {
		return err
	}
	if e.Status < 100 || e.Status > 999 {
		return fmt.Errorf("bad status %d", e.Status)
	}
	if e.Size < 0 || e.BytesRd < 0 {
		return errors.New("negative size")
	}
	q := e.Request
	rec.t = t
	rec.status = e.Status
	rec.bytesOut = e.Size
	rec.bytesIn = e.BytesRd
	rec.duration, err = parseDuration(e.Duration)
	if err != nil {
		return err
	}
	// ts is when the entry was logged, after the response; an audit
	// event's time is when the request arrived, as live events have it.
	if d := time.Duration(rec.duration); d > 0 && t.Add(-d).After(minTime) {
		rec.t = t.Add(-d)
	}
	rec.method, rec.uri, rec.proto, rec.host = q.Method, q.URI, q.Proto, q.Host
	rec.clientIP = q.ClientIP
	if rec.clientIP == "" {
		rec.clientIP = q.RemoteIP
	}
	if p, err := strconv.Atoi(q.RemotePort); err == nil && p > 0 && p < 65536 {
		rec.port = p
	}
	if e.UserID != "" {
		// user_id is {http.auth.user.id}: set only by Caddy's
		// authentication handlers, as the live handler's default source.
		rec.user, rec.userSource, rec.verified = e.UserID, "placeholder", true
	}
	rec.headers, rec.respHeaders = canonical(q.Headers), canonical(e.Resp)
	rec.userAgent = q.Headers.Get("User-Agent")
	rec.referer = q.Headers.Get("Referer")
	rec.scheme = "http"
	if q.TLS != nil {
		rec.scheme = "https"
		if q.TLS.Version != 0 {
			rec.tlsVersion = tls.VersionName(q.TLS.Version)
		}
		if q.TLS.CipherSuite != 0 {
			rec.tlsCipher = cipherName(q.TLS.CipherSuite)
		}
	}
	return nil
}

// Time layouts Caddy's time_format can produce as strings, tried in order.
var tsLayouts = []string{
	time.RFC3339Nano,                // rfc3339, rfc3339_nano
	"2006-01-02T15:04:05.000Z0700",  // iso8601
	clfTime,                         // common_log
	"2006/01/02 15:04:05.000",       // wall_milli (local time: read as UTC)
	"2006/01/02 15:04:05",           // wall
	"2006-01-02 15:04:05.999999999", // custom, seen in the wild
}

// parseTS reads ts: a number (float seconds by default; milli and nano
// formats are recognised by magnitude, since a seconds value above 1e11 would
// be the year 5138) or a string in one of tsLayouts.
func parseTS(raw json.RawMessage) (time.Time, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, errors.New("missing ts")
	}
	var t time.Time
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, fmt.Errorf("bad ts: %w", err)
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return numericTS(f)
		}
		ok := false
		for _, layout := range tsLayouts {
			if v, err := time.Parse(layout, s); err == nil {
				t, ok = v, true
				break
			}
		}
		if !ok {
			return time.Time{}, fmt.Errorf("bad ts %q: not a time format Caddy writes", clip([]byte(s)))
		}
	} else {
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("bad ts %q", clip(raw))
		}
		return numericTS(f)
	}
	return t, checkTime(t)
}

func numericTS(f float64) (time.Time, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 {
		return time.Time{}, fmt.Errorf("bad ts %v", f)
	}
	var t time.Time
	switch {
	case f < 1e11: // seconds
		sec, frac := math.Modf(f)
		t = time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3) // float64 has about microsecond precision here
	case f < 1e14: // milliseconds
		t = time.UnixMicro(int64(math.Round(f * 1e3)))
	case f < 9.2e18: // nanoseconds
		t = time.Unix(0, int64(f))
	default:
		return time.Time{}, fmt.Errorf("bad ts %v: out of range", f)
	}
	return t, checkTime(t)
}

// parseDuration reads duration: float seconds (Caddy's default), integer
// nanoseconds (duration_format nano; told apart by having no fraction and
// being at least 1e5, since a 28-hour request is implausible), or a Go
// duration string (duration_format string).
func parseDuration(raw json.RawMessage) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("bad duration: %w", err)
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("bad duration %q", clip([]byte(s)))
		}
		return int64(d), nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 9e18 {
		return 0, fmt.Errorf("bad duration %q", clip(raw))
	}
	if f >= 1e5 && f == math.Trunc(f) {
		return int64(f), nil
	}
	if f*1e9 > 9e18 {
		return 0, fmt.Errorf("bad duration %q: out of range", clip(raw))
	}
	return int64(math.Round(f * 1e9)), nil
}

// canonical makes sure header names are in canonical form, as Caddy writes
// them: a hand-edited or converted log with "referer" must still have its
// Referer found (and its query redacted).
func canonical(h http.Header) http.Header {
	for k, v := range h {
		if c := http.CanonicalHeaderKey(k); c != k {
			delete(h, k)
			h[c] = append(h[c], v...)
		}
	}
	return h
}

// cipherNames caches tls.CipherSuiteName, which builds the list of every
// suite on each call (6% of a Caddy line's parse time).
var cipherNames sync.Map // uint16 -> string

func cipherName(id uint16) string {
	if v, ok := cipherNames.Load(id); ok {
		return v.(string)
	}
	name := tls.CipherSuiteName(id)
	cipherNames.Store(id, name) // at most 65536 entries, in practice a handful
	return name
}
