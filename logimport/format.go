package logimport

import (
	"bytes"
	"fmt"
	"strings"
)

// Format is an access log format.
type Format int

// Formats. FormatAuto (the zero value) asks the Reader to detect the format
// from the first line that parses.
const (
	FormatAuto Format = iota
	// FormatCaddyJSON is Caddy's structured access log (http.log.access).
	FormatCaddyJSON
	// FormatCommon is the Common Log Format (Apache %h %l %u %t "%r" %>s %b).
	FormatCommon
	// FormatCombined is Common plus "%{Referer}i" "%{User-Agent}i", the
	// default of nginx and of many Apache installs.
	FormatCombined
)

// String returns the name ParseFormat accepts.
func (f Format) String() string {
	switch f {
	case FormatAuto:
		return "auto"
	case FormatCaddyJSON:
		return "caddy"
	case FormatCommon:
		return "common"
	case FormatCombined:
		return "combined"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat parses a format name: auto, caddy (or json, caddy_json),
// common (clf) or combined. It is meant for command-line flags.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return FormatAuto, nil
	case "caddy", "json", "caddy_json", "caddyjson":
		return FormatCaddyJSON, nil
	case "common", "clf":
		return FormatCommon, nil
	case "combined":
		return FormatCombined, nil
	}
	return FormatAuto, fmt.Errorf("unknown log format %q (want auto, caddy, common or combined)", s)
}

// Detect guesses the format of one log line. It returns FormatAuto when the
// line is in none of them. A JSON object is taken for Caddy's log (other
// JSON lines then fail to parse with a clear error rather than being
// misread); otherwise the line must parse as Combined or Common, and
// Combined wins because every Combined line is also a valid Common prefix.
func Detect(line []byte) Format {
	line = bytes.TrimSpace(bytes.TrimPrefix(line, utf8BOM))
	if len(line) == 0 {
		return FormatAuto
	}
	if line[0] == '{' {
		return FormatCaddyJSON
	}
	var rec record
	if parseCLF(line, true, &rec) == nil {
		return FormatCombined
	}
	if parseCLF(line, false, &rec) == nil {
		return FormatCommon
	}
	return FormatAuto
}

var utf8BOM = []byte("\xef\xbb\xbf")
