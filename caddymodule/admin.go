package caddymodule

import (
	"fmt"
	"net/http"

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
	api http.Handler
}

// CaddyModule returns the Caddy module information.
func (AdminHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.audit_admin",
		New: func() caddy.Module { return new(AdminHandler) },
	}
}

// Provision builds the admin API over the audit app's store.
func (h *AdminHandler) Provision(ctx caddy.Context) error {
	appIface, err := ctx.App("audit")
	if err != nil {
		return fmt.Errorf("loading audit app: %w", err)
	}
	app := appIface.(*App)
	reg := ctx.GetMetricsRegistry()
	if err := registerMetrics(reg); err != nil {
		return err
	}
	h.api, err = adminapi.New(adminapi.Config{
		Store:    app.pipe.store,
		Recorder: app.pipe.writer,
		Metrics:  promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		Logger:   ctx.Slogger(),
		OnVerify: observeVerification,
		// The engine is the detector worker's alone; release goes through
		// its goroutine.
		OnAlertClosed: app.pipe.detector.release,
		// Imported logs are redacted with the live key and replayed with
		// this config's detector settings.
		Redactor:  policy.NewRedactor(app.pipe.key, nil, nil),
		Detectors: app.detectorCfg,
	})
	return err
}

// ServeHTTP serves the admin API.
func (h *AdminHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	h.api.ServeHTTP(w, r)
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*AdminHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*AdminHandler)(nil)
)
