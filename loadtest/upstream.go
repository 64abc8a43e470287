package main

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// upstream is the fast stand-in application behind the proxy: small JSON
// answers, a status that depends on the route (so the mix has 2xx, 4xx and
// 5xx), request bodies read and discarded. It counts what it sees, and
// can remember the X-Request-ID of every request (for strict-mode tests:
// a refused request must never reach it).
type upstream struct {
	srv      *http.Server
	addr     string
	requests atomic.Int64
	track    atomic.Bool
	mu       sync.Mutex
	seen     map[string]int
}

func startUpstream() (*upstream, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &upstream{addr: l.Addr().String(), seen: make(map[string]int)}
	u.srv = &http.Server{Handler: u}
	go func() { _ = u.srv.Serve(l) }()
	return u, nil
}

func (u *upstream) close() { _ = u.srv.Close() }

// Precomputed answers: the stand-in must cost little next to the proxy.
var (
	bodyList      = []byte(`[{"id":"1","name":"alpha"},{"id":"2","name":"beta"},{"id":"3","name":"gamma"}]`)
	bodyItem      = []byte(`{"id":"42","name":"item 42","owner":"u7","tags":["a","b"]}`)
	bodyCreated   = []byte(`{"id":"43","status":"created"}`)
	bodyLoginOK   = []byte(`{"status":"ok","token":"demo-session"}`)
	bodyLoginFail = []byte(`{"error":"invalid credentials"}`)
	bodyForbidden = []byte(`{"error":"forbidden"}`)
	bodyNotFound  = []byte(`{"error":"not found"}`)
	bodyFailure   = []byte(`{"error":"internal error"}`)
)

// sizedPath answers a JSON document of ?bytes=N bytes, streamed: the
// reliability tests' huge responses.
const sizedPath = "/api/export"

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.requests.Add(1)
	if u.track.Load() {
		id := r.Header.Get("X-Request-ID")
		u.mu.Lock()
		u.seen[id]++
		u.mu.Unlock()
	}
	if r.URL.Path == sizedPath {
		n, err := strconv.ParseInt(r.URL.Query().Get("bytes"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "bytes: want a non-negative integer", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		_, _ = io.Copy(w, io.LimitReader(jsonStream{}, n))
		return
	}
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(io.LimitReader(r.Body, 64<<10))
		_, _ = io.Copy(io.Discard, r.Body)
	}
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["X-Upstream"] = []string{"1"} // tells the upstream's answers from the proxy's own
	status, out := route(r, body)
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

func route(r *http.Request, body []byte) (int, []byte) {
	p := r.URL.Path
	switch {
	case p == "/login":
		if strings.Contains(string(body), `"password":"demo"`) {
			return http.StatusOK, bodyLoginOK
		}
		return http.StatusUnauthorized, bodyLoginFail
	case p == "/api/items":
		if r.Method == http.MethodPost {
			return http.StatusCreated, bodyCreated
		}
		return http.StatusOK, bodyList
	case strings.HasPrefix(p, "/api/items/"):
		switch r.Method {
		case http.MethodDelete:
			return http.StatusNoContent, nil
		default:
			return http.StatusOK, bodyItem
		}
	case strings.HasPrefix(p, "/admin"):
		if r.Header.Get("X-User-Role") == "admin" {
			return http.StatusOK, bodyItem
		}
		return http.StatusForbidden, bodyForbidden
	case p == "/api/fail":
		return http.StatusInternalServerError, bodyFailure
	}
	return http.StatusNotFound, bodyNotFound
}

// jsonStream is an endless run of small JSON records, comma separated: what
// a JSON array looks like cut at any length.
type jsonStream struct{}

var jsonRecords = []byte(strings.Repeat(`{"id":"0123456789","name":"record"},`, 64))

func (jsonStream) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], jsonRecords)
	}
	return n, nil
}
