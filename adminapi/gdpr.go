package adminapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddy-audit/caddy-audit/storage"
)

// Audit actions of the GDPR endpoints.
const (
	actionSubjectExport = "gdpr.subject_export"
	actionSubjectErase  = "gdpr.subject_erase"
)

// maxSubjectLen bounds the user id in the path: user ids are stored cut
// to policy.MaxValueLen, so a longer one cannot match anything.
const maxSubjectLen = 4096

// checkSubject checks the {user} path parameter of the subject and risk
// profile routes.
func checkSubject(user string) error {
	if user == "" || len(user) > maxSubjectLen {
		return fmt.Errorf("path parameter user: expects a user id of 1 to %d bytes", maxSubjectLen)
	}
	return nil
}

// subjectExportQuery is a parsed subject export query string.
type subjectExportQuery struct {
	format, workspace string
}

// subjectExportParams are the query parameters of the subject export.
var subjectExportParams = params[subjectExportQuery]{
	"format": {doc: "ndjson (default: one event per line) or json (an object with an events array).",
		parse: func(q *subjectExportQuery, v string) error {
			if v != "ndjson" && v != "json" {
				return errors.New("expects ndjson or json")
			}
			q.format = v
			return nil
		}},
	"workspace": {doc: "Export the subject's events of this workspace only. A key holding gdpr:manage in several workspaces names one of them; a key scoped to one is confined to it.",
		parse: func(q *subjectExportQuery, v string) error { q.workspace = v; return nil }},
}

// EraseRequest is the body of POST /api/v1/gdpr/subjects/{user}/erase.
type EraseRequest struct {
	// Reason says why the subject is erased (the request's reference);
	// it is kept in the audit trail. Required.
	Reason string `json:"reason"`
}

// maxEraseBody bounds the erase request body.
const maxEraseBody = 16 << 10

// maxReasonLen bounds the reason.
const maxReasonLen = 1024

// EraseResult is the answer to an erasure.
type EraseResult struct {
	// Subject is the pseudonym the user now appears under; the clear id
	// is not repeated.
	Subject string `json:"subject"`
	// ErasedEvents is how many events were rewritten.
	ErasedEvents int `json:"erased_events"`
	// ScrubbedPages is how many free database pages were zeroed, so the
	// old values are gone from the file too.
	ScrubbedPages int `json:"scrubbed_pages"`
	// ErasedAt is when the erasure finished.
	ErasedAt time.Time `json:"erased_at"`
	// Note says what was and was not changed.
	Note string `json:"note"`
}

// pseudonym is the keyed pseudonym of a personal value: the same HMAC
// token the redactor gives secrets, so equal values stay linkable by
// whoever holds the key (pseudonymization, Art. 4(5)) and nobody else can
// reverse or confirm them. Ports are removed, not pseudonymized: a token
// is no port.
func (a *api) pseudonym(field, value string) string {
	if field == "client_port" {
		return ""
	}
	return a.redactor.Token(value)
}

// tokenizeReason is the erasure reason as the trail keeps it: free text,
// in which the user id itself may appear, so each whole-token occurrence
// of the id (delimited by the text's start or end or by a character that
// cannot continue an id: space, punctuation other than the id
// characters . _ - @ +) becomes the pseudonym. Matching whole tokens only
// keeps a short id ("a") from rewriting every letter of the reason,
// while "user alice requested erasure" loses "alice". An id inside a
// longer word ("alice2") is another id and stays.
func tokenizeReason(reason, user, pseud string) string {
	if user == "" {
		return reason
	}
	var b strings.Builder
	rest := reason
	for {
		i := strings.Index(rest, user)
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		end := i + len(user)
		done := reason[:len(reason)-len(rest)+i]
		before, _ := utf8.DecodeLastRuneInString(done)
		if (done == "" || !idRune(before)) && !continuesID(rest[end:]) {
			b.WriteString(rest[:i])
			b.WriteString(pseud)
			rest = rest[end:]
			continue
		}
		// Not a whole token: keep the first rune and look again after it.
		_, size := utf8.DecodeRuneInString(rest[i:])
		b.WriteString(rest[:i+size])
		rest = rest[i+size:]
	}
}

// continuesID reports whether s, the text after a match, continues the
// id: it starts with an id character, a full stop counting only when an
// id character follows (so "erase alice." ends the id at the stop).
func continuesID(s string) bool {
	r, size := utf8.DecodeRuneInString(s)
	if r == '.' {
		r, _ = utf8.DecodeRuneInString(s[size:])
	}
	return s != "" && idRune(r) && r != utf8.RuneError
}

// idRune reports whether r may continue a user id (letters, digits and
// the punctuation of usernames and e-mail addresses).
func idRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("._-@+", r)
}

// subjectCall checks what both subject endpoints need (a key able to see
// every workspace for erasure, a user id, the pseudonym key) and returns
// the user and its pseudonym. The audit records of these calls carry the
// pseudonym only (record tokenizes the user path value).
func (a *api) subjectCall(w http.ResponseWriter, r *http.Request, action string, global bool) (user, pseud string, ok bool) {
	key, _ := principalFrom(r.Context())
	user = r.PathValue("user")
	if a.redactor == nil {
		a.record(r, key, action, http.StatusServiceUnavailable, nil)
		writeProblem(w, r, http.StatusServiceUnavailable, "subject requests need the HMAC key for pseudonyms, and this admin API was started without one")
		return "", "", false
	}
	pseud = a.redactor.Token(user)
	if err := checkSubject(user); err != nil {
		a.record(r, key, action, http.StatusBadRequest, map[string]any{"subject": pseud})
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return "", "", false
	}
	if global && !a.requireGlobal(w, r, "an erasure rewrites the subject's events in every workspace") {
		return "", "", false
	}
	return user, pseud, true
}

// subjectExport serves GET /api/v1/gdpr/subjects/{user}/export: every
// event of the user (Art. 15), newest first, streamed with flat memory,
// in the caller's scope. The row count and SHA-256 of the body follow as
// trailers and go into the audit record, which names the subject by its
// pseudonym only.
func (a *api) subjectExport(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	user, pseud, ok := a.subjectCall(w, r, actionSubjectExport, false)
	if !ok {
		return
	}
	q := subjectExportQuery{format: "ndjson"}
	if err := parseParams(r.URL.RawQuery, &q, subjectExportParams); err != nil {
		a.record(r, key, actionSubjectExport, http.StatusBadRequest, map[string]any{"subject": pseud, "reason": err.Error()})
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	f := storage.Filter{User: user, Workspace: q.workspace}
	if !a.scopeFilter(w, r, key, &f) {
		return
	}
	job := exportJob{action: actionSubjectExport, file: "subject-export", format: q.format,
		details: map[string]any{"subject": pseud}}
	var rows rowFormat = eventLines
	if q.format == "json" {
		rows = &jsonFormat{}
	}
	if f.Workspace != "" {
		job.details["workspace"] = f.Workspace
	}
	a.streamExport(w, r, key, job, func(out io.Writer) (int64, bool, error) {
		n, err := writeRows(r.Context(), a.store, f, out, rows)
		return n, false, err
	})
}

// subjectErase serves POST /api/v1/gdpr/subjects/{user}/erase: replaces
// the user's personal fields in every stored event (and in alerts about
// them) with keyed pseudonyms (Art. 17). It needs a key that sees every
// workspace, since the subject's events may span them, and a reason.
// The integrity chain stays verifiable. The audit record names the
// subject by pseudonym only.
func (a *api) subjectErase(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	user, pseud, ok := a.subjectCall(w, r, actionSubjectErase, true)
	if !ok {
		return
	}
	var req EraseRequest
	sw := &statusWriter{ResponseWriter: w}
	if !readJSON(sw, r, maxEraseBody, &req, true, `{"reason": "..."}`) {
		a.record(r, key, actionSubjectErase, sw.status(), map[string]any{"subject": pseud})
		return
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" || len(req.Reason) > maxReasonLen {
		a.record(r, key, actionSubjectErase, http.StatusBadRequest, map[string]any{"subject": pseud})
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf(`body field reason: required, 1 to %d bytes, such as the reference of the erasure request`, maxReasonLen))
		return
	}
	reason := tokenizeReason(req.Reason, user, pseud)
	n, err := a.store.EraseSubject(user, a.pseudonym)
	if err != nil {
		a.record(r, key, actionSubjectErase, http.StatusInternalServerError, map[string]any{"subject": pseud, "reason": reason, "erased_events": n})
		a.storeError(w, r, "erasing the data subject", err)
		return
	}
	// The old values are still in the pages the rewrite freed; zero them
	// so that a raw read of the file finds nothing either.
	scrubbed, err := a.store.ScrubFreePages()
	res := EraseResult{
		Subject: pseud, ErasedEvents: n, ErasedAt: a.now().UTC(), ScrubbedPages: scrubbed,
		Note: "user, client IP and port, user agent, referer, query, forwarded chain and headers were replaced by keyed pseudonyms in every event recorded with this user, and in alerts about them; paths and admin API records that mention the user elsewhere are unchanged",
	}
	if err != nil {
		a.log.Error("scrubbing free pages after an erasure", "error", err)
		res.Note += "; zeroing the freed database pages failed (see the server log), so the old values may remain in unused pages of the file until they are reused"
	}
	a.record(r, key, actionSubjectErase, http.StatusOK, map[string]any{"subject": pseud, "reason": reason, "erased_events": n, "scrubbed_pages": scrubbed})
	writeJSON(w, http.StatusOK, res)
}
