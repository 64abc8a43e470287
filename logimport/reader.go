package logimport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"iter"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

// Defaults for Options.
const (
	// DefaultMaxLineBytes bounds one line. Go's http.Server accepts 1 MiB of
	// request headers by default and Caddy logs them all, JSON-escaped, so
	// a genuine line can approach that; twice it leaves room for escaping.
	DefaultMaxLineBytes = 2 << 20
	// DefaultMaxLineErrors is how many line errors Stats keeps.
	DefaultMaxLineErrors = 20
)

// Options configure a Reader. The zero value detects the format, drops
// queries and headers (nothing secret can leak) and names no source.
type Options struct {
	// Format of the log; FormatAuto (default) detects it from the first
	// line that is in a known format.
	Format Format

	// Source names the file in each event's Details ("imported_from") and
	// seeds the event ids; use the file's path.
	Source string

	// Redactor makes logged values fit to store exactly as the live
	// handler does: queries and fragments, paths, user agents, referers
	// and headers go through it. When nil, queries and the raw request
	// line are dropped and headers are not stored (without a redactor a
	// token= or password= parameter would reach the store in clear);
	// User-Agent, Referer (without its query), X-Request-ID and
	// X-Forwarded-For still fill their own fields.
	Redactor *policy.Redactor

	// Workspace returns the event's workspace from the event and the
	// logged request headers (nil for CLF), such as a tenant derived from
	// ev.Host or ev.Path. It wins over WorkspaceHeader.
	Workspace func(ev *storage.Event, headers http.Header) string

	// WorkspaceHeader names a logged request header that holds the
	// workspace, such as X-Workspace-ID.
	WorkspaceHeader string

	// Scheme and Host fill events from CLF lines, which do not log them
	// (unless the request line has an absolute URI). Scheme defaults to
	// http; Host stays empty when not set.
	Scheme, Host string

	// MaxLineBytes bounds a line (default DefaultMaxLineBytes); longer
	// lines are skipped and counted in Stats.Overlong. Memory use is about
	// this much per Reader at most.
	MaxLineBytes int

	// MaxLineErrors is how many line errors Stats.FirstErrors keeps
	// (default DefaultMaxLineErrors).
	MaxLineErrors int
}

// ErrLineTooLong is the error recorded for a line over MaxLineBytes.
var ErrLineTooLong = errors.New("line too long")

// LineError is a line that was not imported.
type LineError struct {
	// Line is the 1-based line number.
	Line int64
	// Err says what was wrong.
	Err error
}

// Error implements error.
func (e LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Unwrap returns the cause.
func (e LineError) Unwrap() error { return e.Err }

// Stats counts what a Reader did with its input.
type Stats struct {
	// Lines read, including blank, skipped and malformed ones.
	Lines int64
	// Events produced.
	Events int64
	// Blank lines ignored.
	Blank int64
	// Skipped are Caddy log entries that are not access log entries
	// (other loggers writing to the same file).
	Skipped int64
	// Errors are lines that were not imported because they were malformed
	// or too long.
	Errors int64
	// Overlong are the lines among Errors that exceeded MaxLineBytes.
	Overlong int64
	// FirstErrors are the first MaxLineErrors of Errors.
	FirstErrors []LineError
}

// record is a parsed line, before it becomes an event.
type record struct {
	t                     time.Time
	method, uri, proto    string
	scheme, host          string
	status                int
	bytesIn, bytesOut     int64
	duration              int64
	clientIP              string
	port                  int
	user, userSource      string
	verified              bool
	userAgent, referer    string
	headers, respHeaders  http.Header
	tlsVersion, tlsCipher string
	rawRequest            string // a request line that was not one
}

// Time bounds of an importable event: storage and the detectors keep time
// as int64 nanoseconds.
var (
	minTime = time.Unix(0, 0)
	maxTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

func checkTime(t time.Time) error {
	if t.Before(minTime) || !t.Before(maxTime) {
		return fmt.Errorf("time %s out of range", t.UTC().Format(time.RFC3339))
	}
	return nil
}

// Reader reads access log lines and returns them as events. It holds one
// line in memory at a time (at most MaxLineBytes, plus a 64 KiB read
// buffer). A Reader is not safe for concurrent use; import files in
// parallel with one Reader each.
type Reader struct {
	br     *bufio.Reader
	opts   Options
	format Format
	seed   uint64 // from Source: makes ids deterministic per file and line
	long   []byte // a line longer than br's buffer, assembled
	stats  Stats
	rec    record
	err    error // sticky: io.EOF or the read error
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader, opts Options) *Reader {
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = DefaultMaxLineBytes
	}
	if opts.MaxLineErrors <= 0 {
		opts.MaxLineErrors = DefaultMaxLineErrors
	}
	if opts.Scheme == "" {
		opts.Scheme = "http"
	}
	h := fnv.New64a()
	h.Write([]byte(opts.Source))
	return &Reader{
		br:     bufio.NewReaderSize(r, min(64<<10, opts.MaxLineBytes+2)),
		opts:   opts,
		format: opts.Format,
		seed:   h.Sum64(),
	}
}

// Format returns the format being read: Options.Format, or what was
// detected (FormatAuto until a line in a known format was seen).
func (r *Reader) Format() Format { return r.format }

// Stats returns what the Reader did so far.
func (r *Reader) Stats() Stats {
	s := r.stats
	s.FirstErrors = append([]LineError(nil), r.stats.FirstErrors...)
	return s
}

// Next returns the next event. Malformed and overlong lines are skipped and
// counted (Stats), never returned as errors. At the end of the input it
// returns io.EOF; a read error is returned as is, and again on every later
// call.
func (r *Reader) Next() (storage.Event, error) {
	for {
		if r.err != nil {
			return storage.Event{}, r.err
		}
		line, overlong, err := r.readLine()
		if err != nil && !(err == io.EOF && (len(line) > 0 || overlong)) {
			r.err = err
			continue
		}
		if err == io.EOF {
			r.err = io.EOF // the last line had no newline: import it, then stop
		}
		r.stats.Lines++
		if overlong {
			r.stats.Overlong++
			r.lineError(fmt.Errorf("%w (over %d bytes)", ErrLineTooLong, r.opts.MaxLineBytes))
			continue
		}
		ev, ok := r.parse(line)
		if ok {
			r.stats.Events++
			return ev, nil
		}
	}
}

// All returns an iterator over the remaining events. It stops at the end
// of the input; a read error is yielded once, last.
func (r *Reader) All() iter.Seq2[storage.Event, error] {
	return func(yield func(storage.Event, error) bool) {
		for {
			ev, err := r.Next()
			if err == io.EOF {
				return
			}
			if !yield(ev, err) || err != nil {
				return
			}
		}
	}
}

// readLine returns the next line without its line ending. A line longer
// than MaxLineBytes is consumed to its end and reported as overlong, so
// memory stays bounded whatever the input.
func (r *Reader) readLine() (line []byte, overlong bool, err error) {
	r.long = r.long[:0]
	for {
		frag, err := r.br.ReadSlice('\n')
		if !overlong {
			if len(r.long)+len(frag) > r.opts.MaxLineBytes+2 { // +2: the \r\n is not content
				overlong = true
				r.long = r.long[:0]
			} else if err == bufio.ErrBufferFull || len(r.long) > 0 {
				r.long = append(r.long, frag...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if overlong {
			return nil, true, err
		}
		if len(r.long) > 0 {
			line = r.long
		} else {
			line = frag
		}
		if err != nil && err != io.EOF {
			return nil, false, err
		}
		line = trimEOL(line)
		if len(line) > r.opts.MaxLineBytes {
			return nil, true, err
		}
		if err == io.EOF && len(line) == 0 {
			return nil, false, io.EOF
		}
		return line, false, err
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

// lineError records a line that was not imported.
func (r *Reader) lineError(err error) {
	r.stats.Errors++
	if len(r.stats.FirstErrors) < r.opts.MaxLineErrors {
		r.stats.FirstErrors = append(r.stats.FirstErrors, LineError{Line: r.stats.Lines, Err: err})
	}
}

// parse turns one line into an event, or records why it could not.
func (r *Reader) parse(line []byte) (storage.Event, bool) {
	if r.stats.Lines == 1 {
		line = trimBOM(line)
	}
	if isBlank(line) {
		r.stats.Blank++
		return storage.Event{}, false
	}
	f := r.format
	if f == FormatAuto {
		if f = Detect(line); f == FormatAuto {
			r.lineError(errors.New("not a Caddy JSON, Common or Combined log line"))
			return storage.Event{}, false
		}
		r.format = f
	}
	rec := &r.rec
	var err error
	switch f {
	case FormatCaddyJSON:
		err = parseCaddyJSON(line, rec)
	case FormatCommon:
		err = parseCLF(line, false, rec)
	case FormatCombined:
		err = parseCLF(line, true, rec)
	default:
		err = fmt.Errorf("unknown format %v", f)
	}
	if err == errNotAccess {
		r.stats.Skipped++
		return storage.Event{}, false
	}
	if err != nil {
		r.lineError(err)
		return storage.Event{}, false
	}
	return r.event(rec, f), true
}

func trimBOM(b []byte) []byte {
	if len(b) >= 3 && string(b[:3]) == string(utf8BOM) {
		return b[3:]
	}
	return b
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// event maps a parsed record to an audit event (see the package doc).
func (r *Reader) event(rec *record, f Format) storage.Event {
	o := &r.opts
	line := r.stats.Lines
	ev := storage.Event{
		ID:         r.id(rec.t, line),
		Time:       rec.t.UTC(),
		Kind:       storage.KindHTTP,
		Stage:      storage.StageResponseComplete,
		Level:      "metadata",
		Method:     policy.Clean(rec.method),
		Proto:      policy.Clean(rec.proto),
		Scheme:     rec.scheme,
		Host:       policy.Clean(rec.host),
		Status:     rec.status,
		Outcome:    storage.Outcome(rec.status),
		DurationNS: rec.duration,
		BytesIn:    rec.bytesIn,
		BytesOut:   rec.bytesOut,
		ClientIP:   policy.Clean(rec.clientIP),
		ClientPort: rec.port,
		UserAgent:  r.text(rec.userAgent),
		Referer:    r.referer(rec.referer),
		TLSVersion: rec.tlsVersion,
		TLSCipher:  rec.tlsCipher,
		Details: map[string]any{
			storage.DetailImportedFrom: o.Source,
			"line":                     line,
			"import_format":            f.String(),
		},
	}
	if ev.Scheme == "" {
		ev.Scheme = o.Scheme
		ev.Host = policy.Clean(o.Host)
	}
	scheme, host, path, query := splitURI(rec.uri)
	if scheme != "" {
		ev.Scheme = policy.Clean(scheme)
	}
	if host != "" {
		ev.Host = policy.Clean(host)
	}
	if o.Redactor != nil {
		ev.Path = o.Redactor.Path(path)
	} else {
		ev.Path = policy.Clean(path)
	}
	if query != "" {
		if o.Redactor != nil {
			// Query cleans and bounds its result; cleaning it again would
			// cut its truncation marker.
			ev.Query = o.Redactor.Query(query)
		} else {
			ev.Details["query_dropped"] = true
		}
	}
	if rec.rawRequest != "" {
		// Not a request line; its query-like parts are not parsed, so it
		// is stored only through the redactor, like a query.
		if o.Redactor != nil {
			ev.Details["request_line"] = o.Redactor.Query(rec.rawRequest)
		} else {
			ev.Details["request_line_dropped"] = true
		}
	}
	if rec.user != "" {
		ev.User, ev.UserSource, ev.UserVerified = policy.Clean(rec.user), rec.userSource, rec.verified
	}
	if id := rec.headers.Get("X-Request-ID"); id != "" {
		ev.RequestID = policy.Clean(id)
	} else if id := rec.respHeaders.Get("X-Request-ID"); id != "" {
		ev.RequestID = policy.Clean(id)
	}
	for _, v := range rec.headers.Values("X-Forwarded-For") {
		for hop := range strings.SplitSeq(v, ",") {
			if hop = strings.TrimSpace(hop); hop != "" {
				ev.ForwardedFor = append(ev.ForwardedFor, policy.Clean(hop))
			}
		}
	}
	if o.Redactor != nil {
		if len(rec.headers) > 0 {
			// policy.Redactor.Headers redacts the Referer's query itself.
			ev.RequestHeaders = o.Redactor.Headers(rec.headers)
		}
		if len(rec.respHeaders) > 0 {
			ev.ResponseHeaders = o.Redactor.Headers(rec.respHeaders)
		}
		if ev.RequestHeaders != nil || ev.ResponseHeaders != nil {
			ev.Level = "headers" // what the live handler records at that level
		}
	}
	// The same rule as live traffic: a log line is as untrusted as the
	// request it records, so it cannot write into a reserved workspace.
	switch {
	case o.Workspace != nil:
		ev.ClaimWorkspace(policy.Clean(o.Workspace(&ev, rec.headers)))
	case o.WorkspaceHeader != "":
		ev.ClaimWorkspace(policy.Clean(rec.headers.Get(o.WorkspaceHeader)))
	}
	return ev
}

// referer keeps the referer redacted as the live handler keeps it
// (policy.Redactor.URL: path patterns, query, fragment): a referer is
// another page's URL and can carry its tokens. Without a redactor only
// the part before any query or fragment is kept.
func (r *Reader) referer(ref string) string {
	if r.opts.Redactor != nil {
		return r.opts.Redactor.URL(ref)
	}
	base, _, _ := strings.Cut(ref, "#")
	base, _, _ = strings.Cut(base, "?")
	return policy.Clean(base)
}

// text is a free-text value (a user agent) fit to store: value patterns
// and name=value secrets replaced when there is a redactor.
func (r *Reader) text(s string) string {
	if r.opts.Redactor != nil {
		return r.opts.Redactor.Text(s)
	}
	return policy.Clean(s)
}

// splitURI splits a request URI into scheme and host (absolute form only),
// escaped path and raw query.
func splitURI(uri string) (scheme, host, path, query string) {
	if i := strings.Index(uri, "://"); i > 0 && !strings.ContainsAny(uri[:i], "/?") {
		scheme, uri = strings.ToLower(uri[:i]), uri[i+3:]
		end := strings.IndexAny(uri, "/?")
		if end < 0 {
			end = len(uri)
		}
		host, uri = uri[:end], uri[end:]
		if uri == "" || uri[0] == '?' {
			uri = "/" + uri
		}
	}
	path, query, _ = strings.Cut(uri, "?")
	return scheme, host, path, query
}

// id returns a ULID for the event on line n: the time's milliseconds, then
// 80 bits fixed by the source and line (see the package doc for why not
// storage.NewID's random bits).
func (r *Reader) id(t time.Time, n int64) string {
	var tail [10]byte
	binary.BigEndian.PutUint16(tail[:2], uint16(r.seed>>48))
	// splitmix64 is a bijection, so distinct lines of one source never
	// share the low 64 bits.
	binary.BigEndian.PutUint64(tail[2:], splitmix64(r.seed^uint64(n)))
	return storage.IDWithTail(t, tail)
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
