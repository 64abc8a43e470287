package caddymodule

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/caddy-audit/caddy-audit/adminapi"
	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/storage"
)

// loginFailures returns n failed logins from ip, one a second from start.
func loginFailures(ip string, start time.Time, n int) []*storage.Event {
	var evs []*storage.Event
	for i := range n {
		at := start.Add(time.Duration(i) * time.Second)
		evs = append(evs, &storage.Event{
			ID: storage.NewID(at), Time: at, Kind: storage.KindHTTP, Stage: storage.StageResponseComplete,
			Method: "POST", Path: "/login", Status: 401, Outcome: "failure", ClientIP: ip,
		})
	}
	return evs
}

// openTestStore opens a fresh store, closed when the test ends, and makes
// the metrics the detector worker feeds.
func openTestStore(t *testing.T) *storage.Store {
	t.Helper()
	store, err := storage.Open(filepath.Join(t.TempDir(), "audit.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	initMetrics()
	return store
}

// workerRun is one "process lifetime": a writer feeding a worker.
type workerRun struct {
	w *detectorWorker
	s *storage.Writer
}

func startWorker(store *storage.Store, history time.Duration) *workerRun {
	w := newDetectorWorker(store, newLoggerRef(nil), detectorSettings{sweep: time.Hour, history: history})
	w.rebuildEvery = 0 // tests that change settings see them applied at once
	s := storage.NewWriter(store, storage.WriterOptions{OnCommit: w.offer})
	w.start()
	return &workerRun{w: w, s: s}
}

func (r *workerRun) write(t *testing.T, evs []*storage.Event) {
	t.Helper()
	for _, ev := range evs {
		if err := r.s.EnqueueWait(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
}

// stop shuts down in the pipeline's order: writer first, then worker.
func (r *workerRun) stop() {
	r.s.Close()
	r.w.stop()
}

func bruteForceAlerts(t *testing.T, store *storage.Store, ip string) []storage.Alert {
	t.Helper()
	page, err := store.ListAlerts(storage.AlertFilter{Detector: detectors.DetectorBruteForce, SubjectValue: ip}, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	return page.Alerts
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDetectorWorkerResumesWithoutDuplicates(t *testing.T) {
	for _, tt := range []struct {
		name    string
		history time.Duration
	}{
		{"resume from the persisted seq", 0},
		{"replay the history", 72 * time.Hour},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := openTestStore(t)
			counter := metrics.alerts.WithLabelValues(detectors.DetectorBruteForce, storage.SeverityHigh)
			start := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)

			// First lifetime: a burst from A, judged live.
			run := startWorker(store, tt.history)
			run.write(t, loginFailures("203.0.113.1", start, 7))
			waitFor(t, "the alert for A", func() bool { return len(bruteForceAlerts(t, store, "203.0.113.1")) == 1 })
			run.stop()
			last, _ := store.LastSeq()
			if seq, _ := store.DetectorSeq(); seq != last {
				t.Fatalf("persisted seq %d, last event %d", seq, last)
			}
			counted := testutil.ToFloat64(counter)

			// Down time: a burst from B lands in the store unjudged.
			if err := store.Append(loginFailures("203.0.113.2", start.Add(time.Minute), 7)...); err != nil {
				t.Fatal(err)
			}

			// Second lifetime: B is judged from the store, A is not raised again.
			run = startWorker(store, tt.history)
			waitFor(t, "the alert for B", func() bool { return len(bruteForceAlerts(t, store, "203.0.113.2")) == 1 })
			run.stop()
			if a := bruteForceAlerts(t, store, "203.0.113.1"); len(a) != 1 || a[0].Count < 6 {
				t.Errorf("alerts for A after restart: %+v", a)
			}
			last, _ = store.LastSeq()
			if seq, _ := store.DetectorSeq(); seq != last {
				t.Errorf("persisted seq %d, last event %d", seq, last)
			}
			if got := testutil.ToFloat64(counter) - counted; got != 1 {
				t.Errorf("alerts_total rose by %v after the restart, want 1 (B only)", got)
			}
		})
	}
}

func TestDetectorWorkerReleaseOpensNewAlert(t *testing.T) {
	store := openTestStore(t)
	start := time.Now().Add(-time.Hour).UTC()
	run := startWorker(store, 0)
	defer run.stop()
	run.write(t, loginFailures("203.0.113.9", start, 7))
	waitFor(t, "the first alert", func() bool { return len(bruteForceAlerts(t, store, "203.0.113.9")) == 1 })
	id := bruteForceAlerts(t, store, "203.0.113.9")[0].ID
	if _, err := store.SetAlertStatus(id, storage.StatusResolved, "k", "", time.Now()); err != nil {
		t.Fatal(err)
	}
	run.w.release(id)
	// Within the suppression window: without the release this would
	// update the resolved alert.
	run.write(t, loginFailures("203.0.113.9", start.Add(time.Minute), 7))
	waitFor(t, "a second alert", func() bool { return len(bruteForceAlerts(t, store, "203.0.113.9")) == 2 })
	if a, _ := store.GetAlert(id); a.Status != storage.StatusResolved {
		t.Errorf("the resolved alert became %s", a.Status)
	}
}

func TestWorkerSweepUpdatesMetrics(t *testing.T) {
	store := openTestStore(t)
	run := startWorker(store, 0)
	defer run.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Let the start-up pass finish first: otherwise it could judge the
	// events below itself and the test would not exercise the sweep.
	if _, err := run.w.sweepNow(ctx); err != nil {
		t.Fatal(err)
	}
	// Appended behind the worker's back, as if the feed had dropped them:
	// the sweep reads them from the store.
	if err := store.Append(loginFailures("198.51.100.4", time.Now().Add(-time.Minute), 7)...); err != nil {
		t.Fatal(err)
	}
	if _, err := run.w.sweepNow(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(bruteForceAlerts(t, store, "198.51.100.4")); n != 1 {
		t.Fatalf("%d alerts after the sweep", n)
	}
	if v := testutil.ToFloat64(metrics.openAlerts.WithLabelValues(storage.SeverityHigh)); v != 1 {
		t.Errorf("open_alerts{high} = %v", v)
	}
	if testutil.ToFloat64(metrics.lastSweep) == 0 {
		t.Error("last sweep timestamp not set")
	}
}

func TestLoadDetectorsFile(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, yaml, wantErr string
	}{
		{"empty", "", ""},
		{"valid", "brute_force:\n  burst:\n    capacity: 3\n    leak_speed: 20s\n", ""},
		{"unknown field", "brute_force:\n  burts:\n    capacity: 3\n", "line 2 column 3"},
		{"wrong type", "brute_force:\n  burst:\n    capacity: lots\n", "line 3 column 5"},
		{"syntax", "brute_force: [\n", "line"},
		{"invalid value", "business_hours:\n  timezone: Mars/Olympus\n", "Mars/Olympus"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := loadDetectorsFile(path)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path)):
				t.Fatalf("error %v, want it to name the file and %q", err, tt.wantErr)
			}
			if tt.name == "valid" && cfg.BruteForce.Burst.Capacity != 3 {
				t.Errorf("capacity %d", cfg.BruteForce.Burst.Capacity)
			}
		})
	}
	if _, err := loadDetectorsFile(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestAppDetectorConfig(t *testing.T) {
	bad := detectors.Config{}
	bad.BusinessHours.Timezone = "Nowhere/Else"
	file := filepath.Join(t.TempDir(), "d.yaml")
	if err := os.WriteFile(file, []byte("update_interval: 30s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		app     App
		wantErr string
	}{
		{"defaults", App{}, ""},
		{"json", App{Detectors: &detectors.Config{UpdateInterval: detectors.Duration(time.Minute)}}, ""},
		{"file", App{DetectorsFile: file}, ""},
		{"both", App{Detectors: &detectors.Config{}, DetectorsFile: file}, "cannot both be set"},
		{"invalid json", App{Detectors: &bad}, "Nowhere/Else"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.app.loadDetectorConfig()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if err == nil && tt.app.scorer == nil {
				t.Error("no scorer")
			}
		})
	}
}

func TestLiveTraffic(t *testing.T) {
	tests := []struct {
		name string
		ev   storage.Event
		want bool
	}{
		{"proxied request", storage.Event{Kind: storage.KindHTTP, Stage: storage.StageResponseComplete}, true},
		{"strict request record", storage.Event{Kind: storage.KindHTTP, Stage: storage.StageRequestReceived}, false},
		{"admin API use", storage.Event{Kind: storage.KindAdmin}, false},
		{"lifecycle", storage.Event{Kind: storage.KindLifecycle}, false},
		// Backfilled history is judged by the import's own replay; the
		// live engine, already past those times, must not see it again.
		{"imported", storage.Event{Kind: storage.KindHTTP, Stage: storage.StageResponseComplete,
			Details: map[string]any{storage.DetailImportedFrom: "access.log"}}, false},
	}
	for _, tt := range tests {
		if got := liveTraffic(&tt.ev); got != tt.want {
			t.Errorf("%s: liveTraffic = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestWithWorkspaceHours(t *testing.T) {
	file := detectors.Config{Workspaces: map[string]detectors.Settings{
		"acme": {BusinessHours: detectors.BusinessHours{Timezone: "Europe/Berlin", Days: []string{"mon"}}, AdminUsers: []string{"root"}},
	}}
	tests := []struct {
		name  string
		hours map[string]storage.BusinessHours
		want  map[string]detectors.BusinessHours
	}{
		{"none", nil, map[string]detectors.BusinessHours{"acme": {Timezone: "Europe/Berlin", Days: []string{"mon"}}}},
		{"stored fields win, the file's others stay", map[string]storage.BusinessHours{"acme": {Timezone: "Asia/Tokyo", Start: "10:00"}},
			map[string]detectors.BusinessHours{"acme": {Timezone: "Asia/Tokyo", Days: []string{"mon"}, Start: "10:00"}}},
		{"a workspace the file does not name", map[string]storage.BusinessHours{"globex": {Days: []string{"sat", "sun"}, End: "12:00"}},
			map[string]detectors.BusinessHours{"acme": {Timezone: "Europe/Berlin", Days: []string{"mon"}}, "globex": {Days: []string{"sat", "sun"}, End: "12:00"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := withWorkspaceHours(file, tt.hours)
			if len(got.Workspaces) != len(tt.want) {
				t.Fatalf("workspaces = %+v", got.Workspaces)
			}
			for ws, want := range tt.want {
				b := got.Workspaces[ws].BusinessHours
				if b.Timezone != want.Timezone || b.Start != want.Start || b.End != want.End || strings.Join(b.Days, ",") != strings.Join(want.Days, ",") {
					t.Errorf("%s = %+v, want %+v", ws, b, want)
				}
			}
			if a := got.Workspaces["acme"].AdminUsers; len(a) != 1 {
				t.Errorf("acme's other settings lost: %+v", got.Workspaces["acme"])
			}
		})
	}
	if tz := file.Workspaces["acme"].BusinessHours.Timezone; tz != "Europe/Berlin" || len(file.Workspaces) != 1 {
		t.Errorf("the config's own map was modified: %+v", file.Workspaces)
	}
}

func TestSweepNowNotRunning(t *testing.T) {
	store := openTestStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w := newDetectorWorker(store, newLoggerRef(nil), detectorSettings{sweep: time.Hour})
	if _, err := w.sweepNow(ctx); !errors.Is(err, adminapi.ErrDetectorsUnavailable) {
		t.Errorf("sweep before start = %v", err)
	}
	if w.status().Running {
		t.Error("an unstarted worker reads as running")
	}
	w.start()
	res, err := w.sweepNow(ctx)
	if err != nil || res.EventsRead != 0 || res.StartedAt.IsZero() {
		t.Errorf("sweep = %+v, %v", res, err)
	}
	if st := w.status(); !st.Running || st.LastSweep.IsZero() {
		t.Errorf("status = %+v", st)
	}
	w.stop()
	if _, err := w.sweepNow(ctx); !errors.Is(err, adminapi.ErrDetectorsUnavailable) {
		t.Errorf("sweep after stop = %v", err)
	}
}

// A caller that gives up after its sweep was queued must not share the
// result with the worker that later runs it (go test -race).
func TestSweepNowCancelledAfterQueueing(t *testing.T) {
	store := openTestStore(t)
	w := newDetectorWorker(store, newLoggerRef(nil), detectorSettings{sweep: time.Hour})
	w.start()
	defer w.stop()
	held, busy := make(chan struct{}), make(chan struct{})
	w.ctl <- func() { close(held); <-busy } // hold the worker so the sweep waits in the queue
	<-held
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for len(w.ctl) == 0 { // the sweep is queued behind the blocker
			time.Sleep(time.Millisecond)
		}
		cancel()
		// Released from here, not after sweepNow returns, so nothing
		// orders the abandoned sweep after the caller's return.
		close(busy)
	}()
	if _, err := w.sweepNow(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled sweep = %v", err)
	}
	// The abandoned sweep runs before this one (the queue is FIFO).
	if _, err := w.sweepNow(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Alternating business-hours changes do not keep the engine replaying
// history: changes within rebuildEvery of the last rebuild wait and are
// applied together, once.
func TestWorkspaceChangesCoalesceRebuilds(t *testing.T) {
	store := openTestStore(t)
	w := newDetectorWorker(store, newLoggerRef(nil), detectorSettings{sweep: time.Hour})
	w.rebuildEvery = time.Hour
	w.start()
	defer w.stop()
	ctx := context.Background()
	zones := []string{"Asia/Tokyo", "Europe/Berlin"}
	for i := range 10 {
		w.workspaceChanged(storage.Workspace{ID: "acme", BusinessHours: &storage.BusinessHours{Timezone: zones[i%2]}})
		waitFor(t, "the change to be taken", func() bool { return len(w.changed) == 0 })
		// The worker handles one thing at a time: once this sweep has
		// run, so has the handling of the change.
		if _, err := w.sweepNow(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := w.rebuilds.Load(); n != 1 {
		t.Fatalf("%d rebuilds for 10 changes within rebuildEvery; want only the one at start", n)
	}
}

// A deferred change is applied once rebuildEvery has passed.
func TestDeferredWorkspaceChangeApplied(t *testing.T) {
	store := openTestStore(t)
	w := newDetectorWorker(store, newLoggerRef(nil), detectorSettings{sweep: time.Hour})
	w.rebuildEvery = 50 * time.Millisecond
	w.start()
	defer w.stop()
	w.workspaceChanged(storage.Workspace{ID: "acme", BusinessHours: &storage.BusinessHours{Timezone: "Asia/Tokyo"}})
	w.workspaceChanged(storage.Workspace{ID: "acme", BusinessHours: &storage.BusinessHours{Timezone: "Europe/Berlin"}})
	zone := func() string {
		got := make(chan string, 1)
		w.ctl <- func() { got <- w.engine.Config().Workspaces["acme"].BusinessHours.Timezone }
		return <-got
	}
	waitFor(t, "the last change to reach the engine", func() bool { return zone() == "Europe/Berlin" })
	if n := w.rebuilds.Load(); n > 3 {
		t.Errorf("%d rebuilds", n)
	}
}
