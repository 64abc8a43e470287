package caddymodule

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
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
	carried := false
	for _, f := range fams {
		if f.GetName() == "caddy_audit_strict_rejections_total" {
			carried = f.Metric[0].GetCounter().GetValue() >= 1
		}
	}
	if !carried {
		t.Fatal("the counter did not carry over to the new registry")
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
	"caddy_audit_index_pending_events",
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
	seen := 0
	for _, f := range fams {
		switch f.GetName() {
		case "caddy_audit_last_verification_ok":
			seen++
			if v := f.Metric[0].GetGauge().GetValue(); v != 0 {
				t.Errorf("failed verification: ok = %v", v)
			}
		case "caddy_audit_last_verification_timestamp_seconds":
			seen++
			if v := f.Metric[0].GetGauge().GetValue(); v < float64(before) {
				t.Errorf("timestamp %v before the verification", v)
			}
		}
	}
	if seen != 2 {
		t.Errorf("%d of the 2 verification gauges gathered", seen)
	}
}

func verifyReportOK() storage.VerifyReport { return storage.VerifyReport{OK: true, Events: 1} }

// TestDeployMetricNames: every caddy_audit_ metric the Grafana dashboard
// and the Prometheus rules in deploy/ query exists, so a renamed metric
// cannot leave an empty panel or a rule that never fires. The rules pass
// promtool when it is installed.
func TestDeployMetricNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exposed := map[string]bool{}
	for _, f := range fams {
		exposed[f.GetName()] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				exposed[f.GetName()+suffix] = true
			}
		}
	}
	dashboard := filepath.Join("..", "deploy", "grafana", "caddy-audit-dashboard.json")
	rules := filepath.Join("..", "deploy", "prometheus", "caddy-audit-rules.yml")
	name := regexp.MustCompile(`caddy_audit_[a-z_]*[a-z]`)
	for _, path := range []string{dashboard, rules} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		used := name.FindAllString(string(data), -1)
		if len(used) < 10 {
			t.Errorf("%s uses only %d metric names", path, len(used))
		}
		for _, n := range used {
			if !exposed[n] {
				t.Errorf("%s uses %s, which is not exposed", path, n)
			}
		}
	}
	data, _ := os.ReadFile(dashboard)
	var d struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil || len(d.Panels) < 10 {
		t.Fatalf("the dashboard is not a Grafana dashboard with panels: %v", err)
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput(); err != nil {
			t.Fatalf("promtool check rules: %v\n%s", err, out)
		}
	}
}
