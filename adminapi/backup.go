package adminapi

import (
	"net/http"
)

// backupRoutes is the backup download.
func (a *api) backupRoutes() []route {
	return []route{{method: http.MethodGet, path: "/api/v1/backup", perm: permBackupRead, h: a.backup,
		summary: "Download a consistent copy of the whole database", resp: "application/octet-stream"}}
}

// backup serves GET /api/v1/backup: a consistent copy of the whole
// database, streamed while writes continue. The copy holds every
// workspace, so a workspace-scoped key never gets it, whatever its role.
func (a *api) backup(w http.ResponseWriter, r *http.Request) {
	key, _ := principalFrom(r.Context())
	if !a.requireGlobal(w, r, "a backup holds every workspace") {
		return
	}
	now := a.now().UTC()
	name := "audit-" + now.Format("20060102T150405Z") + ".db"
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	// The size read here may grow before the copy starts; a length that
	// does not match would make clients reject the body, so none is sent.
	n, err := a.store.Backup(w)
	if err != nil {
		// Headers (and maybe bytes) are out: all that is left is to cut
		// the stream short, which clients see as a truncated download.
		a.log.Error("streaming backup", "error", err, "bytes", n)
		panic(http.ErrAbortHandler)
	}
	a.record(r, key, "backup.download", http.StatusOK, map[string]any{"bytes": n, "file": name})
}
