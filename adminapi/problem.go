package adminapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/caddy-audit/caddy-audit/storage"
)

// problem is an RFC 9457 problem details document. The API has no error
// catalogue yet, so type is always "about:blank" and title the status text,
// as the RFC prescribes for that case; detail carries the useful message.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// writeProblem answers with a problem document. Every error the API sends
// goes through here so clients can rely on one shape.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	writeBody(w, status, "application/problem+json", problem{
		Type:     "about:blank",
		Title:    http.StatusText(status),
		Status:   status,
		Detail:   detail,
		Instance: r.URL.EscapedPath(),
	})
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	writeBody(w, status, "application/json", v)
}

func writeBody(w http.ResponseWriter, status int, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only a programming error gets here (every value is built from
		// JSON-safe types); the fixed body still keeps the problem shape.
		status, contentType = http.StatusInternalServerError, "application/problem+json"
		body = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"encoding the response failed"}`)
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	// Audit records are sensitive: keep them out of shared and browser caches.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// storeError answers a failed store operation: 503 while the store is
// closed (a reload or shutdown in progress; retrying helps), 500 otherwise,
// naming the kind of failure but leaving details to the server log.
func (a *api) storeError(w http.ResponseWriter, r *http.Request, doing string, err error) {
	if errors.Is(err, storage.ErrClosed) {
		writeProblem(w, r, http.StatusServiceUnavailable, "the audit store is closed; retry shortly")
		return
	}
	a.log.Error(doing, "error", err, "kind", storage.ErrorKind(err))
	writeProblem(w, r, http.StatusInternalServerError, doing+" failed ("+storage.ErrorKind(err)+"); see the server log")
}

// decodeJSON reads a JSON body of at most max bytes into v, refusing
// unknown fields so a typo is an error rather than ignored, and reports
// whether there was a body at all (an empty one leaves v as it is) and
// whether it was over max.
func decodeJSON(w http.ResponseWriter, r *http.Request, max int64, v any) (present, tooLarge bool, err error) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return true, true, fmt.Errorf("the body is larger than %d bytes", max)
		}
		return true, false, fmt.Errorf("reading the request body: %v", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return false, false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return true, false, err
	}
	if dec.More() {
		return true, false, errors.New("unexpected data after the JSON value")
	}
	return true, false, nil
}

// checkJSONContentType refuses a body declared as anything but JSON. A
// missing Content-Type is accepted, as curl -d sends a form type only
// when told to.
func checkJSONContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return errors.New("the body must be JSON (Content-Type: application/json)")
	}
	return nil
}

// readJSON decodes the JSON body of r (at most max bytes, unknown fields
// refused) into v, or answers the problem itself: 415 for a body that is
// not JSON, 413 for one over max, 400 for malformed JSON or, when
// required, a missing body. It reports whether the handler may go on;
// what names the body in messages ("the key to create").
func readJSON(w http.ResponseWriter, r *http.Request, max int64, v any, required bool, what string) bool {
	if err := checkJSONContentType(r); err != nil {
		writeProblem(w, r, http.StatusUnsupportedMediaType, err.Error())
		return false
	}
	present, tooLarge, err := decodeJSON(w, r, max, v)
	switch {
	case tooLarge:
		writeProblem(w, r, http.StatusRequestEntityTooLarge, err.Error())
		return false
	case err != nil:
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("the body (%s) is not valid: %v", what, err))
		return false
	case !present && required:
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("a JSON body is required: %s", what))
		return false
	}
	return true
}
