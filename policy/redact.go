package policy

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// TokenPrefix marks a value replaced by its keyed hash.
const TokenPrefix = "hmac:"

// tokenBytes is how much of the HMAC a token keeps: 96 bits, enough that
// two different secrets never share a token in practice, short enough to
// read.
const tokenBytes = 12

// MaxValueLen bounds any single stored string; longer values are cut and
// marked, so one hostile 1 MB header cannot bloat the trail.
const MaxValueLen = 4096

// DefaultSensitiveHeaders carry credentials. Header names are also treated
// as sensitive when they contain one of sensitiveWords.
var DefaultSensitiveHeaders = []string{
	"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie",
	"X-Api-Key", "X-Auth-Token", "X-Access-Token", "X-Csrf-Token",
	"X-Xsrf-Token", "X-Amz-Security-Token", "X-Goog-Iap-Jwt-Assertion",
	"X-Forwarded-Access-Token", "X-Forwarded-Authorization",
}

// DefaultSensitiveParams are query parameters whose values are secrets.
// Names containing one of sensitiveWords count too.
var DefaultSensitiveParams = []string{
	"token", "access_token", "refresh_token", "id_token", "password",
	"passwd", "pwd", "secret", "client_secret", "api_key", "apikey",
	"key", "code", "sig", "signature", "session", "sessionid", "auth",
	"x-amz-signature", "x-amz-credential", "x-amz-security-token",
}

// sensitiveWords catch credential names nobody listed, such as
// X-Service-Token or reset_password.
var sensitiveWords = []string{"token", "secret", "password", "passwd", "api-key", "api_key", "apikey", "credential", "session"}

// Redactor replaces secrets with keyed HMAC tokens. Equal secrets give equal
// tokens under one key, so an investigator can still see that two requests
// used the same credential without learning it. It is safe for concurrent
// use.
type Redactor struct {
	headers  map[string]bool // canonical header names
	params   map[string]bool // lower-case parameter names
	fields   map[string]bool // body field names, normalized (normField)
	allow    map[string]bool // canonical header names; nil stores all
	patterns patternSet
	macs     *sync.Pool // shared by the redactors derived with With
}

// DefaultSensitiveFields are JSON keys and form fields whose values are
// secrets or card data, compared after normField (so cardNumber,
// card_number and Card-Number are one name). Names containing one of
// sensitiveWords count too.
var DefaultSensitiveFields = []string{
	"password", "passwd", "pwd", "pass", "passphrase", "secret", "client_secret",
	"token", "access_token", "refresh_token", "id_token", "api_key", "apikey",
	"private_key", "authorization", "cookie", "session", "sessionid",
	"ssn", "social_security_number", "card_number", "cardnumber", "credit_card",
	"cc_number", "ccnum", "pan", "cvv", "cvc", "cvv2", "cvc2", "cid", "pin", "otp",
}

// NewRedactor returns a redactor keyed with key that treats the default
// sensitive headers, parameters and body fields, plus the extra headers
// and parameters, as secrets, and replaces the default value patterns
// (DefaultPatterns) wherever they appear.
func NewRedactor(key []byte, extraHeaders, extraParams []string) *Redactor {
	k := append([]byte(nil), key...)
	pool := &sync.Pool{New: func() any { return hmac.New(sha256.New, k) }}
	return (&Redactor{macs: pool}).With(Redact{Headers: extraHeaders, Query: extraParams, Patterns: DefaultPatterns})
}

// With returns a redactor that redacts what r does and what extra adds,
// under the same key. An allow-list in extra narrows r's.
func (r *Redactor) With(extra Redact) *Redactor {
	out := &Redactor{
		headers:  map[string]bool{},
		params:   map[string]bool{},
		fields:   map[string]bool{},
		allow:    r.allow,
		patterns: r.patterns | compilePatterns(extra.Patterns),
		macs:     r.macs,
	}
	if len(r.headers) == 0 { // a fresh redactor: start from the defaults
		extra.Headers = append(slices.Clone(DefaultSensitiveHeaders), extra.Headers...)
		extra.Query = append(slices.Clone(DefaultSensitiveParams), extra.Query...)
		extra.BodyFields = append(slices.Clone(DefaultSensitiveFields), extra.BodyFields...)
	}
	maps.Copy(out.headers, r.headers)
	maps.Copy(out.params, r.params)
	maps.Copy(out.fields, r.fields)
	for _, h := range extra.Headers {
		out.headers[http.CanonicalHeaderKey(h)] = true
	}
	for _, p := range extra.Query {
		out.params[strings.ToLower(p)] = true
	}
	for _, f := range extra.BodyFields {
		out.fields[normField(f)] = true
	}
	if len(extra.AllowHeaders) > 0 {
		out.allow = map[string]bool{}
		for _, h := range extra.AllowHeaders {
			h = http.CanonicalHeaderKey(h)
			// Two allow-lists allow what both do: a rule may store fewer
			// headers than the defaults, never more.
			if r.allow == nil || r.allow[h] {
				out.allow[h] = true
			}
		}
	}
	return out
}

// normField folds a body field name for comparison: lower case, without
// '_', '-' and spaces.
func normField(name string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', ' ':
			return -1
		}
		return unicode.ToLower(r)
	}, name)
}

// SensitiveField reports whether a JSON key or form field's value is a
// secret.
func (r *Redactor) SensitiveField(name string) bool {
	// Runs for every key of every captured body: short ASCII names are
	// folded on the stack.
	var buf [64]byte
	n := buf[:0]
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 0x80 || len(n) == len(buf) {
			return r.sensitiveFolded(normField(name))
		}
		switch {
		case c == '_' || c == '-' || c == ' ':
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		n = append(n, c)
	}
	if r.fields[string(n)] { // a map lookup by []byte conversion does not allocate
		return true
	}
	for _, w := range sensitiveFieldWordBytes {
		if bytes.Contains(n, w) {
			return true
		}
	}
	return false
}

func (r *Redactor) sensitiveFolded(n string) bool {
	if r.fields[n] {
		return true
	}
	for _, w := range sensitiveFieldWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// sensitiveFieldWords are sensitiveWords as normField leaves them, derived
// so that a word added there is caught in body fields too; the bytes form
// serves SensitiveField's stack-folded names.
var sensitiveFieldWords, sensitiveFieldWordBytes = func() (words []string, bs [][]byte) {
	for _, w := range sensitiveWords {
		if n := normField(w); !slices.Contains(words, n) {
			words = append(words, n)
			bs = append(bs, []byte(n))
		}
	}
	return words, bs
}()

// Text returns s fit to store: value patterns and the values of sensitive
// name=value pairs replaced, then cleaned.
func (r *Redactor) Text(s string) string {
	return Clean(r.pairs(r.patterns.redact(s, r.Token)))
}

// Path returns an escaped request path with value patterns (an e-mail
// address or a card number used as an identifier) replaced segment by
// segment, in their decoded form.
func (r *Redactor) Path(escaped string) string {
	if !strings.Contains(escaped, "%") {
		return r.Text(escaped)
	}
	segs := strings.Split(escaped, "/")
	for i, seg := range segs {
		segs[i] = r.escaped(seg, url.PathUnescape, url.PathEscape)
	}
	return Clean(strings.Join(segs, "/"))
}

// queryEscape is url.QueryEscape that leaves tokens readable: ':' needs no
// escaping in a query (RFC 3986 3.4).
func queryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "hmac%3A", TokenPrefix)
}

// escaped applies the value patterns to the decoded form of an escaped
// value, and escapes the result again if anything was replaced.
func (r *Redactor) escaped(raw string, unescape func(string) (string, error), escape func(string) string) string {
	if !strings.ContainsAny(raw, "%+") {
		return r.text(raw, 1)
	}
	dec, err := unescape(raw)
	if err != nil {
		return r.text(raw, 1)
	}
	red := r.text(dec, 1)
	if red == dec {
		return raw
	}
	return escape(red)
}

// Token returns the keyed hash of value: "hmac:" and 24 hex digits.
func (r *Redactor) Token(value string) string {
	var buf [len(TokenPrefix) + 2*tokenBytes]byte
	return string(r.appendToken(buf[:0], value))
}

// appendToken appends value's token to dst.
func (r *Redactor) appendToken(dst []byte, value string) []byte {
	m := r.macs.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(value))
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	r.macs.Put(m)
	dst = append(dst, TokenPrefix...)
	return hex.AppendEncode(dst, sum[:tokenBytes])
}

// SensitiveHeader reports whether the header's values are secrets.
func (r *Redactor) SensitiveHeader(name string) bool {
	return r.sensitiveCanonical(http.CanonicalHeaderKey(name))
}

// sensitiveCanonical is SensitiveHeader for a name already canonical.
func (r *Redactor) sensitiveCanonical(canon string) bool {
	return r.headers[canon] || containsWord(strings.ToLower(canon))
}

// SensitiveParam reports whether the query parameter's value is a secret.
func (r *Redactor) SensitiveParam(name string) bool {
	name = strings.ToLower(name)
	return r.params[name] || containsWord(name)
}

func containsWord(lower string) bool {
	for _, w := range sensitiveWords {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}

// Headers returns a copy of h fit to store: credential values are tokens,
// everything else is cleaned (see Clean).
func (r *Redactor) Headers(h http.Header) map[string][]string {
	if len(h) == 0 {
		return nil
	}
	out := make(map[string][]string, len(h))
	for name, values := range h {
		canon := http.CanonicalHeaderKey(name)
		if r.allow != nil && !r.allow[canon] {
			continue
		}
		// Decided once per header, not per value: this runs per request.
		sensitive := r.sensitiveCanonical(canon)
		isURL := urlHeaders[canon]
		vals := make([]string, len(values))
		for i, v := range values {
			switch {
			case sensitive:
				vals[i] = r.HeaderValue(name, v)
			case isURL:
				vals[i] = r.URL(v)
			default:
				vals[i] = r.Text(v)
			}
		}
		out[Clean(name)] = vals
	}
	return out
}

// urlHeaders carry URLs whose query may hold secrets (a password reset
// token in the Referer of the next page, a code in a Location).
var urlHeaders = map[string]bool{"Referer": true, "Location": true, "Content-Location": true, "Origin": true}

// URL returns raw with the values of sensitive query parameters replaced,
// as Query does; the rest (scheme, host, path, fragment) is kept. Used for
// Referer and other URL-valued fields.
func (r *Redactor) URL(raw string) string {
	rest, fragment, hasFragment := strings.Cut(raw, "#")
	base, query, hasQuery := strings.Cut(rest, "?")
	out := r.Path(base)
	if hasQuery {
		out += "?" + r.Query(query)
	}
	if hasFragment {
		// Fragments carry OAuth implicit-flow tokens (#access_token=...).
		out += "#" + r.Query(fragment)
	}
	return truncate(out)
}

// HeaderValue tokenizes one credential header value, keeping the parts that
// are not secret: the auth scheme ("Bearer hmac:..."), cookie names
// ("sid=hmac:...") and Set-Cookie attributes.
func (r *Redactor) HeaderValue(name, v string) string {
	switch http.CanonicalHeaderKey(name) {
	case "Authorization", "Proxy-Authorization":
		if scheme, cred, ok := strings.Cut(v, " "); ok && IsToken(scheme) {
			return scheme + " " + r.Token(strings.TrimSpace(cred))
		}
	case "Cookie":
		parts := strings.Split(v, ";")
		for i, p := range parts {
			parts[i] = r.pair(strings.TrimSpace(p), "=")
		}
		return strings.Join(parts, "; ")
	case "Set-Cookie":
		first, attrs, hasAttrs := strings.Cut(v, ";")
		out := r.pair(strings.TrimSpace(first), "=")
		if hasAttrs {
			out += ";" + Clean(attrs)
		}
		return out
	}
	return r.Token(v)
}

// pair tokenizes the value of "name<sep>value", keeping the name.
func (r *Redactor) pair(p, sep string) string {
	name, value, ok := strings.Cut(p, sep)
	if !ok {
		return r.Token(p)
	}
	return Clean(name) + sep + r.Token(value)
}

// Query returns the raw query with the values of sensitive parameters
// replaced by tokens. It does not decode and re-encode the rest, so a
// malformed query is kept as it came, not rejected or lost.
func (r *Redactor) Query(raw string) string {
	if raw == "" {
		return ""
	}
	var b strings.Builder
	b.Grow(len(raw))
	for i, part := range strings.Split(raw, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		name, value, hasValue := strings.Cut(part, "=")
		if hasValue && r.SensitiveParam(unescapeName(name)) {
			b.WriteString(Clean(name))
			b.WriteByte('=')
			b.WriteString(r.Token(value))
			continue
		}
		if hasValue {
			b.WriteString(Clean(name))
			b.WriteByte('=')
			b.WriteString(Clean(r.escaped(value, url.QueryUnescape, queryEscape)))
			continue
		}
		b.WriteString(Clean(r.escaped(part, url.QueryUnescape, queryEscape)))
	}
	return truncate(b.String())
}

// unescapeName decodes a parameter name so "pass%77ord" is still caught;
// an undecodable name is compared as it is.
func unescapeName(name string) string {
	if !strings.ContainsAny(name, "%+") {
		return name
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(name):
			if v, err := strconv.ParseUint(name[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Clean makes s safe to store as JSON without losing information: invalid
// UTF-8 bytes become \xNN (encoding/json would turn them into U+FFFD and
// lose them) and values over MaxValueLen are cut with a marker.
func Clean(s string) string { return truncate(cleanUTF8(s)) }

// cleanUTF8 is Clean without the length bound.
func cleanUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString(`\x`)
			b.WriteString(hex.EncodeToString([]byte{s[i]}))
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func truncate(s string) string {
	if len(s) <= MaxValueLen {
		return s
	}
	cut := MaxValueLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "...[truncated " + strconv.Itoa(len(s)-cut) + " bytes]"
}

// IsToken reports whether s is an RFC 9110 token (an auth scheme or a
// method name).
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
