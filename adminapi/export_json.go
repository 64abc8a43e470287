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

// lineFormat writes NDJSON: each event as one line of the shape that it
// maps the event to, with no header or footer. The OCSF and ECS exports
// map to their schemas, eventLines not at all.
type lineFormat[T any] func(*storage.Event) T

func (lineFormat[T]) header(*bufio.Writer) error { return nil }

func (f lineFormat[T]) row(w *bufio.Writer, ev *storage.Event) error { return writeLine(w, f(ev)) }

func (lineFormat[T]) footer(*bufio.Writer) error { return nil }

// eventLines writes one event per line, as GET /api/v1/events shows it,
// newest first: the NDJSON of exports that are not the store's
// verifiable one (the subject access export).
var eventLines = lineFormat[*storage.Event](func(ev *storage.Event) *storage.Event { return ev })

// writeLine writes v as one line of NDJSON.
func writeLine(w *bufio.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	return w.WriteByte('\n')
}

// Interface guards
var (
	_ rowFormat = (*jsonFormat)(nil)
	_ rowFormat = eventLines
)
