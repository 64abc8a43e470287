package adminapi

import (
	"bufio"
	"encoding/json"

	"github.com/caddy-audit/caddy-audit/storage"
)

// jsonFormat writes the JSON export: one document, {"events":[...]},
// the events as GET /api/v1/events shows them, newest first. The row
// count and hash cannot be in the body (the hash would cover itself);
// they are in the trailers, as for every format.
type jsonFormat struct {
	rows int
}

func (*jsonFormat) header(w *bufio.Writer) error {
	_, err := w.WriteString(`{"events":[`)
	return err
}

func (j *jsonFormat) row(w *bufio.Writer, ev *storage.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if j.rows > 0 {
		if err := w.WriteByte(','); err != nil {
			return err
		}
	}
	j.rows++
	// One event per line, so the file is readable and diffable.
	if err := w.WriteByte('\n'); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (*jsonFormat) footer(w *bufio.Writer) error {
	_, err := w.WriteString("\n]}\n")
	return err
}

// eventLinesFormat writes one event per line, as GET /api/v1/events shows
// it, newest first: the NDJSON of exports that are not the store's
// verifiable one (the subject access export).
type eventLinesFormat struct{}

func (eventLinesFormat) header(*bufio.Writer) error { return nil }

func (eventLinesFormat) row(w *bufio.Writer, ev *storage.Event) error { return writeLine(w, ev) }

func (eventLinesFormat) footer(*bufio.Writer) error { return nil }

// Interface guards
var (
	_ rowFormat = (*jsonFormat)(nil)
	_ rowFormat = eventLinesFormat{}
)
