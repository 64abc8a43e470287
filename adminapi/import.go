package adminapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/logimport"
	"github.com/caddy-audit/caddy-audit/storage"
)

// importBatch is how many imported events one transaction appends.
const importBatch = 2000

// importSlack is how far back in time an access log may jump and still be
// put in order (Caddy logs by completion time, so long requests land late).
const importSlack = 5 * time.Minute

// importRoutes is the access-log backfill.
func (a *api) importRoutes() []route {
	return []route{{method: http.MethodPost, path: "/api/v1/import", perm: permEventsImport, h: a.importLog,
		summary: "Backfill an access log (Caddy JSON, Common or Combined) and replay it through the detectors",
		query:   importParams.docs(), problems: []int{http.StatusNotImplemented},
		body: "text/plain", resp: ImportResult{}}}
}

// importQuery is a parsed POST /api/v1/import query string.
type importQuery struct {
	source, workspaceHeader string
	format                  logimport.Format
}

// importParams are the query parameters of POST /api/v1/import.
var importParams = params[importQuery]{
	"source": {doc: "Name of the imported file (1-256 characters; required); a second import under one name is refused.",
		parse: func(q *importQuery, v string) error {
			if len(v) > 256 {
				return errors.New("expects the name of the file being imported, 1-256 characters")
			}
			q.source = v
			return nil
		}},
	"format": {doc: "auto (default), caddy, common or combined.",
		parse: func(q *importQuery, v string) (err error) { q.format, err = logimport.ParseFormat(v); return err }},
	"workspace_header": {doc: "Request header (in Caddy JSON logs) naming the workspace.",
		parse: func(q *importQuery, v string) error { q.workspaceHeader = v; return nil }},
}

// ImportResult is the body of POST /api/v1/import.
type ImportResult struct {
	Source     string   `json:"source"`
	Format     string   `json:"format"`
	Lines      int64    `json:"lines"`
	Events     int64    `json:"events"`
	Skipped    int64    `json:"skipped"`
	Errors     int64    `json:"errors"`
	LineErrors []string `json:"line_errors,omitempty"`
	OutOfOrder int64    `json:"out_of_order"`
	// Alerts are the ids of the alerts the replay raised or updated.
	Alerts []string `json:"alerts"`
}

// importLog serves POST /api/v1/import?source=<file name>[&format=auto|
// caddy|common|combined][&workspace_header=<name>]: the body is an access
// log, streamed. Its lines become audit events (query strings and headers
// redacted as live traffic is) and are replayed, in event-time order,
// through a fresh detector engine, so a team sees what the sidecar would
// have caught last month. The live engine is not used: its state has moved
// past these times, and a replay must not disturb it.
func (a *api) importLog(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	if !a.requireGlobal(w, r, "an imported log names any workspace it likes, so importing needs an unscoped key") {
		return
	}
	if a.redactor == nil {
		writeProblem(w, r, http.StatusNotImplemented, "import is not available: the API was built without a redactor")
		return
	}
	var q importQuery
	if err := parseParams(r.URL.RawQuery, &q, importParams); err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	source := q.source
	if source == "" {
		writeProblem(w, r, http.StatusBadRequest, `query parameter "source": name the file being imported (1-256 characters); it keeps re-imports of one file from duplicating events`)
		return
	}
	switch _, err := a.store.GetImport(source); {
	case err == nil:
		writeProblem(w, r, http.StatusConflict, fmt.Sprintf("%q was imported before; importing it again would duplicate its events (use another source name for a different file)", source))
		return
	case !errors.Is(err, storage.ErrNotFound):
		a.storeError(w, r, "checking earlier imports", err)
		return
	}
	rd := logimport.NewReader(r.Body, logimport.Options{
		Format:          q.format,
		Source:          source,
		Redactor:        a.redactor,
		WorkspaceHeader: q.workspaceHeader,
	})
	sorted := logimport.Sorted(rd, importSlack)
	engine := detectors.NewEngine(a.detectors)
	scorer := detectors.NewScorer(a.detectors)
	alerts := map[string]bool{}
	var batch []*storage.Event
	var failed error
	flush := func() {
		if len(batch) == 0 || failed != nil {
			return
		}
		if err := a.store.Append(batch...); err != nil {
			failed = err
			return
		}
		for _, ev := range batch {
			a.persistAlerts(engine.Process(ev), alerts, &failed)
		}
		batch = batch[:0]
	}
	for ev, err := range sorted.All() {
		if err != nil {
			failed = err
			break
		}
		scorer.Score(&ev)
		batch = append(batch, &ev)
		if len(batch) == importBatch {
			flush()
		}
		if failed != nil {
			break
		}
	}
	flush()
	a.persistAlerts(engine.Flush(), alerts, &failed)

	st := rd.Stats()
	res := ImportResult{
		Source: source, Format: rd.Format().String(), Lines: st.Lines, Events: st.Events,
		Skipped: st.Skipped, Errors: st.Errors, OutOfOrder: sorted.OutOfOrder(), Alerts: []string{},
	}
	for _, le := range st.FirstErrors {
		res.LineErrors = append(res.LineErrors, fmt.Sprintf("line %d: %v", le.Line, le.Err))
	}
	for id := range alerts {
		res.Alerts = append(res.Alerts, id)
	}
	if err := a.store.PutImport(storage.Import{Source: source, Events: res.Events, At: a.now().UTC(), Complete: failed == nil}); err != nil && failed == nil {
		failed = err
	}
	details := map[string]any{"source": source, "format": res.Format, "events": res.Events, "errors": res.Errors, "alerts": len(res.Alerts)}
	if failed != nil {
		// Events appended before the failure stay: they are real lines of
		// the log. The import is recorded as incomplete, so the operator
		// knows to re-import the rest under another source name.
		details["error"] = failed.Error()
		a.record(r, key, "events.import", http.StatusInternalServerError, details)
		var mbe *http.MaxBytesError
		if errors.As(failed, &mbe) {
			writeProblem(w, r, http.StatusRequestEntityTooLarge, failed.Error())
			return
		}
		a.storeError(w, r, fmt.Sprintf("importing %s after %d events", source, res.Events), failed)
		return
	}
	a.record(r, key, "events.import", http.StatusOK, details)
	writeJSON(w, http.StatusOK, res)
}

// persistAlerts stores the engine's alert updates, merging into alerts an
// analyst may already have worked on.
func (a *api) persistAlerts(updates []detectors.AlertUpdate, ids map[string]bool, failed *error) {
	for _, u := range updates {
		if *failed != nil {
			return
		}
		if _, _, err := a.store.PutAlert(u.Alert); err != nil {
			*failed = err
			return
		}
		ids[u.Alert.ID] = true
	}
}
