package logimport

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-audit/caddy-audit/policy"
)

// clfTime is the %t layout of Apache and nginx ($time_local).
const clfTime = "02/Jan/2006:15:04:05 -0700"

// parseCLF parses a Common (combined=false) or Combined log line into rec.
// Anything after the last field it needs is ignored, so Apache's
// vhost-less variants with extra trailing fields and nginx lines with
// "$http_x_forwarded_for" appended still import.
func parseCLF(line []byte, combined bool, rec *record) error {
	*rec = record{}
	p := clfParser{s: line}
	host, ok := p.word()
	if !ok {
		return errors.New("missing client host")
	}
	if _, ok = p.word(); !ok { // ident (RFC 1413), never trustworthy: ignored
		return errors.New("missing ident field")
	}
	user, ok := p.word()
	if !ok {
		return errors.New("missing authuser field")
	}
	ts, ok := p.bracketed()
	if !ok {
		return errors.New("missing [date] field")
	}
	t, err := time.Parse(clfTime, string(ts))
	if err != nil {
		return fmt.Errorf("bad date %q: want %s", clip(ts), clfTime)
	}
	if err := checkTime(t); err != nil {
		return err
	}
	reqLine, ok := p.quoted()
	if !ok {
		return errors.New(`missing "request" field`)
	}
	status, ok := p.word()
	if !ok {
		return errors.New("missing status")
	}
	code, err := parseStatus(status)
	if err != nil {
		return err
	}
	size, ok := p.word()
	if !ok {
		return errors.New("missing bytes field")
	}
	var n int64
	if string(size) != "-" {
		if n, err = strconv.ParseInt(string(size), 10, 64); err != nil || n < 0 {
			return fmt.Errorf("bad bytes field %q", clip(size))
		}
	}
	if combined {
		ref, ok := p.quoted()
		if !ok {
			return errors.New(`missing "referer" field (not Combined Log Format?)`)
		}
		ua, ok := p.quoted()
		if !ok {
			return errors.New(`missing "user-agent" field (not Combined Log Format?)`)
		}
		if string(ref) != "-" {
			rec.referer = string(ref)
		}
		if string(ua) != "-" {
			rec.userAgent = string(ua)
		}
	}
	rec.t = t
	rec.status = code
	rec.bytesOut = n
	rec.clientIP = string(host)
	if string(user) != "-" && string(user) != "" {
		rec.user = string(user)
		rec.userSource = "access_log"
	}
	rec.requestLine(string(reqLine))
	return nil
}

// requestLine splits "METHOD URI PROTO". A line that is not a request (a TLS
// handshake sent to a plain port, a scanner's garbage, "-" for a closed
// connection) is still an event, usually a 400 worth counting, so it is kept
// whole in Details rather than rejected.
func (rec *record) requestLine(s string) {
	method, rest, ok := strings.Cut(s, " ")
	if !ok || !policy.IsToken(method) {
		if s != "-" && s != "" {
			rec.rawRequest = s
		}
		return
	}
	uri, proto, _ := strings.Cut(rest, " ")
	if uri == "" || strings.Contains(proto, " ") {
		rec.rawRequest = s
		return
	}
	rec.method, rec.uri, rec.proto = method, uri, proto
}

// parseStatus accepts a three-digit status code.
func parseStatus(b []byte) (int, error) {
	if len(b) != 3 || b[0] < '1' || b[0] > '9' || b[1] < '0' || b[1] > '9' || b[2] < '0' || b[2] > '9' {
		return 0, fmt.Errorf("bad status %q: want a three-digit code", clip(b))
	}
	return int(b[0]-'0')*100 + int(b[1]-'0')*10 + int(b[2]-'0'), nil
}

// clfParser walks a CLF line field by field.
type clfParser struct {
	s []byte
	i int
}

func (p *clfParser) skipSpaces() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// word returns the next space-separated field.
func (p *clfParser) word() ([]byte, bool) {
	p.skipSpaces()
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != ' ' && p.s[p.i] != '\t' {
		p.i++
	}
	return p.s[start:p.i], p.i > start
}

// bracketed returns the content of the next [...] field.
func (p *clfParser) bracketed() ([]byte, bool) {
	p.skipSpaces()
	if p.i >= len(p.s) || p.s[p.i] != '[' {
		return nil, false
	}
	end := bytes.IndexByte(p.s[p.i:], ']')
	if end < 0 {
		return nil, false
	}
	out := p.s[p.i+1 : p.i+end]
	p.i += end + 1
	return out, true
}

// quoted returns the unescaped content of the next "..." field. Apache
// escapes " and \ with a backslash and other bytes as \xhh; nginx writes
// \xhh for both. The result may hold invalid UTF-8; policy.Clean deals
// with that later without losing the bytes.
func (p *clfParser) quoted() ([]byte, bool) {
	p.skipSpaces()
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return nil, false
	}
	p.i++
	start := p.i
	escaped := false
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case '\\':
			escaped = true
			p.i += 2 // skip the escaped byte, whatever it is
			continue
		case '"':
			raw := p.s[start:p.i]
			p.i++
			if escaped {
				return unescape(raw), true
			}
			return raw, true
		}
		p.i++
	}
	return nil, false
}

// unescape undoes Apache's and nginx's log escaping.
func unescape(raw []byte) []byte {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			out = append(out, c)
			continue
		}
		i++
		switch e := raw[i]; e {
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case 'r':
			out = append(out, '\r')
		case 'x':
			if i+2 < len(raw) {
				if v, err := strconv.ParseUint(string(raw[i+1:i+3]), 16, 8); err == nil {
					out = append(out, byte(v))
					i += 2
					continue
				}
			}
			out = append(out, '\\', 'x')
		case '"', '\\':
			out = append(out, e)
		default:
			out = append(out, '\\', e)
		}
	}
	return out
}

// clip shortens a field quoted in an error message: errors are kept in
// memory and printed, and the field may be hostile.
func clip(b []byte) string {
	const n = 40
	if len(b) > n {
		return policy.Clean(string(b[:n])) + "..."
	}
	return policy.Clean(string(b))
}
