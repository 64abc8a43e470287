package caddymodule

import (
	"net/http"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// requestIDHeader correlates a request across the client, this sidecar and
// the application.
const requestIDHeader = "X-Request-ID"

// requestIDKey is requestIDHeader as net/http stores it. Header.Get and
// Header.Set canonicalize their key, and canonicalizing one that is not
// canonical yet allocates: four allocations per request on the hot path.
var requestIDKey = http.CanonicalHeaderKey(requestIDHeader)

// maxRequestIDLen bounds an incoming id we are willing to trust.
const maxRequestIDLen = 128

// requestID returns the incoming X-Request-ID when it is well formed, or a
// new ULID. A malformed one is replaced rather than stored: it is
// attacker-chosen text that would otherwise flow into logs and the app.
func requestID(r *http.Request, now time.Time) string {
	if id := r.Header.Get(requestIDKey); validRequestID(id) {
		return id
	}
	return storage.NewID(now)
}

func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
