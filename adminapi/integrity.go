package adminapi

import (
	"encoding/base64"
	"errors"
	"net/http"

	"github.com/caddy-audit/caddy-audit/storage"
)

// integrityRoutes are the tamper-evidence endpoints.
func (a *api) integrityRoutes() []route {
	return []route{
		{method: http.MethodGet, path: "/api/v1/integrity/checkpoint", perm: permIntegrityVerify, h: a.latestCheckpoint,
			summary: "The latest signed checkpoint of the hash chain, to keep off the host", resp: checkpointBody{}},
		{method: http.MethodPost, path: "/api/v1/integrity/verify", perm: permIntegrityVerify, h: a.verify,
			summary: "Verify the whole hash chain, optionally against a checkpoint kept off the host", body: verifyRequest{}, resp: storage.VerifyReport{}},
	}
}

// checkpointBody is GET /api/v1/integrity/checkpoint.
type checkpointBody struct {
	Checkpoint *storage.Checkpoint `json:"checkpoint,omitempty"`
	// PublicKey is the base64 Ed25519 key that signs checkpoints; keep a
	// copy off the host to pin it when verifying.
	PublicKey string `json:"public_key"`
}

// latestCheckpoint serves GET /api/v1/integrity/checkpoint: the newest
// signed checkpoint, to copy off the host.
func (a *api) latestCheckpoint(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	if !a.requireGlobal(w, r, "a checkpoint counts the events of every workspace") {
		return
	}
	pub, err := a.store.CheckpointPublicKey()
	if errors.Is(err, storage.ErrCheckpointsDisabled) {
		writeProblem(w, r, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		a.storeError(w, r, "reading the checkpoint key", err)
		return
	}
	body := checkpointBody{PublicKey: base64.StdEncoding.EncodeToString(pub)}
	cp, err := a.store.LatestCheckpoint()
	switch {
	case errors.Is(err, storage.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, "no checkpoint has been made yet")
		return
	case err != nil:
		a.storeError(w, r, "reading the latest checkpoint", err)
		return
	}
	body.Checkpoint = &cp
	a.record(r, key, "integrity.checkpoint", http.StatusOK, map[string]any{"seq": cp.Seq})
	writeJSON(w, http.StatusOK, body)
}

// verifyRequest is the optional body of POST /api/v1/integrity/verify.
type verifyRequest struct {
	// Checkpoint is one kept off the host; without it the store's latest
	// is used, which cannot reveal a rollback.
	Checkpoint *storage.Checkpoint `json:"checkpoint,omitempty"`
}

// maxCheckpointBody bounds a posted checkpoint (a few hundred bytes).
const maxCheckpointBody = 64 << 10

// verify serves POST /api/v1/integrity/verify: walks the whole chain. The
// body may hold a checkpoint kept off the host ({"checkpoint": {...}}),
// which is what detects a rollback; without one the store's own latest
// checkpoint is used. Problems found are in the report (200); only a
// failure to read is an error.
func (a *api) verify(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	if !a.requireGlobal(w, r, "the integrity chain spans every workspace and its report would reveal their event counts") {
		return
	}
	var req verifyRequest
	if !readJSON(w, r, maxCheckpointBody, &req, false, `{"checkpoint": {...}} as GET /api/v1/integrity/checkpoint returns it`) {
		return
	}
	rep, err := a.store.Verify(r.Context(), req.Checkpoint)
	if err != nil {
		a.storeError(w, r, "verifying the integrity chain", err)
		return
	}
	if a.onVerify != nil {
		a.onVerify(rep)
	}
	a.record(r, key, "integrity.verify", http.StatusOK, map[string]any{
		"ok": rep.OK, "events": rep.Events, "problems": rep.ProblemCount,
		"checkpoint_seq": rep.CheckpointSeq, "checkpoint_verified": rep.CheckpointVerified,
	})
	writeJSON(w, http.StatusOK, rep)
}
