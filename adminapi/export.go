package adminapi

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/caddy-audit/caddy-audit/storage"
)

// An export streams every event a filter selects in one of several
// shapes. One skeleton (streamExport) serves them all: it sets the
// headers, hashes and counts what reaches the client, states the row
// count and SHA-256 as HTTP trailers (they are known only at the end) and
// records them in the audit event of the export. A format only says how
// to write its header, one row and its footer (rowFormat), except NDJSON,
// which the store writes itself so that the unfiltered export stays the
// verifiable one.

// rowFormat writes one export shape. Rows arrive newest first, one at a
// time: a format keeps no more than one row in memory.
type rowFormat interface {
	header(w *bufio.Writer) error
	row(w *bufio.Writer, ev *storage.Event) error
	footer(w *bufio.Writer) error
}

// exportFormat is one value of the format parameter.
type exportFormat struct {
	// contentType and ext are the response's media type and the file
	// name extension suggested in Content-Disposition.
	contentType, ext string
	// rows builds the writer of a row format; nil for NDJSON, which
	// the store writes (ExportNDJSON).
	rows func() rowFormat
}

// exportFormats are the formats by name; "ndjson" is the default.
var exportFormats = map[string]exportFormat{
	"ndjson": {contentType: "application/x-ndjson", ext: "ndjson"},
	"csv":    {contentType: "text/csv; charset=utf-8; header=present", ext: "csv", rows: func() rowFormat { return &csvFormat{} }},
	"json":   {contentType: "application/json", ext: "json", rows: func() rowFormat { return &jsonFormat{} }},
	"ocsf":   {contentType: "application/x-ndjson", ext: "ocsf.ndjson", rows: func() rowFormat { return lineFormat[ocsfEvent](toOCSF) }},
	"ecs":    {contentType: "application/x-ndjson", ext: "ecs.ndjson", rows: func() rowFormat { return lineFormat[ecsEvent](toECS) }},
}

// exportQuery is a parsed GET /api/v1/events/export query string.
type exportQuery struct {
	eventsQuery
	format string
}

// exportParams are the export's parameters: the search's filters without
// paging (an export streams every match), and the format.
var exportParams = filterParams(params[exportQuery]{
	"format": {doc: "ndjson (default; one event per line, in store order, verifiable offline when unfiltered), " +
		"csv (columns " + csvColumnNames() + "; every cell quoted, spreadsheet formulas defused), json ({\"events\":[...]}), " +
		"ocsf (NDJSON of OCSF " + ocsfVersion + " HTTP Activity, class 4002) or ecs (NDJSON with Elastic Common Schema " + ecsVersion + " field names). " +
		"All but ndjson list the newest event first.",
		parse: func(q *exportQuery, v string) error {
			if _, ok := exportFormats[v]; !ok {
				return fmt.Errorf("expects one of %s", strings.Join(slices.Sorted(maps.Keys(exportFormats)), ", "))
			}
			q.format = v
			return nil
		}},
})

// parseExportQuery parses a raw export query string.
func parseExportQuery(raw string) (exportQuery, error) {
	q := exportQuery{format: "ndjson"}
	err := parseFilterQuery(raw, &q, exportParams)
	return q, err
}

// exportEvents serves GET /api/v1/events/export. The default format,
// NDJSON, without filters is the full, verifiable export that `caddy
// audit verify --file` checks offline against a checkpoint; with filters
// (the parameters of GET /api/v1/events, without limit and cursor) it
// selects events but can no longer prove the chain. The other formats are
// for SIEMs and spreadsheets and are never verifiable, but they carry the
// same row count and SHA-256.
func (a *api) exportEvents(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	q, err := parseExportQuery(r.URL.RawQuery)
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if !a.scopeFilter(w, r, key, &q.filter) {
		return
	}
	job := exportJob{action: "events.export", file: "audit-events", format: q.format,
		details: map[string]any{"filter": filterDetails(q.filter)}}
	f := exportFormats[q.format]
	if f.rows == nil {
		var filter *storage.Filter
		if q.filter != (storage.Filter{}) {
			filter = &q.filter
		}
		a.streamExport(w, r, key, job, func(out io.Writer) (int64, bool, error) {
			res, err := a.store.ExportNDJSON(r.Context(), out, filter)
			return res.Rows, res.Verifiable, err
		})
		return
	}
	a.streamExport(w, r, key, job, func(out io.Writer) (int64, bool, error) {
		rows, err := writeRows(r.Context(), a.store, q.filter, out, f.rows())
		return rows, false, err
	})
}

// exportJob says what an export is, for its headers and audit event.
type exportJob struct {
	// action names the audit event ("events.export").
	action string
	// file is the stem of the suggested file name.
	file string
	// format is the key of exportFormats: it sets the content type and
	// the file name's extension.
	format string
	// details go into the audit event with the figures of the export.
	details map[string]any
}

// exportBuffer is the write buffer of row formats: large enough that a
// row is rarely split across writes, small enough to stay flat.
const exportBuffer = 64 << 10

// writeRows writes the events matching f, newest first, as format fm:
// store.Scan holds one page at a time, the format one row.
func writeRows(ctx context.Context, store *storage.Store, f storage.Filter, out io.Writer, fm rowFormat) (int64, error) {
	bw := bufio.NewWriterSize(out, exportBuffer)
	if err := fm.header(bw); err != nil {
		return 0, err
	}
	var rows int64
	err := store.Scan(ctx, f, func(ev *storage.Event) error {
		rows++
		return fm.row(bw, ev)
	})
	if err == nil {
		err = fm.footer(bw)
	}
	if err == nil {
		err = bw.Flush()
	}
	return rows, err
}

// exportWriter hashes and counts the bytes that go to the client.
type exportWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (x *exportWriter) Write(p []byte) (int, error) {
	n, err := x.w.Write(p)
	x.h.Write(p[:n])
	x.n += int64(n)
	return n, err
}

// streamExport is the skeleton of every export: headers, the body that
// produce writes, trailers, and the audit event. produce returns the
// number of rows and whether the export is verifiable.
func (a *api) streamExport(w http.ResponseWriter, r *http.Request, key storage.APIKey, job exportJob,
	produce func(io.Writer) (rows int64, verifiable bool, err error)) {
	f := exportFormats[job.format]
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Content-Disposition", `attachment; filename="`+job.file+`.`+f.ext+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Trailer", "X-Export-Rows, X-Export-Sha256, X-Export-Verifiable")
	out := &exportWriter{w: w, h: sha256.New()}
	rows, verifiable, err := produce(out)
	details := maps.Clone(job.details)
	if details == nil {
		details = make(map[string]any)
	}
	details["format"], details["rows"], details["bytes"] = job.format, rows, out.n
	if err != nil {
		details["error"] = storage.ErrorKind(err)
		a.record(r, key, job.action, http.StatusInternalServerError, details)
		if out.n == 0 {
			// Nothing was sent: the client can still get a proper answer.
			h.Del("Trailer")
			h.Del("Content-Disposition")
			a.storeError(w, r, "exporting audit events", err)
			return
		}
		a.log.Error("streaming export", "action", job.action, "format", job.format, "error", err, "rows", rows)
		panic(http.ErrAbortHandler) // the client must not take a cut stream for the whole
	}
	sum := hex.EncodeToString(out.h.Sum(nil))
	h.Set("X-Export-Rows", strconv.FormatInt(rows, 10))
	h.Set("X-Export-Sha256", sum)
	h.Set("X-Export-Verifiable", strconv.FormatBool(verifiable))
	details["sha256"], details["verifiable"] = sum, verifiable
	a.record(r, key, job.action, http.StatusOK, details)
}
