package caddymodule

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/caddy-audit/caddy-audit/storage"
)

// scrape registers the metrics on a fresh registry, as a config load
// does, and returns its /metrics page.
func scrape(t *testing.T, reg *prometheus.Registry) []byte {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestMetricsRegistration: registering twice on one registry (a handler
// used twice in a config) and again on a new one (a reload) both work,
// and the values carry over to the new registry.
func TestMetricsRegistration(t *testing.T) {
	first := prometheus.NewRegistry()
	for range 2 {
		if err := registerMetrics(first); err != nil {
			t.Fatalf("registering: %v", err)
		}
	}
	metrics.strictRejects.Inc()
	reloaded := prometheus.NewRegistry()
	if err := registerMetrics(reloaded); err != nil {
		t.Fatalf("registering after a reload: %v", err)
	}
	fams, err := reloaded.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "caddy_audit_strict_rejections_total" && f.Metric[0].GetCounter().GetValue() < 1 {
			t.Fatal("the counter did not carry over to the new registry")
		}
	}
}

// TestMetricsExposition checks every metric: prefix, help text, bounded
// labels, and that each required one is there from the first scrape. With
// promtool installed (Debian's prometheus package), its lint must pass.
func TestMetricsExposition(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	// Give the unlabelled histograms a sample so they are linted with data.
	metrics.commitSeconds.Observe(0.002)
	metrics.batchSize.Observe(12)
	metrics.sweepSeconds.Observe(0.01)
	observeVerification(verifyReportOK())

	body := scrape(t, reg)
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}
	for name, f := range fams {
		if strings.HasPrefix(name, "promhttp_") {
			continue // the handler's own, as on the admin listener
		}
		if !strings.HasPrefix(name, "caddy_audit_") {
			t.Errorf("%s lacks the caddy_audit_ prefix", name)
		}
		if len(f.GetHelp()) < 20 {
			t.Errorf("%s: help %q says too little", name, f.GetHelp())
		}
		if n := len(f.Metric); n > 30 {
			t.Errorf("%s has %d series; labels must stay bounded", name, n)
		}
	}
	for _, name := range requiredMetrics {
		if _, ok := fams[name]; !ok {
			t.Errorf("%s is not exposed before anything happened", name)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus); the lint runs in CI")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// requiredMetrics are the metrics the issue asks for, which the Grafana
// dashboard and the alert rules in deploy/ use.
var requiredMetrics = []string{
	"caddy_audit_events_recorded_total",
	"caddy_audit_events_dropped_total",
	"caddy_audit_write_errors_total",
	"caddy_audit_strict_rejections_total",
	"caddy_audit_queue_depth",
	"caddy_audit_batch_commit_seconds",
	"caddy_audit_events_per_batch",
	"caddy_audit_db_size_bytes",
	"caddy_audit_alerts_total",
	"caddy_audit_open_alerts",
	"caddy_audit_detector_sweep_duration_seconds",
	"caddy_audit_detector_last_sweep_timestamp_seconds",
	"caddy_audit_last_verification_ok",
	"caddy_audit_last_verification_timestamp_seconds",
}

func TestObserveVerification(t *testing.T) {
	initMetrics()
	before := time.Now().Unix()
	rep := verifyReportOK()
	rep.OK = false
	observeVerification(rep)
	reg := prometheus.NewRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	fams, _ := reg.Gather()
	for _, f := range fams {
		switch f.GetName() {
		case "caddy_audit_last_verification_ok":
			if v := f.Metric[0].GetGauge().GetValue(); v != 0 {
				t.Errorf("failed verification: ok = %v", v)
			}
		case "caddy_audit_last_verification_timestamp_seconds":
			if v := f.Metric[0].GetGauge().GetValue(); v < float64(before) {
				t.Errorf("timestamp %v before the verification", v)
			}
		}
	}
}

func verifyReportOK() storage.VerifyReport { return storage.VerifyReport{OK: true, Events: 1} }
