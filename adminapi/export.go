package adminapi

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/caddy-audit/caddy-audit/storage"
)

// exportParams documents the export's filters: the search's, without
// paging.
func exportParams() []paramDoc {
	return slices.DeleteFunc(eventParams.docs(), func(p paramDoc) bool { return p.name == "limit" || p.name == "cursor" })
}

// exportEvents serves GET /api/v1/events/export: NDJSON, streamed with
// flat memory. Without filters it is the full, verifiable export that
// `caddy audit verify --file` checks offline against a checkpoint; with
// filters (the parameters of GET /api/v1/events, without limit and
// cursor) it selects events but can no longer prove the chain. The row
// count and the SHA-256 of the body are sent as trailers (they are known
// only at the end) and recorded in the audit event of the export.
func (a *api) exportEvents(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	q, err := parseEventsQuery(r.URL.RawQuery)
	if err == nil && (r.URL.Query().Has("limit") || r.URL.Query().Has("cursor")) {
		err = &paramError{name: "limit/cursor", problem: "an export streams every matching event; page with GET /api/v1/events instead"}
	}
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if !a.scopeFilter(w, r, key, &q.filter) {
		return
	}
	var filter *storage.Filter
	if q.filter != (storage.Filter{}) {
		filter = &q.filter
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", `attachment; filename="audit-events.ndjson"`)
	w.Header().Set("Trailer", "X-Export-Rows, X-Export-Sha256, X-Export-Verifiable")
	res, err := a.store.ExportNDJSON(r.Context(), w, filter)
	if err != nil {
		a.log.Error("streaming export", "error", err, "rows", res.Rows)
		panic(http.ErrAbortHandler) // the client must not take a cut stream for the whole
	}
	w.Header().Set("X-Export-Rows", strconv.FormatInt(res.Rows, 10))
	w.Header().Set("X-Export-Sha256", res.SHA256)
	w.Header().Set("X-Export-Verifiable", strconv.FormatBool(res.Verifiable))
	a.record(r, key, "events.export", http.StatusOK, map[string]any{
		"format": "ndjson", "rows": res.Rows, "sha256": res.SHA256, "verifiable": res.Verifiable,
		"filter": filterDetails(q.filter),
	})
}
