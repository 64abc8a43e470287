package caddymodule

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/caddy-audit/caddy-audit/adminapi"
	"github.com/caddy-audit/caddy-audit/policy"
)

func init() {
	caddy.RegisterModule(AdminHandler{})
}

// AdminHandler is the `audit_admin` HTTP handler: the admin API (audit log
// search, alerts, health, metrics) for the audit app's store. Mount it in a site of
// its own, on a listener that only operators reach, such as
// http://127.0.0.1:9180. It answers every request and never calls the next
// handler.
type AdminHandler struct {
	app     *App
	metrics http.Handler
	logger  *slog.Logger

	// The API is built on the first request, once the app's pipeline is
	// open (Provision opens nothing, see App.pipeline).
	once   *sync.Once // a pointer: Caddy copies module values
	api    http.Handler
	apiErr error
}

// CaddyModule returns the Caddy module information.
func (AdminHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.audit_admin",
		New: func() caddy.Module { return new(AdminHandler) },
	}
}

// Provision joins the audit app.
func (h *AdminHandler) Provision(ctx caddy.Context) error {
	appIface, err := ctx.App("audit")
	if err != nil {
		return fmt.Errorf("loading audit app: %w", err)
	}
	h.app = appIface.(*App)
	reg := ctx.GetMetricsRegistry()
	if err := registerMetrics(reg); err != nil {
		return err
	}
	h.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	h.logger = ctx.Slogger()
	h.once = new(sync.Once)
	return nil
}

// ready builds the admin API over the app's pipeline, once.
func (h *AdminHandler) ready() (http.Handler, error) {
	h.once.Do(func() {
		p, err := h.app.pipeline()
		if err != nil {
			h.apiErr = err
			return
		}
		h.api, h.apiErr = adminapi.New(h.apiConfig(p))
	})
	return h.api, h.apiErr
}

// apiConfig wires the admin API to the pipeline p: its store and writer,
// and the detector worker's hooks (alert release, workspace business
// hours, sweeps, status).
func (h *AdminHandler) apiConfig(p *pipeline) adminapi.Config {
	return adminapi.Config{
		Store:    p.store,
		Recorder: p.writer,
		Metrics:  h.metrics,
		Logger:   h.logger,
		OnVerify: observeVerification,
		// The engine is the detector worker's alone; release goes
		// through its goroutine.
		OnAlertClosed: p.detector.release,
		// Stored workspace business hours override the detector
		// config's; the worker applies them on its goroutine.
		OnWorkspaceChanged: p.detector.workspaceChanged,
		Sweep:              p.detector.sweepNow,
		DetectorStatus:     p.detector.status,
		// Imported logs are redacted with the live key and replayed
		// with this config's detector settings.
		Redactor:  policy.NewRedactor(p.key, nil, nil),
		Detectors: h.app.detectorCfg,
	}
}

// ServeHTTP serves the admin API.
func (h *AdminHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	api, err := h.ready()
	if err != nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("audit admin API: %w", err))
	}
	api.ServeHTTP(w, r)
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*AdminHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*AdminHandler)(nil)
)
