package caddymodule

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

// metrics are created once per process and registered on every config's
// registry, so values survive reloads (the writer that feeds them does too)
// and a handler used twice in one config does not register twice.
var metrics = struct {
	once sync.Once

	recorded      *prometheus.CounterVec
	riskLevels    *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	writeErrors   *prometheus.CounterVec
	openErrors    *prometheus.CounterVec
	strictRejects prometheus.Counter
	queueDepth    prometheus.Gauge
	indexPending  prometheus.Gauge
	commitSeconds prometheus.Histogram
	batchSize     prometheus.Histogram
	dbBytes       prometheus.Gauge

	checkpointSeq    prometheus.Gauge
	checkpointTime   prometheus.Gauge
	checkpointErrors prometheus.Counter
	purged           prometheus.Counter
	verifyOK         prometheus.Gauge
	verifyTime       prometheus.Gauge

	alerts          *prometheus.CounterVec
	openAlerts      *prometheus.GaugeVec
	sweepSeconds    prometheus.Histogram
	lastSweep       prometheus.Gauge
	detectorDropped prometheus.Counter

	// all is every collector above, in the order initMetrics made them:
	// what registerMetrics registers, kept by collect so that a new
	// metric cannot be made and then forgotten there.
	all []prometheus.Collector
}{}

// collect notes c for registration and returns it.
func collect[C prometheus.Collector](c C) C {
	metrics.all = append(metrics.all, c)
	return c
}

func initMetrics() {
	metrics.once.Do(func() {
		const ns, sub = "caddy", "audit"
		metrics.recorded = collect(prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_recorded_total",
			Help: "Audit events accepted by the handler, by audit level.",
		}, []string{"level"}))
		metrics.riskLevels = collect(prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_risk_total",
			Help: "Proxied requests recorded, by risk level of their score (low, medium, high, critical): risk over time.",
		}, []string{"level"}))
		metrics.dropped = collect(prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_dropped_total",
			Help: "Best-effort audit events lost, by reason (queue_full, write_error, closed).",
		}, []string{"reason"}))
		metrics.writeErrors = collect(prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "write_errors_total",
			Help: "Failed commits to the audit database, by kind (disk_full, permission, corrupt, closed, io).",
		}, []string{"kind"}))
		metrics.openErrors = collect(prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "open_errors_total",
			Help: "Failed attempts to open the audit database (at start or reload), by kind (locked, disk_full, permission, corrupt, io).",
		}, []string{"kind"}))
		metrics.strictRejects = collect(prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "strict_rejections_total",
			Help: "Requests answered 503 because strict mode could not record them.",
		}))
		metrics.queueDepth = collect(prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "queue_depth",
			Help: "Audit events waiting to be committed.",
		}))
		metrics.indexPending = collect(prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "index_pending_events",
			Help: "Stored audit events whose search index entries are not written yet; above a few thousand, index writes are failing.",
		}))
		metrics.commitSeconds = collect(prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "batch_commit_seconds",
			Help:    "Time to commit one batch of audit events, fsync included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}))
		metrics.batchSize = collect(prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "events_per_batch",
			Help:    "Audit events committed per transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}))
		metrics.dbBytes = collect(prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "db_size_bytes",
			Help: "Size of the audit database file.",
		}))
		metrics.checkpointSeq = collect(prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "checkpoint_seq",
			Help: "Sequence number covered by the latest signed integrity checkpoint.",
		}))
		metrics.checkpointTime = collect(prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "checkpoint_timestamp_seconds",
			Help: "When the latest integrity checkpoint was signed (Unix time).",
		}))
		metrics.checkpointErrors = collect(prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "checkpoint_errors_total",
			Help: "Failed or refused checkpoint signings (a refusal means the chain went backwards).",
		}))
		metrics.purged = collect(prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_purged_total",
			Help: "Events removed by retention.",
		}))
		metrics.verifyOK = collect(prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "last_verification_ok",
			Help: "1 if the latest integrity verification found no problem, 0 if it did.",
		}))
		metrics.verifyTime = collect(prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "last_verification_timestamp_seconds",
			Help: "When the latest integrity verification finished (Unix time).",
		}))
		// Labels are the six detector names and four severities: bounded.
		metrics.alerts = collect(prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "alerts_total",
			Help: "Alerts raised by the detectors, by detector and severity; an alert whose severity rises counts again at its new severity.",
		}, []string{"detector", "severity"}))
		metrics.openAlerts = collect(prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "open_alerts",
			Help: "Stored alerts not yet resolved or marked a false positive (open or acknowledged), by severity; refreshed by every detector sweep.",
		}, []string{"severity"}))
		metrics.sweepSeconds = collect(prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: "audit_detector", Name: "sweep_duration_seconds",
			Help:    "Time one detector sweep took (catching up on stored events, flushing alert updates, counting alerts).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}))
		metrics.lastSweep = collect(prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "audit_detector", Name: "last_sweep_timestamp_seconds",
			Help: "When the latest detector sweep finished (Unix time).",
		}))
		metrics.detectorDropped = collect(prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "audit_detector", Name: "events_dropped_total",
			Help: "Committed events the detector worker's feed had no room for; the worker reads them back from the store, so they are judged late, not lost.",
		}))
		initSeries()
	})
}

// initSeries creates every series of the labelled metrics at zero. The
// label values are closed sets, so this bounds the cardinality and
// makes each series exist from the first scrape: rate() and increase()
// then see the first drop or alert as a change from 0 (a series born at 1
// shows no increase), and a dashboard or alert rule finds every metric
// name before anything has gone wrong.
func initSeries() {
	for _, level := range policy.Levels {
		if level != LevelNone {
			metrics.recorded.WithLabelValues(level)
		}
	}
	for _, level := range detectors.RiskLevels {
		metrics.riskLevels.WithLabelValues(level)
	}
	for _, reason := range []string{storage.DropQueueFull, storage.DropWriteError, storage.DropClosed} {
		metrics.dropped.WithLabelValues(reason)
	}
	for _, kind := range []string{storage.KindFull, storage.KindPermission, storage.KindCorrupt, storage.KindClosed, storage.KindIO} {
		metrics.writeErrors.WithLabelValues(kind)
	}
	for _, kind := range []string{storage.KindLocked, storage.KindFull, storage.KindPermission, storage.KindCorrupt, storage.KindIO} {
		metrics.openErrors.WithLabelValues(kind)
	}
	for _, sev := range storage.Severities {
		metrics.openAlerts.WithLabelValues(sev)
		for _, det := range detectors.Detectors {
			metrics.alerts.WithLabelValues(det, sev)
		}
	}
}

// registerMetrics registers the collectors on reg. Already being registered
// (a second handler in the same config) is success.
func registerMetrics(reg prometheus.Registerer) error {
	initMetrics()
	for _, c := range metrics.all {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}
	return nil
}

// writerObserver feeds the storage writer's signals into the metrics.
type writerObserver struct {
	size      func() int64
	unindexed func() int

	mu        sync.Mutex
	lastSized time.Time
}

func (o *writerObserver) Committed(n int, d time.Duration) {
	metrics.commitSeconds.Observe(d.Seconds())
	metrics.batchSize.Observe(float64(n))
	// Reading the file size takes a read transaction; once a second is
	// plenty for a gauge.
	o.mu.Lock()
	due := time.Since(o.lastSized) > time.Second
	if due {
		o.lastSized = time.Now()
	}
	o.mu.Unlock()
	if due {
		metrics.dbBytes.Set(float64(o.size()))
		metrics.indexPending.Set(float64(o.unindexed()))
	}
}

func (o *writerObserver) Dropped(reason string, n int) {
	metrics.dropped.WithLabelValues(reason).Add(float64(n))
}

func (o *writerObserver) WriteFailed(err error) {
	metrics.writeErrors.WithLabelValues(storage.ErrorKind(err)).Inc()
}

func (o *writerObserver) QueueDepth(n int) { metrics.queueDepth.Set(float64(n)) }

// observeVerification records an integrity verification's outcome.
func observeVerification(rep storage.VerifyReport) {
	ok := 0.0
	if rep.OK {
		ok = 1
	}
	metrics.verifyOK.Set(ok)
	metrics.verifyTime.SetToCurrentTime()
}
