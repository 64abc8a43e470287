package policy

import (
	"encoding/json"
	"mime"
	"net/url"
	"strings"
)

// Capture collects the first Max bytes written to it and counts them all.
// It never fails, so it can sit in an io.TeeReader or beside a response
// writer without changing what the other side sees.
type Capture struct {
	Max  int
	buf  []byte
	size int64
}

// Write keeps what fits under Max and counts everything.
func (c *Capture) Write(p []byte) (int, error) {
	c.size += int64(len(p))
	if room := c.Max - len(c.buf); room > 0 {
		if c.buf == nil {
			// Most bodies are small: grow as they come, up to Max.
			c.buf = make([]byte, 0, min(c.Max, max(len(p), 512)))
		}
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// Bytes returns what was kept.
func (c *Capture) Bytes() []byte { return c.buf }

// Size is how many bytes were written, kept or not.
func (c *Capture) Size() int64 { return c.size }

// Truncated reports whether more was written than kept.
func (c *Capture) Truncated() bool { return c.size > int64(len(c.buf)) }

// CapturedType reports whether bodies of the content type are captured
// under b: its media type is one of b.ContentTypes ("application/json"),
// or matches a wildcard there ("text/*", "application/*+json").
func (b Body) CapturedType(contentType string) bool {
	mt := mediaType(contentType)
	if mt == "" {
		return false
	}
	for _, r := range b.ContentTypes {
		r = strings.ToLower(r)
		switch {
		case r == mt:
			return true
		case strings.HasSuffix(r, "/*"):
			if strings.HasPrefix(mt, r[:len(r)-1]) {
				return true
			}
		case strings.Contains(r, "/*+"):
			typ, suffix, _ := strings.Cut(r, "/*")
			if strings.HasPrefix(mt, typ+"/") && strings.HasSuffix(mt, suffix) {
				return true
			}
		}
	}
	return false
}

func mediaType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt, _, _ = strings.Cut(contentType, ";")
	}
	return strings.ToLower(strings.TrimSpace(mt))
}

// Body returns a captured body fit to store: JSON keys and form fields
// named as secrets have their values tokenized, and value patterns are
// replaced everywhere, in any content type. truncated says the capture was
// cut: the value cut in two is tokenized whole, since a secret cut short
// may no longer match its pattern.
func (r *Redactor) Body(contentType string, data []byte, truncated bool) string {
	mt := mediaType(contentType)
	text := string(data) // one copy; what the scanners cut are slices of it
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return cleanUTF8(r.jsonBody(text, truncated, 0))
	case mt == "application/x-www-form-urlencoded":
		return cleanUTF8(r.formBody(text, truncated, 0))
	}
	return cleanUTF8(r.textBody(text, truncated))
}

// jsonBody redacts a JSON document without decoding it into values, so a
// body cut at the capture bound, or one that is not JSON at all, is still
// redacted: it scans tokens, tracks whether the next string is a key, and
// rewrites the literals that must not be stored. Formatting is kept.
// Bytes that are not JSON are scanned as text up to the next structural
// character, so a stray prefix does not hide the keys after it.
func (r *Redactor) jsonBody(data string, truncated bool, depth int) string {
	var b strings.Builder
	b.Grow(len(data) + 64)
	var stack []bool     // true for an object
	expectKey := false   // the next string is an object key
	secretValue := false // the value after the current key is a secret
	secretDepth := 0     // >0: inside a container that is a secret's value
	inObject := func() bool { return len(stack) > 0 && stack[len(stack)-1] }
	// literal writes a scalar (a token replacing it is quoted, to keep
	// the JSON valid) or a run of other bytes (written as text).
	literal := func(lit string, atEnd, scalar bool) {
		if secretValue || secretDepth > 0 || truncated && atEnd {
			if scalar {
				r.writeToken(&b, lit)
			} else {
				b.WriteString(r.Token(lit))
			}
			return
		}
		out := r.patterns.redact(lit, r.Token)
		if out != lit && scalar {
			writeJSONString(&b, out)
		} else {
			b.WriteString(out)
		}
	}
	for i := 0; i < len(data); {
		c := data[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			b.WriteByte(c)
			i++
		case ',':
			b.WriteByte(c)
			i++
			expectKey = inObject()
			secretValue = false
		case ':':
			b.WriteByte(c)
			i++
			expectKey = false
		case '{', '[':
			stack = append(stack, c == '{')
			if secretValue && secretDepth == 0 {
				secretDepth = len(stack)
			}
			secretValue = false
			expectKey = c == '{'
			b.WriteByte(c)
			i++
		case '}', ']':
			if secretDepth == len(stack) {
				secretDepth = 0
			}
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			expectKey = false
			b.WriteByte(c)
			i++
		case '"':
			end, closed := jsonStringEnd(data, i)
			lit := data[i:end]
			s := jsonStringValue(lit, closed)
			switch {
			case expectKey && inObject():
				secretValue = r.SensitiveField(s)
				if red := r.patterns.redact(s, r.Token); red != s {
					writeJSONString(&b, red)
				} else {
					b.WriteString(lit)
				}
			case secretValue || secretDepth > 0 || truncated && !closed:
				r.writeToken(&b, s)
			default:
				// A string may hold a document of its own (JSON in a
				// webhook payload, a form in a log line).
				if red := r.text(s, depth); red != s {
					writeJSONString(&b, red)
				} else {
					b.WriteString(lit)
				}
			}
			i = end
		default:
			// A number, true, false or null ends at white space too; other
			// bytes run to the next structural character.
			scalar := c == '-' || isDigit(c) || c == 't' || c == 'f' || c == 'n'
			stops := "\",:]}{["
			if scalar {
				stops = "\",:]}{[ \t\r\n"
			}
			end := i
			for end < len(data) && strings.IndexByte(stops, data[end]) < 0 {
				end++
			}
			literal(data[i:end], end == len(data), scalar)
			i = end
		}
	}
	return b.String()
}

// jsonStringEnd returns the end of the string literal starting at i (just
// past its closing quote), or len(data) and false when it is not closed.
func jsonStringEnd(data string, i int) (int, bool) {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return len(data), false
}

// jsonStringValue decodes a string literal; a malformed or unclosed one is
// taken as its raw content.
func jsonStringValue(lit string, closed bool) string {
	if !closed {
		return lit[1:]
	}
	inner := lit[1 : len(lit)-1]
	if strings.IndexByte(inner, '\\') < 0 {
		return inner
	}
	var s string
	if err := json.Unmarshal([]byte(lit), &s); err != nil {
		return inner
	}
	return s
}

// writeToken writes value's token as a JSON string; a token needs no
// escaping.
func (r *Redactor) writeToken(b *strings.Builder, value string) {
	var buf [2 + len(TokenPrefix) + 2*tokenBytes]byte
	q := append(r.appendToken(append(buf[:0], '"'), value), '"')
	b.Write(q)
}

func writeJSONString(b *strings.Builder, s string) {
	q, _ := json.Marshal(s) // a string always marshals
	b.Write(q)
}

// formBody redacts an application/x-www-form-urlencoded body as Query
// does, with body field names as well as query parameter names.
func (r *Redactor) formBody(data string, truncated bool, depth int) string {
	var b strings.Builder
	b.Grow(len(data) + 32)
	parts := strings.Split(data, "&")
	for i, part := range parts {
		if i > 0 {
			b.WriteByte('&')
		}
		name, value, hasValue := strings.Cut(part, "=")
		lastCut := truncated && i == len(parts)-1
		if !hasValue {
			if lastCut {
				b.WriteString(r.Token(part))
			} else {
				b.WriteString(r.escaped(part, url.QueryUnescape, queryEscape))
			}
			continue
		}
		b.WriteString(r.escaped(name, url.QueryUnescape, queryEscape))
		b.WriteByte('=')
		dn := unescapeName(name)
		if lastCut || r.SensitiveField(dn) || r.SensitiveParam(dn) {
			b.WriteString(r.Token(value))
			continue
		}
		b.WriteString(r.escapedText(value, depth))
	}
	return b.String()
}

// escapedText is escaped with text for the decoded value: a form field
// may carry JSON, or another form.
func (r *Redactor) escapedText(raw string, depth int) string {
	dec, err := url.QueryUnescape(raw)
	if err != nil {
		return r.text(raw, depth)
	}
	red := r.text(dec, depth)
	if red == dec {
		return raw
	}
	return queryEscape(red)
}

// maxNesting bounds how deep a value of unknown shape is opened: JSON in
// a string in a form field in JSON, and so on.
const maxNesting = 4

// text redacts a value whose shape is not declared: embedded JSON, a
// URL-encoded form, or free text, where value patterns and the values of
// sensitive name=value or name: value pairs are replaced.
func (r *Redactor) text(s string, depth int) string {
	if depth < maxNesting {
		t := strings.TrimLeft(s, " \t\r\n")
		if len(t) > 1 && (t[0] == '{' || t[0] == '[') {
			return r.jsonBody(s, false, depth+1)
		}
		if looksLikeForm(s) {
			return r.formBody(s, false, depth+1)
		}
	}
	return r.pairs(r.patterns.redact(s, r.Token))
}

// looksLikeForm reports whether s could be a URL-encoded form: a name=value
// pair or more, with nothing a form would have escaped.
func looksLikeForm(s string) bool {
	return len(s) > 2 && strings.IndexByte(s, '=') > 0 && !strings.ContainsAny(s, " \t\r\n\"{}[]<>")
}

// pairs replaces the values of sensitive name=value and name: value pairs
// in free text ("password=hunter2", "api_key: abc", "token=\"x\"").
func (r *Redactor) pairs(s string) string {
	if !strings.ContainsAny(s, "=:") {
		return s
	}
	var b []byte
	last := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '=' && c != ':' {
			continue
		}
		j := i
		for j > last && (s[j-1] == ' ' || s[j-1] == '"' || s[j-1] == '\'') && i-j < 2 {
			j--
		}
		k := j
		for k > last && j-k < 64 && isNameByte(s[k-1]) {
			k--
		}
		if k == j || !r.SensitiveField(s[k:j]) {
			continue
		}
		v := i + 1
		for v < len(s) && v-i < 3 && (s[v] == ' ' || s[v] == '"' || s[v] == '\'') {
			v++
		}
		e := v
		for e < len(s) && strings.IndexByte("&;, \t\r\n\"'}]<>", s[e]) < 0 {
			e++
		}
		if e == v || strings.HasPrefix(s[v:e], TokenPrefix) {
			continue
		}
		if b == nil {
			b = make([]byte, 0, len(s)+32)
		}
		b = append(b, s[last:v]...)
		b = r.appendToken(b, s[v:e])
		last, i = e, e-1
	}
	if b == nil {
		return s
	}
	return string(append(b, s[last:]...))
}

func isNameByte(c byte) bool { return isAlnum(c) || c == '_' || c == '-' || c == '.' }

// textBody replaces value patterns in any other body; when the capture was
// cut, the word cut in two is tokenized.
func (r *Redactor) textBody(s string, truncated bool) string {
	tail := ""
	if truncated {
		cut := strings.LastIndexAny(s, " \t\r\n") + 1
		s, tail = s[:cut], s[cut:]
	}
	out := r.text(s, 0)
	if tail != "" {
		out += r.Token(tail)
	}
	return out
}
