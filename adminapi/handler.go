// Package adminapi is the audit trail's admin API: a plain net/http handler
// that the Caddy module mounts on a listener of its own, so operators reach
// it and proxied clients never do.
//
// It serves GET /healthz, GET /metrics and the OpenAPI 3.1 document (GET
// /api/v1/openapi.json) without authentication (load balancers and
// Prometheus cannot hold secrets well, and clients read the document
// first), and everything else under /api/v1 behind bearer API keys: event
// search and export, backup, integrity, the alert workflow (list, read,
// acknowledge, resolve, mark a false positive, comment), workspaces and
// detectors. Errors are RFC 9457 problem details.
// Every read through the API is itself recorded as an audit event.
package adminapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

// Config is what New needs to build the admin API.
type Config struct {
	// Store answers queries and holds the API keys. Required.
	Store *storage.Store
	// Recorder receives the audit events the API writes about its own use.
	// Nil disables them, which only tests should do.
	Recorder Recorder
	// Metrics serves GET /metrics, usually a promhttp handler over Caddy's
	// registry. Nil answers 404 there.
	Metrics http.Handler
	// Logger receives server-side failures (store errors, dropped audit
	// events). Nil discards them.
	Logger *slog.Logger
	// OnVerify is told the outcome of every verification run through the
	// API, for metrics. Nil means nobody listens.
	OnVerify func(storage.VerifyReport)
	// OnAlertClosed is told the id of every alert an analyst resolves or
	// marks a false positive, so the detector engine forgets it and a new
	// occurrence opens a new alert. It must not block. Nil means nobody
	// listens.
	OnAlertClosed func(id string)
	// Redactor hashes secrets in imported access logs (POST
	// /api/v1/import) with the key the live handler uses. Nil disables
	// import.
	Redactor *policy.Redactor
	// Detectors configures the engine that replays imported logs; the zero
	// value means the defaults.
	Detectors detectors.Config
	// OnWorkspaceChanged is told every workspace record the API creates or
	// changes, so the detector worker applies its business hours. It must
	// not block. Nil means nobody listens.
	OnWorkspaceChanged func(storage.Workspace)
	// Sweep runs a detector sweep now and says what it did (POST
	// /api/v1/detectors/sweep). It returns ErrDetectorsUnavailable when the
	// worker is not running. Nil answers 503.
	Sweep func(context.Context) (SweepResult, error)
	// DetectorStatus reports the running detector worker's effective
	// configuration and progress (GET /api/v1/detectors). Nil reports the
	// Detectors config and the detectors as not running.
	DetectorStatus func() DetectorRuntime
	// Now is the clock for key expiry and event times; tests replace it.
	// Nil means time.Now.
	Now func() time.Time
}

// Recorder queues an audit event without waiting for it to be written. The
// audit writer (storage.Writer) satisfies it; it is an interface so tests
// can see what the API records.
type Recorder interface {
	Enqueue(*storage.Event) error
}

// api is the admin API handler. It keeps a reference to its dependencies
// rather than a copy of Config so that defaults are resolved once, in New.
type api struct {
	store    *storage.Store
	recorder Recorder
	log      *slog.Logger
	now      func() time.Time
	touches  touchLimiter
	throttle badKeyThrottle
	onVerify func(storage.VerifyReport)

	onAlertClosed func(id string)
	redactor      *policy.Redactor
	detectors     detectors.Config
	mux           *http.ServeMux

	onWorkspaceChanged func(storage.Workspace)
	sweep              func(context.Context) (SweepResult, error)
	detectorStatus     func() DetectorRuntime
	// openapi is the OpenAPI document, built once in New.
	openapi []byte
}

// route is one method+path the API answers, with what the OpenAPI
// document says about it: the route table is the single source of both,
// so the document cannot drift from the handlers.
type route struct {
	method, path string
	// perm is the permission the route needs; "" means no key at all
	// (health and metrics).
	perm string
	h    http.HandlerFunc
	// summary is the operation's one-line description.
	summary string
	// query documents the accepted query parameters; nil means none.
	query []paramDoc
	// body is a value of the JSON request body's type, or a string naming
	// the content type of a body that is not JSON; nil means none.
	body any
	// resp is a value of the JSON response body's type, or a string naming
	// the content type of a response that is not JSON.
	resp any
	// created says the route answers 201 Created, not 200.
	created bool
	// problems are error statuses the route may answer beyond the ones
	// the document infers (401, 403, 429, 500 and 503 with a key; 400
	// with a key, query parameters or a body; 413 and 415 with a body;
	// 404 with path parameters or created; 409 with a method other than
	// GET: see inferredProblems), such as 501 for a part not configured.
	problems []int
}

// routes is every route of the API. Each area lists its own, in its file.
func (a *api) routes() []route {
	return slices.Concat(
		[]route{{method: http.MethodGet, path: "/healthz", h: healthz, summary: "Liveness check (no API key needed)", resp: map[string]string{}}},
		a.eventRoutes(),
		a.alertRoutes(),
		a.integrityRoutes(),
		a.backupRoutes(),
		a.importRoutes(),
		a.workspaceRoutes(),
		a.detectorRoutes(),
		a.rbacRoutes(),
		a.reportRoutes(),
		a.openapiRoutes(),
	)
}

// New builds the admin API over cfg.Store.
func New(cfg Config) (http.Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("adminapi: a store is required")
	}
	a := &api{
		store:    cfg.Store,
		recorder: cfg.Recorder,
		log:      cfg.Logger,
		now:      cfg.Now,
		onVerify: cfg.OnVerify,

		onAlertClosed: cfg.OnAlertClosed,
		redactor:      cfg.Redactor,
		detectors:     cfg.Detectors.WithDefaults(),
		touches:       touchLimiter{last: make(map[string]time.Time)},
		mux:           http.NewServeMux(),

		onWorkspaceChanged: cfg.OnWorkspaceChanged,
		sweep:              cfg.Sweep,
		detectorStatus:     cfg.DetectorStatus,
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}

	routes := a.routes()
	if cfg.Metrics != nil {
		routes = append(routes, route{method: http.MethodGet, path: "/metrics", h: cfg.Metrics.ServeHTTP, summary: "Prometheus metrics (no API key needed)", resp: "text/plain"})
	}
	doc, err := buildOpenAPI(routes)
	if err != nil {
		return nil, fmt.Errorf("adminapi: building the OpenAPI document: %w", err)
	}
	a.openapi = doc

	// The stdlib mux answers 404 and 405 in text/plain; a method-less
	// pattern per path (less specific than "GET /path", so it only sees the
	// other methods) and a "/" catch-all keep every error a problem document.
	allowed := make(map[string][]string)
	for _, rt := range routes {
		var h http.Handler = rt.h
		if rt.perm != "" {
			h = a.authenticate(a.audited(rt, a.require(rt.perm, noQuery(rt))))
		}
		a.mux.Handle(rt.method+" "+rt.path, h)
		allowed[rt.path] = append(allowed[rt.path], rt.method)
		if rt.method == http.MethodGet && !rt.streamed() {
			allowed[rt.path] = append(allowed[rt.path], http.MethodHead)
		}
	}
	for path, methods := range allowed {
		// One pattern per other method, not a method-less one: "/a/b"
		// would conflict in the mux with "GET /a/{id}" (neither is more
		// specific). Unknown methods fall through to the 404 below.
		h := methodNotAllowed(methods)
		for _, m := range standardMethods {
			if !slices.Contains(methods, m) {
				a.mux.Handle(m+" "+path, h)
			}
		}
	}
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusNotFound, "no such endpoint; the API lives under /api/v1")
	})
	return a, nil
}

// ServeHTTP routes the request.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mux.ServeHTTP(w, r)
}

// streamed reports whether the route answers a body that is not JSON
// (an export, the backup, the metrics): it is produced by running the
// whole read, so such a route answers no HEAD (405, Allow: GET) rather
// than running an export only to throw its body away.
func (rt route) streamed() bool {
	ct, ok := rt.resp.(string)
	return ok && ct != "application/json"
}

// noQuery enforces, for an authenticated route that documents no query
// parameter, that none is given: a typo such as "?workspce=acme" would
// otherwise be ignored and look like an answer to it. Routes that
// document parameters parse them with parseParams, which is as strict
// (unknown or repeated parameters are 400 naming them), so the document
// lists exactly what every handler reads.
func noQuery(rt route) http.HandlerFunc {
	if rt.query != nil {
		return rt.h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		vals, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("malformed query string: %v", err))
			return
		}
		if len(vals) > 0 {
			name := slices.Sorted(maps.Keys(vals))[0]
			writeProblem(w, r, http.StatusBadRequest, (&paramError{name: truncate(name, 64), problem: "unknown parameter; this endpoint takes no query parameters"}).Error())
			return
		}
		rt.h(w, r)
	}
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// standardMethods are the methods a route may be refused with 405.
var standardMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace,
}

func methodNotAllowed(methods []string) http.Handler {
	slices.Sort(methods)
	allow := strings.Join(slices.Compact(methods), ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeProblem(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed here; use "+allow)
	})
}

// Interface guards
var _ http.Handler = (*api)(nil)
