package storage

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The stored form of an event (the value under its seq in the events
// bucket) is an envelope that keeps the bytes the integrity chain hashed
// verbatim, so verification and export never decode JSON:
//
//	0xCA                      format marker (a schema-1 record starts with '{')
//	flags                     1 byte; flagErased once EraseSubject ran
//	uvarint seq               the seq the record was linked at
//	commit                    32 bytes: SHA-256(salt || personal)
//	uvarint len, chained      JSON of the non-personal fields (chainedFields)
//	uvarint len, personal     JSON of the personal fields (personalFields)
//	salt                      16 random bytes, or when erased:
//	uvarint erased_by         seq of the chained subject_erased record
//
// The chain hashes seq, commit and chained; personal is bound to it only
// through commit, so erasure can rewrite personal and drop the salt without
// breaking the chain.
const (
	envelopeV1 = 0xCA
	flagErased = 1
	saltSize   = 16
	hashSize   = 32
)

var errMalformed = errors.New("malformed event record")

// envelope is a parsed stored record. Its slices alias the bytes it was
// parsed from, which bbolt owns only for the life of the transaction.
type envelope struct {
	flags    byte
	seq      uint64
	commit   []byte
	chained  []byte
	personal []byte
	salt     []byte // nil when erased
	erasedBy uint64
}

func (e *envelope) erased() bool { return e.flags&flagErased != 0 }

// parseEnvelope splits a stored record without copying or decoding JSON.
// It fails, never panics, on any input.
func parseEnvelope(val []byte) (envelope, error) {
	var e envelope
	if len(val) < 2 || val[0] != envelopeV1 || val[1]&^flagErased != 0 {
		return e, errMalformed
	}
	e.flags = val[1]
	rest := val[2:]
	var ok bool
	if e.seq, rest, ok = uvarint(rest); !ok || len(rest) < hashSize {
		return e, errMalformed
	}
	e.commit, rest = rest[:hashSize], rest[hashSize:]
	if e.chained, rest, ok = lenPrefixed(rest); !ok {
		return e, errMalformed
	}
	if e.personal, rest, ok = lenPrefixed(rest); !ok {
		return e, errMalformed
	}
	if e.erased() {
		if e.erasedBy, rest, ok = uvarint(rest); !ok || len(rest) != 0 {
			return e, errMalformed
		}
		return e, nil
	}
	if len(rest) != saltSize {
		return e, errMalformed
	}
	e.salt = rest
	return e, nil
}

// uvarint reads a minimally encoded uvarint: with one encoding per value,
// a record has one stored form, and any changed byte changes its meaning.
func uvarint(b []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(b)
	if n <= 0 || n > 1 && b[n-1] == 0 {
		return 0, nil, false
	}
	return v, b[n:], true
}

func lenPrefixed(b []byte) (field, rest []byte, ok bool) {
	n, rest, ok := uvarint(b)
	if !ok || n > uint64(len(rest)) {
		return nil, nil, false
	}
	return rest[:n], rest[n:], true
}

// appendEnvelope appends the stored form of e to dst.
func appendEnvelope(dst []byte, e *envelope) []byte {
	dst = append(dst, envelopeV1, e.flags)
	dst = binary.AppendUvarint(dst, e.seq)
	dst = append(dst, e.commit...)
	dst = binary.AppendUvarint(dst, uint64(len(e.chained)))
	dst = append(dst, e.chained...)
	dst = binary.AppendUvarint(dst, uint64(len(e.personal)))
	dst = append(dst, e.personal...)
	if e.erased() {
		return binary.AppendUvarint(dst, e.erasedBy)
	}
	return append(dst, e.salt...)
}

func (e *envelope) size() int {
	return 2 + 3*binary.MaxVarintLen64 + hashSize + len(e.chained) + len(e.personal) + saltSize
}

// chainedFields are the fields the integrity chain hashes: everything an
// auditor must be able to trust and that does not identify a person. The
// field order is the canonical order of the chained JSON (exports and
// VerifyNDJSON rebuild it from this struct), so never reorder or retag
// fields; add new ones at the end, or in personalFields.
//
// Fields that stay here although they may touch a person, and why:
//   - path and details are the "what" of the record (PCI DSS 10.2.2) and
//     what an auditor looks at first; identifiers must not be put there in
//     clear (the redaction policy rewrites paths, admin events should name
//     subjects by HMAC token), because erasure cannot reach them.
//   - user_source and user_verified say how identity was established, not
//     who it was.
//   - risk_factors carry rule names and fixed labels, not request content.
type chainedFields struct {
	ID            string         `json:"id"`
	Time          time.Time      `json:"time"`
	Kind          string         `json:"kind"`
	Stage         string         `json:"stage,omitempty"`
	Action        string         `json:"action,omitempty"`
	Level         string         `json:"level,omitempty"`
	Rule          string         `json:"rule,omitempty"`
	Tags          []string       `json:"tags,omitempty"`
	RequestID     string         `json:"request_id,omitempty"`
	Method        string         `json:"method,omitempty"`
	Scheme        string         `json:"scheme,omitempty"`
	Host          string         `json:"host,omitempty"`
	Path          string         `json:"path,omitempty"`
	Proto         string         `json:"proto,omitempty"`
	Status        int            `json:"status,omitempty"`
	Outcome       string         `json:"outcome,omitempty"`
	DurationNS    int64          `json:"duration_ns,omitempty"`
	TTFBNS        int64          `json:"ttfb_ns,omitempty"`
	BytesIn       int64          `json:"bytes_in,omitempty"`
	BytesOut      int64          `json:"bytes_out,omitempty"`
	TLSVersion    string         `json:"tls_version,omitempty"`
	TLSCipher     string         `json:"tls_cipher,omitempty"`
	UserSource    string         `json:"user_source,omitempty"`
	UserVerified  bool           `json:"user_verified"`
	Workspace     string         `json:"workspace,omitempty"`
	UpstreamError string         `json:"upstream_error,omitempty"`
	RiskScore     int            `json:"risk_score"`
	RiskLevel     string         `json:"risk_level,omitempty"`
	RiskFactors   []RiskFactor   `json:"risk_factors,omitempty"`
	Suspicious    bool           `json:"suspicious"`
	Details       map[string]any `json:"details,omitempty"`
}

// personalFields identify or profile a person (GDPR Art. 4(1)): they are
// chained only through a salted commitment, so EraseSubject can replace
// them. User comes first: EraseSubject finds a subject's records by the
// prefix {"user":"..." without decoding. The query string and headers are
// here because they routinely carry e-mail addresses, names and device
// identifiers even after secrets are HMACed; the port because with the IP
// and time it singles out one device behind a NAT.
type personalFields struct {
	User            string              `json:"user,omitempty"`
	ClientIP        string              `json:"client_ip,omitempty"`
	ClientPort      int                 `json:"client_port,omitempty"`
	ForwardedFor    []string            `json:"forwarded_for_untrusted,omitempty"`
	UserAgent       string              `json:"user_agent,omitempty"`
	Referer         string              `json:"referer,omitempty"`
	Query           string              `json:"query,omitempty"`
	RequestHeaders  map[string][]string `json:"request_headers,omitempty"`
	ResponseHeaders map[string][]string `json:"response_headers,omitempty"`
	RequestBody     *Body               `json:"request_body,omitempty"`
	ResponseBody    *Body               `json:"response_body,omitempty"`
}

func personalOf(ev *Event) personalFields {
	return personalFields{
		User: ev.User, ClientIP: ev.ClientIP, ClientPort: ev.ClientPort,
		ForwardedFor: ev.ForwardedFor, UserAgent: ev.UserAgent, Referer: ev.Referer,
		Query: ev.Query, RequestHeaders: ev.RequestHeaders, ResponseHeaders: ev.ResponseHeaders,
		RequestBody: ev.RequestBody, ResponseBody: ev.ResponseBody,
	}
}

// appendChained appends the JSON of ev's chained fields, byte for byte what
// encoding/json makes of chainedFields (a test holds it to that), four
// times faster: encoding is most of the chain's share of ingest.
func appendChained(dst []byte, ev *Event) ([]byte, error) {
	w := jsonWriter{b: append(dst, '{')}
	w.str("id", ev.ID, false)
	t, err := ev.Time.MarshalJSON() // what encoding/json calls, errors included
	if err != nil {
		return dst, err
	}
	w.key("time")
	w.b = append(w.b, t...)
	w.str("kind", ev.Kind, false)
	w.str("stage", ev.Stage, true)
	w.str("action", ev.Action, true)
	w.str("level", ev.Level, true)
	w.str("rule", ev.Rule, true)
	if len(ev.Tags) > 0 {
		w.key("tags")
		w.b = appendJSONStrings(w.b, ev.Tags)
	}
	w.str("request_id", ev.RequestID, true)
	w.str("method", ev.Method, true)
	w.str("scheme", ev.Scheme, true)
	w.str("host", ev.Host, true)
	w.str("path", ev.Path, true)
	w.str("proto", ev.Proto, true)
	w.int("status", int64(ev.Status), true)
	w.str("outcome", ev.Outcome, true)
	w.int("duration_ns", ev.DurationNS, true)
	w.int("ttfb_ns", ev.TTFBNS, true)
	w.int("bytes_in", ev.BytesIn, true)
	w.int("bytes_out", ev.BytesOut, true)
	w.str("tls_version", ev.TLSVersion, true)
	w.str("tls_cipher", ev.TLSCipher, true)
	w.str("user_source", ev.UserSource, true)
	w.bool("user_verified", ev.UserVerified)
	w.str("workspace", ev.Workspace, true)
	w.str("upstream_error", ev.UpstreamError, true)
	w.int("risk_score", int64(ev.RiskScore), false)
	w.str("risk_level", ev.RiskLevel, true)
	if len(ev.RiskFactors) > 0 {
		w.key("risk_factors")
		w.b = append(w.b, '[')
		for i, f := range ev.RiskFactors {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			fw := jsonWriter{b: append(w.b, '{')}
			fw.str("name", f.Name, false)
			fw.int("points", int64(f.Points), false)
			fw.str("detail", f.Detail, true)
			w.b = append(fw.b, '}')
		}
		w.b = append(w.b, ']')
	}
	w.bool("suspicious", ev.Suspicious)
	if len(ev.Details) > 0 {
		// Free-form and rare (admin and lifecycle events): encoding/json.
		d, err := json.Marshal(ev.Details)
		if err != nil {
			return dst, err
		}
		w.key("details")
		w.b = append(w.b, d...)
	}
	return append(w.b, '}'), nil
}

// appendPersonal is appendChained for personalFields.
func appendPersonal(dst []byte, ev *Event) []byte {
	w := jsonWriter{b: append(dst, '{')}
	w.str("user", ev.User, true)
	w.str("client_ip", ev.ClientIP, true)
	w.int("client_port", int64(ev.ClientPort), true)
	if len(ev.ForwardedFor) > 0 {
		w.key("forwarded_for_untrusted")
		w.b = appendJSONStrings(w.b, ev.ForwardedFor)
	}
	w.str("user_agent", ev.UserAgent, true)
	w.str("referer", ev.Referer, true)
	w.str("query", ev.Query, true)
	w.headers("request_headers", ev.RequestHeaders)
	w.headers("response_headers", ev.ResponseHeaders)
	w.body("request_body", ev.RequestBody)
	w.body("response_body", ev.ResponseBody)
	return append(w.b, '}')
}

// jsonWriter appends the members of one JSON object.
type jsonWriter struct {
	b    []byte
	more bool
}

func (w *jsonWriter) key(name string) {
	if w.more {
		w.b = append(w.b, ',')
	}
	w.more = true
	w.b = append(w.b, '"')
	w.b = append(w.b, name...)
	w.b = append(w.b, '"', ':')
}

func (w *jsonWriter) str(name, v string, omitEmpty bool) {
	if omitEmpty && v == "" {
		return
	}
	w.key(name)
	w.b = appendJSONString(w.b, v)
}

func (w *jsonWriter) int(name string, v int64, omitEmpty bool) {
	if omitEmpty && v == 0 {
		return
	}
	w.key(name)
	w.b = strconv.AppendInt(w.b, v, 10)
}

func (w *jsonWriter) bool(name string, v bool) {
	w.key(name)
	w.b = strconv.AppendBool(w.b, v)
}

func (w *jsonWriter) headers(name string, h map[string][]string) {
	if len(h) == 0 {
		return
	}
	w.key(name)
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names) // encoding/json's map key order
	w.b = append(w.b, '{')
	for i, k := range names {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = appendJSONString(w.b, k)
		w.b = append(w.b, ':')
		w.b = appendJSONStrings(w.b, h[k])
	}
	w.b = append(w.b, '}')
}

// body writes a captured body; rare (the body level only), so
// encoding/json does it.
func (w *jsonWriter) body(name string, b *Body) {
	if b == nil {
		return
	}
	w.key(name)
	q, _ := json.Marshal(b) // strings, ints and bools always marshal
	w.b = append(w.b, q...)
}

func appendJSONStrings(dst []byte, vs []string) []byte {
	if vs == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, v := range vs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, v)
	}
	return append(dst, ']')
}

// appendJSONString quotes s as encoding/json does. Printable ASCII without
// the characters it escapes is copied; anything else (control characters,
// HTML-sensitive ones, non-ASCII with its U+2028 and invalid-UTF-8 rules)
// goes through encoding/json itself.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// putEvent stores a new event whose Seq is assigned: links it into the
// integrity chain, encodes it and indexes it, all in tx.
func putEvent(tx *bolt.Tx, ev *Event) error {
	if err := chainEvent(tx, ev); err != nil {
		return err
	}
	val, err := encodeEventInto(ev, func(n int) []byte {
		ib, _ := batchFor(tx)
		return ib.carve(n)[:0]
	})
	ev.linked.release() // the parts are in val now
	ev.linked = nil     // keep ev comparable to a decoded copy
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketEvents)
	// Sequence numbers only grow, so pages left behind a split are never
	// written again: pack them full (bbolt's default leaves them half
	// empty, doubling the file).
	b.FillPercent = 1.0
	if err := b.Put(u64(ev.Seq), val); err != nil {
		return err
	}
	return indexEvent(tx, ev)
}

var errUnlinked = errors.New("event was not linked into the integrity chain; store new events with putEvent")

// encodeEvent is the stored form of an event that chainEvent linked (putEvent
// calls both). A decoded event cannot be re-encoded: re-marshalling its
// fields need not reproduce the bytes the chain hashed (map key order of
// values in Details, number formats), so rewriting records works on the
// envelope instead (see EraseSubject).
func encodeEvent(ev *Event) ([]byte, error) {
	return encodeEventInto(ev, func(n int) []byte { return make([]byte, 0, n) })
}

// encodeEventInto is encodeEvent writing into memory from alloc, which
// returns an empty slice with room for n bytes.
func encodeEventInto(ev *Event, alloc func(n int) []byte) ([]byte, error) {
	l := ev.linked
	if l == nil {
		return nil, errUnlinked
	}
	e := envelope{seq: ev.Seq, commit: l.commit[:], chained: l.chained, personal: l.personal, salt: l.salt[:]}
	return appendEnvelope(alloc(e.size()), &e), nil
}

// decodeEvent reads what encodeEvent wrote, and schema-1 records (the Event
// as JSON) not yet upgraded. It fails, never panics, on any input.
func decodeEvent(val []byte, ev *Event) error {
	*ev = Event{}
	if len(val) > 0 && val[0] == '{' {
		return json.Unmarshal(val, ev)
	}
	e, err := parseEnvelope(val)
	if err != nil {
		return err
	}
	return decodeEnvelope(&e, ev)
}

// decodeEnvelope is decodeEvent for an envelope already parsed.
func decodeEnvelope(e *envelope, ev *Event) error {
	*ev = Event{}
	// Both parts decode into ev directly: their keys are Event's own JSON
	// names, and they do not overlap.
	if err := json.Unmarshal(e.chained, ev); err != nil {
		return fmt.Errorf("%w: chained part: %v", errMalformed, err)
	}
	if err := json.Unmarshal(e.personal, ev); err != nil {
		return fmt.Errorf("%w: personal part: %v", errMalformed, err)
	}
	ev.Seq = e.seq
	ev.Erased = e.erased()
	ev.linked = nil
	return nil
}
