package adminapi

import (
	"bufio"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/caddy-audit/caddy-audit/storage"
)

// The CSV export (RFC 4180, CRLF line ends, a header row) has a fixed
// column list, csvColumns, so a spreadsheet or a script can rely on it
// across versions: new columns are only ever appended. A number the
// event does not have (no status, no port, no duration) is an empty cell
// rather than 0.
//
// Every cell is quoted and, as OWASP's CSV injection guidance advises, a
// cell that starts with = + - @ tab, CR or LF gets a leading apostrophe,
// so a spreadsheet shows it as text instead of evaluating it as a formula:
// paths, user agents and users are attacker-controlled. Invalid UTF-8 is
// replaced by U+FFFD, as spreadsheets would mangle it anyway.

// csvColumn is one column: its header and how to read it from an event.
type csvColumn struct {
	name string
	cell func(ev *storage.Event) string
}

// csvTimeLayout is RFC 3339 in UTC with milliseconds, which spreadsheets
// and SIEMs parse and PCI DSS 10.2.2 asks for.
const csvTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// csvColumns are the columns of the CSV export, in order.
var csvColumns = []csvColumn{
	{"time", func(ev *storage.Event) string { return ev.Time.UTC().Format(csvTimeLayout) }},
	{"id", func(ev *storage.Event) string { return ev.ID }},
	{"seq", func(ev *storage.Event) string { return strconv.FormatUint(ev.Seq, 10) }},
	{"request_id", func(ev *storage.Event) string { return ev.RequestID }},
	{"kind", func(ev *storage.Event) string { return ev.Kind }},
	{"stage", func(ev *storage.Event) string { return ev.Stage }},
	{"action", func(ev *storage.Event) string { return ev.Action }},
	{"workspace", func(ev *storage.Event) string { return ev.Workspace }},
	{"user", func(ev *storage.Event) string { return ev.User }},
	{"user_source", func(ev *storage.Event) string { return ev.UserSource }},
	{"user_verified", func(ev *storage.Event) string { return strconv.FormatBool(ev.UserVerified) }},
	{"client_ip", func(ev *storage.Event) string { return ev.ClientIP }},
	{"client_port", func(ev *storage.Event) string { return itoaNonZero(int64(ev.ClientPort)) }},
	{"method", func(ev *storage.Event) string { return ev.Method }},
	{"scheme", func(ev *storage.Event) string { return ev.Scheme }},
	{"host", func(ev *storage.Event) string { return ev.Host }},
	{"path", func(ev *storage.Event) string { return ev.Path }},
	{"query", func(ev *storage.Event) string { return ev.Query }},
	{"status", func(ev *storage.Event) string { return itoaNonZero(int64(ev.Status)) }},
	{"outcome", func(ev *storage.Event) string { return ev.Outcome }},
	{"duration_ms", func(ev *storage.Event) string {
		if ev.DurationNS == 0 {
			return ""
		}
		return strconv.FormatFloat(float64(ev.DurationNS)/1e6, 'f', 3, 64)
	}},
	{"bytes_in", func(ev *storage.Event) string { return itoaNonZero(ev.BytesIn) }},
	{"bytes_out", func(ev *storage.Event) string { return itoaNonZero(ev.BytesOut) }},
	{"user_agent", func(ev *storage.Event) string { return ev.UserAgent }},
	{"referer", func(ev *storage.Event) string { return ev.Referer }},
	{"tls_version", func(ev *storage.Event) string { return ev.TLSVersion }},
	{"risk_score", func(ev *storage.Event) string { return strconv.Itoa(ev.RiskScore) }},
	{"risk_level", func(ev *storage.Event) string { return ev.RiskLevel }},
	// risk_factors is "name:points" per factor, joined by "; ".
	{"risk_factors", func(ev *storage.Event) string {
		var b strings.Builder
		for i, f := range ev.RiskFactors {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(f.Name)
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(f.Points))
		}
		return b.String()
	}},
	{"suspicious", func(ev *storage.Event) string { return strconv.FormatBool(ev.Suspicious) }},
	{"erased", func(ev *storage.Event) string { return strconv.FormatBool(ev.Erased) }},
}

// csvColumnNames lists the columns for the API documentation.
func csvColumnNames() string {
	names := make([]string, len(csvColumns))
	for i, c := range csvColumns {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

func itoaNonZero(n int64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatInt(n, 10)
}

// csvFormat writes the CSV export.
type csvFormat struct {
	buf []byte
}

func (c *csvFormat) header(w *bufio.Writer) error {
	c.buf = c.buf[:0]
	for i, col := range csvColumns {
		c.buf = appendCSVCell(c.buf, i, col.name)
	}
	c.buf = append(c.buf, '\r', '\n')
	_, err := w.Write(c.buf)
	return err
}

func (c *csvFormat) row(w *bufio.Writer, ev *storage.Event) error {
	c.buf = c.buf[:0]
	for i, col := range csvColumns {
		c.buf = appendCSVCell(c.buf, i, col.cell(ev))
	}
	c.buf = append(c.buf, '\r', '\n')
	_, err := w.Write(c.buf)
	return err
}

func (*csvFormat) footer(*bufio.Writer) error { return nil }

// appendCSVCell appends the i-th cell of a row: a separating comma after
// the first, then the value escaped and quoted.
func appendCSVCell(dst []byte, i int, v string) []byte {
	if i > 0 {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	for _, c := range []byte(csvEscape(v)) {
		if c == '"' {
			dst = append(dst, '"')
		}
		dst = append(dst, c)
	}
	return append(dst, '"')
}

// csvEscape is the text a cell holds for v (before quoting): valid UTF-8,
// with an apostrophe in front when v starts with a character a
// spreadsheet would take as the start of a formula.
func csvEscape(v string) string {
	if !utf8.ValidString(v) {
		v = strings.ToValidUTF8(v, "\uFFFD")
	}
	if v != "" && strings.IndexByte("=+-@\t\r\n", v[0]) >= 0 {
		return "'" + v
	}
	return v
}

// Interface guard
var _ rowFormat = (*csvFormat)(nil)
