package policy

import (
	"net"
	"net/http"

	"github.com/caddy-audit/caddy-audit/storage"
)

// RecordRequest fills the request side of ev as the decision says: the
// rule, its tags, the level, the sanitized request line, and the request
// headers at the headers and body levels. The audit handler and Explain
// both build events with it, so explain shows what the handler stores.
func (d *Decision) RecordRequest(ev *storage.Event, r *http.Request) {
	red := d.redactor
	ev.Level = d.Level
	ev.Rule = d.Rule
	ev.Tags = d.Tags
	ev.Method = Clean(r.Method)
	ev.Host = Clean(r.Host)
	ev.Path = red.Path(r.URL.EscapedPath())
	ev.Query = red.Query(r.URL.RawQuery)
	ev.UserAgent = red.Text(r.UserAgent())
	ev.Referer = red.URL(r.Referer())
	if LevelRank(d.Level) >= LevelRank(LevelHeaders) {
		ev.RequestHeaders = red.Headers(r.Header)
	} else {
		ev.RequestHeaders = nil
	}
}

// IP returns a client address as the decision's IP handling stores it.
func (d *Decision) IP(ip string) string {
	if ip == "" {
		return ""
	}
	switch d.IPHandling {
	case IPPseudonymize:
		return d.redactor.Token(ip)
	case IPTruncate:
		addr := net.ParseIP(ip)
		if addr == nil {
			return d.redactor.Token(ip) // cannot cut what cannot be read: do not keep it
		}
		if v4 := addr.To4(); v4 != nil {
			return v4.Mask(net.CIDRMask(24, 32)).String()
		}
		return addr.Mask(net.CIDRMask(48, 128)).String()
	}
	return d.redactor.Text(ip) // forwarded-for hops are whatever the client sent
}

// RecordBody returns a captured body as the decision stores it: redacted
// text when its content type is captured and it is not compressed, its
// size in any case.
func (d *Decision) RecordBody(contentType, contentEncoding string, c *Capture) *storage.Body {
	b := &storage.Body{ContentType: Clean(contentType), Size: c.Size(), Truncated: c.Truncated()}
	switch {
	case c.Size() == 0:
		b.Truncated = false
	case contentEncoding != "" && contentEncoding != "identity":
		// Redaction cannot see into compressed bytes, and compressed
		// secrets are still secrets.
		b.Omitted, b.Truncated = "encoded ("+Clean(contentEncoding)+")", false
	case !d.Body.CapturedType(contentType):
		b.Omitted, b.Truncated = "content type not captured", false
	default:
		b.Text = d.redactor.Body(contentType, c.Bytes(), c.Truncated())
	}
	return b
}
